//! What every handler shares: the configuration, the Redis and PostgreSQL clients, the counters.
//! Its own module so that `startup` (which builds it and wires the routes) and the routes (which
//! read it) both depend on it, and not on each other.

use crate::access::Verifier;
use crate::capture::status::CaptureStatus;
use crate::config::Config;
use crate::db::Database;
use crate::layers::runtime::Leased;
use crate::redis_store::RedisStore;
use crate::stats::Stats;
use std::sync::Arc;

/// The service's state, behind one `Arc` per process. The clients are `Arc`s of their own so a
/// read's adapters can own a handle on them and finish writing after the response.
pub struct AppState {
    pub config: Config,
    pub redis: Arc<RedisStore>,
    pub db: Arc<Database>,
    pub stats: Stats,
    /// Access tokens and memberships (see `crate::access`).
    pub verifier: Verifier,
    /// Refresh leases of the pages this process serves.
    pub leases: Leased,
    /// Change capture's connection, backlog and counters, when it runs.
    pub capture: Option<Arc<CaptureStatus>>,
}
