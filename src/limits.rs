//! What a caller may make us spend: rate limits per caller and per workspace on the actions that
//! cost KV writes, database queries or sockets, and the size of request bodies.
//!
//! The rate limits are Cloudflare's Rate Limiting binding, one binding per action and per scope
//! (declared in wrangler.toml, `[[ratelimits]]`, each with its `{limit, period}`). Platform rules
//! relied on: its counters are kept per Cloudflare location and are eventually consistent (a burst
//! may pass a little over a limit; a caller spread over locations gets the limit in each), and a
//! period is 10 or 60 s (60 here, [`PERIOD_SECONDS`]). Miniflare emulates it with fixed windows
//! aligned to the clock, counted in the isolate.
//!
//! A binding that is not bound: outside production the action is not limited by it; in production
//! it is a misconfiguration (the configuration names it and the limited routes answer 500). A
//! binding that fails to answer admits the request (limits guard costs, they do not grant access)
//! and the failure is noted in the request's trace.

use crate::config::Environment;
use crate::error::AppError;
use crate::metrics::{self, Trace};
use crate::runtime::now;
use contact_list_cache_core::query::{UserId, WorkspaceId};
use contact_list_cache_core::settings::SettingError;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;
use worker::js_sys::{self, Uint8Array};
use worker::worker_sys::web_sys;
use worker::{Env, Request};

/// The period of every limit, in seconds (each binding's `simple.period` in wrangler.toml).
pub const PERIOD_SECONDS: u64 = 60;

/// What is rate limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `POST /api/cache/invalidate`: up to 10 KV writes per board, and refresh-ahead reads.
    Invalidate,
    /// `POST /api/cache/warm`: four database reads and their write-backs.
    Warm,
    /// A list or counts read with `Cache-Control: no-cache`: past every cache to the database.
    FreshRead,
    /// `GET /api/workspaces/{id}/live`: a socket held on the live channel's Durable Object.
    LiveConnect,
    /// A membership check that the isolate's cache cannot answer: a PostgREST query.
    MembershipLookup,
}

/// Whose use a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Per {
    Caller,
    Workspace,
}

impl Action {
    pub const ALL: [Action; 5] = [Self::Invalidate, Self::Warm, Self::FreshRead, Self::LiveConnect, Self::MembershipLookup];

    /// The action's name in errors and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invalidate => "invalidate",
            Self::Warm => "warm",
            Self::FreshRead => "fresh_read",
            Self::LiveConnect => "live_connect",
            Self::MembershipLookup => "membership_lookup",
        }
    }

    /// The Rate Limiting binding that counts this action per caller or per workspace.
    pub fn binding(self, per: Per) -> &'static str {
        match (self, per) {
            (Self::Invalidate, Per::Caller) => "LIMIT_INVALIDATE_PER_CALLER",
            (Self::Invalidate, Per::Workspace) => "LIMIT_INVALIDATE_PER_WORKSPACE",
            (Self::Warm, Per::Caller) => "LIMIT_WARM_PER_CALLER",
            (Self::Warm, Per::Workspace) => "LIMIT_WARM_PER_WORKSPACE",
            (Self::FreshRead, Per::Caller) => "LIMIT_FRESH_READ_PER_CALLER",
            (Self::FreshRead, Per::Workspace) => "LIMIT_FRESH_READ_PER_WORKSPACE",
            (Self::LiveConnect, Per::Caller) => "LIMIT_LIVE_CONNECT_PER_CALLER",
            (Self::LiveConnect, Per::Workspace) => "LIMIT_LIVE_CONNECT_PER_WORKSPACE",
            (Self::MembershipLookup, Per::Caller) => "LIMIT_MEMBERSHIP_LOOKUP_PER_CALLER",
            (Self::MembershipLookup, Per::Workspace) => "LIMIT_MEMBERSHIP_LOOKUP_PER_WORKSPACE",
        }
    }
}

impl Per {
    fn as_str(self) -> &'static str {
        match self {
            Self::Caller => "caller",
            Self::Workspace => "workspace",
        }
    }
}

/// The isolate's rate limiters, per action: per caller, then per workspace (`None`: unbound).
#[derive(Debug)]
pub struct Limiters([[Option<JsValue>; 2]; 5]);

impl Limiters {
    /// Reads every binding; in production a missing one is an error naming it.
    pub fn read(env: &Env, environment: Environment) -> Result<Self, SettingError> {
        let bound = |action: Action, per: Per| {
            let binding = js_sys::Reflect::get(env, &JsValue::from_str(action.binding(per))).ok().filter(|value| value.is_object());
            match (binding, environment) {
                (Some(limiter), _) => Ok(Some(limiter)),
                (None, Environment::Production) => Err(SettingError::Missing { name: action.binding(per) }),
                (None, _) => Ok(None),
            }
        };
        let mut limiters: [[Option<JsValue>; 2]; 5] = Default::default();
        for action in Action::ALL {
            limiters[action as usize] = [bound(action, Per::Caller)?, bound(action, Per::Workspace)?];
        }
        Ok(Self(limiters))
    }

    /// Counts one `action` by `caller` in `workspace`: 429 when the caller's or the workspace's
    /// use is over its limit (the workspace is not counted when the caller is refused).
    pub async fn admit(&self, action: Action, caller: &UserId, workspace: &WorkspaceId, trace: &Trace) -> Result<(), AppError> {
        let [by_caller, by_workspace] = &self.0[action as usize];
        for (per, limiter, key) in [(Per::Caller, by_caller, caller.as_str()), (Per::Workspace, by_workspace, workspace.as_str())] {
            let Some(limiter) = limiter else { continue };
            match JsFuture::from(limit(limiter, key)).await {
                Ok(admitted) if admitted.is_truthy() => {}
                Ok(_) => {
                    metrics::limited(action);
                    return Err(AppError::TooManyRequests { action: action.as_str(), per: per.as_str(), retry_after: retry_after(now().0 / 1000) });
                }
                Err(err) => trace.failed(format!("rate limit {} did not answer: {}", action.binding(per), worker::Error::from(err))),
            }
        }
        Ok(())
    }
}

/// `Retry-After`: the seconds left in the current period (at least 1), when the counters of a
/// fixed window start again.
pub fn retry_after(now_seconds: u64) -> u64 {
    PERIOD_SECONDS - now_seconds % PERIOD_SECONDS
}

/// The most bytes a request body may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLimit {
    /// `POST /api/cache/invalidate` and `/api/cache/warm`: 64 KiB (100 events fit many times).
    Command,
    /// `POST /api/cache/webhook`: 8 MiB (the backend's change capture sends up to 100 changes,
    /// each with its old and new row).
    Webhook,
}

impl BodyLimit {
    pub const fn bytes(self) -> usize {
        match self {
            Self::Command => 64 << 10,
            Self::Webhook => 8 << 20,
        }
    }
}

/// The request's body, at most `limit` bytes: 413 at once when `Content-Length` says more, else
/// as soon as the bytes read pass it (the rest is never read).
pub async fn read_body(req: &mut Request, limit: BodyLimit) -> Result<Vec<u8>, AppError> {
    let too_large = || AppError::PayloadTooLarge { limit: limit.bytes() };
    let declared = req.headers().get("Content-Length")?.and_then(|length| length.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit.bytes() as u64) {
        return Err(too_large());
    }
    let read = JsFuture::from(read_limited(req.inner(), limit.bytes() as f64)).await.map_err(worker::Error::from)?;
    if read.is_null() {
        return Err(too_large());
    }
    Ok(Uint8Array::new(&read).to_vec())
}

#[wasm_bindgen(inline_js = "
export async function limit(limiter, key) {
  return (await limiter.limit({ key })).success;
}

export async function read_limited(request, limit) {
  if (request.body === null) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      reader.cancel().catch(() => {});
      return null;
    }
    chunks.push(value);
  }
  const body = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    body.set(chunk, at);
    at += chunk.byteLength;
  }
  return body;
}")]
extern "C" {
    /// Whether a Rate Limiting binding admits one more use by `key`.
    fn limit(limiter: &JsValue, key: &str) -> js_sys::Promise;
    /// The body of `request` in one array, or `null` as soon as more than `limit` bytes were read
    /// (the stream is then cancelled): read in the runtime, copied into the wasm once.
    fn read_limited(request: &web_sys::Request, limit: f64) -> js_sys::Promise;
}
