//! The state home: what must be fresh in every location, each workspace's scope states (`gen:`
//! keys) and carry records (sealed here, opaque there), with its newest generation, lives in the
//! workspace's Durable Object (the live worker's `WorkspaceChannel`, reached through the `LIVE`
//! service binding), which serializes their writes: a write names the version it read and is
//! refused (409) when another came first. Pages stay in KV, Redis and L0, keyed by generation.
//!
//! This isolate keeps each scope state it read, with the newest generation it came with, for at
//! most the staleness bound (nothing with the bound at 0), and reads it again in the background
//! once half the bound has passed, so a hit within the bound makes no extra round trip. A caller
//! who names a generation newer than the one kept (`minGeneration`) has it read again at once.

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
use std::collections::HashSet;
use std::rc::Rc;
use worker::{Context, Env, Method, Request, RequestInit};

/// What the isolate's memory of scope states may weigh (about 400 bytes each).
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

/// The values at `keys` in `workspace`'s home, with its version and newest generation.
pub async fn read(env: &Env, upstreams: &Upstreams, workspace: &WorkspaceId, keys: &[&str]) -> Result<Snapshot, String> {
    match call(env, upstreams, workspace, "read", json!({ "keys": keys }).to_string()).await? {
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

/// A scope's state as this isolate knows it: with the workspace's newest generation when it was
/// read, and when.
#[derive(Debug, Clone)]
pub struct Known {
    pub state: ScopeState,
    pub newest: Generation,
    pub read_at: UnixMillis,
}

impl Weigh for Known {
    fn weight(&self) -> usize {
        // Three generations of at most 40 characters and two times.
        136
    }
}

thread_local! {
    static KNOWN: RefCell<L0<Known>> = RefCell::default();
    /// The keys whose state is being read again in the background.
    static REVALIDATING: RefCell<HashSet<String>> = RefCell::default();
}

fn limits(upstreams: &Upstreams) -> L0Limits {
    L0Limits { keep_ms: upstreams.staleness_bound_ms, max_bytes: KNOWN_BYTES }
}

/// Keeps `known` for `key` unless what is kept is newer (a background read that returns after
/// this isolate's own invalidation).
pub fn remember(upstreams: &Upstreams, key: &str, known: Known) {
    let limits = limits(upstreams);
    KNOWN.with(|kept| {
        let mut kept = kept.borrow_mut();
        if kept.get(key, known.read_at, limits).is_none_or(|old| old.newest <= known.newest) {
            kept.put(key, known, runtime::now(), limits);
        }
    });
}

/// Reads the state at `key` from the home and keeps it.
async fn fetch(env: &Env, upstreams: &Upstreams, workspace: &WorkspaceId, key: &str) -> Result<Known, String> {
    let snapshot = read(env, upstreams, workspace, &[key]).await?;
    let known = Known { state: snapshot.state(key)?, newest: snapshot.newest, read_at: runtime::now() };
    remember(upstreams, key, known.clone());
    Ok(known)
}

/// The state of the scope at `key` in `workspace`: the one this isolate keeps if read within the
/// bound and as new as `min`, else read from the home (counted in `trace`). Past half the bound
/// the kept one is still used, and read again after the response (`ctx`, when given).
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
    let kept = KNOWN.with(|kept| kept.borrow().get(key, now, limits(upstreams)));
    if let Some(known) = kept.filter(|known| min.is_none_or(|min| known.newest >= *min)) {
        if let Some(ctx) = ctx.filter(|_| now.since(known.read_at) >= upstreams.staleness_bound_ms / 2) {
            if REVALIDATING.with(|keys| keys.borrow_mut().insert(key.to_owned())) {
                trace.home_read();
                let (env, upstreams, workspace, key) = (env.clone(), Rc::clone(upstreams), workspace.clone(), key.to_owned());
                ctx.wait_until(async move {
                    if let Err(err) = fetch(&env, &upstreams, &workspace, &key).await {
                        worker::console_warn!("revalidating a scope state: {err}");
                    }
                    REVALIDATING.with(|keys| keys.borrow_mut().remove(&key));
                });
            }
        }
        return Ok(known);
    }
    trace.home_read();
    fetch(env, upstreams, workspace, key).await
}

/// What the isolate keeps, for `/metrics`: states and bytes.
pub fn usage() -> (usize, usize) {
    KNOWN.with(|kept| (kept.borrow().len(), kept.borrow().bytes()))
}
