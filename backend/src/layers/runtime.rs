//! The engine's clock and timers on tokio: now from the system clock, sleep on tokio's timer.

use contact_list_cache_core::time::{Runtime, UnixMillis};
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
