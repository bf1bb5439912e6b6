//! `GET /api/workspaces/{workspaceId}/counts`: the caller's per-filter counts (sidebar badges),
//! from the backend's Redis-cached counts under the workspace's current counts generation.

use crate::auth;
use crate::edge::Edge;
use crate::error::AppError;
use crate::layers::backend::{self, Answer, Scoped};
use crate::layers::kv;
use contact_list_cache_core::generation::{Generation, Scope};
use contact_list_cache_core::layer::wants_fresh;
use contact_list_cache_core::query::WorkspaceId;
use worker::{Env, Request, Response};

pub async fn get(req: &Request, env: &Env, edge: &Edge, workspace: &str) -> Result<Response, AppError> {
    let upstreams = edge.config()?.upstreams()?;
    let workspace = WorkspaceId::parse("workspaceId", workspace)?;
    let access = auth::authorize(req, upstreams, workspace, &edge.trace).await?;
    edge.trace.kv_operation();
    edge.trace.redis_operation();
    let store = kv::store(env);
    let generation = match &store {
        Ok(store) => kv::generation(store, upstreams, &access.workspace, Scope::Counts).await,
        Err(err) => Err(err.clone()),
    };
    // With the generation unknown, cached counts may predate an invalidation: read them afresh.
    let fresh = wants_fresh(req.headers().get("Cache-Control")?.as_deref()) || generation.is_err();
    let scoped = Scoped { workspace: access.workspace, user: access.caller.user_id, generation: generation.unwrap_or_else(|_| Generation::initial()) };
    match backend::counts(upstreams, &scoped, fresh).await {
        Ok(Answer::Found(body)) => {
            let response = Response::ok(body)?;
            let headers = response.headers();
            headers.set("Content-Type", "application/json")?;
            headers.set("Cache-Control", "private, no-store")?;
            headers.set("X-Worker-Location", &edge.location)?;
            headers.set("X-Response-Time", &edge.elapsed())?;
            Ok(response)
        }
        Ok(Answer::Forbidden) => Err(AppError::Forbidden),
        Ok(Answer::Missing) => Err(AppError::Unavailable("the backend had no counts".into())),
        Err(err) => Err(AppError::Unavailable(format!("counts: {err}"))),
    }
}
