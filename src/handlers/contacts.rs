//! `GET /api/boards/{boardId}/contacts`: authenticate, check membership, then KV, the backend's
//! Redis and Supabase in turn, writing a miss back to the layers above after responding. A KV copy
//! just past its TTL is served while it is refreshed in the background; an older one is kept to be
//! served, labelled STALE with its Age, only when no source of fresh data answers.

use crate::auth::{self, Caller};
use crate::clock;
use crate::coalesce::{self, Source};
use crate::config::{Upstreams, CACHE_TTL_SECONDS};
use crate::error::AppError;
use crate::handlers::health::edge_location;
use crate::layers::backend::{self, BackendPage, Scoped};
use crate::layers::{kv, supabase, within};
use crate::metrics::Trace;
use contact_list_cache_core::cache_key::{kv_list_key, redis_list_key};
use contact_list_cache_core::coalesce::{Flights, Lead};
use contact_list_cache_core::envelope::ContactListResponse;
use contact_list_cache_core::freshness::{age_seconds, Freshness};
use contact_list_cache_core::generation::{Generation, Scope};
use contact_list_cache_core::layer::{wants_fresh, CacheLayer, CacheStatus};
use contact_list_cache_core::query::{ContactQuery, WorkspaceId};
use contact_list_cache_core::time::UnixMillis;
use std::cell::RefCell;
use std::rc::Rc;
use worker::{Context, Env, Request, Response};

/// A page, where it came from, its age in seconds when served from a cache past its TTL, and
/// whether a concurrent identical request read it.
#[derive(Clone)]
struct Answer {
    body: String,
    status: CacheStatus,
    layer: CacheLayer,
    age: Option<u64>,
    source: Source,
}

impl Answer {
    fn new(body: String, status: CacheStatus, layer: CacheLayer) -> Self {
        Self { body, status, layer, age: None, source: Source::Own }
    }
}

/// A read below KV, as concurrent identical requests share it.
type SharedRead = Result<Answer, Rc<AppError>>;

thread_local! {
    /// Reads below KV in progress in this isolate, by page key and path.
    static READS: Flights<SharedRead> = Flights::default();
}

/// A KV copy past its freshness, kept in case no source answers.
struct StaleCopy {
    body: String,
    stored_at: UnixMillis,
}

thread_local! {
    /// KV keys being revalidated in the background by this isolate, and since when.
    static REVALIDATING: std::cell::RefCell<std::collections::HashMap<String, u64>> = Default::default();
}

/// How long one background refresh of a key holds off others, in milliseconds.
const REVALIDATION_LEASE_MS: u64 = 10_000;

/// When the page in `body` was read from the database, from its `cached_at`.
fn read_at(body: &str) -> Option<UnixMillis> {
    #[derive(serde::Deserialize)]
    struct CachedAt {
        cached_at: String,
    }
    serde_json::from_str::<CachedAt>(body).ok().and_then(|c| UnixMillis::parse_rfc3339(&c.cached_at))
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
    /// What to write to the caches after the response, when a lower layer answered.
    write_back: RefCell<Option<WriteBack>>,
}

/// A page read from its source at `read`, to store in KV and (when `to_redis`) in Redis.
struct WriteBack {
    body: String,
    read: UnixMillis,
    to_redis: bool,
}

impl<'a> Page<'a> {
    /// Reads the generation of the query's scope and derives the keys from it.
    pub async fn new(env: &Env, upstreams: &Upstreams, caller: Caller, workspace: WorkspaceId, query: ContactQuery, trace: &'a Trace) -> Self {
        trace.kv_operation();
        let generation = match within(upstreams.kv_timeout_ms, kv::generation(env, &workspace, Scope::List(query.filter))).await {
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
            write_back: RefCell::new(None),
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
    let page = Page::new(env, &upstreams, caller, workspace, query, trace).await;
    // Caches are read only once membership is confirmed: a cached page never reaches a non-member.
    let use_caches = membership == Some(true) && !fresh && page.generation.is_some();
    let (cached, stale) = if use_caches { from_kv(env, ctx, &upstreams, &page).await } else { (None, None) };
    let answer = match cached {
        Some(answer) => answer,
        None => match below_kv(env, ctx, &upstreams, &page, use_caches, membership.is_some(), fresh).await {
            Err(AppError::Unavailable(reason)) => match stale {
                Some(copy) => {
                    trace.failed(format!("served a stale copy: {reason}"));
                    let age = Some(age_seconds(copy.stored_at, clock::now()));
                    Answer { age, ..Answer::new(copy.body, CacheStatus::Stale, CacheLayer::Kv) }
                }
                None => return Err(AppError::Unavailable(reason)),
            },
            answer => answer?,
        },
    };
    trace.answered(answer.status, answer.layer);
    respond(req, answer, &page.kv_key, started)
}

/// Below KV: Redis (when `use_caches`), else the sources. Concurrent identical requests in this
/// isolate share one such read: one reads, the others take its answer (or its failure), until
/// the page is written back where they would find it. A fresh read must start after its request
/// did, so it is never shared.
async fn below_kv(env: &Env, ctx: &Context, upstreams: &Upstreams, page: &Page<'_>, use_caches: bool, supabase_up: bool, fresh: bool) -> Result<Answer, AppError> {
    let read = || async {
        let cached = if use_caches { from_redis(upstreams, page).await } else { None };
        match cached {
            Some(answer) => Ok(answer),
            None => from_sources(upstreams, page, supabase_up, fresh).await,
        }
    };
    if fresh {
        let answer = read().await;
        after_response(ctx, env, upstreams, page, None);
        return answer;
    }
    let key = format!("{}|caches={use_caches}|supabase={supabase_up}", page.kv_key);
    let patience = upstreams.supabase_timeout_ms.saturating_add(upstreams.backend_timeout_ms);
    let joined = coalesce::once(&READS, &key, patience, || async { read().await.map_err(Rc::new) }).await;
    after_response(ctx, env, upstreams, page, joined.lead);
    match joined.value {
        Ok(answer) => Ok(Answer { source: joined.source, ..answer }),
        Err(err) => Err(Rc::try_unwrap(err).unwrap_or_else(|shared| shared.replay())),
    }
}

/// A fresh (or revalidating) KV copy, and else a stale one to fall back on.
async fn from_kv(env: &Env, ctx: &Context, upstreams: &Upstreams, page: &Page<'_>) -> (Option<Answer>, Option<StaleCopy>) {
    if !upstreams.kv_cache_enabled {
        return (None, None);
    }
    let trace = page.trace;
    trace.kv_operation();
    match within(upstreams.kv_timeout_ms, kv::get_sealed(env, &upstreams.keyring, &page.kv_key)).await {
        Ok(Some((body, stored_at))) => {
            let now = clock::now();
            match upstreams.freshness.of(stored_at, now) {
                Freshness::Fresh => {
                    trace.lookup(CacheLayer::Kv, true);
                    (Some(Answer::new(body, CacheStatus::Hit, CacheLayer::Kv)), None)
                }
                Freshness::Revalidate => {
                    trace.lookup(CacheLayer::Kv, true);
                    revalidate(ctx, env, upstreams, page);
                    let age = Some(age_seconds(stored_at, now));
                    (Some(Answer { age, ..Answer::new(body, CacheStatus::Hit, CacheLayer::Kv) }), None)
                }
                Freshness::StaleIfError => {
                    trace.lookup(CacheLayer::Kv, false);
                    (None, Some(StaleCopy { body, stored_at }))
                }
                Freshness::Expired => {
                    trace.lookup(CacheLayer::Kv, false);
                    (None, None)
                }
            }
        }
        Ok(None) => {
            trace.lookup(CacheLayer::Kv, false);
            (None, None)
        }
        Err(err) => {
            trace.lookup(CacheLayer::Kv, false);
            trace.failed(format!("KV read: {err}"));
            (None, None)
        }
    }
}

/// The page from the backend's Redis, written back to KV after the response.
async fn from_redis(upstreams: &Upstreams, page: &Page<'_>) -> Option<Answer> {
    let scoped = page.scoped()?;
    if !upstreams.redis_enabled {
        return None;
    }
    let trace = page.trace;
    let qs = page.query.canonical_query_string();
    trace.redis_operation();
    match backend::cached_page(upstreams, &page.query.board_id, &qs, &scoped).await {
        Ok(Some(body)) => {
            trace.lookup(CacheLayer::Redis, true);
            if let Some(read) = read_at(&body) {
                write_back(upstreams, page, &body, read, false);
            }
            Some(Answer::new(body, CacheStatus::Hit, CacheLayer::Redis))
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

/// Refreshes a page past its TTL after the response, at most once per lease in this isolate.
fn revalidate(ctx: &Context, env: &Env, upstreams: &Upstreams, page: &Page<'_>) {
    let now = clock::now().0;
    let claimed = REVALIDATING.with(|cell| {
        let mut map = cell.borrow_mut();
        map.retain(|_, since| now.saturating_sub(*since) < REVALIDATION_LEASE_MS);
        map.insert(page.kv_key.clone(), now).is_none()
    });
    if !claimed {
        return;
    }
    let (env, upstreams) = (env.clone(), upstreams.clone());
    let (caller, workspace, query) = (page.caller.clone(), page.workspace.clone(), page.query.clone());
    ctx.wait_until(async move {
        let trace = Trace::default();
        let page = Page::new(&env, &upstreams, caller, workspace, query, &trace).await;
        match supabase::page(&upstreams, &page.caller, &page.workspace, &page.query).await {
            Ok((contacts, total)) => {
                let read = clock::now();
                let body = serde_json::to_string(&ContactListResponse::new(&page.query, contacts, total, read, CACHE_TTL_SECONDS))
                    .expect("a response serializes");
                store(&env, &upstreams, &page.kv_key, &page.redis_key, &body, read, upstreams.redis_enabled).await;
            }
            Err(err) => worker::console_warn!("revalidation skipped: {err}"),
        }
    });
}

/// Reads a page from its sources and refreshes the caches with it (cache warming).
pub async fn refresh(env: &Env, ctx: &Context, upstreams: &Upstreams, page: &Page<'_>) -> Result<CacheLayer, AppError> {
    let answer = from_sources(upstreams, page, true, true).await;
    after_response(ctx, env, upstreams, page, None);
    Ok(answer?.layer)
}

/// PostgREST (when membership could be checked there), else the backend's own read path.
async fn from_sources(upstreams: &Upstreams, page: &Page<'_>, supabase_up: bool, fresh: bool) -> Result<Answer, AppError> {
    let status = if fresh { CacheStatus::Bypass } else { CacheStatus::Miss };
    let trace = page.trace;
    if supabase_up {
        trace.database_query();
        match supabase::page(upstreams, &page.caller, &page.workspace, &page.query).await {
            Ok((contacts, total)) => {
                let read = clock::now();
                let envelope = ContactListResponse::new(&page.query, contacts, total, read, CACHE_TTL_SECONDS);
                let body = serde_json::to_string(&envelope).expect("a response serializes");
                write_back(upstreams, page, &body, read, upstreams.redis_enabled);
                return Ok(Answer::new(body, status, CacheLayer::Database));
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
            if let Some(read) = read_at(&body) {
                write_back(upstreams, page, &body, read, false);
            }
            Ok(Answer::new(body, status, CacheLayer::BackendFallback))
        }
        Ok(BackendPage::Forbidden) => Err(AppError::Forbidden),
        Ok(BackendPage::Missing) => Err(AppError::Unavailable("the backend had no answer".into())),
        Err(err) => Err(AppError::Unavailable(format!("backend fallback failed: {err}"))),
    }
}

/// Records that `body`, read from its source at `read`, goes to KV and (when `to_redis`) to
/// Redis after the response; nothing when the generation is unknown.
fn write_back(upstreams: &Upstreams, page: &Page<'_>, body: &str, read: UnixMillis, to_redis: bool) {
    if page.generation.is_none() || !(upstreams.kv_cache_enabled || to_redis) {
        return;
    }
    if upstreams.kv_cache_enabled {
        page.trace.kv_operation();
    }
    if to_redis {
        page.trace.redis_operation();
    }
    *page.write_back.borrow_mut() = Some(WriteBack { body: body.to_owned(), read, to_redis });
}

/// After the response: the page's write-back, then the end of its lookup's flight (so requests
/// that join in the meantime take the answer instead of missing caches not yet written).
fn after_response(ctx: &Context, env: &Env, upstreams: &Upstreams, page: &Page<'_>, flight: Option<Lead<SharedRead>>) {
    let pending = page.write_back.borrow_mut().take();
    if pending.is_none() && flight.is_none() {
        return;
    }
    let (env, upstreams) = (env.clone(), upstreams.clone());
    let (kv_key, redis_key) = (page.kv_key.clone(), page.redis_key.clone());
    ctx.wait_until(async move {
        if let Some(WriteBack { body, read, to_redis }) = pending {
            store(&env, &upstreams, &kv_key, &redis_key, &body, read, to_redis).await;
        }
        drop(flight);
    });
}

/// Writes a page read from its source at `read` to KV (kept through the stale-if-error grace
/// period) and, when asked, to Redis. A rejected write (such as KV's rate limit) is dropped.
async fn store(env: &Env, upstreams: &Upstreams, kv_key: &str, redis_key: &str, body: &str, read: UnixMillis, to_redis: bool) {
    let retention = upstreams.freshness.retention_seconds();
    if upstreams.kv_cache_enabled {
        if let Err(err) = kv::put_sealed(env, &upstreams.keyring, kv_key, body, read, retention).await {
            worker::console_warn!("KV write-back skipped: {err}");
        }
    }
    if to_redis {
        if let Err(err) = backend::store(upstreams, redis_key, body, CACHE_TTL_SECONDS).await {
            worker::console_warn!("Redis write-back skipped: {err}");
        }
    }
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
    if let Some(age) = answer.age {
        headers.set("Age", &age.to_string())?;
    }
    if answer.source == Source::Shared {
        headers.set("X-Cache-Coalesced", "true")?;
    }
    Ok(response)
}
