//! PostgreSQL for the fallback read path and the counts: a small pool, every call bounded, the
//! statements built by `contact_list_cache_core::sql` so they mean what the worker's PostgREST
//! queries mean.

use crate::db_target::{DbTarget, SslMode};
use crate::tracing_id;
use futures_util::future::join3;
use contact_list_cache_core::envelope::Contact;
use contact_list_cache_core::query::{ContactQuery, UserId, WorkspaceId};
use contact_list_cache_core::sql::{self, SqlQuery};
use deadpool_postgres::{Hook, HookError, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use std::time::{Duration, Instant};
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Connection, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

/// A connection made by [`connect`]: over TLS or not, as `DATABASE_URL`'s `sslmode` says.
pub type DbConnection = Connection<Socket, <MakeRustlsConnect as MakeTlsConnect<Socket>>::Stream>;

/// Connects to `url` (`DATABASE_URL`) with the TLS its `sslmode` and `sslrootcert` ask for. The
/// pool's connections are made the same way.
pub async fn connect(url: &str) -> Result<(Client, DbConnection), DbError> {
    let target = DbTarget::parse(url).map_err(|err| DbError::Misconfigured(err.to_string()))?;
    target.config.connect(target.connector()).await.map_err(|err| match target.explain(&err) {
        Some(message) => DbError::Misconfigured(message),
        None => DbError::Query(err),
    })
}

/// The backend's `application_name` outside a traced request (see `crate::tracing_id`).
pub const APPLICATION_NAME: &str = "contact-list-cache-backend";

/// The session settings every pooled connection gets, with SET once connected rather than as
/// startup options (Supavisor drops startup options, and keeps a session's SETs in session mode):
/// UTC so timestamps encode exactly as PostgREST encodes them; a statement never outlives the
/// caller's patience; random pages costed as on SSDs, as for PostgREST's requests
/// (supabase/migrations/20250127000900_keyset_and_search_indexes.sql), so both paths plan alike.
pub fn session_settings(timeout: Duration) -> String {
    format!("set timezone = 'UTC'; set statement_timeout = {}; set random_page_cost = 1.1", timeout.as_millis())
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("DATABASE_URL is not configured")]
    NotConfigured,
    #[error("database did not answer within {0:?}")]
    Timeout(Duration),
    #[error("database pool: {0}")]
    Pool(String),
    #[error("database: {0}")]
    Query(#[from] tokio_postgres::Error),
    #[error("decoding the database's JSON: {0}")]
    Decode(#[from] serde_json::Error),
    /// Connecting failed in a way the configuration must fix (TLS, most often); the message
    /// names the setting.
    #[error("{0}")]
    Misconfigured(String),
}

/// One page as read: whether the caller is a member, the total and the page's contacts.
#[derive(Debug)]
pub struct PageRead {
    pub member: bool,
    pub total: u64,
    pub contacts: Vec<Contact>,
}

/// Per-filter counts as read, in `Filter::ALL` order.
#[derive(Debug)]
pub struct CountsRead {
    pub member: bool,
    pub counts: [u64; 10],
}

pub struct Database {
    pool: Option<Pool>,
    target: Option<DbTarget>,
    timeout: Duration,
}

impl Database {
    /// A pool for `url` (connections are opened on first use), or an unconfigured database that
    /// answers every call with [`DbError::NotConfigured`].
    pub fn new(url: Option<&str>, timeout: Duration, max_connections: usize) -> anyhow::Result<Self> {
        let Some(url) = url else {
            return Ok(Self { pool: None, target: None, timeout });
        };
        let target = DbTarget::parse(url)?;
        let mut config = target.config.clone();
        config.connect_timeout(timeout).application_name(APPLICATION_NAME);
        let manager = Manager::from_config(config, target.connector(), ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let settings = session_settings(timeout);
        let pool = Pool::builder(manager)
            .post_create(Hook::async_fn(move |client, _| {
                let settings = settings.clone();
                Box::pin(async move { client.batch_execute(&settings).await.map_err(HookError::Backend) })
            }))
            .max_size(max_connections)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(timeout))
            .create_timeout(Some(timeout))
            .recycle_timeout(Some(timeout))
            .build()
            .map_err(|err| anyhow::anyhow!("building the database pool: {err}"))?;
        Ok(Self { pool: Some(pool), target: Some(target), timeout })
    }

    pub fn is_configured(&self) -> bool {
        self.pool.is_some()
    }

    /// Whether connections must be TLS (`sslmode` `require` or `verify-full`).
    pub fn requires_tls(&self) -> bool {
        self.target.as_ref().is_some_and(|target| matches!(target.mode, SslMode::Require | SslMode::VerifyFull))
    }

    /// Round-trip time of `select 1`.
    pub async fn ping(&self) -> Result<Duration, DbError> {
        let started = Instant::now();
        self.query_one(&SqlQuery { text: "select 1".into(), params: vec![], custom_plan: false }).await?;
        Ok(started.elapsed())
    }

    /// One page; a narrowed list's total is counted unless `known_total` gives it.
    pub async fn contact_page(&self, workspace: &WorkspaceId, caller: &UserId, query: &ContactQuery, known_total: Option<u64>) -> Result<PageRead, DbError> {
        let row = self.query_one(&sql::contact_page(workspace, caller, query, known_total)).await?;
        Ok(PageRead {
            member: row.try_get(0)?,
            total: row.try_get::<_, i64>(1)?.max(0) as u64,
            contacts: serde_json::from_str(row.try_get(2)?)?,
        })
    }

    /// The ids of every board of `workspace`.
    pub async fn boards(&self, workspace: &WorkspaceId) -> Result<Vec<String>, DbError> {
        let row = self.query_one(&sql::boards(workspace)).await?;
        Ok(serde_json::from_str(row.try_get(0)?)?)
    }

    /// Whether `user` is a member of `workspace`.
    pub async fn is_member(&self, workspace: &WorkspaceId, user: &UserId) -> Result<bool, DbError> {
        let row = self.query_one(&sql::membership(workspace, user)).await?;
        Ok(row.try_get(0)?)
    }

    pub async fn contact_counts(&self, workspace: &WorkspaceId, caller: &UserId) -> Result<CountsRead, DbError> {
        let row = self.query_one(&sql::contact_counts(workspace, caller)).await?;
        let mut counts = [0u64; 10];
        for (i, count) in counts.iter_mut().enumerate() {
            *count = row.try_get::<_, i64>(i + 1)?.max(0) as u64;
        }
        Ok(CountsRead { member: row.try_get(0)?, counts })
    }

    /// Runs one statement on a pooled connection; getting the connection and the answer take at
    /// most `DATABASE_TIMEOUT_MS` together. The audit log's statements use it too.
    pub(crate) async fn query_one(&self, query: &SqlQuery) -> Result<tokio_postgres::Row, DbError> {
        let pool = self.pool.as_ref().ok_or(DbError::NotConfigured)?;
        let call = async {
            let client = pool.get().await.map_err(|err| self.pool_error(err))?;
            let statement = client.prepare_cached(&query.text).await?;
            let params: Vec<&(dyn ToSql + Sync)> = query.params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
            let traced = tracing_id::current();
            if traced.is_none() && !query.custom_plan {
                return Ok(client.query_one(&statement, &params).await?);
            }
            // A traced request's statement, or a search, runs in a transaction of its own, the
            // three messages sent at once (one round trip): `begin` with its settings, the
            // statement, `commit` (a rollback when the statement failed). A traced one is named
            // (the id is `[A-Za-z0-9._-]` only); a search is planned for its own values, as
            // PostgREST's are (supabase/migrations/20250127001210_search_custom_plans.sql: a
            // cached statement's generic plan can read the search indexes whole), and no other
            // statement pays for planning again.
            let mut begin = String::from("begin");
            if let Some(id) = &traced {
                begin.push_str(&format!("; select set_config('application_name', '{}', true)", tracing_id::application_name(id)));
            }
            if query.custom_plan {
                begin.push_str("; set local plan_cache_mode = force_custom_plan");
            }
            let (began, row, ended) = join3(client.batch_execute(&begin), client.query_one(&statement, &params), client.batch_execute("commit")).await;
            began?;
            let row = row?;
            ended?;
            Ok(row)
        };
        tokio::time::timeout(self.timeout, call).await.map_err(|_| DbError::Timeout(self.timeout))?
    }

    fn pool_error(&self, err: deadpool_postgres::PoolError) -> DbError {
        match self.target.as_ref().and_then(|target| target.explain(&err)) {
            Some(message) => DbError::Misconfigured(message),
            None => DbError::Pool(err.to_string()),
        }
    }
}
