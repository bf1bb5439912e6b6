//! Change capture's settings, read with the rest of the configuration.

use contact_list_cache_core::settings::{parse_number, SettingError};
use std::time::Duration;

/// How change capture consumes the outbox (docs/change-capture.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureSettings {
    /// `CHANGE_CAPTURE_CONSUMER`: the cursor's name (default `backend`). Replicas sharing it take
    /// turns (one consumes, the others wait on its lock); another name reads every change again.
    pub consumer: String,
    /// `CHANGE_CAPTURE_WAKE_MS`: how often the outbox's sequence is asked whether it moved (50):
    /// the longest a new change waits before it is read, one cheap query each time.
    pub wake: Duration,
    /// `CHANGE_CAPTURE_POLL_MS`: how often the outbox is read without a wake-up (1000).
    pub poll: Duration,
    /// `CHANGE_CAPTURE_PRUNE_MS`: how often delivered rows are deleted (30000).
    pub prune_every: Duration,
    /// `CHANGE_CAPTURE_LAG_DEGRADED_MS`: `/health` degrades when the oldest undelivered change is
    /// older than this (60000).
    pub lag_degraded_ms: u64,
    /// `CHANGE_CAPTURE_GAP_WAIT_MS`: the longest a gap in the sequence holds reads back while a
    /// transaction that may fill it is still running (300000).
    pub gap_wait: Duration,
    /// `CHANGE_CAPTURE_RETRY_MAX_MS`: the longest wait between two webhook tries (10000).
    pub retry_max: Duration,
}

impl CaptureSettings {
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, SettingError> {
        let millis = |name: &'static str, default: u64, least: u64| -> Result<u64, SettingError> {
            get(name).map_or(Ok(default), |raw| parse_number(name, &raw, least..=86_400_000))
        };
        let consumer = get("CHANGE_CAPTURE_CONSUMER").unwrap_or_else(|| "backend".into());
        if consumer.len() > 100 || !consumer.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(SettingError::Invalid {
                name: "CHANGE_CAPTURE_CONSUMER",
                expected: "up to 100 letters, digits, '-' or '_'".into(),
                got: consumer,
            });
        }
        Ok(Self {
            consumer,
            wake: Duration::from_millis(millis("CHANGE_CAPTURE_WAKE_MS", 50, 5)?),
            poll: Duration::from_millis(millis("CHANGE_CAPTURE_POLL_MS", 1000, 10)?),
            prune_every: Duration::from_millis(millis("CHANGE_CAPTURE_PRUNE_MS", 30_000, 10)?),
            lag_degraded_ms: millis("CHANGE_CAPTURE_LAG_DEGRADED_MS", 60_000, 1)?,
            gap_wait: Duration::from_millis(millis("CHANGE_CAPTURE_GAP_WAIT_MS", 300_000, 1)?),
            retry_max: Duration::from_millis(millis("CHANGE_CAPTURE_RETRY_MAX_MS", 10_000, 10)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<CaptureSettings, SettingError> {
        let vars: HashMap<&str, &str> = vars.iter().copied().collect();
        CaptureSettings::from_lookup(|name| vars.get(name).map(|v| v.to_string()))
    }

    #[test]
    fn defaults_apply_and_bad_values_name_their_setting() {
        let defaults = settings(&[]).unwrap();
        assert_eq!((defaults.consumer.as_str(), defaults.poll, defaults.lag_degraded_ms), ("backend", Duration::from_secs(1), 60_000));
        assert_eq!(defaults.wake, Duration::from_millis(50));
        let err = settings(&[("CHANGE_CAPTURE_POLL_MS", "soon")]).unwrap_err();
        assert!(err.to_string().contains("CHANGE_CAPTURE_POLL_MS"), "{err}");
        let err = settings(&[("CHANGE_CAPTURE_CONSUMER", "a b")]).unwrap_err();
        assert!(err.to_string().contains("CHANGE_CAPTURE_CONSUMER"), "{err}");
    }
}
