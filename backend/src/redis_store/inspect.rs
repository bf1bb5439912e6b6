//! What `/api/cache/stats` asks of Redis: INFO from every node, summed, and a bounded SCAN of
//! every node (every primary of a cluster).

use super::{RedisConnection, RedisError, RedisStore};
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo, SingleNodeRoutingInfo};
use redis::Value;

impl RedisStore {
    /// The text of `INFO` from every node (every primary of a cluster).
    pub async fn info(&self) -> Result<Vec<String>, RedisError> {
        let mut conn = self.connection().await?;
        let value = match &mut conn {
            RedisConnection::Single(single) => self.bounded(redis::cmd("INFO").query_async::<Value>(single)).await?,
            RedisConnection::Cluster(cluster) => {
                let all = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
                self.bounded(cluster.route_command(redis::cmd("INFO"), all)).await?
            }
        };
        let mut texts = Vec::new();
        collect_info_texts(value, &mut texts);
        Ok(texts)
    }

    /// Calls `each` with every key matching `glob` (SCAN with MATCH, never KEYS) on every node
    /// (every primary of a cluster), stopping after `max_keys`; answers whether it stopped early.
    /// Each round trip is bounded.
    pub async fn scan_each(&self, glob: &str, max_keys: u64, mut each: impl FnMut(&str)) -> Result<bool, RedisError> {
        let mut conn = self.connection().await?;
        let nodes: Vec<Option<(String, u16)>> = match &mut conn {
            RedisConnection::Single(_) => vec![None],
            RedisConnection::Cluster(cluster) => {
                let all = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
                let answer = self.bounded(cluster.route_command(redis::cmd("PING"), all)).await?;
                node_addresses(&answer).into_iter().map(Some).collect()
            }
        };
        let mut seen = 0u64;
        for node in nodes {
            let mut cursor = 0u64;
            loop {
                let mut scan = redis::cmd("SCAN");
                scan.arg(cursor).arg("MATCH").arg(glob).arg("COUNT").arg(1000);
                let (next, keys): (u64, Vec<String>) = match (&mut conn, &node) {
                    (RedisConnection::Cluster(cluster), Some((host, port))) => {
                        let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host: host.clone(), port: *port });
                        let value = self.bounded(cluster.route_command(scan, routing)).await?;
                        redis::from_redis_value(value).map_err(|err| RedisError::Redis(err.into()))?
                    }
                    (conn, _) => self.bounded(scan.query_async(conn)).await?,
                };
                for key in &keys {
                    if seen == max_keys {
                        return Ok(true);
                    }
                    seen += 1;
                    each(key);
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(false)
    }
}

/// INFO answers are strings; a cluster nests them in a map keyed by node address.
fn collect_info_texts(value: Value, out: &mut Vec<String>) {
    match value {
        Value::BulkString(bytes) => out.push(String::from_utf8_lossy(&bytes).into_owned()),
        Value::VerbatimString { text, .. } => out.push(text),
        Value::SimpleString(text) => out.push(text),
        Value::Map(pairs) => pairs.into_iter().for_each(|(_, v)| collect_info_texts(v, out)),
        Value::Array(items) | Value::Set(items) => items.into_iter().for_each(|v| collect_info_texts(v, out)),
        _ => {}
    }
}

/// The `host:port` addresses that key a cluster's answer from several nodes.
fn node_addresses(value: &Value) -> Vec<(String, u16)> {
    let Value::Map(pairs) = value else { return Vec::new() };
    pairs
        .iter()
        .filter_map(|(key, _)| match key {
            Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
            Value::SimpleString(text) => Some(text.clone()),
            _ => None,
        })
        .filter_map(|address| {
            let (host, port) = address.rsplit_once(':')?;
            Some((host.to_owned(), port.parse().ok()?))
        })
        .collect()
}

/// Numbers summed over the nodes' INFO texts.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize)]
pub struct RedisInfo {
    pub nodes: u64,
    pub keys: u64,
    pub used_memory_bytes: u64,
    /// `maxmemory` summed over the nodes; 0 when any node has none (unlimited).
    pub maxmemory_bytes: u64,
    pub keyspace_hits: u64,
    pub keyspace_misses: u64,
    pub total_commands_processed: u64,
    pub connected_clients: u64,
    pub evicted_keys: u64,
    pub expired_keys: u64,
}

impl RedisInfo {
    /// Sums the fields of several INFO texts (`field:value` lines; `dbN:keys=..,...` lines).
    pub fn from_texts(texts: &[String]) -> Self {
        let mut info = Self { nodes: texts.len() as u64, ..Self::default() };
        let mut maxmemory = Vec::new();
        for line in texts.iter().flat_map(|text| text.lines()) {
            let Some((field, value)) = line.trim().split_once(':') else { continue };
            let number = || value.trim().parse::<u64>().unwrap_or(0);
            match field {
                "used_memory" => info.used_memory_bytes += number(),
                "maxmemory" => maxmemory.push(number()),
                "keyspace_hits" => info.keyspace_hits += number(),
                "keyspace_misses" => info.keyspace_misses += number(),
                "total_commands_processed" => info.total_commands_processed += number(),
                "connected_clients" => info.connected_clients += number(),
                "evicted_keys" => info.evicted_keys += number(),
                "expired_keys" => info.expired_keys += number(),
                db if db.starts_with("db") => {
                    let keys = value.split(',').find_map(|kv| kv.strip_prefix("keys="));
                    info.keys += keys.and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
                }
                _ => {}
            }
        }
        info.maxmemory_bytes = if maxmemory.contains(&0) { 0 } else { maxmemory.iter().sum() };
        info
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_texts_are_summed_over_nodes() {
        let node = "# Memory\r\nused_memory:1000\r\nmaxmemory:4000\r\n# Stats\r\nkeyspace_hits:5\r\nkeyspace_misses:2\r\n\
                    # Keyspace\r\ndb0:keys=7,expires=7,avg_ttl=1000\r\n";
        let info = RedisInfo::from_texts(&[node.to_owned(), node.to_owned()]);
        assert_eq!(info.nodes, 2);
        assert_eq!(info.used_memory_bytes, 2000);
        assert_eq!((info.keyspace_hits, info.keyspace_misses), (10, 4));
        assert_eq!(info.keys, 14);
        assert_eq!(info.maxmemory_bytes, 8000);
        let unlimited = node.replace("maxmemory:4000", "maxmemory:0");
        assert_eq!(RedisInfo::from_texts(&[node.to_owned(), unlimited]).maxmemory_bytes, 0, "one unlimited node: no total limit");
    }

    #[test]
    fn a_cluster_answer_names_its_nodes() {
        let answer = Value::Map(vec![
            (Value::BulkString(b"127.0.0.1:7000".to_vec()), Value::Okay),
            (Value::SimpleString("10.0.0.2:7001".into()), Value::Okay),
        ]);
        assert_eq!(node_addresses(&answer), vec![("127.0.0.1".to_owned(), 7000), ("10.0.0.2".to_owned(), 7001)]);
    }
}
