//! The worker's runtime for the core: the JS clock, workerd timers, and what concurrent requests
//! in this isolate share (read flights, refresh leases, membership checks).

use contact_list_cache_core::coalesce::Isolate;
use crate::body::PageBody;
use contact_list_cache_core::engine::{self, LayerError, Shared};
use contact_list_cache_core::layer::CacheLayer;
use contact_list_cache_core::query::BoardId;
use contact_list_cache_core::time::{Runtime, UnixMillis};
use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::task::Poll;
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
    UnixMillis(worker::js_sys::Date::now() as u64)
}

/// What a JavaScript error says: its text, or its debug form when it is not a string.
pub fn js_message(err: &worker::wasm_bindgen::JsValue) -> String {
    err.as_string().unwrap_or_else(|| format!("{err:?}"))
}

/// Runs `call`, a call to `layer`, giving up after `budget_ms`.
pub async fn within<T>(layer: CacheLayer, budget_ms: u32, call: impl Future<Output = Result<T, LayerError>>) -> Result<T, LayerError> {
    engine::within(&Workerd, layer, budget_ms, call).await
}

/// Runs `futures` at once (on this one thread) and gives their outputs in order. (A few lines
/// instead of `futures_util`'s `join_all`, whose general machinery costs the wasm kilobytes.)
pub async fn all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut pending: Vec<Option<Pin<Box<F>>>> = futures.into_iter().map(|f| Some(Box::pin(f))).collect();
    let mut outputs: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    poll_fn(|cx| {
        for (slot, output) in pending.iter_mut().zip(outputs.iter_mut()) {
            if let Some(future) = slot {
                if let Poll::Ready(value) = future.as_mut().poll(cx) {
                    *output = Some(value);
                    *slot = None;
                }
            }
        }
        if pending.iter().all(Option::is_none) {
            Poll::Ready(outputs.iter_mut().map(|o| o.take().expect("every future finished")).collect())
        } else {
            Poll::Pending
        }
    })
    .await
}

thread_local! {
    static REQUEST_ID: RefCell<Option<Rc<str>>> = const { RefCell::new(None) };
}

/// Runs `request` with `id` as [`request_id`] whenever it is polled (the isolate's requests run
/// interleaved on one thread, so the id is swapped in and out around each poll, as a task-local
/// would be). Work a request hands to `ctx.wait_until` runs outside it, without an id; a read
/// coalesced with others' carries the id of the request that started it.
pub async fn traced<F: Future>(id: &str, request: F) -> F::Output {
    let id: Rc<str> = Rc::from(id);
    let mut request = pin!(request);
    poll_fn(|cx| {
        let outer = REQUEST_ID.with(|current| current.replace(Some(Rc::clone(&id))));
        let polled = request.as_mut().poll(cx);
        REQUEST_ID.with(|current| *current.borrow_mut() = outer);
        polled
    })
    .await
}

/// The `X-Request-ID` of the request being polled, if any: forwarded to the backend and PostgREST.
pub fn request_id() -> Option<Rc<str>> {
    REQUEST_ID.with(|current| current.borrow().clone())
}

thread_local! {
    static READS: Isolate<Shared<PageBody>> = Isolate::default();
    static MEMBERSHIP_CHECKS: Isolate<Result<bool, LayerError>> = Isolate::default();
    static BOARD_LISTS: Isolate<Result<Vec<BoardId>, LayerError>> = Isolate::default();
}

/// Page reads and refreshes in progress in this isolate.
pub fn reads() -> Isolate<Shared<PageBody>> {
    READS.with(Isolate::clone)
}

/// Lookups of a workspace's boards in progress in this isolate.
pub fn board_lists() -> Isolate<Result<Vec<BoardId>, LayerError>> {
    BOARD_LISTS.with(Isolate::clone)
}

/// Membership checks in progress in this isolate.
pub fn membership_checks() -> Isolate<Result<bool, LayerError>> {
    MEMBERSHIP_CHECKS.with(Isolate::clone)
}
