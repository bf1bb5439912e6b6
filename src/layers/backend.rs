//! The backend service: its Redis cache (`/contacts/cache`, `/cache/store`) and its direct
//! PostgreSQL fallback (`/contacts`). The worker forwards the request's query string and names
//! the workspace and user in headers; the backend derives the Redis key with the same core code.

use crate::config::Upstreams;
use crate::layers::{within, LayerError};
use contact_list_cache_core::generation::Generation;
use contact_list_cache_core::query::{BoardId, UserId, WorkspaceId};
use worker::{Fetch, Headers, Method, Request, RequestInit};

/// What the backend answered for a list: the body as sent, or that it had nothing.
pub enum BackendPage {
    Found(String),
    Missing,
    /// The backend says the user is not a member (403).
    Forbidden,
}

/// Who asks and for which generation: the headers of every list and counts call.
pub struct Scoped<'a> {
    pub workspace: &'a WorkspaceId,
    pub user: &'a UserId,
    pub generation: &'a Generation,
}

fn headers(upstreams: &Upstreams, scoped: &Scoped) -> Result<Headers, LayerError> {
    let headers = Headers::new();
    headers.set("X-Internal-Auth", &upstreams.internal_auth_key)?;
    headers.set("X-Workspace-ID", scoped.workspace.as_str())?;
    headers.set("X-User-ID", scoped.user.as_str())?;
    headers.set("X-Cache-Generation", scoped.generation.as_str())?;
    Ok(headers)
}

async fn get(upstreams: &Upstreams, path: &str, headers: Headers) -> Result<BackendPage, LayerError> {
    let url = format!("{}{path}", upstreams.backend_url);
    let mut init = RequestInit::new();
    init.with_method(Method::Get).with_headers(headers);
    within(upstreams.backend_timeout_ms, async {
        let mut response = Fetch::Request(Request::new_with_init(&url, &init)?).send().await?;
        match response.status_code() {
            200 => Ok(BackendPage::Found(response.text().await?)),
            404 => Ok(BackendPage::Missing),
            403 => Ok(BackendPage::Forbidden),
            status => Err(LayerError::Failed(format!("backend answered {status}"))),
        }
    })
    .await
}

/// The page cached in Redis, if any (`X-Cache-Only: true`: never touches the database).
pub async fn cached_page(upstreams: &Upstreams, board: &BoardId, query_string: &str, scoped: &Scoped<'_>) -> Result<Option<String>, LayerError> {
    let headers = headers(upstreams, scoped)?;
    headers.set("X-Cache-Only", "true")?;
    match get(upstreams, &format!("/api/boards/{board}/contacts/cache?{query_string}"), headers).await? {
        BackendPage::Found(body) => Ok(Some(body)),
        BackendPage::Missing => Ok(None),
        BackendPage::Forbidden => Err(LayerError::Failed("backend refused the cache read".into())),
    }
}

/// The page from the backend's own read path (Redis, then PostgreSQL), which checks membership.
pub async fn fallback_page(upstreams: &Upstreams, board: &BoardId, query_string: &str, scoped: &Scoped<'_>, fresh: bool) -> Result<BackendPage, LayerError> {
    let headers = headers(upstreams, scoped)?;
    if fresh {
        headers.set("Cache-Control", "no-cache")?;
    }
    get(upstreams, &format!("/api/boards/{board}/contacts?{query_string}"), headers).await
}

/// Whether the backend's `/health` answers 200 within `budget_ms`.
pub async fn reachable(upstreams: &Upstreams, budget_ms: u32) -> bool {
    let url = format!("{}/health", upstreams.backend_url);
    within(budget_ms, async {
        let response = Fetch::Url(url.parse().map_err(|_| LayerError::Failed("bad URL".into()))?).send().await?;
        Ok(response.status_code() == 200)
    })
    .await
    .unwrap_or(false)
}

/// The backend's Redis statistics (`GET /api/cache/stats`), as it sent them.
pub async fn stats(upstreams: &Upstreams) -> Result<serde_json::Value, LayerError> {
    let headers = Headers::new();
    headers.set("X-Internal-Auth", &upstreams.internal_auth_key)?;
    match get(upstreams, "/api/cache/stats", headers).await? {
        BackendPage::Found(body) => serde_json::from_str(&body).map_err(|err| LayerError::Failed(format!("backend stats: {err}"))),
        BackendPage::Missing | BackendPage::Forbidden => Err(LayerError::Failed("backend stats refused".into())),
    }
}

/// The caller's per-filter counts (the backend's read-through cache over PostgreSQL).
pub async fn counts(upstreams: &Upstreams, scoped: &Scoped<'_>, fresh: bool) -> Result<BackendPage, LayerError> {
    let headers = headers(upstreams, scoped)?;
    if fresh {
        headers.set("Cache-Control", "no-cache")?;
    }
    get(upstreams, &format!("/api/workspaces/{}/counts", scoped.workspace), headers).await
}

/// Stores `body` (a JSON document) in Redis at `key` for `ttl_seconds`.
pub async fn store(upstreams: &Upstreams, key: &str, body: &str, ttl_seconds: u32) -> Result<(), LayerError> {
    let url = format!("{}/api/cache/store", upstreams.backend_url);
    let payload = format!(r#"{{"key":{},"ttl":{ttl_seconds},"data":{body}}}"#, serde_json::to_string(key).expect("a string serializes"));
    let headers = Headers::new();
    headers.set("X-Internal-Auth", &upstreams.internal_auth_key)?;
    headers.set("Content-Type", "application/json")?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_headers(headers).with_body(Some(payload.into()));
    within(upstreams.backend_timeout_ms, async {
        let response = Fetch::Request(Request::new_with_init(&url, &init)?).send().await?;
        match response.status_code() {
            200 => Ok(()),
            status => Err(LayerError::Failed(format!("backend store answered {status}"))),
        }
    })
    .await
}
