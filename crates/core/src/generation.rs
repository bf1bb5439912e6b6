//! Generations: O(1) invalidation. Every cached list or count carries the generation of its
//! scope (one board's lists of one filter, or a workspace's counts) in its key. Invalidating a
//! scope writes a new generation, which makes every older entry unreachable at once, in KV and
//! in Redis alike, whatever their number; TTLs then remove them.
//!
//! Soft invalidation: for a while after an invalidation (the staleness bound), the scope's state
//! also names the generation it superseded, whose copies may still be served, labelled stale,
//! while the new pages are read. See [`ScopeState`].

use crate::filter::Filter;
use crate::query::{BoardId, QueryError, WorkspaceId};
use crate::time::UnixMillis;
use std::fmt;

/// What one generation covers: on each board, every list (any page, sort, search) of one
/// filter; or a workspace's per-filter counts of every user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    List(Filter),
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

    /// The KV key holding this scope's generation on `board` (counts are the workspace's, on
    /// every board): `gen:<workspace>:<board>:<filter>`, `gen:<workspace>:counts`.
    pub fn generation_key(self, workspace: &WorkspaceId, board: &BoardId) -> String {
        match self {
            Scope::List(filter) => format!("gen:{workspace}:{board}:{}", filter.as_str()),
            Scope::Counts => counts_generation_key(workspace),
        }
    }
}

/// The KV key holding the generation of a workspace's counts.
pub fn counts_generation_key(workspace: &WorkspaceId) -> String {
    format!("gen:{workspace}:counts")
}

/// A scope's generation as stored: the current one and, after an invalidation, the one it
/// superseded and since when. Written as `<current>` or `<current> <superseded> <since ms>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeState {
    pub current: Generation,
    pub superseded: Option<(Generation, UnixMillis)>,
}

impl ScopeState {
    /// A scope never invalidated.
    pub fn initial() -> Self {
        Self { current: Generation::initial(), superseded: None }
    }

    /// Reads what [`ScopeState::format`] writes (a bare generation too).
    pub fn parse(raw: &str) -> Result<Self, QueryError> {
        let mut parts = raw.split(' ');
        let current = Generation::parse("generation", parts.next().unwrap_or_default())?;
        let superseded = match (parts.next(), parts.next(), parts.next()) {
            (None, _, _) => None,
            (Some(previous), Some(since), None) => {
                let since = since.parse().map_err(|_| QueryError::new("generation", "the time a generation was superseded must be milliseconds"))?;
                Some((Generation::parse("generation", previous)?, UnixMillis(since)))
            }
            _ => return Err(QueryError::new("generation", "a generation state is `<current>` or `<current> <superseded> <since>`")),
        };
        Ok(Self { current, superseded })
    }

    pub fn format(&self) -> String {
        match &self.superseded {
            None => self.current.to_string(),
            Some((previous, since)) => format!("{} {previous} {}", self.current, since.0),
        }
    }

    /// The state after invalidating at `now` (when the change was made), to `next`. With a
    /// staleness bound, the superseded generation is the one current before the first
    /// invalidation of a burst: within `bound_ms` of it, later invalidations keep it (its copies,
    /// the last ones built, stay servable until `bound_ms` after the burst's earliest change,
    /// never longer, even when changes arrive out of order). Without one (`bound_ms == 0`,
    /// strict), nothing superseded is kept.
    pub fn bumped(self, next: Generation, now: UnixMillis, bound_ms: u64) -> Self {
        if bound_ms == 0 {
            return Self { current: next, superseded: None };
        }
        let superseded = match self.superseded {
            Some((previous, since)) if now.since(since) < bound_ms => (previous, since.min(now)),
            _ => (self.current, now),
        };
        Self { current: next, superseded: Some(superseded) }
    }

    /// The superseded generation and until when its copies may be served, if that is after `now`.
    pub fn fallback(&self, now: UnixMillis, bound_ms: u64) -> Option<(&Generation, UnixMillis)> {
        let (previous, since) = self.superseded.as_ref()?;
        let until = UnixMillis(since.0.saturating_add(bound_ms));
        (now < until).then_some((previous, until))
    }
}

/// The least generation a list or counts request accepts: its `minGeneration` parameter (none
/// when absent; a 400 naming it when malformed or given twice).
pub fn min_generation(query_string: &str) -> Result<Option<Generation>, QueryError> {
    const NAME: &str = "minGeneration";
    let mut found = None;
    for (name, value) in form_urlencoded::parse(query_string.trim_start_matches('?').as_bytes()) {
        if name == NAME {
            if found.is_some() {
                return Err(QueryError::new(NAME, "minGeneration is given more than once"));
            }
            found = Some(Generation::parse(NAME, &value)?);
        }
    }
    Ok(found)
}

/// How an invalidation treats the pages it supersedes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidationMode {
    /// Nothing superseded is kept: the next read of the scope is its new data (an explicit
    /// `POST /api/cache/invalidate`, by default).
    Hard,
    /// The superseded pages may be served, labelled stale, within the staleness bound (change
    /// capture, or `"mode": "soft"`).
    Soft,
}

impl InvalidationMode {
    /// `hard` or `soft`.
    pub fn parse(raw: &str) -> Result<Self, QueryError> {
        match raw {
            "hard" => Ok(Self::Hard),
            "soft" => Ok(Self::Soft),
            _ => Err(QueryError::new("mode", "mode must be hard or soft")),
        }
    }

    /// The bound [`ScopeState::bumped`] keeps superseded pages within: none when hard.
    pub fn bound_ms(self, staleness_bound_ms: u64) -> u64 {
        match self {
            Self::Hard => 0,
            Self::Soft => staleness_bound_ms,
        }
    }
}

/// A generation, `0` before the first invalidation, else `<millis hex>-<random hex>`
/// ([`Generation::new`]). Generations are ordered (see [`Ord`]): the state home issues each
/// workspace's in increasing order ([`Generation::after`]), so a reader can tell whether what it
/// holds is at least as new as a generation it was given.
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

    /// The next generation after `newest`: made at `now_millis`, or at `newest`'s millisecond
    /// plus one when the clock is not past it, so that it orders after `newest` whatever the
    /// clocks of the isolates that issue them.
    pub fn after(newest: &Generation, now_millis: u64, random: u32) -> Self {
        Self::new(now_millis.max(newest.millis().saturating_add(1)), random)
    }

    /// The millisecond part (the hexadecimal digits before the first `-`); 0 for the initial
    /// generation and for any token not made by [`Generation::new`].
    pub fn millis(&self) -> u64 {
        let head = self.0.split('-').next().unwrap_or_default();
        u64::from_str_radix(head, 16).unwrap_or(0)
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

/// Generations compare by their millisecond part, numerically, then by the rest of the token.
impl Ord for Generation {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.millis().cmp(&other.millis()).then_with(|| self.0.cmp(&other.0))
    }
}

impl PartialOrd for Generation {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
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

    const WS: &str = "668953d2-25f2-b4fd-7d72-1e8cf024a277";
    const BOARD: &str = "b6495e04-5abb-e13f-48ee-5435e1e75895";

    #[test]
    fn generation_keys_are_pinned() {
        let ws = WorkspaceId::parse("ws", WS).unwrap();
        let board = BoardId::parse("board", BOARD).unwrap();
        assert_eq!(Scope::List(Filter::Open).generation_key(&ws, &board), format!("gen:{WS}:{BOARD}:open"));
        assert_eq!(Scope::Counts.generation_key(&ws, &board), format!("gen:{WS}:counts"));
        assert_eq!(Scope::all().len(), 11);
    }

    fn state(raw: &str) -> ScopeState {
        ScopeState::parse(raw).unwrap()
    }

    #[test]
    fn states_are_written_and_read_back() {
        assert_eq!(state("0"), ScopeState::initial());
        assert_eq!(state("0").format(), "0");
        let bumped = state("0").bumped(Generation::new(2_000, 7), UnixMillis(2_000), 1_000);
        assert_eq!(bumped.format(), "7d0-00000007 0 2000");
        assert_eq!(state(&bumped.format()), bumped);
        for bad in ["", "a b", "a b c d", "a b x", "A", "a  1"] {
            assert!(ScopeState::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_superseded_generation_is_served_only_within_the_bound_after_the_first_write_of_a_burst() {
        let g = |n: u32| Generation::new(0, n);
        let first = ScopeState { current: g(1), superseded: None }.bumped(g(2), UnixMillis(10_000), 1_000);
        assert_eq!(first.superseded, Some((g(1), UnixMillis(10_000))));
        // A burst: the second write keeps the page from before the first.
        let second = first.clone().bumped(g(3), UnixMillis(10_600), 1_000);
        assert_eq!((second.current.clone(), second.superseded.clone()), (g(3), Some((g(1), UnixMillis(10_000)))));
        assert_eq!(second.fallback(UnixMillis(10_999), 1_000), Some((&g(1), UnixMillis(11_000))));
        assert_eq!(second.fallback(UnixMillis(11_000), 1_000), None);
        // Past the bound a write starts a new period, superseding the generation it replaces.
        let later = second.bumped(g(4), UnixMillis(11_000), 1_000);
        assert_eq!(later.superseded, Some((g(3), UnixMillis(11_000))));
        // A change made before the burst's first one, arriving after it: the window starts at it.
        let early = first.clone().bumped(g(6), UnixMillis(9_500), 1_000);
        assert_eq!(early.superseded, Some((g(1), UnixMillis(9_500))));
        assert_eq!(early.fallback(UnixMillis(10_500), 1_000), None);
        // Strict: nothing superseded is ever kept.
        assert_eq!(later.bumped(g(5), UnixMillis(11_100), 0), ScopeState { current: g(5), superseded: None });
    }

    #[test]
    fn generations_order_by_their_millisecond_then_the_rest() {
        let g = |raw: &str| Generation::parse("g", raw).unwrap();
        assert!(Generation::initial() < Generation::new(1, 0));
        // Numerically, not as text: 0xff < 0x100.
        assert!(g("ff-ffffffff") < g("100-00000000"));
        assert!(g("100-00000001") > g("100-00000000"));
        assert_eq!(g("100-00000001").cmp(&g("100-00000001")), std::cmp::Ordering::Equal);
        assert_eq!(g("zz").millis(), 0);
        assert_eq!(g("194a7543020-00000001").millis(), 1_737_974_100_000);
    }

    #[test]
    fn the_next_generation_orders_after_the_newest_whatever_the_clock() {
        let newest = Generation::new(5_000, 9);
        assert_eq!(Generation::after(&newest, 7_000, 1), Generation::new(7_000, 1));
        // A clock behind the newest (another isolate's, or the same millisecond).
        for now in [4_000, 5_000] {
            let next = Generation::after(&newest, now, 0);
            assert_eq!(next, Generation::new(5_001, 0));
            assert!(next > newest);
        }
        assert_eq!(Generation::after(&Generation::initial(), 0, 3), Generation::new(1, 3));
    }

    #[test]
    fn min_generation_is_read_from_the_query_string_and_validated() {
        assert_eq!(min_generation("filter=open&page=2").unwrap(), None);
        assert_eq!(min_generation("?minGeneration=19a-00000001&page=1").unwrap(), Some(Generation::new(0x19a, 1)));
        for bad in ["minGeneration=", "minGeneration=NOPE", "minGeneration=a%20b", "minGeneration=1&minGeneration=2"] {
            assert_eq!(min_generation(bad).unwrap_err().field, "minGeneration", "{bad}");
        }
    }

    #[test]
    fn an_invalidation_mode_is_hard_or_soft() {
        assert_eq!(InvalidationMode::parse("hard").unwrap().bound_ms(1_000), 0);
        assert_eq!(InvalidationMode::parse("soft").unwrap().bound_ms(1_000), 1_000);
        assert_eq!(InvalidationMode::parse("HARD").unwrap_err().field, "mode");
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
