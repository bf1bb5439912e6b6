//! The state home: what must be fresh in every location, each workspace's scope states (`gen:`
//! keys) and carry records (sealed here, opaque there), with its newest generation, lives in the
//! workspace's Durable Object (the live worker's `WorkspaceChannel`, reached through the `LIVE`
//! service binding), which serializes their writes: a write names the version it read and is
//! refused (409) when another came first. Pages stay in KV, Redis and L0, keyed by generation.
//!
//! This isolate reads a workspace's scope states all at once, and keeps them, with the newest
//! generation they came with, as long as they may be trusted: until change capture's clock (read
//! before them) plus the staleness bound (`states_fresh_until`), reading them again in the
//! background once less than half the bound is left, so a workspace read that often never waits
//! for its states. When change capture is behind by more than the bound, no state can be trusted:
//! the read fails, and the caller's page comes from the database, no cache read or written. A
//! caller who names a generation newer than the one kept (`minGeneration`) has them read again at
//! once.

use crate::config::{Upstreams, LIVE_BINDING};
use crate::metrics::Trace;
use crate::runtime::{self, within};
use contact_list_cache_core::engine::LayerError;
use contact_list_cache_core::generation::{states_fresh_until, Generation, ScopeState};
use contact_list_cache_core::l0::{L0Limits, Weigh, L0};
use contact_list_cache_core::layer::CacheLayer;
use contact_list_cache_core::query::WorkspaceId;
use contact_list_cache_core::time::UnixMillis;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use worker::{Context, Env, Method, Request, RequestInit};

/// What the isolate's memory of scope states may weigh (about 170 bytes each).
const KNOWN_BYTES: usize = 2 << 20;

/// The workspace's state home as read: its version, its newest generation and the values asked
/// for (none where the home has none).
#[derive(Deserialize)]
pub struct Snapshot {
    pub version: u64,
    #[serde(deserialize_with = "generation")]
    pub newest: Generation,
    values: Map<String, Value>,
}

fn generation<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Generation, D::Error> {
    let raw = String::deserialize(de)?;
    Generation::parse("newest", &raw).map_err(|err| serde::de::Error::custom(err.message))
}

impl Snapshot {
    pub fn value(&self, key: &str) -> Option<&str> {
        self.values.get(key).and_then(Value::as_str)
    }

    /// The scope state at `key`: the initial one when never written.
    pub fn state(&self, key: &str) -> Result<ScopeState, String> {
        self.value(key).map_or(Ok(ScopeState::initial()), |raw| ScopeState::parse(raw).map_err(|err| err.message))
    }
}

/// What became of a conditional write.
pub enum Written {
    Done,
    /// The home was written since it was read: read again.
    Conflict,
}

/// One call to the workspace's home; its status and body. Within KV's budget: the home is read
/// where KV was, on every path that needs a state.
async fn call(env: &Env, upstreams: &Upstreams, workspace: &WorkspaceId, action: &str, body: String) -> Result<(u16, String), String> {
    call_path(env, upstreams, &format!("state/{workspace}/{action}"), body).await
}

/// One call to the live worker at `path` (the state home's or change capture's clock).
async fn call_path(env: &Env, upstreams: &Upstreams, path: &str, body: String) -> Result<(u16, String), String> {
    let live = env.service(LIVE_BINDING).map_err(|_| format!("no {LIVE_BINDING} binding for the state home"))?;
    let exchange = async {
        let mut init = RequestInit::new();
        init.with_method(Method::Post).with_body(Some(body.into()));
        let request = Request::new_with_init(&format!("https://live/{path}"), &init).map_err(|err| LayerError::failed(CacheLayer::Kv, err))?;
        let mut response = live.fetch_request(request).await.map_err(|err| LayerError::failed(CacheLayer::Kv, err))?;
        let text = response.text().await.map_err(|err| LayerError::failed(CacheLayer::Kv, err))?;
        Ok((response.status_code(), text))
    };
    within(CacheLayer::Kv, upstreams.budgets().kv_ms, exchange).await.map_err(|err| match err {
        LayerError::Timeout { budget_ms, .. } => format!("the state home did not answer within {budget_ms} ms"),
        LayerError::Failed { reason, .. } | LayerError::Refused { reason, .. } => format!("the state home: {reason}"),
    })
}

/// The prefix of every scope state's key in a workspace's home (`gen:<workspace>:...`).
const STATE_PREFIX: &str = "gen:";

/// The values at `keys` in `workspace`'s home, with its version and newest generation; with
/// `all_states`, every scope state of the workspace too.
pub async fn read(env: &Env, upstreams: &Upstreams, workspace: &WorkspaceId, keys: &[&str], all_states: bool) -> Result<Snapshot, String> {
    let asked = if all_states { json!({ "keys": keys, "prefix": STATE_PREFIX }) } else { json!({ "keys": keys }) };
    match call(env, upstreams, workspace, "read", asked.to_string()).await? {
        (200, body) => serde_json::from_str(&body).map_err(|err| format!("the state home answered {err}")),
        (status, body) => Err(format!("the state home answered {status}: {body}")),
    }
}

/// Writes `values` and `newest` to `workspace`'s home if its version is still `version`.
pub async fn write(env: &Env, upstreams: &Upstreams, workspace: &WorkspaceId, version: u64, newest: &Generation, values: Map<String, Value>) -> Result<Written, String> {
    let body = json!({ "version": version, "newest": newest.as_str(), "values": values }).to_string();
    match call(env, upstreams, workspace, "write", body).await? {
        (200, _) => Ok(Written::Done),
        (409, _) => Ok(Written::Conflict),
        (status, body) => Err(format!("the state home answered {status}: {body}")),
    }
}

/// A scope's state as this isolate knows it, with the workspace's newest generation when it was
/// read.
#[derive(Debug, Clone)]
pub struct Known {
    pub state: ScopeState,
    pub newest: Generation,
}

/// Every scope state of a workspace as this isolate knows it (a scope with none is at its initial
/// state; `None`: a state that does not parse), with the workspace's newest generation when they
/// were read, and when. One read of the home brings them all, so a workspace read at least once
/// every half bound is never waited on, whichever of its boards and filters are read.
#[derive(Debug, Clone)]
pub struct KnownStates {
    /// Shared: every read of a kept workspace takes a copy of this value.
    states: Rc<HashMap<String, Option<ScopeState>>>,
    pub newest: Generation,
    pub read_at: UnixMillis,
    /// Until when they may be served (see `states_fresh_until`).
    pub fresh_until: UnixMillis,
}

impl KnownStates {
    /// The workspace's scope states in `snapshot`, read at `read_at` (the request sent then),
    /// after change capture's clock was read as `clock`.
    pub fn of(snapshot: &Snapshot, read_at: UnixMillis, clock: Option<UnixMillis>, bound_ms: u64) -> Self {
        let states = snapshot.values.iter().filter(|(key, _)| key.starts_with(STATE_PREFIX)).map(|(key, value)| {
            let state = value.as_str().map_or(Some(ScopeState::initial()), |raw| ScopeState::parse(raw).ok());
            (key.clone(), state)
        });
        let fresh_until = states_fresh_until(read_at, clock, bound_ms);
        Self { states: Rc::new(states.collect()), newest: snapshot.newest.clone(), read_at, fresh_until }
    }

    /// These states after this isolate's own write of `written` as `newest`.
    pub fn after(mut self, written: Vec<(String, ScopeState)>, newest: Generation) -> Self {
        Rc::make_mut(&mut self.states).extend(written.into_iter().map(|(key, state)| (key, Some(state))));
        self.newest = newest;
        self
    }

    fn known(&self, key: &str) -> Result<Known, String> {
        let state = match self.states.get(key) {
            None => ScopeState::initial(),
            Some(Some(state)) => state.clone(),
            Some(None) => return Err(format!("the state at {key} does not parse")),
        };
        Ok(Known { state, newest: self.newest.clone() })
    }
}

impl Weigh for KnownStates {
    fn weight(&self) -> usize {
        // Per state: its key, two generations of at most 40 characters and a time.
        64 + self.states.keys().map(|key| key.len() + 104).sum::<usize>()
    }
}

/// Change capture's clock as this isolate last read it, and when the read was answered: every
/// change committed before `applied_through` had reached the state home when it was read
/// (`None`: change capture has never run), but in the workspaces `behind` names, where every
/// change committed before their own time had.
#[derive(Clone)]
struct ClockReading {
    applied_through: Option<UnixMillis>,
    behind: Rc<HashMap<String, u64>>,
    received_at: UnixMillis,
}

impl ClockReading {
    fn of(&self, workspace: &WorkspaceId) -> Option<UnixMillis> {
        let through = self.applied_through?;
        Some(self.behind.get(workspace.as_str()).map_or(through, |at| UnixMillis(*at).min(through)))
    }
}

thread_local! {
    /// By workspace.
    static KNOWN: RefCell<L0<KnownStates>> = RefCell::default();
    /// The workspaces whose states are being read again in the background.
    static REVALIDATING: RefCell<HashSet<String>> = RefCell::default();
    static CLOCK: RefCell<Option<ClockReading>> = const { RefCell::new(None) };
}

/// States are never kept past the staleness bound (their own `fresh_until` is sooner).
fn limits(upstreams: &Upstreams) -> L0Limits {
    L0Limits { keep_ms: upstreams.staleness_bound_ms, max_bytes: KNOWN_BYTES }
}

/// A clock reading is used for states read within a quarter of the bound of it; older, it is
/// read again first.
fn clock_reuse_ms(upstreams: &Upstreams) -> u64 {
    upstreams.staleness_bound_ms / 4
}

/// A workspace whose states were read this recently and could not be trusted (change capture
/// behind) is not read again for each request: its pages come from the database meanwhile.
const BEHIND_RETRY_MS: u64 = 50;

/// Change capture's clock: one read of its object (`/clock/read` on the live worker).
async fn read_clock(env: &Env, upstreams: &Upstreams) -> Result<ClockReading, String> {
    let (status, body) = call_path(env, upstreams, "clock/read", "{}".to_owned()).await?;
    if status != 200 {
        return Err(format!("change capture's clock answered {status}: {body}"));
    }
    let clock: Value = serde_json::from_str(&body).map_err(|err| format!("change capture's clock answered {err}"))?;
    // 0: change capture runs and its clock is not known yet (nothing trusted).
    let applied_through = clock.get("applied_through").and_then(Value::as_f64).map(|at| UnixMillis(at.max(0.0) as u64));
    let behind = clock.get("behind").and_then(Value::as_object).map(|listed| listed.iter().filter_map(|(w, at)| Some((w.clone(), at.as_f64()? as u64))).collect()).unwrap_or_default();
    Ok(ClockReading { applied_through, behind: Rc::new(behind), received_at: runtime::now() })
}

/// Moves change capture's clock forward to `reading` (checked by the webhook: the backend's
/// change capture posts it). Answers the clock as kept after.
pub async fn advance_clock(env: &Env, upstreams: &Upstreams, reading: Value) -> Result<Value, String> {
    let (status, body) = call_path(env, upstreams, "clock/write", reading.to_string()).await?;
    match serde_json::from_str::<Value>(&body) {
        Ok(kept) if status == 200 => Ok(kept),
        _ => Err(format!("change capture's clock answered {status}: {body}")),
    }
}

/// The kept clock reading, if states of `workspace` read at `now` may be timed by it: read
/// within a quarter of the bound, and leaving them at least a quarter of the bound of trust
/// (else it is read again, which may say change capture is further on). `None` with the bound
/// at 0 too: states are not kept, nothing to time.
fn reusable_clock(upstreams: &Upstreams, now: UnixMillis, workspace: &WorkspaceId) -> Option<ClockReading> {
    let bound = upstreams.staleness_bound_ms;
    let kept = CLOCK.with(|clock| clock.borrow().clone())?;
    let recent = now.since(kept.received_at) < clock_reuse_ms(upstreams);
    let lasting = kept.of(workspace).is_none_or(|at| states_fresh_until(now, Some(at), bound) > UnixMillis(now.0 + bound / 4));
    (bound > 0 && recent && lasting).then_some(kept)
}

/// Whether the next states of `workspace` read at `now` read change capture's clock first (a
/// call counted with the state home's reads).
pub fn clock_due(upstreams: &Upstreams, now: UnixMillis, workspace: &WorkspaceId) -> bool {
    upstreams.staleness_bound_ms > 0 && reusable_clock(upstreams, now, workspace).is_none()
}

/// Change capture's clock for `workspace` as read before `now`: the kept reading if it may be
/// reused (`reusable_clock`), else read again (and kept).
pub async fn clock_before(env: &Env, upstreams: &Upstreams, now: UnixMillis, workspace: &WorkspaceId) -> Result<Option<UnixMillis>, String> {
    if upstreams.staleness_bound_ms == 0 {
        // States are not kept: nothing to time.
        return Ok(None);
    }
    if let Some(reading) = reusable_clock(upstreams, now, workspace) {
        return Ok(reading.of(workspace));
    }
    let reading = read_clock(env, upstreams).await?;
    let at = reading.of(workspace);
    CLOCK.with(|clock| *clock.borrow_mut() = Some(reading));
    Ok(at)
}

/// Keeps `known` for `workspace` unless what is kept is newer (a background read that returns
/// after this isolate's own invalidation).
pub fn remember(upstreams: &Upstreams, workspace: &WorkspaceId, known: KnownStates) {
    let limits = limits(upstreams);
    KNOWN.with(|kept| {
        let mut kept = kept.borrow_mut();
        if kept.get(workspace.as_str(), known.read_at, limits).is_none_or(|old| old.newest <= known.newest) {
            kept.put(workspace.as_str(), known, runtime::now(), limits);
        }
    });
}

/// Reads change capture's clock (unless read lately), then every scope state of `workspace`
/// from the home, and keeps them.
async fn fetch(env: &Env, upstreams: &Upstreams, workspace: &WorkspaceId) -> Result<KnownStates, String> {
    let clock = clock_before(env, upstreams, runtime::now(), workspace).await?;
    let read_at = runtime::now();
    let snapshot = read(env, upstreams, workspace, &[], true).await?;
    let known = KnownStates::of(&snapshot, read_at, clock, upstreams.staleness_bound_ms);
    remember(upstreams, workspace, known.clone());
    Ok(known)
}

/// `known`, if it may still be served at `now`; else why not. With the bound at 0, states are
/// read for each request (none kept) and served as read.
fn trusted(known: KnownStates, now: UnixMillis, bound_ms: u64) -> Result<KnownStates, String> {
    if bound_ms == 0 || now < known.fresh_until {
        return Ok(known);
    }
    let behind = now.since(known.fresh_until);
    Err(format!("change capture is behind: states read {} ms ago are past the staleness bound by {behind} ms", now.since(known.read_at)))
}

/// The state of the scope at `key` in `workspace`: the one this isolate keeps while it may be
/// trusted and if as new as `min`, else read from the home with every other state of the
/// workspace (counted in `trace`). With less than half the bound of trust left, the kept one is
/// still used, and the workspace's states read again after the response (`ctx`, when given).
/// Fails when change capture is so far behind that the states read cannot be trusted: the caller
/// then reads no cache.
pub async fn scope_state(
    env: &Env,
    ctx: Option<&Context>,
    upstreams: &Rc<Upstreams>,
    workspace: &WorkspaceId,
    key: &str,
    min: Option<&Generation>,
    trace: &Trace,
) -> Result<Known, String> {
    let now = runtime::now();
    // The bound counts from the request's arrival: every change committed more than the bound
    // before it is shown (a request queued in a busy isolate is not made older by the wait).
    let asked = trace.asked_at(now);
    let kept = KNOWN.with(|kept| kept.borrow().get(workspace.as_str(), now, limits(upstreams)));
    let kept = kept.filter(|known| min.is_none_or(|min| known.newest >= *min));
    if let Some(known) = kept.clone().filter(|known| asked < known.fresh_until) {
        let left = known.fresh_until.since(now);
        if let Some(ctx) = ctx.filter(|_| left < upstreams.staleness_bound_ms / 2) {
            if REVALIDATING.with(|spaces| spaces.borrow_mut().insert(workspace.as_str().to_owned())) {
                trace.home_read();
                if clock_due(upstreams, now, workspace) {
                    trace.home_read();
                }
                let (env, upstreams, workspace) = (env.clone(), Rc::clone(upstreams), workspace.clone());
                ctx.wait_until(async move {
                    if let Err(err) = fetch(&env, &upstreams, &workspace).await {
                        worker::console_warn!("revalidating a workspace's scope states: {err}");
                    }
                    REVALIDATING.with(|spaces| spaces.borrow_mut().remove(workspace.as_str()));
                });
            }
        }
        return known.known(key);
    }
    // Read just now and already past trust: change capture is behind; not read again per request.
    if let Some(known) = kept.filter(|known| now.since(known.read_at) < BEHIND_RETRY_MS) {
        return trusted(known, asked, upstreams.staleness_bound_ms)?.known(key);
    }
    trace.home_read();
    if clock_due(upstreams, now, workspace) {
        trace.home_read();
    }
    let known = fetch(env, upstreams, workspace).await?;
    trusted(known, asked, upstreams.staleness_bound_ms)?.known(key)
}

/// What the isolate keeps, for `/metrics`: states and bytes.
pub fn usage() -> (usize, usize) {
    KNOWN.with(|kept| (kept.borrow().len(), kept.borrow().bytes()))
}
