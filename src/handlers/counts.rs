//! `GET /api/workspaces/{workspaceId}/counts`: the caller's per-filter counts (sidebar badges),
//! from the backend's Redis-cached counts under the workspace's current counts generation.

use crate::auth;
use crate::clock;
use crate::config::Upstreams;
use crate::error::AppError;
use crate::handlers::health::edge_location;
use crate::layers::backend::{self, BackendPage, Scoped};
use crate::layers::{kv, within};
use crate::metrics::Trace;
use contact_list_cache_core::generation::Scope;
use contact_list_cache_core::layer::wants_fresh;
use contact_list_cache_core::query::WorkspaceId;
use contact_list_cache_core::time::UnixMillis;
use worker::{Env, Request, Response};

pub async fn get(req: &Request, env: &Env, workspace: &str, started: UnixMillis, trace: &Trace) -> Result<Response, AppError> {
    let upstreams = Upstreams::from_env(env)?;
    let caller = auth::authenticate(req, &upstreams).await?;
    let workspace = WorkspaceId::parse("workspaceId", workspace)?;
    trace.scope(None, workspace.as_str());
    if auth::is_member(&caller, &workspace, &upstreams, trace).await? == Some(false) {
        return Err(AppError::Forbidden);
    }
    trace.kv_operation();
    trace.redis_operation();
    let generation = within(upstreams.kv_timeout_ms, kv::generation(env, &workspace, Scope::Counts)).await;
    let fresh = wants_fresh(req.headers().get("Cache-Control")?.as_deref()) || generation.is_err();
    let generation = generation.unwrap_or_else(|_| contact_list_cache_core::generation::Generation::initial());
    let scoped = Scoped { workspace: &workspace, user: &caller.user_id, generation: &generation };
    match backend::counts(&upstreams, &scoped, fresh).await {
        Ok(BackendPage::Found(body)) => {
            let response = Response::ok(body)?;
            let headers = response.headers();
            headers.set("Content-Type", "application/json")?;
            headers.set("Cache-Control", "private, no-store")?;
            headers.set("X-Worker-Location", &edge_location(req))?;
            headers.set("X-Response-Time", &format!("{}ms", clock::now().since(started)))?;
            Ok(response)
        }
        Ok(BackendPage::Forbidden) => Err(AppError::Forbidden),
        Ok(BackendPage::Missing) => Err(AppError::Unavailable("the backend had no counts".into())),
        Err(err) => Err(AppError::Unavailable(format!("counts: {err}"))),
    }
}
