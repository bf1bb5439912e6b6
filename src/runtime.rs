//! The worker's runtime for the core: the JS clock, workerd timers, and what concurrent requests
//! in this isolate share (read flights, refresh leases, membership checks).

use contact_list_cache_core::coalesce::Isolate;
use contact_list_cache_core::engine::{self, LayerError, Shared};
use contact_list_cache_core::layer::CacheLayer;
use contact_list_cache_core::time::{Runtime, UnixMillis};
use std::future::Future;
use std::time::Duration;

/// The worker's clock and timers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Workerd;

impl Runtime for Workerd {
    fn now(&self) -> UnixMillis {
        now()
    }

    async fn sleep(&self, ms: u32) {
        worker::Delay::from(Duration::from_millis(u64::from(ms))).await;
    }
}

/// Now, in milliseconds since the Unix epoch. Inside workerd the clock only advances across I/O,
/// which is what response-time measurements should count anyway.
pub fn now() -> UnixMillis {
    UnixMillis(worker::Date::now().as_millis())
}

/// Runs `call`, a call to `layer`, giving up after `budget_ms`.
pub async fn within<T>(layer: CacheLayer, budget_ms: u32, call: impl Future<Output = Result<T, LayerError>>) -> Result<T, LayerError> {
    engine::within(&Workerd, layer, budget_ms, call).await
}

thread_local! {
    static READS: Isolate<Shared> = Isolate::default();
    static MEMBERSHIP_CHECKS: Isolate<Result<bool, LayerError>> = Isolate::default();
}

/// Page reads and refreshes in progress in this isolate.
pub fn reads() -> Isolate<Shared> {
    READS.with(Isolate::clone)
}

/// Membership checks in progress in this isolate.
pub fn membership_checks() -> Isolate<Result<bool, LayerError>> {
    MEMBERSHIP_CHECKS.with(Isolate::clone)
}
