//! The engine's clock and timers on tokio: now from the system clock, sleep on tokio's timer.

use contact_list_cache_core::coalesce::{Coalesce, Leases, Nobody, Turn};
use contact_list_cache_core::time::{Runtime, UnixMillis};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The tokio runtime as the engine sees it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tokio;

impl Runtime for Tokio {
    fn now(&self) -> UnixMillis {
        let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        UnixMillis(since_epoch.as_millis() as u64)
    }

    async fn sleep(&self, ms: u32) {
        tokio::time::sleep(Duration::from_millis(ms.into())).await;
    }
}

/// Now, from the system clock (the core never reads it).
pub fn now() -> UnixMillis {
    Tokio.now()
}

/// How this service's reads share work: each read is its own (no flights across threads), but a
/// page's background refresh runs once per lease across the process.
#[derive(Debug, Clone, Default)]
pub struct Leased(Arc<Mutex<Leases>>);

impl<T> Coalesce<T> for Leased {
    type Lead = ();
    type Watch = Nobody;

    fn join(&self, _: &str) -> Turn<(), Nobody> {
        Turn::Lead(())
    }

    fn claim_refresh(&self, key: &str, now: UnixMillis, lease_ms: u64) -> bool {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).claim(key, now, lease_ms)
    }
}
