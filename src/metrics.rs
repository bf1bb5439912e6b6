//! This isolate's request metrics (a rolling window kept in memory) and the per-request trace the
//! handlers and the read path fill: which caches were looked up, where the answer came from, what
//! it cost.

use contact_list_cache_core::time::UnixMillis;
use crate::limits::Action;
use crate::runtime::now;
use contact_list_cache_core::engine::{Event, LayerError, Skip, Step};
use contact_list_cache_core::layer::{CacheLayer, CacheStatus};
use contact_list_cache_core::metrics::{Recorder, Sample, Snapshot, StateHomeCalls};
use contact_list_cache_core::query::{BoardId, WorkspaceId};
use std::cell::{Cell, RefCell};

/// The window `/metrics` covers.
pub const WINDOW_MS: u64 = 5 * 60 * 1000;
/// The most samples kept; beyond it the oldest are dropped.
const CAPACITY: usize = 50_000;

thread_local! {
    static RECORDER: RefCell<Recorder> = RefCell::new(Recorder::new(now(), WINDOW_MS, CAPACITY));
    /// Requests recorded and the state home calls they made, since the isolate started.
    static TOTALS: Cell<(u64, StateHomeCalls)> = Cell::new((0, StateHomeCalls::default()));
}

/// Requests recorded and the state home calls they made since this isolate started: counters
/// that, unlike the window, can be read twice and subtracted (the benchmark's cost per read).
pub fn totals() -> (u64, StateHomeCalls) {
    TOTALS.with(Cell::get)
}

/// What one request did, filled in by the handlers as they go.
#[derive(Debug, Default)]
pub struct Trace {
    kv_operations: Cell<u32>,
    redis_operations: Cell<u32>,
    database_queries: Cell<u32>,
    state_home: Cell<StateHomeCalls>,
    lookups: RefCell<Vec<(CacheLayer, bool)>>,
    answer: Cell<Option<(CacheStatus, CacheLayer)>>,
    failures: RefCell<Vec<String>>,
    board_id: RefCell<Option<String>>,
    workspace_id: RefCell<Option<String>>,
    audit: RefCell<Vec<crate::audit::Note>>,
    /// When the request arrived (none for work nobody asked for): the staleness bound counts
    /// from it.
    asked_at: Cell<Option<UnixMillis>>,
}

impl Trace {
    /// Marks when the request arrived.
    pub fn asked(&self, at: UnixMillis) {
        self.asked_at.set(Some(at));
    }

    /// When the request arrived, else `now`.
    pub fn asked_at(&self, now: UnixMillis) -> UnixMillis {
        self.asked_at.get().unwrap_or(now)
    }

    pub fn kv_operation(&self) {
        self.kv_operations.set(self.kv_operations.get() + 1);
    }

    pub fn redis_operation(&self) {
        self.redis_operations.set(self.redis_operations.get() + 1);
    }

    /// A read of the state home.
    pub fn home_read(&self) {
        self.state_home.set(StateHomeCalls { reads: self.state_home.get().reads + 1, ..self.state_home.get() });
    }

    /// A conditional write to the state home, and whether it was refused for a stale version.
    pub fn home_write(&self, conflict: bool) {
        let calls = self.state_home.get();
        self.state_home.set(StateHomeCalls { writes: calls.writes + 1, conflicts: calls.conflicts + u64::from(conflict), ..calls });
    }

    /// The state home calls so far.
    pub fn home_calls(&self) -> StateHomeCalls {
        self.state_home.get()
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

    /// The board a request concerned, for the request log.
    pub fn board(&self, board: &BoardId) {
        *self.board_id.borrow_mut() = Some(board.to_string());
    }

    /// The workspace a request concerned, for the request log.
    pub fn workspace(&self, workspace: &WorkspaceId) {
        *self.workspace_id.borrow_mut() = Some(workspace.to_string());
    }

    /// A cache operation for the audit log, written when the request is answered.
    pub fn audit(&self, note: crate::audit::Note) {
        self.audit.borrow_mut().push(note);
    }

    /// Sets the scopes of the operation noted last (known only once the request is parsed).
    pub fn audit_scopes(&self, scopes: Vec<String>) {
        if let Some(note) = self.audit.borrow_mut().last_mut() {
            note.scopes = scopes;
        }
    }

    /// The operations noted, taken out.
    pub fn audited(&self) -> Vec<crate::audit::Note> {
        self.audit.take()
    }

    /// One call to `layer`: a KV or Redis operation, or a database query.
    fn operation(&self, layer: CacheLayer) {
        match layer {
            CacheLayer::L0 => {}
            CacheLayer::Kv => self.kv_operation(),
            CacheLayer::Redis => self.redis_operation(),
            CacheLayer::Database | CacheLayer::BackendFallback => self.database_query(),
        }
    }

    /// What each layer did in a read: every call is an operation; a cache's copy, or its absence,
    /// is a lookup (a call that failed is not); failures are noted.
    pub fn steps(&self, steps: &[Step]) {
        for Step { layer, event } in steps {
            let lookup = match event {
                // A carried copy declined: its record was still read.
                Event::Skipped(Skip::NotCarried) => None,
                Event::Skipped(_) => continue,
                Event::Hit | Event::Superseded => Some(true),
                Event::Miss | Event::KeptForErrors | Event::Expired | Event::Failed(LayerError::Refused { .. }) => Some(false),
                Event::Failed(_) | Event::Answered | Event::Forbidden => None,
            };
            self.operation(*layer);
            if let Some(hit) = lookup.filter(|_| matches!(layer, CacheLayer::L0 | CacheLayer::Kv | CacheLayer::Redis)) {
                self.lookup(*layer, hit);
            }
            if let Event::Failed(err) = event {
                self.failed(err.to_string());
            }
        }
    }

    /// The write-backs scheduled after the response, one operation each.
    pub fn writes(&self, layers: impl Iterator<Item = CacheLayer>) {
        layers.for_each(|layer| self.operation(layer));
    }

    /// KV operations, Redis operations and database queries so far.
    pub fn operations(&self) -> (u32, u32, u32) {
        (self.kv_operations.get(), self.redis_operations.get(), self.database_queries.get())
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
            at: now(),
            millis,
            answer: self.answer.get(),
            lookups: self.lookups.borrow().clone(),
            error,
            kv_operations: self.kv_operations.get(),
            redis_operations: self.redis_operations.get(),
            database_queries: self.database_queries.get(),
            state_home: self.state_home.get(),
        };
        TOTALS.with(|totals| {
            let (requests, home) = totals.get();
            let calls = sample.state_home;
            totals.set((requests + 1, StateHomeCalls { reads: home.reads + calls.reads, writes: home.writes + calls.writes, conflicts: home.conflicts + calls.conflicts }));
        });
        RECORDER.with(|recorder| recorder.borrow_mut().record(sample));
    }
}

/// The numbers over the window ending now.
pub fn snapshot() -> Snapshot {
    RECORDER.with(|recorder| recorder.borrow_mut().snapshot(now()))
}


thread_local! {
    /// Requests this isolate refused with 429, per limited action (in `Action::ALL`'s order).
    static LIMITED: Cell<[u64; 5]> = const { Cell::new([0; 5]) };
}

/// Counts one request refused for being over `action`'s limit.
pub fn limited(action: Action) {
    LIMITED.with(|counts| {
        let mut all = counts.get();
        all[action as usize] += 1;
        counts.set(all);
    });
}

/// Requests this isolate refused with 429 since it started, per limited action.
pub fn limited_counts() -> Vec<(Action, u64)> {
    let counts = LIMITED.with(Cell::get);
    Action::ALL.iter().map(|&action| (action, counts[action as usize])).collect()
}
