//! The state home: what must be fresh in every location, each workspace's scope states (`gen:`
//! keys) and carry records (sealed here, opaque there), with its newest generation, lives in the
//! workspace's Durable Object (the live worker's `WorkspaceChannel`, reached through the `LIVE`
//! service binding), which serializes their writes: a write names the version it read and is
//! refused (409) when another came first. Pages stay in KV, Redis and L0, keyed by generation.
//!
//! This isolate reads a workspace's scope states all at once, and keeps them, with the newest
//! generation they came with, for at most half the staleness bound (nothing with the bound at 0;
//! see `keep_ms`), reading them again in the background once half of that has passed, so a
//! workspace read that often never waits for its states. A caller who names a generation newer than the one kept
//! (`minGeneration`) has them read again at once.

use crate::config::{Upstreams, LIVE_BINDING};
use crate::metrics::Trace;
use crate::runtime::{self, within};
use contact_list_cache_core::engine::LayerError;
use contact_list_cache_core::generation::{Generation, ScopeState};
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
    let live = env.service(LIVE_BINDING).map_err(|_| format!("no {LIVE_BINDING} binding for the state home"))?;
    let exchange = async {
        let mut init = RequestInit::new();
        init.with_method(Method::Post).with_body(Some(body.into()));
        let request = Request::new_with_init(&format!("https://live/state/{workspace}/{action}"), &init).map_err(|err| LayerError::failed(CacheLayer::Kv, err))?;
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
}

impl KnownStates {
    /// The workspace's scope states in `snapshot`, read at `read_at`.
    pub fn of(snapshot: &Snapshot, read_at: UnixMillis) -> Self {
        let states = snapshot.values.iter().filter(|(key, _)| key.starts_with(STATE_PREFIX)).map(|(key, value)| {
            let state = value.as_str().map_or(Some(ScopeState::initial()), |raw| ScopeState::parse(raw).ok());
            (key.clone(), state)
        });
        Self { states: Rc::new(states.collect()), newest: snapshot.newest.clone(), read_at }
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

thread_local! {
    /// By workspace.
    static KNOWN: RefCell<L0<KnownStates>> = RefCell::default();
    /// The workspaces whose states are being read again in the background.
    static REVALIDATING: RefCell<HashSet<String>> = RefCell::default();
}

/// How long states are kept: half the staleness bound. The bound runs from the change itself
/// (its commit, for change capture), so the other half is left to what comes before a state is
/// written: change capture's wake-up, its webhook, the write to the home, and the round trip of
/// the read that brings the state here.
fn keep_ms(upstreams: &Upstreams) -> u64 {
    upstreams.staleness_bound_ms / 2
}

fn limits(upstreams: &Upstreams) -> L0Limits {
    L0Limits { keep_ms: keep_ms(upstreams), max_bytes: KNOWN_BYTES }
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

/// Reads every scope state of `workspace` from the home and keeps them.
async fn fetch(env: &Env, upstreams: &Upstreams, workspace: &WorkspaceId) -> Result<KnownStates, String> {
    let snapshot = read(env, upstreams, workspace, &[], true).await?;
    let known = KnownStates::of(&snapshot, runtime::now());
    remember(upstreams, workspace, known.clone());
    Ok(known)
}

/// The state of the scope at `key` in `workspace`: the one this isolate keeps if read within
/// `keep_ms` and as new as `min`, else read from the home with every other state of the workspace
/// (counted in `trace`). Past half of `keep_ms` the kept one is still used, and the workspace's
/// states read again after the response (`ctx`, when given).
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
    let kept = KNOWN.with(|kept| kept.borrow().get(workspace.as_str(), now, limits(upstreams)));
    if let Some(known) = kept.filter(|known| min.is_none_or(|min| known.newest >= *min)) {
        if let Some(ctx) = ctx.filter(|_| now.since(known.read_at) >= keep_ms(upstreams) / 2) {
            if REVALIDATING.with(|spaces| spaces.borrow_mut().insert(workspace.as_str().to_owned())) {
                trace.home_read();
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
    trace.home_read();
    fetch(env, upstreams, workspace).await?.known(key)
}

/// What the isolate keeps, for `/metrics`: states and bytes.
pub fn usage() -> (usize, usize) {
    KNOWN.with(|kept| (kept.borrow().len(), kept.borrow().bytes()))
}
