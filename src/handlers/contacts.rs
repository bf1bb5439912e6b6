//! `GET /api/boards/{boardId}/contacts`: authenticate, check membership, then KV, the backend's
//! Redis and Supabase in turn, writing a miss back to the layers above after responding.

use crate::auth::{self, Caller};
use crate::clock;
use crate::config::{Upstreams, CACHE_TTL_SECONDS};
use crate::error::AppError;
use crate::handlers::health::edge_location;
use crate::layers::backend::{self, BackendPage, Scoped};
use crate::layers::{kv, supabase, within};
use crate::metrics::Trace;
use contact_list_cache_core::cache_key::{kv_list_key, redis_list_key};
use contact_list_cache_core::envelope::ContactListResponse;
use contact_list_cache_core::generation::{Generation, Scope};
use contact_list_cache_core::layer::{wants_fresh, CacheLayer, CacheStatus};
use contact_list_cache_core::query::{ContactQuery, WorkspaceId};
use contact_list_cache_core::time::UnixMillis;
use worker::{Context, Env, Request, Response};

/// The time budget of one KV read, in milliseconds.
pub const KV_BUDGET_MS: u32 = 1000;

/// A page and where it came from.
struct Answer {
    body: String,
    status: CacheStatus,
    layer: CacheLayer,
}

/// Everything the layers need to name one page, and the request's trace.
pub struct Page<'a> {
    trace: &'a Trace,
    caller: Caller,
    workspace: WorkspaceId,
    query: ContactQuery,
    /// The generation of the page's scope; `None` when it could not be read, and then no cache
    /// is read or written for this request.
    generation: Option<Generation>,
    kv_key: String,
    redis_key: String,
}

impl<'a> Page<'a> {
    /// Reads the generation of the query's scope and derives the keys from it.
    pub async fn new(env: &Env, caller: Caller, workspace: WorkspaceId, query: ContactQuery, trace: &'a Trace) -> Self {
        trace.kv_operation();
        let generation = match within(KV_BUDGET_MS, kv::generation(env, &workspace, Scope::List(query.filter))).await {
            Ok(generation) => Some(generation),
            Err(err) => {
                trace.failed(format!("KV generation read: {err}"));
                None
            }
        };
        let keyed = generation.clone().unwrap_or_else(Generation::initial);
        Self {
            trace,
            kv_key: kv_list_key(&workspace, &caller.user_id, &query, &keyed),
            redis_key: redis_list_key(&workspace, &caller.user_id, &query, &keyed),
            caller,
            workspace,
            query,
            generation,
        }
    }

    fn scoped(&self) -> Option<Scoped<'_>> {
        self.generation.as_ref().map(|generation| Scoped { workspace: &self.workspace, user: &self.caller.user_id, generation })
    }
}

pub async fn list(req: &Request, env: &Env, ctx: &Context, board: &str, started: UnixMillis, trace: &Trace) -> Result<Response, AppError> {
    let upstreams = Upstreams::from_env(env)?;
    let caller = auth::authenticate(req, &upstreams).await?;
    let workspace = WorkspaceId::parse("X-Workspace-ID", req.headers().get("X-Workspace-ID")?.unwrap_or_default().trim())?;
    let query = ContactQuery::parse(board, req.url()?.query().unwrap_or_default())?;
    trace.scope(Some(query.board_id.as_str()), workspace.as_str());
    let membership = auth::is_member(&caller, &workspace, &upstreams, trace).await?;
    if membership == Some(false) {
        return Err(AppError::Forbidden);
    }
    let fresh = wants_fresh(req.headers().get("Cache-Control")?.as_deref());
    let page = Page::new(env, caller, workspace, query, trace).await;
    // Caches are read only once membership is known: a cached page never reaches a non-member.
    let cached = if membership == Some(true) && !fresh { from_caches(env, ctx, &upstreams, &page).await } else { None };
    let answer = match cached {
        Some(answer) => answer,
        None => from_sources(env, ctx, &upstreams, &page, membership.is_some(), fresh).await?,
    };
    trace.answered(answer.status, answer.layer);
    respond(req, answer, &page.kv_key, started)
}

async fn from_caches(env: &Env, ctx: &Context, upstreams: &Upstreams, page: &Page<'_>) -> Option<Answer> {
    let scoped = page.scoped()?;
    let trace = page.trace;
    trace.kv_operation();
    match within(KV_BUDGET_MS, kv::get_sealed(env, &upstreams.keyring, &page.kv_key)).await {
        Ok(Some(body)) => {
            trace.lookup(CacheLayer::Kv, true);
            return Some(Answer { body, status: CacheStatus::Hit, layer: CacheLayer::Kv });
        }
        Ok(None) => trace.lookup(CacheLayer::Kv, false),
        Err(err) => {
            trace.lookup(CacheLayer::Kv, false);
            trace.failed(format!("KV read: {err}"));
        }
    }
    if !upstreams.redis_enabled {
        return None;
    }
    let qs = page.query.canonical_query_string();
    trace.redis_operation();
    match backend::cached_page(upstreams, &page.query.board_id, &qs, &scoped).await {
        Ok(Some(body)) => {
            trace.lookup(CacheLayer::Redis, true);
            write_back(ctx, env, upstreams, page, &body, false);
            Some(Answer { body, status: CacheStatus::Hit, layer: CacheLayer::Redis })
        }
        Ok(None) => {
            trace.lookup(CacheLayer::Redis, false);
            None
        }
        Err(err) => {
            trace.failed(format!("Redis read: {err}"));
            None
        }
    }
}

/// Reads a page from its sources and refreshes the caches with it (cache warming).
pub async fn refresh(env: &Env, ctx: &Context, upstreams: &Upstreams, page: &Page<'_>) -> Result<CacheLayer, AppError> {
    Ok(from_sources(env, ctx, upstreams, page, true, true).await?.layer)
}

/// PostgREST (when membership could be checked there), else the backend's own read path.
async fn from_sources(env: &Env, ctx: &Context, upstreams: &Upstreams, page: &Page<'_>, supabase_up: bool, fresh: bool) -> Result<Answer, AppError> {
    let status = if fresh { CacheStatus::Bypass } else { CacheStatus::Miss };
    let trace = page.trace;
    if supabase_up {
        trace.database_query();
        match supabase::page(upstreams, &page.caller, &page.workspace, &page.query).await {
            Ok((contacts, total)) => {
                let envelope = ContactListResponse::new(&page.query, contacts, total, clock::now(), CACHE_TTL_SECONDS);
                let body = serde_json::to_string(&envelope).expect("a response serializes");
                write_back(ctx, env, upstreams, page, &body, upstreams.redis_enabled);
                return Ok(Answer { body, status, layer: CacheLayer::Database });
            }
            Err(err) => trace.failed(format!("Supabase: {err}")),
        }
    }
    let qs = page.query.canonical_query_string();
    // With the generation unknown, Redis may hold a page older than an invalidation: skip it.
    let initial = Generation::initial();
    let scoped = page.scoped().unwrap_or(Scoped { workspace: &page.workspace, user: &page.caller.user_id, generation: &initial });
    trace.database_query();
    match backend::fallback_page(upstreams, &page.query.board_id, &qs, &scoped, fresh || page.generation.is_none()).await {
        Ok(BackendPage::Found(body)) => {
            write_back(ctx, env, upstreams, page, &body, false);
            Ok(Answer { body, status, layer: CacheLayer::BackendFallback })
        }
        Ok(BackendPage::Forbidden) => Err(AppError::Forbidden),
        Ok(BackendPage::Missing) => Err(AppError::Unavailable("the backend had no answer".into())),
        Err(err) => Err(AppError::Unavailable(format!("backend fallback failed: {err}"))),
    }
}

/// After the response: KV always, Redis when the page did not come from there; nothing when the
/// generation is unknown.
fn write_back(ctx: &Context, env: &Env, upstreams: &Upstreams, page: &Page<'_>, body: &str, to_redis: bool) {
    if page.generation.is_none() {
        return;
    }
    page.trace.kv_operation();
    if to_redis {
        page.trace.redis_operation();
    }
    let (env, upstreams, body) = (env.clone(), upstreams.clone(), body.to_owned());
    let (kv_key, redis_key) = (page.kv_key.clone(), page.redis_key.clone());
    ctx.wait_until(async move {
        if let Err(err) = kv::put_sealed(&env, &upstreams.keyring, &kv_key, &body, CACHE_TTL_SECONDS).await {
            worker::console_warn!("KV write-back skipped: {err}");
        }
        if to_redis {
            if let Err(err) = backend::store(&upstreams, &redis_key, &body, CACHE_TTL_SECONDS).await {
                worker::console_warn!("Redis write-back skipped: {err}");
            }
        }
    });
}

fn respond(req: &Request, answer: Answer, kv_key: &str, started: UnixMillis) -> Result<Response, AppError> {
    let response = Response::ok(answer.body)?;
    let headers = response.headers();
    headers.set("Content-Type", "application/json")?;
    headers.set("Cache-Control", "private, no-store")?;
    headers.set("Vary", "Authorization, X-Workspace-ID")?;
    headers.set("X-Cache-Status", answer.status.as_str())?;
    headers.set("X-Cache-Layer", answer.layer.as_str())?;
    headers.set("X-Cache-Key", kv_key)?;
    headers.set("X-Worker-Location", &edge_location(req))?;
    headers.set("X-Response-Time", &format!("{}ms", clock::now().since(started)))?;
    Ok(response)
}
