//! What the engine is told about one read: the caller's mode, membership and generation, the
//! policy and the time budgets.

use crate::access::Membership;
use crate::freshness::FreshnessPolicy;
use crate::layer::CacheLayer;
use crate::time::UnixMillis;

/// Time budgets of one call to each layer, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budgets {
    pub kv_ms: u32,
    pub redis_ms: u32,
    pub database_ms: u32,
    pub fallback_ms: u32,
}

impl Budgets {
    pub fn of(&self, layer: CacheLayer) -> u32 {
        match layer {
            CacheLayer::L0 | CacheLayer::Kv => self.kv_ms,
            CacheLayer::Redis => self.redis_ms,
            CacheLayer::Database => self.database_ms,
            CacheLayer::BackendFallback => self.fallback_ms,
        }
    }
}

/// What the engine is told to do with copies and calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// TTL, stale-while-revalidate and stale-if-error.
    pub freshness: FreshnessPolicy,
    pub budgets: Budgets,
    /// How long one background refresh of a page holds off others (per coalescer).
    pub refresh_lease_ms: u64,
}

/// What the caller asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Cached copies are welcome.
    Normal,
    /// Fresh data (`Cache-Control: no-cache`, or a cache warm-up): no cache is read, and the
    /// answer refreshes them all. Answered as `BYPASS`.
    Bypass,
}

/// Whether the cache keys of this read are the current ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenerationState {
    Known,
    /// The page's generation could not be read: a cached copy may predate an invalidation, so no
    /// cache is read or written.
    Unknown,
}

/// One read, as the engine needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub mode: Mode,
    pub membership: Membership,
    pub generation: GenerationState,
    /// Names the page among concurrent reads (for coalescing and refresh leases).
    pub key: String,
    /// Until when copies of the generation this page's scope superseded may be served, labelled
    /// stale (the staleness bound after an invalidation); `None`: never.
    pub superseded_until: Option<UnixMillis>,
}
