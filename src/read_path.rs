//! One contact page's read path: the generation of its scope (from the state home), its keys, and
//! the core engine over the layers this deployment has: KV, then the backend's Redis; Supabase,
//! then the backend's fallback. What the engine leaves for after the response (write-backs, a
//! background refresh) runs in `ctx.wait_until`.

use crate::auth::Access;
use crate::body::{Page, PageBody};
use crate::config::{Upstreams, KV_BINDING};
use crate::error::AppError;
use crate::layers::backend::{Acting, Fallback, PageAtBackend, RedisCopy, Scoped};
use crate::layers::home;
use crate::layers::kv::{self, CarriedCopy, KvPage};
use crate::layers::l0::L0Page;
use crate::layers::supabase::SupabasePage;
use crate::metrics::Trace;
use crate::runtime::{self, Workerd};
use contact_list_cache_core::cache_key::{kv_list_key, kv_total_key, redis_list_key};
use contact_list_cache_core::carry::carry_key;
use contact_list_cache_core::coalesce::Isolate;
use contact_list_cache_core::engine::{
    Cache, Engine, Event, GenerationState, LayerError, Mode, ReadError, Request, Served, Shared, Source, SourceError, SourceMode,
};
use contact_list_cache_core::generation::{Generation, Scope};
use contact_list_cache_core::layer::CacheLayer;
use contact_list_cache_core::access::Membership;
use contact_list_cache_core::query::{ContactQuery, UserId, WorkspaceId};
use contact_list_cache_core::settings::SettingError;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use worker::{Context, Env};

/// An adapter's future, boxed: each is compiled once and polled through a pointer, instead of
/// being copied into every engine step that awaits it (which costs the wasm tens of kilobytes).
type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// The edge's caches, fastest first.
pub enum EdgeCache {
    L0(L0Page),
    Kv(KvPage),
    Redis(RedisCopy),
}

impl Cache for EdgeCache {
    type Body = PageBody;

    fn layer(&self) -> CacheLayer {
        match self {
            Self::L0(l0) => l0.layer(),
            Self::Kv(kv) => kv.layer(),
            Self::Redis(redis) => redis.layer(),
        }
    }

    fn is_local(&self) -> bool {
        match self {
            Self::L0(l0) => l0.is_local(),
            Self::Kv(kv) => kv.is_local(),
            Self::Redis(redis) => redis.is_local(),
        }
    }

    async fn get(&self) -> Result<Option<Page>, LayerError> {
        let get: Boxed<'_, _> = match self {
            Self::L0(l0) => Box::pin(l0.get()),
            Self::Kv(kv) => Box::pin(kv.get()),
            Self::Redis(redis) => Box::pin(redis.get()),
        };
        get.await
    }

    async fn put(&self, page: &Page) -> Result<(), LayerError> {
        let put: Boxed<'_, _> = match self {
            Self::L0(l0) => Box::pin(l0.put(page)),
            Self::Kv(kv) => Box::pin(kv.put(page)),
            Self::Redis(redis) => Box::pin(redis.put(page)),
        };
        put.await
    }
}

/// The edge's sources, in the order they are asked.
pub enum EdgeSource {
    Carried(Box<CarriedCopy>),
    Supabase(Box<SupabasePage>),
    Fallback(Fallback),
}

impl Source for EdgeSource {
    type Body = PageBody;

    fn layer(&self) -> CacheLayer {
        match self {
            Self::Carried(carried) => carried.layer(),
            Self::Supabase(supabase) => supabase.layer(),
            Self::Fallback(fallback) => fallback.layer(),
        }
    }

    fn checks_membership(&self) -> bool {
        match self {
            Self::Carried(carried) => carried.checks_membership(),
            Self::Supabase(supabase) => supabase.checks_membership(),
            Self::Fallback(fallback) => fallback.checks_membership(),
        }
    }

    fn fills(&self, cache: CacheLayer) -> bool {
        match self {
            Self::Carried(carried) => carried.fills(cache),
            Self::Supabase(supabase) => supabase.fills(cache),
            Self::Fallback(fallback) => fallback.fills(cache),
        }
    }

    fn is_cache_copy(&self) -> bool {
        matches!(self, Self::Carried(_))
    }

    fn keeps_answers_below(&self) -> bool {
        matches!(self, Self::Carried(carried) if carried.keeps_answers_below())
    }

    async fn keep(&self, page: &Page) -> Result<(), LayerError> {
        match self {
            Self::Carried(carried) => carried.keep(page).await,
            _ => Ok(()),
        }
    }

    async fn read(&self, mode: SourceMode) -> Result<Page, SourceError> {
        let read: Boxed<'_, _> = match self {
            Self::Carried(carried) => Box::pin(carried.read(mode)),
            Self::Supabase(supabase) => Box::pin(supabase.read(mode)),
            Self::Fallback(fallback) => Box::pin(fallback.read(mode)),
        };
        read.await
    }
}

/// The engine of one page at the edge.
pub type PageEngine = Engine<EdgeCache, EdgeSource, Workerd, Isolate<Shared<PageBody>>>;

/// One page, ready to be read.
pub struct PageRead {
    engine: PageEngine,
    request: Request,
    /// The workspace's newest generation the state home confirmed with the scope's state.
    newest: Option<Generation>,
    /// The generation whose copy may be served stale.
    superseded_generation: Option<Generation>,
}

/// Who a page is read for.
pub enum Reader<'a> {
    /// A caller, through the gate: `ctx` runs what waits for after the response (a kept state
    /// read again), `min` is the least generation they accept (`minGeneration`).
    Caller { access: &'a Access, ctx: &'a Context, min: Option<&'a Generation> },
    /// Nobody waiting: a page refreshed ahead of its readers, for a user who read it recently.
    /// Only the backend's fallback, which checks membership in SQL, reads it from the database.
    /// With no user's token, the backend answers its Redis copy and its fallback sealed with
    /// the cache's keyring ([`Acting::Ahead`]).
    Ahead { workspace: &'a WorkspaceId, user: &'a UserId },
}

impl PageRead {
    /// Reads the state of the page's scope (kept by the isolate within the staleness bound, else
    /// from the state home, and never older than `min`) and binds every layer to the page's keys
    /// under its current generation, and KV also under the generation an invalidation
    /// superseded, while the staleness bound allows it (and it is not older than `min`). When the
    /// state cannot be read, or the home has nothing as new as `min`, no cache is read or written.
    pub async fn open(
        env: &Env,
        upstreams: &Rc<Upstreams>,
        reader: Reader<'_>,
        query: ContactQuery,
        mode: Mode,
        trace: &Trace,
    ) -> Result<Self, AppError> {
        let store = kv::store(env).map_err(|_| SettingError::Missing { name: KV_BINDING })?;
        let (workspace, user) = match &reader {
            Reader::Caller { access, .. } => (&access.workspace, &access.caller.user_id),
            Reader::Ahead { workspace, user } => (*workspace, *user),
        };
        let (ctx, min) = match &reader {
            Reader::Caller { ctx, min, .. } => (Some(*ctx), *min),
            Reader::Ahead { .. } => (None, None),
        };
        let acting = match &reader {
            Reader::Caller { access, .. } => Acting::Caller(access.caller.token.clone()),
            Reader::Ahead { .. } => Acting::Ahead,
        };
        // L0 serves callers who accept cached pages; refresh-ahead always reads KV.
        let l0 = (upstreams.l0.enabled() && mode == Mode::Normal && matches!(reader, Reader::Caller { .. })).then_some(upstreams.l0);
        let key = Scope::List(query.filter).generation_key(workspace, &query.board_id);
        let (state, newest) = match home::scope_state(env, ctx, upstreams, workspace, &key, min, trace).await {
            Ok(known) if min.is_none_or(|min| known.newest >= *min) => (Some(known.state), Some(known.newest)),
            Ok(known) => (None, Some(known.newest)),
            Err(err) => {
                trace.failed(format!("state home read: {err}"));
                (None, None)
            }
        };
        let keyed = state.as_ref().map_or_else(Generation::initial, |s| s.current.clone());
        let kv_key = kv_list_key(workspace, user, &query, &keyed);
        let at_backend = Rc::new(PageAtBackend {
            upstreams: Rc::clone(upstreams),
            board: query.board_id.clone(),
            query_string: query.canonical_query_string(),
            scoped: Scoped { workspace: workspace.clone(), user: user.clone(), generation: keyed.clone(), acting: acting.clone() },
            redis_key: redis_list_key(workspace, user, &query, &keyed),
        });
        let kv_page = |key: String| KvPage { store: store.clone(), upstreams: Rc::clone(upstreams), key };
        let mut caches = Vec::new();
        if let Some(limits) = l0 {
            caches.push(EdgeCache::L0(L0Page { key: kv_key.clone(), limits }));
        }
        if upstreams.kv_cache_enabled {
            caches.push(EdgeCache::Kv(kv_page(kv_key.clone())));
        }
        if upstreams.redis_enabled {
            caches.push(EdgeCache::Redis(RedisCopy(Rc::clone(&at_backend))));
        }
        // Soft invalidation: the page as it was before the scope's last invalidation, for a while.
        let now = runtime::now();
        let fallback = state
            .as_ref()
            .and_then(|s| s.fallback(now, upstreams.staleness_bound_ms))
            .filter(|(previous, _)| matches!(reader, Reader::Caller { .. }) && min.is_none_or(|min| *previous >= min));
        let superseded_generation = fallback.map(|(previous, _)| previous.clone());
        let superseded = match fallback {
            Some((previous, _)) if upstreams.kv_cache_enabled => vec![EdgeCache::Kv(kv_page(kv_list_key(workspace, user, &query, previous)))],
            _ => Vec::new(),
        };
        // A copy of the generation before, carried across the writes since (no database read).
        // A scope never invalidated has no generation before, so no record to read.
        let mut sources = Vec::new();
        if upstreams.kv_cache_enabled && state.as_ref().is_some_and(|s| s.current.as_str() != Generation::INITIAL) {
            sources.push(EdgeSource::Carried(Box::new(CarriedCopy {
                env: env.clone(),
                store: store.clone(),
                upstreams: Rc::clone(upstreams),
                record_key: carry_key(workspace, &query.board_id, query.filter),
                current: keyed.clone(),
                workspace: workspace.clone(),
                user: user.clone(),
                query: query.clone(),
                reads: std::cell::Cell::new(0),
                missing: std::cell::RefCell::new(None),
            })));
        }
        let membership = match reader {
            Reader::Caller { access, .. } => {
                let total = (query.is_narrowed() && state.is_some()).then(|| kv_page(kv_total_key(workspace, user, &query, &keyed)));
                let supabase = SupabasePage { upstreams: Rc::clone(upstreams), caller: access.caller.clone(), workspace: workspace.clone(), query, total };
                sources.push(EdgeSource::Supabase(Box::new(supabase)));
                access.membership
            }
            Reader::Ahead { .. } => Membership::Confirmed,
        };
        sources.push(EdgeSource::Fallback(Fallback(at_backend)));
        let request = Request {
            mode,
            membership,
            generation: if state.is_some() { GenerationState::Known } else { GenerationState::Unknown },
            key: kv_key,
            superseded_until: fallback.map(|(_, until)| until),
        };
        let engine = Engine { caches, superseded, sources, policy: upstreams.policy, runtime: Workerd, coalescer: runtime::reads() };
        Ok(Self { engine, request, newest, superseded_generation })
    }

    /// The page's KV key (`X-Cache-Key`).
    pub fn key(&self) -> &str {
        &self.request.key
    }

    /// Reads the page for nobody waiting (refresh-ahead), write-backs included.
    pub async fn refresh(self) {
        let outcome = self.engine.read(&self.request).await;
        for failure in self.engine.finish(&self.request, outcome.after).await {
            worker::console_warn!("refresh-ahead: {failure}");
        }
    }

    /// Reads the page; the write-backs and refresh go on after the response. With the page, the
    /// generation as of which it is known current (`X-Cache-Generation`): the superseded one for
    /// a superseded copy, else the newest known.
    pub async fn read(self, ctx: &Context, trace: &Trace) -> Result<(Served<PageBody>, Option<Generation>), AppError> {
        let outcome = self.engine.read(&self.request).await;
        let generation = if outcome.steps.iter().any(|step| step.event == Event::Superseded) { self.superseded_generation.clone() } else { self.newest.clone() };
        trace.steps(&outcome.steps);
        // A carried copy is one call that reads KV more than once (its record, then a page per
        // start tried): the calls were counted, the reads beyond them are counted here.
        for source in &self.engine.sources {
            if let EdgeSource::Carried(carried) = source {
                (1..carried.reads.get()).for_each(|_| trace.kv_operation());
            }
        }
        trace.writes(outcome.after.writes());
        if !outcome.after.is_empty() {
            let Self { engine, request, .. } = self;
            ctx.wait_until(async move {
                for failure in engine.finish(&request, outcome.after).await {
                    worker::console_warn!("after the response: {failure}");
                }
            });
        }
        let served = outcome.result.map_err(|err| match err {
            ReadError::Forbidden => AppError::Forbidden,
            unavailable => AppError::Unavailable(unavailable.to_string()),
        })?;
        trace.answered(served.status, served.layer);
        Ok((served, generation))
    }
}
