//! `GET /api/workspaces/{workspaceId}/counts`: the caller's per-filter counts (sidebar badges),
//! from the backend's Redis-cached counts under the workspace's current counts generation.

use crate::auth;
use crate::edge::{Edge, JsonAnswer};
use crate::error::AppError;
use crate::layers::backend::{self, Acting, Answer, Scoped};
use crate::layers::kv;
use crate::limits::Action;
use crate::refresh;
use crate::runtime;
use contact_list_cache_core::generation::{counts_generation_key, ScopeState};
use contact_list_cache_core::layer::wants_fresh;
use contact_list_cache_core::query::WorkspaceId;
use worker::{Context, Env, Request};

pub async fn get(req: &Request, env: &Env, ctx: &Context, edge: &Edge, workspace: &str) -> Result<JsonAnswer, AppError> {
    let upstreams = edge.config()?.upstreams()?;
    let workspace = WorkspaceId::parse("workspaceId", workspace)?;
    let access = auth::authorize(req, upstreams, workspace, &edge.trace).await?;
    let asked_fresh = wants_fresh(req.headers().get("Cache-Control")?.as_deref());
    if asked_fresh {
        upstreams.limiters.admit(Action::FreshRead, &access.caller.user_id, &access.workspace, &edge.trace).await?;
    }
    edge.trace.kv_operation();
    edge.trace.redis_operation();
    refresh::record_counts(ctx, upstreams, &access.workspace, &access.caller.user_id);
    let state = match kv::store(env) {
        Ok(store) => kv::scope_state(&store, upstreams, &counts_generation_key(&access.workspace)).await,
        Err(err) => Err(err),
    };
    // With the generation unknown, cached counts may predate an invalidation: read them afresh.
    let fresh = asked_fresh || state.is_err();
    let state = state.unwrap_or_else(|_| ScopeState::initial());
    let superseded = state.fallback(runtime::now(), upstreams.staleness_bound_ms);
    let acting = Acting::Caller(access.caller.token.clone());
    let scoped = Scoped { workspace: access.workspace.clone(), user: access.caller.user_id.clone(), generation: state.current.clone(), acting };
    match backend::counts(upstreams, &scoped, fresh, superseded).await {
        Ok((Answer::Found(body), labels)) => {
            let labels = [("X-Cache-Status", labels.status), ("X-Cache-Layer", labels.layer), ("Age", labels.age)];
            Ok(JsonAnswer { body: body.into(), headers: labels.into_iter().filter_map(|(name, value)| Some((name, value?))).collect() })
        }
        Ok((Answer::Forbidden, _)) => Err(AppError::Forbidden),
        Ok((Answer::Missing, _)) => Err(AppError::Unavailable("the backend had no counts".into())),
        Err(err) => Err(AppError::Unavailable(format!("counts: {err}"))),
    }
}
