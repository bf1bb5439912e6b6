//! Where an answer came from and how fresh it is: the values of `X-Cache-Layer` and
//! `X-Cache-Status`, named once for headers, logs and metrics.

/// The layer that produced an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CacheLayer {
    /// The isolate's own memory of what it read from KV (see [`crate::l0`]).
    L0,
    Kv,
    Redis,
    Database,
    BackendFallback,
}

impl CacheLayer {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::L0 => "L0",
            Self::Kv => "KV",
            Self::Redis => "REDIS",
            Self::Database => "DATABASE",
            Self::BackendFallback => "BACKEND-FALLBACK",
        }
    }
}

/// Whether a cache answered: `Hit`, `Miss` (read from a lower layer), `Bypass` (the client asked
/// for fresh data with `Cache-Control: no-cache`) or `Stale` (a cached copy served past its TTL
/// because no fresh source answered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CacheStatus {
    Hit,
    Miss,
    Bypass,
    Stale,
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "HIT",
            Self::Miss => "MISS",
            Self::Bypass => "BYPASS",
            Self::Stale => "STALE",
        }
    }
}

/// Whether a `Cache-Control` request header asks to skip cached copies (`no-cache`, `no-store`
/// or `max-age=0`).
pub fn wants_fresh(cache_control: Option<&str>) -> bool {
    cache_control.is_some_and(|value| {
        value.split(',').map(|d| d.trim().to_ascii_lowercase()).any(|d| d == "no-cache" || d == "no-store" || d == "max-age=0")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_are_the_specs() {
        let layers: Vec<_> = [CacheLayer::Kv, CacheLayer::Redis, CacheLayer::Database, CacheLayer::BackendFallback]
            .iter()
            .map(|l| l.as_str())
            .collect();
        assert_eq!(layers, ["KV", "REDIS", "DATABASE", "BACKEND-FALLBACK"]);
        assert_eq!(CacheStatus::Bypass.as_str(), "BYPASS");
    }

    #[test]
    fn no_cache_and_friends_ask_for_fresh_data() {
        assert!(wants_fresh(Some("no-cache")));
        assert!(wants_fresh(Some("max-age=0, No-Store")));
        assert!(!wants_fresh(Some("max-age=60")));
        assert!(!wants_fresh(None));
    }
}
