//! This isolate's request metrics (a rolling window kept in memory) and the per-request trace the
//! handlers fill: which caches were looked up, where the answer came from, what it cost.

use crate::clock;
use contact_list_cache_core::layer::{CacheLayer, CacheStatus};
use contact_list_cache_core::metrics::{Recorder, Sample, Snapshot};
use std::cell::{Cell, RefCell};

/// The window `/metrics` covers.
pub const WINDOW_MS: u64 = 5 * 60 * 1000;
/// The most samples kept; beyond it the oldest are dropped.
const CAPACITY: usize = 50_000;

thread_local! {
    static RECORDER: RefCell<Recorder> = RefCell::new(Recorder::new(clock::now(), WINDOW_MS, CAPACITY));
}

/// What one request did, filled in by the handlers as they go.
#[derive(Debug, Default)]
pub struct Trace {
    kv_operations: Cell<u32>,
    redis_operations: Cell<u32>,
    database_queries: Cell<u32>,
    lookups: RefCell<Vec<(CacheLayer, bool)>>,
    answer: Cell<Option<(CacheStatus, CacheLayer)>>,
    failures: RefCell<Vec<String>>,
    board_id: RefCell<Option<String>>,
    workspace_id: RefCell<Option<String>>,
}

impl Trace {
    pub fn kv_operation(&self) {
        self.kv_operations.set(self.kv_operations.get() + 1);
    }

    pub fn redis_operation(&self) {
        self.redis_operations.set(self.redis_operations.get() + 1);
    }

    pub fn database_query(&self) {
        self.database_queries.set(self.database_queries.get() + 1);
    }

    /// A cache lookup and whether it hit.
    pub fn lookup(&self, layer: CacheLayer, hit: bool) {
        self.lookups.borrow_mut().push((layer, hit));
    }

    pub fn answered(&self, status: CacheStatus, layer: CacheLayer) {
        self.answer.set(Some((status, layer)));
    }

    /// A layer that failed and was skipped; `what` must hold no secret or user data.
    pub fn failed(&self, what: impl Into<String>) {
        self.failures.borrow_mut().push(what.into());
    }

    /// The board and workspace a request concerned, for the request log.
    pub fn scope(&self, board: Option<&str>, workspace: &str) {
        *self.board_id.borrow_mut() = board.map(str::to_owned);
        *self.workspace_id.borrow_mut() = Some(workspace.to_owned());
    }

    pub fn answer(&self) -> Option<(CacheStatus, CacheLayer)> {
        self.answer.get()
    }

    pub fn failures(&self) -> Vec<String> {
        self.failures.borrow().clone()
    }

    pub fn board_id(&self) -> Option<String> {
        self.board_id.borrow().clone()
    }

    pub fn workspace_id(&self) -> Option<String> {
        self.workspace_id.borrow().clone()
    }

    /// Records the finished request in the isolate's window.
    pub fn record(&self, millis: u64, error: bool) {
        let sample = Sample {
            at: clock::now(),
            millis,
            answer: self.answer.get(),
            lookups: self.lookups.borrow().clone(),
            error,
            kv_operations: self.kv_operations.get(),
            redis_operations: self.redis_operations.get(),
            database_queries: self.database_queries.get(),
        };
        RECORDER.with(|recorder| recorder.borrow_mut().record(sample));
    }
}

/// The numbers over the window ending now.
pub fn snapshot() -> Snapshot {
    RECORDER.with(|recorder| recorder.borrow_mut().snapshot(clock::now()))
}

/// The request's id: a valid incoming `X-Request-ID` (1 to 128 of `[A-Za-z0-9._-]`), else a new
/// random one.
pub fn request_id(incoming: Option<&str>) -> String {
    match incoming {
        Some(id) if (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) => {
            id.to_owned()
        }
        _ => {
            let mut bytes = [0u8; 16];
            if getrandom::getrandom(&mut bytes).is_err() {
                bytes = (worker::js_sys::Math::random().to_bits() as u128 ^ u128::from(clock::now().0)).to_le_bytes();
            }
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        }
    }
}

/// What the request log says of one request: the spec's performance fields. Never the query
/// string, a token, or anything from the contacts.
pub struct RequestLog<'a> {
    pub request_id: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub response_time: u64,
    pub edge_location: &'a str,
    pub user_agent: Option<String>,
}

/// Writes one JSON line for the request, and one more when something failed on the way.
pub fn log(trace: &Trace, entry: &RequestLog<'_>) {
    let timestamp = clock::now().to_string();
    let answer = trace.answer();
    let line = serde_json::json!({
        "type": "request",
        "requestId": entry.request_id,
        "method": entry.method,
        "path": entry.path,
        "status": entry.status,
        "boardId": trace.board_id(),
        "workspaceId": trace.workspace_id(),
        "responseTime": entry.response_time,
        "cacheHit": answer.map(|(status, _)| status == CacheStatus::Hit),
        "cacheStatus": answer.map(|(status, _)| status.as_str()),
        "cacheLayer": answer.map(|(_, layer)| layer.as_str()),
        "edgeLocation": entry.edge_location,
        "userAgent": entry.user_agent,
        "timestamp": timestamp,
    });
    worker::console_log!("{line}");
    let failures = trace.failures();
    if !failures.is_empty() || entry.status >= 500 {
        let error = if failures.is_empty() { format!("answered {}", entry.status) } else { failures.join("; ") };
        let line = serde_json::json!({
            "type": "error",
            "requestId": entry.request_id,
            "error": error,
            "url": entry.path,
            "status": entry.status,
            "responseTime": entry.response_time,
            "edgeLocation": entry.edge_location,
            "fallbackUsed": answer.is_some_and(|(_, layer)| layer == CacheLayer::BackendFallback),
            "timestamp": timestamp,
        });
        worker::console_error!("{line}");
    }
}

/// Writes the request's data point: index the workspace; blobs layer, status and location;
/// doubles response time, HTTP status and the operation counts.
pub fn write_analytics(env: &worker::Env, trace: &Trace, status: u16, millis: u64, edge_location: &str) {
    let Ok(dataset) = env.analytics_engine(crate::config::ANALYTICS_BINDING) else {
        return;
    };
    let answer = trace.answer();
    let workspace = trace.workspace_id().unwrap_or_default();
    let point = worker::AnalyticsEngineDataPointBuilder::new()
        .indexes([workspace.as_str()].as_slice())
        .blobs([
            answer.map_or("", |(_, layer)| layer.as_str()).to_owned(),
            answer.map_or("", |(status, _)| status.as_str()).to_owned(),
            edge_location.to_owned(),
        ])
        .doubles([
            millis as f64,
            f64::from(status),
            f64::from(trace.kv_operations.get()),
            f64::from(trace.redis_operations.get()),
            f64::from(trace.database_queries.get()),
        ]);
    if let Err(err) = point.write_to(&dataset) {
        worker::console_warn!("analytics engine write skipped: {err}");
    }
}
