//! The Redis client wrapper: one connection (single node or cluster), made lazily, every call
//! bounded by a timeout so a dead Redis costs milliseconds, never a hung request.
//!
//! No contact data is stored in the clear: pages, totals and counts are sealed
//! ([`RedisStore::set_sealed`]), and the reads log names each page read by a keyed hash of its
//! query, the query itself (which may hold a search term) sealed beside it
//! ([`RedisStore::add_recent`]).

use crate::tls::{CaFile, HandshakeFailure};
use contact_list_cache_core::invalidation::KeyPattern;
use contact_list_cache_core::sealed::{Keyring, OpenError, NONCE_LEN};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, ErrorKind, FromRedisValue, Pipeline, RedisFuture, TlsCertificates, Value};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

mod inspect;
pub use inspect::RedisInfo;

/// Why a Redis call did not answer.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// Connecting failed in a way the configuration must fix (TLS, or plain Redis to a TLS
    /// port); the message names the setting.
    #[error("{0}")]
    Misconfigured(String),
}

/// A live connection to a single node or a cluster; both reconnect by themselves.
#[derive(Clone)]
pub enum RedisConnection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}

/// The service's handle on Redis. Connecting is deferred to first use and retried on the next
/// call after a failure, so the process starts and stays up while Redis is down.
pub struct RedisStore {
    url: String,
    cluster: bool,
    /// `REDIS_CA_CERT`: the only CA trusted for a `rediss://` URL when set.
    ca: Option<CaFile>,
    timeout: Duration,
    connection: Mutex<Option<RedisConnection>>,
}

impl RedisStore {
    pub fn new(url: String, cluster: bool, ca: Option<CaFile>, timeout: Duration) -> Self {
        Self { url, cluster, ca, timeout, connection: Mutex::new(None) }
    }

    /// Whether the URL is `rediss://`.
    pub fn is_tls(&self) -> bool {
        self.url.starts_with("rediss://")
    }

    /// Whether this store speaks the cluster protocol.
    pub fn is_cluster(&self) -> bool {
        self.cluster
    }

    /// A connection, connecting first if needed, within the timeout.
    pub async fn connection(&self) -> Result<RedisConnection, RedisError> {
        let mut slot = self.connection.lock().await;
        if let Some(conn) = slot.as_ref() {
            return Ok(conn.clone());
        }
        let conn = match tokio::time::timeout(self.timeout, self.connect()).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(err)) => return Err(self.connect_error(err)),
            Err(_) => return Err(RedisError::Timeout(self.timeout)),
        };
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Round-trip time of a `PING`.
    pub async fn ping(&self) -> Result<Duration, RedisError> {
        let started = Instant::now();
        let mut conn = self.connection().await?;
        self.bounded(redis::cmd("PING").query_async::<String>(&mut conn)).await?;
        Ok(started.elapsed())
    }

    /// The value at `key`, `None` when absent or expired.
    pub async fn get(&self, key: &str) -> Result<Option<String>, RedisError> {
        let mut conn = self.connection().await?;
        self.bounded(redis::cmd("GET").arg(key).query_async(&mut conn)).await
    }

    /// The value at `key`, opened with `keyring`. An entry that does not open (tampered, unknown key
    /// id, written for another key) is reported as [`Sealed::Refused`] and never served.
    pub async fn get_sealed(&self, keyring: &Keyring, key: &str) -> Result<Sealed, RedisError> {
        Ok(match self.get(key).await? {
            None => Sealed::Missing,
            Some(sealed) => match keyring.open(key, &sealed) {
                Ok(plain) => Sealed::Found(plain),
                Err(err) => Sealed::Refused(err),
            },
        })
    }

    /// Stores `value` at `key` for `ttl_seconds`, sealed with the current key of `keyring`.
    pub async fn set_sealed(&self, keyring: &Keyring, key: &str, value: &str, ttl_seconds: u32) -> Result<(), RedisError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::getrandom(&mut nonce).expect("the OS provides randomness");
        self.set_ex(key, &keyring.seal(key, value, nonce), ttl_seconds).await
    }

    /// Stores `value` at `key` for `ttl_seconds`.
    pub async fn set_ex(&self, key: &str, value: &str, ttl_seconds: u32) -> Result<(), RedisError> {
        let mut conn = self.connection().await?;
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value).arg("EX").arg(ttl_seconds);
        self.bounded(cmd.query_async::<()>(&mut conn)).await
    }

    /// Scores each of `pages` (a page read, and who read it) with `score` (now) in `log`'s sorted
    /// set and keeps the page and its reader in its hash, keeps only the `keep` most recent in
    /// both, and lets both expire `ttl_seconds` after the last addition. One script, so the two
    /// stay in step. A page's member is its keyed hash ([`RecentMember`]), so a page read again
    /// is scored again, never added twice; the page and its reader are sealed in the hash.
    pub async fn add_recent(&self, keyring: &Keyring, log: RecentLog<'_>, pages: &[(String, String)], score: u64, keep: u32, ttl_seconds: u32) -> Result<(), RedisError> {
        let RecentLog { pages: key, readers } = log;
        const SCRIPT: &str = r"
            local score, keep, ttl = ARGV[1], tonumber(ARGV[2]), ARGV[3]
            for i = 4, #ARGV, 2 do
                redis.call('ZADD', KEYS[1], score, ARGV[i])
                redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
            end
            local gone = redis.call('ZRANGE', KEYS[1], 0, -keep - 1)
            if #gone > 0 then
                redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -keep - 1)
                redis.call('HDEL', KEYS[2], unpack(gone))
            end
            redis.call('EXPIRE', KEYS[1], ttl)
            redis.call('EXPIRE', KEYS[2], ttl)
            return #gone";
        let mut conn = self.connection().await?;
        let script = redis::Script::new(SCRIPT);
        let mut invocation = script.key(key);
        invocation.key(readers).arg(score).arg(keep).arg(ttl_seconds);
        for (page, user) in pages {
            let member = RecentMember::of(keyring, key, page);
            invocation.arg(&member.0).arg(member.seal(keyring, readers, page, user));
        }
        self.bounded(invocation.invoke_async::<u64>(&mut conn)).await.map(|_| ())
    }

    /// The pages of `log` scored `since` or later, highest first, at most `limit`, each with its
    /// reader, opened from the log's hash. One that does not open (no entry, tampered, under an
    /// unknown key) is left out, and so is a page already listed (read under the previous key
    /// during a rotation).
    pub async fn recent(&self, keyring: &Keyring, log: RecentLog<'_>, since: u64, limit: u32) -> Result<Vec<(String, String)>, RedisError> {
        let RecentLog { pages: key, readers } = log;
        let mut conn = self.connection().await?;
        let mut range = redis::cmd("ZRANGE");
        range.arg(key).arg("+inf").arg(since).arg("BYSCORE").arg("REV").arg("LIMIT").arg(0).arg(limit);
        let pages: Vec<String> = self.bounded(range.query_async(&mut conn)).await?;
        if pages.is_empty() {
            return Ok(Vec::new());
        }
        let mut hmget = redis::cmd("HMGET");
        hmget.arg(readers).arg(&pages);
        let sealed: Vec<Option<String>> = self.bounded(hmget.query_async(&mut conn)).await?;
        let mut seen = std::collections::HashSet::new();
        let opened = pages.into_iter().zip(sealed).filter_map(|(member, sealed)| RecentMember(member).open(keyring, readers, &sealed?));
        Ok(opened.filter(|(page, _)| seen.insert(page.clone())).collect())
    }

    /// Removes every key matching `pattern` with SCAN + UNLINK (never KEYS), on the node that
    /// holds the pattern's workspace; returns how many were removed. Each round trip is bounded.
    pub async fn remove_matching(&self, pattern: &KeyPattern) -> Result<u64, RedisError> {
        let mut conn = self.connection().await?;
        let hash_tag = format!("{{{}}}", pattern.workspace);
        let (mut cursor, mut removed) = (0u64, 0u64);
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor).arg("MATCH").arg(&pattern.glob).arg("COUNT").arg(1000);
            let (next, keys): (u64, Vec<String>) = self.bounded(on_node_of(&mut conn, scan, &hash_tag)).await?;
            if !keys.is_empty() {
                let mut unlink = redis::cmd("UNLINK");
                unlink.arg(&keys);
                removed += self.bounded(on_node_of::<u64>(&mut conn, unlink, &hash_tag)).await?;
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }

    async fn connect(&self) -> redis::RedisResult<RedisConnection> {
        let certs = self.ca.as_ref().map(|ca| TlsCertificates { client_tls: None, root_cert: Some(ca.pem.clone()) });
        if self.cluster {
            let mut builder = redis::cluster::ClusterClientBuilder::new(vec![self.url.as_str()])
                .connection_timeout(self.timeout)
                .response_timeout(self.timeout);
            if let Some(certs) = certs {
                builder = builder.certs(certs);
            }
            Ok(RedisConnection::Cluster(builder.build()?.get_async_connection().await?))
        } else {
            let client = match certs {
                Some(certs) => redis::Client::build_with_tls(self.url.as_str(), certs)?,
                None => redis::Client::open(self.url.as_str())?,
            };
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(self.timeout))
                .set_response_timeout(Some(self.timeout))
                .set_number_of_retries(1);
            Ok(RedisConnection::Single(ConnectionManager::new_with_config(client, config).await?))
        }
    }

    /// A failed connect, named after the setting to fix when TLS (or its absence) is the cause.
    fn connect_error(&self, err: redis::RedisError) -> RedisError {
        let trust = match &self.ca {
            Some(ca) => format!("trusting only REDIS_CA_CERT={}", ca.path.display()),
            None => "trusting the built-in Mozilla roots; set REDIS_CA_CERT to the server's CA file".into(),
        };
        if let Some(failure) = HandshakeFailure::find(&err) {
            return RedisError::Misconfigured(failure.message("REDIS_PUBLIC_URL", &trust));
        }
        // A plain connection that reached a TLS-only port gets its hello answered with a TLS
        // alert or a closed socket, never a refusal.
        if !self.is_tls() && matches!(err.kind(), ErrorKind::Io | ErrorKind::Parse) && !err.is_connection_refusal() && !err.is_timeout() {
            return RedisError::Misconfigured(format!(
                "REDIS_PUBLIC_URL: the server did not answer as Redis ({err}); if it accepts only TLS, use a rediss:// URL"
            ));
        }
        RedisError::Redis(err)
    }

    async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, RedisError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(RedisError::Timeout(self.timeout)),
        }
    }
}

/// A log of pages read, in two keys with the same hash tag: the sorted set of pages by last read
/// (`pages`) and the hash keeping each page and its reader, sealed (`readers`).
#[derive(Clone, Copy)]
pub struct RecentLog<'a> {
    pub pages: &'a str,
    pub readers: &'a str,
}

/// The member of a page in a reads log: the keyed hash of the log's key and the page, so that
/// neither the page's query (a search term) nor which logs read the same page shows in Redis.
struct RecentMember(String);

impl RecentMember {
    fn of(keyring: &Keyring, key: &str, page: &str) -> Self {
        Self(keyring.keyed_hash(&format!("{key}\n{page}")))
    }

    /// `[page, user]` sealed for this member of the hash at `readers`.
    fn seal(&self, keyring: &Keyring, readers: &str, page: &str, user: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::getrandom(&mut nonce).expect("the OS provides randomness");
        keyring.seal(&self.bound_to(readers), &serde_json::json!([page, user]).to_string(), nonce)
    }

    /// The page and its reader, if `sealed` opens as this member's.
    fn open(&self, keyring: &Keyring, readers: &str, sealed: &str) -> Option<(String, String)> {
        serde_json::from_str(&keyring.open(&self.bound_to(readers), sealed).ok()?).ok()
    }

    /// What the sealed value is bound to: the hash's key and the member.
    fn bound_to(&self, readers: &str) -> String {
        format!("{readers}:{}", self.0)
    }
}

/// A sealed value as read.
#[derive(Debug)]
pub enum Sealed {
    Found(String),
    Missing,
    Refused(OpenError),
}

/// Runs `cmd` on the node owning `hash_tag`'s slot (any command on a single node).
async fn on_node_of<T: FromRedisValue>(conn: &mut RedisConnection, cmd: Cmd, hash_tag: &str) -> redis::RedisResult<T> {
    match conn {
        RedisConnection::Single(single) => cmd.query_async(single).await,
        RedisConnection::Cluster(cluster) => {
            let route = Route::with_key(hash_tag, SlotAddr::Master);
            let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route));
            Ok(redis::from_redis_value(cluster.route_command(cmd, routing).await?)?)
        }
    }
}
