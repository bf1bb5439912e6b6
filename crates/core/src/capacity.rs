//! How full a store is against its limit, and the warning given before the limit is reached:
//! one rule for the worker's KV estimate and the backend's Redis memory.

use crate::settings::SettingError;
use serde::Serialize;

/// Where a store stands against its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// No limit is known (Redis without `maxmemory` and no configured limit).
    Unlimited,
    Ok,
    /// At or over the warning ratio of the limit.
    Warning,
    /// At or over the limit itself.
    Exceeded,
}

/// A store's use against its limit, as reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Usage {
    pub used_bytes: u64,
    pub limit_bytes: Option<u64>,
    /// `used / limit`, when there is a limit.
    pub ratio: Option<f64>,
    pub warn_ratio: f64,
    pub level: Level,
    /// A sentence for the operator when the level is a warning or worse.
    pub warning: Option<String>,
}

/// Assesses `used` bytes of the store named `store` against `limit` (none or 0: unlimited),
/// warning from `warn_ratio` of it on.
pub fn assess(store: &str, used: u64, limit: Option<u64>, warn_ratio: f64) -> Usage {
    let limit = limit.filter(|l| *l > 0);
    let ratio = limit.map(|limit| used as f64 / limit as f64);
    let level = match ratio {
        None => Level::Unlimited,
        Some(r) if r >= 1.0 => Level::Exceeded,
        Some(r) if r >= warn_ratio => Level::Warning,
        Some(_) => Level::Ok,
    };
    let warning = match (level, limit, ratio) {
        // Whole percents, formatted as integers (float precision formatting weighs on the wasm).
        (Level::Warning | Level::Exceeded, Some(limit), Some(ratio)) => Some(format!(
            "{store} is at {}% of its limit ({used} of {limit} bytes; warning from {}%)",
            (ratio * 100.0).round() as u64,
            (warn_ratio * 100.0).round() as u64
        )),
        _ => None,
    };
    Usage { used_bytes: used, limit_bytes: limit, ratio, warn_ratio, level, warning }
}

/// A warning ratio setting: a decimal above 0 and at most 1 (`0.8` warns at 80%). Read digit by
/// digit: `f64::from_str` brings its tables into the worker's wasm (about 10 KB).
pub fn parse_ratio(name: &'static str, raw: &str) -> Result<f64, SettingError> {
    let invalid = || SettingError::Invalid { name, expected: "a number above 0 and at most 1, such as 0.8".into(), got: raw.to_owned() };
    let (whole, fraction) = raw.trim().split_once('.').unwrap_or((raw.trim(), ""));
    let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() && fraction.is_empty() || !digits(whole) || !digits(fraction) || whole.len() > 1 || fraction.len() > 6 {
        return Err(invalid());
    }
    let number = |part: &str| part.bytes().fold(0u32, |n, b| n * 10 + u32::from(b - b'0'));
    let ratio = f64::from(number(whole)) + f64::from(number(fraction)) / f64::from(10u32.pow(fraction.len() as u32));
    if ratio > 0.0 && ratio <= 1.0 {
        Ok(ratio)
    } else {
        Err(invalid())
    }
}

/// What one process wrote to a store whose size cannot be asked (Workers KV): each key's size
/// and expiry, so that the entries still alive can be estimated. Only this process's writes are
/// known; a key written again counts once, at its latest size. At most `capacity` keys are kept
/// (the soonest to expire are forgotten first, and the estimate says it is then a lower bound).
#[derive(Debug)]
pub struct WriteLedger {
    entries: std::collections::HashMap<String, (u64, u64)>,
    capacity: usize,
    forgot: bool,
}

/// The entries and bytes a [`WriteLedger`] knows to be alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Estimate {
    pub entries: u64,
    pub bytes: u64,
    /// Whether keys were forgotten to stay within capacity (the numbers are then lower bounds).
    pub lower_bound: bool,
}

impl WriteLedger {
    pub fn new(capacity: usize) -> Self {
        Self { entries: std::collections::HashMap::new(), capacity, forgot: false }
    }

    /// `key` was written with `bytes` (key, value and metadata) and expires at `expires_at`
    /// (milliseconds); entries already expired at `now` are dropped.
    pub fn record(&mut self, key: &str, bytes: u64, expires_at: u64, now: u64) {
        if !self.entries.contains_key(key) && self.entries.len() >= self.capacity {
            self.entries.retain(|_, (_, expires)| *expires > now);
            if self.entries.len() >= self.capacity {
                if let Some(soonest) = self.entries.iter().min_by_key(|(_, (_, expires))| *expires).map(|(k, _)| k.clone()) {
                    self.entries.remove(&soonest);
                    self.forgot = true;
                }
            }
        }
        self.entries.insert(key.to_owned(), (bytes, expires_at));
    }

    /// The entries alive at `now`.
    pub fn estimate(&mut self, now: u64) -> Estimate {
        self.entries.retain(|_, (_, expires)| *expires > now);
        Estimate { entries: self.entries.len() as u64, bytes: self.entries.values().map(|(bytes, _)| bytes).sum(), lower_bound: self.forgot }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ledger_counts_live_entries_once_at_their_latest_size() {
        let mut ledger = WriteLedger::new(10);
        ledger.record("a", 100, 1_000, 0);
        ledger.record("b", 50, 2_000, 0);
        ledger.record("a", 120, 1_500, 10);
        assert_eq!(ledger.estimate(20), Estimate { entries: 2, bytes: 170, lower_bound: false });
        assert_eq!(ledger.estimate(1_500), Estimate { entries: 1, bytes: 50, lower_bound: false }, "a expired");
        assert_eq!(ledger.estimate(2_000).entries, 0);
    }

    #[test]
    fn a_full_ledger_forgets_the_soonest_to_expire_and_says_so() {
        let mut ledger = WriteLedger::new(2);
        ledger.record("a", 1, 100, 0);
        ledger.record("b", 1, 300, 0);
        ledger.record("c", 1, 200, 0);
        assert_eq!(ledger.estimate(0), Estimate { entries: 2, bytes: 2, lower_bound: true });
        let mut roomy = WriteLedger::new(2);
        roomy.record("a", 1, 100, 0);
        roomy.record("b", 1, 300, 0);
        roomy.record("c", 1, 200, 150);
        assert!(!roomy.estimate(150).lower_bound, "an expired entry made room");
    }

    #[test]
    fn below_the_ratio_is_ok_and_says_nothing() {
        let usage = assess("KV", 79, Some(100), 0.8);
        assert_eq!((usage.level, usage.warning), (Level::Ok, None));
        assert_eq!(usage.ratio, Some(0.79));
    }

    #[test]
    fn from_the_ratio_on_it_warns_and_over_the_limit_it_is_exceeded() {
        let usage = assess("KV", 80, Some(100), 0.8);
        assert_eq!(usage.level, Level::Warning);
        assert_eq!(usage.warning.as_deref(), Some("KV is at 80% of its limit (80 of 100 bytes; warning from 80%)"));
        assert_eq!(assess("Redis", 150, Some(100), 0.8).level, Level::Exceeded);
    }

    #[test]
    fn without_a_limit_nothing_is_judged() {
        for limit in [None, Some(0)] {
            let usage = assess("Redis", 1 << 40, limit, 0.8);
            assert_eq!((usage.level, usage.limit_bytes, usage.warning), (Level::Unlimited, None, None));
        }
    }

    #[test]
    fn ratios_must_be_a_fraction() {
        for (raw, ratio) in [("0.5", 0.5), (" .75", 0.75), ("1", 1.0), ("1.0", 1.0), ("0.125", 0.125)] {
            assert_eq!(parse_ratio("KV_WARN_RATIO", raw), Ok(ratio), "{raw}");
        }
        for bad in ["0", "1.5", "eighty", "-0.2", "", ".", "0.8.1", "10", "1e-1"] {
            assert!(parse_ratio("KV_WARN_RATIO", bad).unwrap_err().to_string().starts_with("KV_WARN_RATIO"), "{bad}");
        }
    }
}
