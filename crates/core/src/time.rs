//! Timestamps as the API prints them (RFC 3339, UTC, second precision), from a clock the caller reads.

use std::fmt;

/// A point in time in milliseconds since the Unix epoch. The core never reads the clock:
/// callers pass `now` in (`Date::now()` in the worker, `SystemTime` in the backend).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixMillis(pub u64);

impl UnixMillis {
    /// Milliseconds elapsed from `earlier` to `self`, zero if the clock went backwards.
    pub fn since(self, earlier: UnixMillis) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl fmt::Display for UnixMillis {
    /// Formats as `2025-01-27T10:35:00Z`, the shape of the spec's `timestamp` and `cached_at`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0 / 1000;
        let (days, rem) = (secs / 86_400, secs % 86_400);
        let (year, month, day) = civil_from_days(days as i64);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        )
    }
}

impl UnixMillis {
    /// Reads the form [`Display`](fmt::Display) writes (`2025-01-27T10:35:00Z`); `None` otherwise.
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        let b = text.as_bytes();
        let shape = b.len() == 20 && b[4] == b'-' && b[7] == b'-' && b[10] == b'T' && b[13] == b':' && b[16] == b':' && b[19] == b'Z';
        if !shape {
            return None;
        }
        let num = |range: std::ops::Range<usize>| text.get(range)?.parse::<i64>().ok();
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 || year < 1970 {
            return None;
        }
        let days = days_from_civil(year, month as u32, day as u32);
        Some(UnixMillis(((days * 86_400 + hour * 3600 + minute * 60 + second) * 1000) as u64))
    }
}

/// A proleptic Gregorian date to days since 1970-01-01, after Howard Hinnant's `days_from_civil`.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day), after Howard Hinnant's
/// `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The clock and the timers, as a runtime provides them: the core never reads the clock itself.
/// (`async fn` without a `Send` bound: the worker's timers are not `Send`, the backend's are.)
#[allow(async_fn_in_trait)]
pub trait Runtime {
    fn now(&self) -> UnixMillis;
    /// Completes after `ms` milliseconds.
    async fn sleep(&self, ms: u32);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_epoch_prints_as_1970() {
        assert_eq!(UnixMillis(0).to_string(), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn the_spec_example_instant_prints_exactly() {
        // 2025-01-27T10:35:00Z, the `timestamp` in the spec's /health example.
        assert_eq!(UnixMillis(1_737_974_100_000).to_string(), "2025-01-27T10:35:00Z");
    }

    #[test]
    fn milliseconds_are_truncated_and_leap_days_counted() {
        assert_eq!(UnixMillis(951_782_400_999).to_string(), "2000-02-29T00:00:00Z");
        assert_eq!(UnixMillis(4_107_542_399_000).to_string(), "2100-02-28T23:59:59Z");
    }

    #[test]
    fn printed_timestamps_parse_back() {
        for ms in [0, 951_782_400_000, 1_737_974_100_000, 4_107_542_399_000] {
            let printed = UnixMillis(ms).to_string();
            assert_eq!(UnixMillis::parse_rfc3339(&printed), Some(UnixMillis(ms)), "{printed}");
        }
        for bad in ["", "2025-01-27 10:35:00Z", "2025-13-01T00:00:00Z", "2025-01-27T10:35:00+01:00", "1969-12-31T23:59:59Z"] {
            assert_eq!(UnixMillis::parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn elapsed_time_never_underflows() {
        assert_eq!(UnixMillis(5).since(UnixMillis(2)), 3);
        assert_eq!(UnixMillis(2).since(UnixMillis(5)), 0);
    }
}
