//! What change capture reports to `/health` and `/api/cache/stats`: its connection, the
//! backlog it last measured, and its counters. Relaxed atomics: statistics, not synchronization.

use super::outbox::Backlog;
use crate::stats::Counter;
use serde::Serialize;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering};

/// Where change capture stands with its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Not connected yet since start.
    Starting = 0,
    /// Connected and consuming (holding the consumer's lock).
    Consuming = 1,
    /// Connected, waiting for another replica's lock on the same consumer.
    Standby = 2,
    /// The connection failed or ended; reconnecting.
    Down = 3,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Consuming => "up",
            Phase::Standby => "standby",
            Phase::Down => "down",
        }
    }

    fn from_u8(raw: u8) -> Self {
        [Phase::Starting, Phase::Consuming, Phase::Standby, Phase::Down].into_iter().find(|phase| *phase as u8 == raw).unwrap_or(Phase::Down)
    }
}

#[derive(Debug, Default)]
pub struct CaptureStatus {
    phase: AtomicU8,
    cursor: AtomicI64,
    undelivered: AtomicU64,
    /// When the oldest undelivered change was written (ms since the epoch; 0: none).
    oldest_at: AtomicU64,
    /// When the backlog was last measured (ms since the epoch; 0: never).
    measured_at: AtomicU64,
    /// Changes the worker acknowledged (redeliveries included).
    pub delivered: Counter,
    /// Webhook calls that failed and were retried.
    pub webhook_failures: Counter,
    /// Delivered rows pruned from the outbox.
    pub pruned: Counter,
    /// Posts of change capture's clock the worker took (see `capture::clock`).
    pub clock_posts: Counter,
    /// The clock as last taken by the worker (ms since the epoch; 0: never).
    clock_at: AtomicU64,
}

/// How change capture is doing: `starting`, `up`, `standby` (another replica consumes),
/// `lagging` (the oldest undelivered change is older than the threshold), `down` (disconnected),
/// or `not_configured`.
#[derive(Debug, Serialize)]
pub struct CaptureReport {
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undelivered: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_failures: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pruned: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock_posts: Option<u64>,
    /// How far behind now the clock the worker last took is: past the staleness bound, the
    /// workspaces' pages come from the database.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock_lag_ms: Option<u64>,
}

impl CaptureReport {
    pub fn not_configured() -> Self {
        Self { status: "not_configured", cursor: None, undelivered: None, lag_ms: None, delivered: None, webhook_failures: None, pruned: None, clock_posts: None, clock_lag_ms: None }
    }

    /// Whether `/health` may say healthy.
    pub fn is_ok(&self) -> bool {
        !matches!(self.status, "lagging" | "down")
    }
}

impl CaptureStatus {
    pub fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Relaxed);
    }

    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Relaxed))
    }

    /// The worker took the clock `at`.
    pub fn clock_posted(&self, at: u64) {
        self.clock_posts.increment();
        self.clock_at.fetch_max(at, Ordering::Relaxed);
    }

    pub fn record_backlog(&self, backlog: Backlog, now: u64) {
        self.cursor.store(backlog.cursor, Ordering::Relaxed);
        self.undelivered.store(backlog.undelivered, Ordering::Relaxed);
        self.oldest_at.store(backlog.oldest_at.unwrap_or(0), Ordering::Relaxed);
        self.measured_at.store(now, Ordering::Relaxed);
    }

    /// The report at `now`, `lagging` when the oldest undelivered change is older than
    /// `degraded_after_ms`.
    pub fn report(&self, now: u64, degraded_after_ms: u64) -> CaptureReport {
        let measured = self.measured_at.load(Ordering::Relaxed) != 0;
        let oldest_at = self.oldest_at.load(Ordering::Relaxed);
        let lag_ms = (measured && oldest_at != 0).then(|| now.saturating_sub(oldest_at));
        let status = match (self.phase(), lag_ms) {
            (Phase::Down, _) => "down",
            (_, Some(lag)) if lag > degraded_after_ms => "lagging",
            (phase, _) => phase.as_str(),
        };
        CaptureReport {
            status,
            cursor: measured.then(|| self.cursor.load(Ordering::Relaxed)),
            undelivered: measured.then(|| self.undelivered.load(Ordering::Relaxed)),
            lag_ms: measured.then_some(lag_ms.unwrap_or(0)),
            delivered: Some(self.delivered.get()),
            webhook_failures: Some(self.webhook_failures.get()),
            pruned: Some(self.pruned.get()),
            clock_posts: Some(self.clock_posts.get()),
            clock_lag_ms: match self.clock_at.load(Ordering::Relaxed) {
                0 => None,
                at => Some(now.saturating_sub(at)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(phase: Phase, oldest_at: Option<u64>) -> CaptureStatus {
        let status = CaptureStatus::default();
        status.set_phase(phase);
        status.record_backlog(Backlog { cursor: 7, undelivered: u64::from(oldest_at.is_some()), oldest_at }, 1_000);
        status
    }

    #[test]
    fn capture_lags_when_its_oldest_undelivered_change_is_older_than_the_threshold() {
        assert_eq!(status(Phase::Consuming, Some(1_000)).report(2_000, 5_000).status, "up");
        let lagging = status(Phase::Consuming, Some(1_000)).report(7_000, 5_000);
        assert_eq!((lagging.status, lagging.lag_ms, lagging.undelivered, lagging.is_ok()), ("lagging", Some(6_000), Some(1), false));
        assert_eq!(status(Phase::Consuming, None).report(99_000, 5_000).lag_ms, Some(0));
        assert_eq!(status(Phase::Standby, Some(1_000)).report(7_000, 5_000).status, "lagging", "a standby sees the consumer's backlog");
    }

    #[test]
    fn capture_that_is_disconnected_is_down_and_a_standby_or_starting_one_is_fine() {
        let report = status(Phase::Down, None).report(2_000, 5_000);
        assert_eq!((report.status, report.is_ok()), ("down", false));
        let standby = status(Phase::Standby, Some(1_000)).report(2_000, 5_000);
        assert_eq!((standby.status, standby.is_ok()), ("standby", true));
        assert!(CaptureStatus::default().report(0, 5_000).is_ok());
        assert_eq!(CaptureStatus::default().phase(), Phase::Starting);
        assert!(CaptureReport::not_configured().is_ok());
    }
}
