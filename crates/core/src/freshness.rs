//! How fresh a cached copy is, as a pure function of when it was stored and `now`: fresh within
//! the TTL; then, for a short while, served while it is revalidated in the background; then kept
//! only to be served, labelled stale, when no source of fresh data answers; then gone.

use crate::time::UnixMillis;

/// What may be done with a cached copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Within the TTL: serve it.
    Fresh,
    /// Just past the TTL: serve it and refresh it in the background.
    Revalidate,
    /// Past that: serve it only when every source of fresh data fails, marked STALE.
    StaleIfError,
    /// Past the grace period: never serve it.
    Expired,
}

/// The TTL and the two windows after it, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreshnessPolicy {
    pub ttl_ms: u64,
    pub revalidate_ms: u64,
    pub grace_ms: u64,
}

impl FreshnessPolicy {
    pub fn of(&self, stored_at: UnixMillis, now: UnixMillis) -> Freshness {
        let age = now.since(stored_at);
        if age < self.ttl_ms {
            Freshness::Fresh
        } else if age < self.ttl_ms + self.revalidate_ms {
            Freshness::Revalidate
        } else if age < self.ttl_ms + self.grace_ms {
            Freshness::StaleIfError
        } else {
            Freshness::Expired
        }
    }

    /// How long a store must keep a copy for this policy, in whole seconds.
    pub fn retention_seconds(&self) -> u32 {
        ((self.ttl_ms + self.grace_ms.max(self.revalidate_ms)).div_ceil(1000)) as u32
    }
}

/// The `Age` header value: whole seconds since the copy was stored.
pub fn age_seconds(stored_at: UnixMillis, now: UnixMillis) -> u64 {
    now.since(stored_at) / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: FreshnessPolicy = FreshnessPolicy { ttl_ms: 180_000, revalidate_ms: 30_000, grace_ms: 600_000 };

    #[test]
    fn a_copy_moves_through_the_windows_in_order() {
        let stored = UnixMillis(1_000_000);
        let at = |secs: u64| POLICY.of(stored, UnixMillis(1_000_000 + secs * 1000));
        assert_eq!(at(0), Freshness::Fresh);
        assert_eq!(at(179), Freshness::Fresh);
        assert_eq!(at(180), Freshness::Revalidate);
        assert_eq!(at(209), Freshness::Revalidate);
        assert_eq!(at(210), Freshness::StaleIfError);
        assert_eq!(at(779), Freshness::StaleIfError);
        assert_eq!(at(780), Freshness::Expired);
    }

    #[test]
    fn a_clock_behind_the_store_counts_as_fresh() {
        assert_eq!(POLICY.of(UnixMillis(5_000), UnixMillis(1_000)), Freshness::Fresh);
        assert_eq!(age_seconds(UnixMillis(5_000), UnixMillis(1_000)), 0);
    }

    #[test]
    fn stores_keep_copies_through_the_grace_period() {
        assert_eq!(POLICY.retention_seconds(), 780);
        assert_eq!(age_seconds(UnixMillis(0), UnixMillis(61_999)), 61);
    }
}
