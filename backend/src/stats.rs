//! The service's own counters since start, reported by `/api/cache/stats`. Relaxed atomics: the
//! numbers are statistics, not synchronization.

use serde::Serialize;
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
    pub hits: Counter,
    pub misses: Counter,
    pub stores: Counter,
    pub invalidations: Counter,
    pub keys_removed: Counter,
    pub database_queries: Counter,
    pub redis_errors: Counter,
    pub unauthorized: Counter,
    /// Entries that did not open (tampered, unknown key id) and were treated as misses.
    pub refused_entries: Counter,
}

/// A snapshot of [`Stats`] as JSON.
#[derive(Debug, Serialize)]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_rate_is_zero_without_lookups() {
        assert_eq!(hit_rate(0, 0), 0.0);
        assert_eq!(hit_rate(3, 1), 0.75);
    }
}
