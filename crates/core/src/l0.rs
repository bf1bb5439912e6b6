//! L0: what one isolate keeps in its own memory of what it read (pages from KV; scope states
//! from the state home, in a memory of their own), for at most the staleness bound after reading
//! it, and within a byte budget. A request that finds its scope's state and its page here
//! answers without any I/O. Since an isolate may keep a scope's state for up to the bound, an
//! invalidation reaches an isolate's L0 answers at most the bound later (unless the request asks
//! for a newer generation): the same bound a superseded page is served within (0 = strict:
//! nothing is kept). Entries leave in the order they came: the oldest is always the first to
//! expire.

use crate::engine::{Body, StoredPage};
use crate::time::UnixMillis;
use std::collections::{HashMap, VecDeque};

/// What an entry costs beyond its key and value: the map's and the queue's bookkeeping.
const ENTRY_OVERHEAD: usize = 96;

/// How long entries live and how much they may weigh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L0Limits {
    /// An entry is used for at most this long after it was read (the staleness bound).
    pub keep_ms: u64,
    /// The most bytes all entries may weigh together (keys, values and bookkeeping).
    pub max_bytes: usize,
}

impl L0Limits {
    /// Whether anything may be kept at all.
    pub fn enabled(&self) -> bool {
        self.keep_ms > 0 && self.max_bytes > 0
    }
}

/// A value with what it weighs.
pub trait Weigh {
    /// Its size in bytes, as near as can be told.
    fn weight(&self) -> usize;
}

impl Weigh for String {
    fn weight(&self) -> usize {
        self.len()
    }
}

impl<B: Body> Weigh for StoredPage<B> {
    fn weight(&self) -> usize {
        self.body.size() + 8
    }
}

struct Entry<V> {
    value: V,
    read_at: UnixMillis,
    bytes: usize,
}

/// One isolate's memory of values by key.
pub struct L0<V> {
    entries: HashMap<String, Entry<V>>,
    /// Keys in the order they were stored, with the time stored (a key stored again is queued
    /// again; its older place is skipped when reached).
    order: VecDeque<(String, UnixMillis)>,
    bytes: usize,
}

impl<V> Default for L0<V> {
    fn default() -> Self {
        Self { entries: HashMap::new(), order: VecDeque::new(), bytes: 0 }
    }
}

impl<V: Clone + Weigh> L0<V> {
    /// The value kept at `key`, if it was read less than `limits.keep_ms` before `now`.
    pub fn get(&self, key: &str, now: UnixMillis, limits: L0Limits) -> Option<V> {
        let entry = self.entries.get(key)?;
        (limits.enabled() && now.since(entry.read_at) < limits.keep_ms).then(|| entry.value.clone())
    }

    /// Keeps `value`, read from KV at `now`, dropping expired entries and then the oldest until
    /// everything fits in `limits.max_bytes`. A value heavier than the whole budget is not kept.
    pub fn put(&mut self, key: &str, value: V, now: UnixMillis, limits: L0Limits) {
        if !limits.enabled() {
            return;
        }
        let bytes = key.len() * 2 + value.weight() + ENTRY_OVERHEAD;
        self.remove(key);
        self.expire(now, limits);
        if bytes > limits.max_bytes {
            return;
        }
        while self.bytes + bytes > limits.max_bytes {
            let Some((oldest, at)) = self.order.pop_front() else { break };
            if self.entries.get(&oldest).is_some_and(|entry| entry.read_at == at) {
                self.remove(&oldest);
            }
        }
        self.entries.insert(key.to_owned(), Entry { value, read_at: now, bytes });
        self.order.push_back((key.to_owned(), now));
        self.bytes += bytes;
    }

    /// Forgets `key` (an invalidation made in this isolate).
    pub fn remove(&mut self, key: &str) {
        if let Some(entry) = self.entries.remove(key) {
            self.bytes -= entry.bytes;
        }
    }

    /// Drops every entry read `keep_ms` or more before `now`.
    fn expire(&mut self, now: UnixMillis, limits: L0Limits) {
        while let Some((key, at)) = self.order.front() {
            if now.since(*at) < limits.keep_ms {
                break;
            }
            if self.entries.get(key).is_some_and(|entry| entry.read_at == *at) {
                let key = key.clone();
                self.remove(&key);
            }
            self.order.pop_front();
        }
        // Places left by keys stored again: drop them once they outnumber the entries.
        if self.order.len() > 2 * self.entries.len() + 64 {
            let entries = &self.entries;
            self.order.retain(|(key, at)| entries.get(key).is_some_and(|entry| entry.read_at == *at));
        }
    }

    /// What every entry weighs together, bookkeeping included.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: L0Limits = L0Limits { keep_ms: 1000, max_bytes: 10_000 };

    fn at(ms: u64) -> UnixMillis {
        UnixMillis(1_800_000_000_000 + ms)
    }

    #[test]
    fn an_entry_is_used_for_less_than_the_bound_after_it_was_read() {
        let mut l0 = L0::default();
        l0.put("k", "page".to_owned(), at(0), LIMITS);
        assert_eq!(l0.get("k", at(999), LIMITS).as_deref(), Some("page"));
        assert_eq!(l0.get("k", at(1000), LIMITS), None);
        // Read again: kept for another bound from then.
        l0.put("k", "page 2".to_owned(), at(1500), LIMITS);
        assert_eq!(l0.get("k", at(2400), LIMITS).as_deref(), Some("page 2"));
    }

    #[test]
    fn with_the_bound_at_zero_nothing_is_kept() {
        let strict = L0Limits { keep_ms: 0, ..LIMITS };
        let mut l0 = L0::default();
        l0.put("k", "page".to_owned(), at(0), strict);
        assert_eq!((l0.get("k", at(0), strict), l0.len(), l0.bytes()), (None, 0, 0));
        let off = L0Limits { max_bytes: 0, ..LIMITS };
        l0.put("k", "page".to_owned(), at(0), off);
        assert!(l0.is_empty());
    }

    #[test]
    fn the_budget_holds_with_a_hundred_thousand_distinct_pages() {
        let limits = L0Limits { keep_ms: 1000, max_bytes: 2_000_000 };
        let body = "x".repeat(19_000);
        let mut l0 = L0::default();
        for n in 0..100_000u64 {
            l0.put(&format!("contacts:page:{n}"), body.clone(), at(n / 100), limits);
            assert!(l0.bytes() <= limits.max_bytes);
        }
        assert!(l0.len() >= 100, "about 2 MB of 19 KB pages: {}", l0.len());
        assert!(l0.order.len() <= 2 * l0.len() + 64);
        // The newest are the ones kept.
        assert!(l0.get("contacts:page:99999", at(999), limits).is_some());
        assert!(l0.get("contacts:page:0", at(999), limits).is_none());
    }

    #[test]
    fn expired_entries_leave_before_fresh_ones_and_replacing_counts_once() {
        let mut l0 = L0::default();
        l0.put("a", "1".repeat(100), at(0), LIMITS);
        l0.put("b", "2".repeat(100), at(500), LIMITS);
        l0.put("a", "3".repeat(200), at(600), LIMITS);
        assert_eq!(l0.len(), 2);
        assert_eq!(l0.bytes(), (2 + 100 + ENTRY_OVERHEAD) + (2 + 200 + ENTRY_OVERHEAD));
        l0.put("c", "4".repeat(10), at(1550), LIMITS);
        assert_eq!(l0.get("b", at(1550), LIMITS), None);
        assert!(l0.get("a", at(1550), LIMITS).is_some());
        assert_eq!(l0.len(), 2, "b expired and left");
        l0.remove("a");
        l0.remove("c");
        assert_eq!(l0.bytes(), 0);
        assert_eq!(l0.get("huge", at(0), LIMITS), None);
        l0.put("huge", "h".repeat(20_000), at(1600), LIMITS);
        assert_eq!(l0.get("huge", at(1600), LIMITS), None, "heavier than the budget: not kept");
    }
}
