//! The service's own counters since start, reported by `/api/cache/stats`, and how a read's steps
//! (as the engine reports them) move them. Relaxed atomics: the numbers are statistics, not
//! synchronization.

use contact_list_cache_core::engine::{Event, LayerError, Step};
use contact_list_cache_core::layer::CacheLayer;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn increment(&self) {
        self.add(1);
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Default)]
pub struct Stats {
    /// Redis lookups that found a page served.
    pub hits: Counter,
    /// Redis lookups that found nothing to serve (nothing, an expired copy, a refused entry).
    pub misses: Counter,
    /// Entries written to Redis (`/api/cache/store` and write-backs).
    pub stores: Counter,
    pub invalidations: Counter,
    pub keys_removed: Counter,
    /// Page and counts statements sent to PostgreSQL (membership checks are not counted).
    pub database_queries: Counter,
    /// Redis calls that failed or ran out of time (reads, writes, invalidations, stats).
    pub redis_errors: Counter,
    pub unauthorized: Counter,
    /// Entries that did not open (tampered, unknown key id) and were treated as misses.
    pub refused_entries: Counter,
}

/// A snapshot of [`Stats`] as JSON.
#[derive(Debug, Default, Serialize)]
pub struct StatsSnapshot {
    pub hits: u64,
    pub misses: u64,
    pub hit_rate: f64,
    pub stores: u64,
    pub invalidations: u64,
    pub keys_removed: u64,
    pub database_queries: u64,
    pub redis_errors: u64,
    pub unauthorized: u64,
    pub refused_entries: u64,
}

/// `hits / (hits + misses)`, 0 when nothing was looked up.
pub fn hit_rate(hits: u64, misses: u64) -> f64 {
    let total = hits + misses;
    if total == 0 {
        0.0
    } else {
        hits as f64 / total as f64
    }
}

impl Stats {
    /// Counts one read's steps. A refused entry is a miss too; a Redis that failed is an error,
    /// not a miss; every answer, refusal or failure of PostgreSQL was a query sent.
    pub fn record(&self, steps: &[Step]) {
        for Step { layer, event } in steps {
            match event {
                Event::Hit | Event::Superseded => self.hits.increment(),
                Event::Miss | Event::Expired | Event::KeptForErrors => self.misses.increment(),
                Event::Failed(LayerError::Refused { .. }) => {
                    self.misses.increment();
                    self.refused_entries.increment();
                }
                Event::Failed(_) if *layer == CacheLayer::Redis => self.redis_errors.increment(),
                Event::Answered | Event::Forbidden | Event::Failed(_) => self.database_queries.increment(),
                Event::Skipped(_) => {}
            }
        }
    }

    /// Counts a write-back of `writes` entries of which `failures` failed.
    pub fn record_writes(&self, writes: usize, failures: &[LayerError]) {
        self.stores.add(writes.saturating_sub(failures.len()) as u64);
        self.redis_errors.add(failures.len() as u64);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let (hits, misses) = (self.hits.get(), self.misses.get());
        StatsSnapshot {
            hits,
            misses,
            hit_rate: hit_rate(hits, misses),
            stores: self.stores.get(),
            invalidations: self.invalidations.get(),
            keys_removed: self.keys_removed.get(),
            database_queries: self.database_queries.get(),
            redis_errors: self.redis_errors.get(),
            unauthorized: self.unauthorized.get(),
            refused_entries: self.refused_entries.get(),
        }
    }
}

/// Keys of one workspace by namespace (`contacts`, `counts`, `reads`, `readers`; anything else
/// under the workspace's hash tag is `other`).
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct WorkspaceKeys {
    pub total: u64,
    pub contacts: u64,
    pub counts: u64,
    pub reads: u64,
    pub other: u64,
}

/// Counts `key` (`<namespace>:{<workspace>}:…`) for its workspace; keys without a hash tag are
/// no workspace's and not counted.
pub fn count_key(per_workspace: &mut BTreeMap<String, WorkspaceKeys>, key: &str) {
    let Some((namespace, rest)) = key.split_once(':') else { return };
    let Some(workspace) = rest.strip_prefix('{').and_then(|rest| rest.split_once('}')).map(|(tag, _)| tag) else { return };
    let keys = per_workspace.entry(workspace.to_owned()).or_default();
    keys.total += 1;
    match namespace {
        "contacts" => keys.contacts += 1,
        "counts" => keys.counts += 1,
        "reads" | "readers" => keys.reads += 1,
        _ => keys.other += 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(layer: CacheLayer, event: Event) -> Step {
        Step { layer, event }
    }

    fn counted(steps: &[Step]) -> [u64; 5] {
        let stats = Stats::default();
        stats.record(steps);
        let s = stats.snapshot();
        [s.hits, s.misses, s.refused_entries, s.redis_errors, s.database_queries]
    }

    #[test]
    fn a_redis_hit_is_a_hit_and_nothing_else() {
        assert_eq!(counted(&[step(CacheLayer::Redis, Event::Hit)]), [1, 0, 0, 0, 0]);
    }

    #[test]
    fn a_miss_read_from_the_database_is_a_miss_and_a_query() {
        let steps = [step(CacheLayer::Redis, Event::Miss), step(CacheLayer::Database, Event::Answered)];
        assert_eq!(counted(&steps), [0, 1, 0, 0, 1]);
    }

    #[test]
    fn a_refused_entry_is_a_miss_and_counted_as_refused() {
        let refused = LayerError::Refused { layer: CacheLayer::Redis, reason: "tampered".into() };
        assert_eq!(counted(&[step(CacheLayer::Redis, Event::Failed(refused))]), [0, 1, 1, 0, 0]);
    }

    #[test]
    fn a_failing_redis_is_an_error_not_a_miss_and_a_failing_database_was_still_queried() {
        let redis = LayerError::Timeout { layer: CacheLayer::Redis, budget_ms: 1000 };
        let database = LayerError::failed(CacheLayer::Database, "down");
        let steps = [step(CacheLayer::Redis, Event::Failed(redis)), step(CacheLayer::Database, Event::Failed(database))];
        assert_eq!(counted(&steps), [0, 0, 0, 1, 1]);
        assert_eq!(counted(&[step(CacheLayer::Database, Event::Forbidden)]), [0, 0, 0, 0, 1]);
    }

    #[test]
    fn a_bypassed_redis_counts_nothing() {
        use contact_list_cache_core::engine::Skip;
        assert_eq!(counted(&[step(CacheLayer::Redis, Event::Skipped(Skip::Bypassed))]), [0, 0, 0, 0, 0]);
    }

    #[test]
    fn write_backs_count_stores_and_errors() {
        let stats = Stats::default();
        stats.record_writes(1, &[]);
        stats.record_writes(1, &[LayerError::failed(CacheLayer::Redis, "down")]);
        assert_eq!((stats.stores.get(), stats.redis_errors.get()), (1, 1));
    }

    #[test]
    fn hit_rate_is_zero_without_lookups() {
        assert_eq!(hit_rate(0, 0), 0.0);
        assert_eq!(hit_rate(3, 1), 0.75);
    }

    #[test]
    fn keys_are_counted_per_workspace_by_namespace() {
        let mut per_workspace = BTreeMap::new();
        for key in [
            "contacts:{w1}:all:board:b:page:1:limit:50:sort:created_at-desc:gen:0",
            "contacts:{w1}:open:board:b:page:1:limit:50:sort:created_at-desc:gen:0",
            "counts:{w1}:u:gen:0",
            "reads:{w1}:b:open",
            "readers:{w1}:b:open",
            "contacts:{w2}:all:board:b:page:1:limit:50:sort:created_at-desc:gen:0",
            "untagged:key",
            "lock:{w2}:x",
        ] {
            count_key(&mut per_workspace, key);
        }
        assert_eq!(per_workspace["w1"], WorkspaceKeys { total: 5, contacts: 2, counts: 1, reads: 2, other: 0 });
        assert_eq!(per_workspace["w2"], WorkspaceKeys { total: 2, contacts: 1, counts: 0, reads: 0, other: 1 });
        assert_eq!(per_workspace.len(), 2);
    }
}
