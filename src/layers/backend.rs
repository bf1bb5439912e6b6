//! The backend service: a page's Redis copy (`/contacts/cache`, `/cache/store`) and its fallback
//! read path straight from PostgreSQL (`/contacts`), plus counts, statistics and health. The
//! worker forwards the request's query string and names the workspace, user and generation in
//! headers; the backend derives the Redis key with the same core code. Every call carries the
//! internal key; a call that reads a user's data also carries that user's own access token,
//! which the backend verifies itself, or (refresh-ahead, for nobody waiting) asks for the answer
//! sealed with `CACHE_ENCRYPTION_KEY`, which the internal key alone cannot open.

use crate::config::{Upstreams, CACHE_TTL_SECONDS};
use crate::runtime::within;
use crate::body::{text_page, Page, PageBody};
use contact_list_cache_core::engine::{Cache, LayerError, Source, SourceError, SourceMode, StoredPage};
use contact_list_cache_core::generation::Generation;
use contact_list_cache_core::layer::CacheLayer;
use contact_list_cache_core::query::{BoardId, UserId, WorkspaceId};
use contact_list_cache_core::access::{refresh_ahead_seal_name, Caller};
use contact_list_cache_core::time::UnixMillis;
use std::rc::Rc;
use worker::{Fetch, Headers, Method, Request, RequestInit};

/// What the backend answered: a body, nothing, or that the user is not a member (403).
pub enum Answer {
    Found(String),
    Missing,
    Forbidden,
}

/// One read, as the backend keeps it: a scope (`<board>:<filter>` or `counts`), who read it and
/// the page's canonical query string (none for counts).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Read {
    pub workspace: String,
    pub scope: String,
    pub user: String,
    pub query: String,
}

/// On whose authority a call reads a user's data.
#[derive(Clone)]
pub enum Acting {
    /// The caller's own access token (verified here, and again by the backend).
    Caller(String),
    /// Refresh-ahead, for nobody waiting: the backend answers sealed with the cache's keyring,
    /// bound to [`refresh_ahead_seal_name`] of the page's Redis key, and checks membership itself.
    Ahead,
}

impl std::fmt::Debug for Acting {
    /// The token is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Caller(_) => "Caller",
            Self::Ahead => "Ahead",
        })
    }
}

/// Who asks and for which generation: the headers of every list and counts call.
#[derive(Debug, Clone)]
pub struct Scoped {
    pub workspace: WorkspaceId,
    pub user: UserId,
    pub generation: Generation,
    pub acting: Acting,
}

fn headers(upstreams: &Upstreams, scoped: Option<&Scoped>, layer: CacheLayer) -> Result<Headers, LayerError> {
    let failed = |err: worker::Error| LayerError::failed(layer, err);
    let headers = Headers::new();
    headers.set("X-Internal-Auth", upstreams.internal_auth_key.expose()).map_err(failed)?;
    if let Some(scoped) = scoped {
        headers.set("X-Workspace-ID", scoped.workspace.as_str()).map_err(failed)?;
        headers.set("X-User-ID", scoped.user.as_str()).map_err(failed)?;
        headers.set("X-Cache-Generation", scoped.generation.as_str()).map_err(failed)?;
        acting(&headers, &scoped.acting).map_err(failed)?;
    }
    Ok(headers)
}

/// The user credential of a call: `Authorization: Bearer <the caller's token>`, or
/// `X-Refresh-Ahead: sealed`.
fn acting(headers: &Headers, acting: &Acting) -> Result<(), worker::Error> {
    match acting {
        Acting::Caller(token) => headers.set("Authorization", &format!("Bearer {token}")),
        Acting::Ahead => headers.set("X-Refresh-Ahead", "sealed"),
    }
}

/// One call to the backend, reported as `layer`'s.
async fn call(upstreams: &Upstreams, method: Method, path: &str, headers: Headers, body: Option<String>, layer: CacheLayer) -> Result<Answer, LayerError> {
    Ok(call_labelled(upstreams, method, path, headers, body, layer).await?.0)
}

/// The backend's own cache labels on an answer: `X-Cache-Status`, `X-Cache-Layer`, `Age`.
#[derive(Debug, Default)]
pub struct Labels {
    pub status: Option<String>,
    pub layer: Option<String>,
    pub age: Option<String>,
}

/// One call to the backend, with the cache labels of its answer.
async fn call_labelled(upstreams: &Upstreams, method: Method, path: &str, headers: Headers, body: Option<String>, layer: CacheLayer) -> Result<(Answer, Labels), LayerError> {
    let failed = |err: worker::Error| LayerError::failed(layer, err);
    if let Some(id) = crate::runtime::request_id() {
        headers.set("X-Request-ID", &id).map_err(failed)?;
    }
    let mut init = RequestInit::new();
    init.with_method(method).with_headers(headers).with_body(body.map(Into::into));
    let request = Request::new_with_init(&format!("{}{path}", upstreams.backend_url), &init).map_err(failed)?;
    let mut response = Fetch::Request(request).send().await.map_err(failed)?;
    let label = |name: &str| response.headers().get(name).ok().flatten();
    let labels = Labels { status: label("X-Cache-Status"), layer: label("X-Cache-Layer"), age: label("Age") };
    let answer = match response.status_code() {
        200 => Answer::Found(response.text().await.map_err(failed)?),
        404 => Answer::Missing,
        403 => Answer::Forbidden,
        status => return Err(LayerError::failed(layer, format!("backend answered {status}"))),
    };
    Ok((answer, labels))
}

/// One contact page as the backend knows it.
pub struct PageAtBackend {
    pub upstreams: Rc<Upstreams>,
    pub board: BoardId,
    /// The request's query string, canonical.
    pub query_string: String,
    pub scoped: Scoped,
    pub redis_key: String,
}

impl PageAtBackend {
    async fn get(&self, route: &str, extra: &[(&str, &str)], layer: CacheLayer) -> Result<Answer, LayerError> {
        let headers = headers(&self.upstreams, Some(&self.scoped), layer)?;
        for (name, value) in extra {
            headers.set(name, value).map_err(|err| LayerError::failed(layer, err))?;
        }
        let path = format!("/api/boards/{}/{route}?{}", self.board, self.query_string);
        match call(&self.upstreams, Method::Get, &path, headers, None, layer).await? {
            // Sealed for refresh-ahead: opened here (in the wasm's own cipher: a background
            // read, off every request's path).
            Answer::Found(sealed) if matches!(self.scoped.acting, Acting::Ahead) => {
                let page = self.upstreams.keyring.open(&refresh_ahead_seal_name(&self.redis_key), &sealed);
                page.map(Answer::Found).map_err(|err| LayerError::failed(layer, format!("a refresh-ahead answer that does not open: {err}")))
            }
            answer => Ok(answer),
        }
    }
}

/// A page's copy in the backend's Redis.
pub struct RedisCopy(pub Rc<PageAtBackend>);

impl Cache for RedisCopy {
    type Body = PageBody;

    fn layer(&self) -> CacheLayer {
        CacheLayer::Redis
    }

    /// `X-Cache-Only: true`: never touches the database.
    async fn get(&self) -> Result<Option<Page>, LayerError> {
        match self.0.get("contacts/cache", &[("X-Cache-Only", "true")], CacheLayer::Redis).await? {
            Answer::Found(body) => StoredPage::from_body(body).map(|page| Some(text_page(page))).ok_or(LayerError::Refused { layer: CacheLayer::Redis, reason: "a page without cached_at".into() }),
            Answer::Missing => Ok(None),
            Answer::Forbidden => Err(LayerError::failed(CacheLayer::Redis, "the backend refused the cache read")),
        }
    }

    async fn put(&self, page: &Page) -> Result<(), LayerError> {
        store(&self.0.upstreams, &self.0.redis_key, &page.body.text(), CACHE_TTL_SECONDS).await
    }
}

/// A page from the backend's own read path (its Redis, then PostgreSQL), which checks membership
/// in SQL and keeps Redis filled itself.
pub struct Fallback(pub Rc<PageAtBackend>);

impl Source for Fallback {
    type Body = PageBody;

    fn layer(&self) -> CacheLayer {
        CacheLayer::BackendFallback
    }

    fn checks_membership(&self) -> bool {
        true
    }

    fn fills(&self, cache: CacheLayer) -> bool {
        cache == CacheLayer::Redis
    }

    async fn read(&self, mode: SourceMode) -> Result<Page, SourceError> {
        let fresh: &[(&str, &str)] = if mode == SourceMode::Fresh { &[("Cache-Control", "no-cache")] } else { &[] };
        let layer = CacheLayer::BackendFallback;
        match self.0.get("contacts", fresh, layer).await? {
            Answer::Found(body) => StoredPage::from_body(body).map(text_page).ok_or_else(|| LayerError::failed(layer, "a page without cached_at").into()),
            Answer::Forbidden => Err(SourceError::Forbidden),
            Answer::Missing => Err(LayerError::failed(layer, "the backend had no answer").into()),
        }
    }
}

/// Stores `body` (a JSON document) in Redis at `key` for `ttl_seconds`.
pub async fn store(upstreams: &Upstreams, key: &str, body: &str, ttl_seconds: u32) -> Result<(), LayerError> {
    let payload = format!(r#"{{"key":{},"ttl":{ttl_seconds},"data":{body}}}"#, serde_json::to_string(key).expect("a string serializes"));
    post_json(upstreams, CacheLayer::Redis, "/api/cache/store", payload, "the store").await
}

/// Posts the JSON `body` to `path`: `Ok` once the backend took it, else an error naming `what`.
async fn post_json(upstreams: &Upstreams, layer: CacheLayer, path: &str, body: String, what: &str) -> Result<(), LayerError> {
    let headers = headers(upstreams, None, layer)?;
    headers.set("Content-Type", "application/json").map_err(|err| LayerError::failed(layer, err))?;
    match call(upstreams, Method::Post, path, headers, Some(body), layer).await? {
        Answer::Found(_) => Ok(()),
        Answer::Missing | Answer::Forbidden => Err(LayerError::failed(layer, format!("the backend refused {what}"))),
    }
}

/// The caller's per-filter counts (the backend's read-through cache over PostgreSQL): `fresh`
/// skips its Redis; `superseded` names the generation an invalidation superseded and until when
/// its counts may be served, labelled stale, while the current ones are read.
pub async fn counts(upstreams: &Upstreams, scoped: &Scoped, fresh: bool, superseded: Option<(&Generation, UnixMillis)>) -> Result<(Answer, Labels), LayerError> {
    let layer = CacheLayer::Redis;
    let headers = headers(upstreams, Some(scoped), layer)?;
    let set = |name: &str, value: &str| headers.set(name, value).map_err(|err| LayerError::failed(layer, err));
    if fresh {
        set("Cache-Control", "no-cache")?;
    }
    if let Some((previous, until)) = superseded {
        set("X-Cache-Superseded-Generation", previous.as_str())?;
        set("X-Cache-Superseded-Until", &until.0.to_string())?;
    }
    let path = format!("/api/workspaces/{}/counts", scoped.workspace);
    within(layer, upstreams.budgets().redis_ms, call_labelled(upstreams, Method::Get, &path, headers, None, layer)).await
}

/// Every board of `workspace`, as the backend reads them from PostgreSQL.
pub async fn boards(upstreams: &Upstreams, workspace: &WorkspaceId) -> Result<Vec<BoardId>, LayerError> {
    #[derive(serde::Deserialize)]
    struct Boards {
        data: Vec<BoardId>,
    }
    let layer = CacheLayer::BackendFallback;
    let path = format!("/api/workspaces/{workspace}/boards");
    let request = call(upstreams, Method::Get, &path, headers(upstreams, None, layer)?, None, layer);
    match within(layer, upstreams.budgets().fallback_ms, request).await? {
        Answer::Found(body) => serde_json::from_str::<Boards>(&body).map(|b| b.data).map_err(|err| LayerError::failed(layer, format!("boards: {err}"))),
        Answer::Missing | Answer::Forbidden => Err(LayerError::failed(layer, "the backend refused the boards")),
    }
}

/// Tells the backend which pages (and counts) were read, for refresh-ahead.
pub async fn record_reads(upstreams: &Upstreams, reads: &[Read]) -> Result<(), LayerError> {
    let layer = CacheLayer::Redis;
    let body = serde_json::to_string(&serde_json::json!({ "reads": reads })).expect("reads serialize");
    within(layer, upstreams.budgets().redis_ms, post_json(upstreams, layer, "/api/reads", body, "the reads")).await
}

/// The pages of `scope` in `workspace` read most recently (at most `limit`), newest first: who
/// read each, and its query string.
pub async fn hot_reads(upstreams: &Upstreams, workspace: &WorkspaceId, scope: &str, limit: u32) -> Result<Vec<(UserId, String)>, LayerError> {
    #[derive(serde::Deserialize)]
    struct Hot {
        data: Vec<HotRead>,
    }
    #[derive(serde::Deserialize)]
    struct HotRead {
        user: UserId,
        query: String,
    }
    let layer = CacheLayer::Redis;
    let path = format!("/api/reads/{workspace}?scope={scope}&limit={limit}");
    match within(layer, upstreams.budgets().redis_ms, call(upstreams, Method::Get, &path, headers(upstreams, None, layer)?, None, layer)).await? {
        Answer::Found(body) => {
            let hot = serde_json::from_str::<Hot>(&body).map_err(|err| LayerError::failed(layer, format!("hot reads: {err}")))?;
            Ok(hot.data.into_iter().map(|read| (read.user, read.query)).collect())
        }
        Answer::Missing | Answer::Forbidden => Err(LayerError::failed(layer, "the backend refused the hot reads")),
    }
}

/// The backend's Redis statistics (`GET /api/cache/stats`), as it sent them: they need the
/// backend's metrics token (`BACKEND_METRICS_TOKEN` here), not the internal key.
pub async fn stats(upstreams: &Upstreams) -> Result<serde_json::Value, LayerError> {
    let layer = CacheLayer::Redis;
    let token = upstreams.backend_metrics_token.as_ref().ok_or_else(|| LayerError::failed(layer, "BACKEND_METRICS_TOKEN is not set"))?;
    let headers = Headers::new();
    headers.set("Authorization", &format!("Bearer {}", token.expose())).map_err(|err| LayerError::failed(layer, err))?;
    let request = call(upstreams, Method::Get, "/api/cache/stats", headers, None, layer);
    match within(layer, upstreams.budgets().redis_ms, request).await? {
        Answer::Found(body) => serde_json::from_str(&body).map_err(|err| LayerError::failed(layer, format!("backend stats: {err}"))),
        Answer::Missing | Answer::Forbidden => Err(LayerError::failed(layer, "backend stats refused")),
    }
}

/// Writes audit records (`POST /api/audit`).
pub async fn audit(upstreams: &Upstreams, records: &[contact_list_cache_core::audit::AuditRecord]) -> Result<(), LayerError> {
    let layer = CacheLayer::Database;
    let body = serde_json::to_string(&serde_json::json!({ "records": records })).expect("records serialize");
    within(layer, upstreams.budgets().fallback_ms, post_json(upstreams, layer, "/api/audit", body, "the audit records")).await
}

/// One page of `workspace`'s audit log for `caller`: the body as sent, or `Forbidden` when the
/// caller is not its owner or admin.
pub async fn audit_page(upstreams: &Upstreams, workspace: &WorkspaceId, caller: &Caller, limit: u32, before: Option<i64>) -> Result<Answer, LayerError> {
    let layer = CacheLayer::Database;
    let headers = headers(upstreams, None, layer)?;
    headers.set("X-User-ID", caller.user_id.as_str()).map_err(|err| LayerError::failed(layer, err))?;
    acting(&headers, &Acting::Caller(caller.token.clone())).map_err(|err| LayerError::failed(layer, err))?;
    let before = before.map(|id| format!("&before={id}")).unwrap_or_default();
    let path = format!("/api/workspaces/{workspace}/audit?limit={limit}{before}");
    within(layer, upstreams.budgets().fallback_ms, call(upstreams, Method::Get, &path, headers, None, layer)).await
}

/// Whether the backend's `/health` answers 200 within `budget_ms`.
pub async fn reachable(upstreams: &Upstreams, budget_ms: u32) -> bool {
    let layer = CacheLayer::BackendFallback;
    let probe = async {
        let response = Fetch::Url(format!("{}/health", upstreams.backend_url).parse().map_err(|_| LayerError::failed(layer, "bad URL"))?).send().await;
        Ok(response.map_err(|err| LayerError::failed(layer, err))?.status_code() == 200)
    };
    within(layer, budget_ms, probe).await.unwrap_or(false)
}
