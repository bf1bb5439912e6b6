//! Generations: O(1) invalidation. Every cached list or count carries the generation of its
//! scope (a workspace's lists of one filter, or its counts) in its key. Invalidating a scope
//! writes a new generation, which makes every older entry unreachable at once, in KV and in
//! Redis alike, whatever their number; TTLs then remove them.

use crate::filter::Filter;
use crate::query::{QueryError, WorkspaceId};
use std::fmt;

/// What one generation covers in a workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Every list (any board, page, sort, search) of one filter.
    List(Filter),
    /// The per-filter counts of every user.
    Counts,
}

impl Scope {
    /// Every scope: the ten filters' lists, then the counts.
    pub fn all() -> Vec<Scope> {
        Filter::ALL.iter().map(|f| Scope::List(*f)).chain([Scope::Counts]).collect()
    }

    /// Every list scope, without the counts.
    pub fn all_lists() -> Vec<Scope> {
        Filter::ALL.iter().map(|f| Scope::List(*f)).collect()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::List(filter) => filter.as_str(),
            Scope::Counts => "counts",
        }
    }

    /// The KV key holding this scope's current generation: `gen:<workspace>:<scope>`.
    pub fn generation_key(self, workspace: &WorkspaceId) -> String {
        format!("gen:{workspace}:{}", self.as_str())
    }
}

/// A generation: an opaque token, `0` before the first invalidation. New ones are made from the
/// clock and a random number by the caller ([`Generation::new`]), so concurrent invalidations
/// never need to read before they write.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Generation(String);

impl Generation {
    pub const INITIAL: &'static str = "0";

    /// The generation before any invalidation.
    pub fn initial() -> Self {
        Self(Self::INITIAL.to_owned())
    }

    /// A fresh generation from the time in milliseconds and a random number.
    pub fn new(now_millis: u64, random: u32) -> Self {
        Self(format!("{now_millis:x}-{random:08x}"))
    }

    /// Reads a stored or forwarded generation: 1 to 40 characters of `[0-9a-z-]`.
    pub fn parse(field: &str, raw: &str) -> Result<Self, QueryError> {
        let ok = !raw.is_empty() && raw.len() <= 40 && raw.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b == b'-');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(QueryError::new(field, format!("{field} must be 1 to 40 characters of 0-9, a-z and -")))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_keys_are_pinned() {
        let ws = WorkspaceId::parse("ws", "668953d2-25f2-b4fd-7d72-1e8cf024a277").unwrap();
        assert_eq!(Scope::List(Filter::Open).generation_key(&ws), "gen:668953d2-25f2-b4fd-7d72-1e8cf024a277:open");
        assert_eq!(Scope::Counts.generation_key(&ws), "gen:668953d2-25f2-b4fd-7d72-1e8cf024a277:counts");
        assert_eq!(Scope::all().len(), 11);
    }

    #[test]
    fn generations_are_unique_tokens_and_parse_back() {
        let a = Generation::new(1_737_974_100_000, 1);
        assert_eq!(a.as_str(), "194a7543020-00000001");
        assert_ne!(a, Generation::new(1_737_974_100_000, 2));
        assert_eq!(Generation::parse("g", a.as_str()).unwrap(), a);
        for bad in ["", "UPPER", "a b", "x".repeat(41).as_str(), "{tag}"] {
            assert!(Generation::parse("g", bad).is_err(), "{bad}");
        }
    }
}
