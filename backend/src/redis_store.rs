//! The Redis client wrapper: one connection (single node or cluster), made lazily, every call
//! bounded by a timeout so a dead Redis costs milliseconds, never a hung request.

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Why a Redis call did not answer.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
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
    timeout: Duration,
    connection: Mutex<Option<RedisConnection>>,
}

impl RedisStore {
    pub fn new(url: String, cluster: bool, timeout: Duration) -> Self {
        Self { url, cluster, timeout, connection: Mutex::new(None) }
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
        let conn = self.bounded(self.connect()).await?;
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

    async fn connect(&self) -> redis::RedisResult<RedisConnection> {
        if self.cluster {
            let client = redis::cluster::ClusterClientBuilder::new(vec![self.url.as_str()])
                .connection_timeout(self.timeout)
                .response_timeout(self.timeout)
                .build()?;
            Ok(RedisConnection::Cluster(client.get_async_connection().await?))
        } else {
            let client = redis::Client::open(self.url.as_str())?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(self.timeout))
                .set_response_timeout(Some(self.timeout))
                .set_number_of_retries(1);
            Ok(RedisConnection::Single(ConnectionManager::new_with_config(client, config).await?))
        }
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
