//! `GET /api/workspaces/{workspaceId}/counts`: the caller's per-filter counts (sidebar badges),
//! from the backend's Redis-cached counts under the workspace's current counts generation (from
//! the state home), never older than the request's `minGeneration`.

use crate::auth;
use crate::edge::{Edge, JsonAnswer};
use crate::error::AppError;
use crate::layers::backend::{self, Acting, Answer, Scoped};
use crate::layers::home;
use crate::limits::Action;
use crate::refresh;
use crate::runtime;
use contact_list_cache_core::generation::{counts_generation_key, min_generation, ScopeState};
use contact_list_cache_core::layer::wants_fresh;
use contact_list_cache_core::query::WorkspaceId;
use worker::{Context, Env, Request};

pub async fn get(req: &Request, env: &Env, ctx: &Context, edge: &Edge, workspace: &str) -> Result<JsonAnswer, AppError> {
    let upstreams = edge.config()?.upstreams()?;
    let workspace = WorkspaceId::parse("workspaceId", workspace)?;
    let min = min_generation(req.url()?.query().unwrap_or_default())?;
    let access = auth::authorize(req, upstreams, workspace, &edge.trace).await?;
    let asked_fresh = wants_fresh(req.headers().get("Cache-Control")?.as_deref());
    if asked_fresh {
        upstreams.limiters.admit(Action::FreshRead, &access.caller.user_id, &access.workspace, &edge.trace).await?;
    }
    edge.trace.redis_operation();
    refresh::record_counts(ctx, upstreams, &access.workspace, &access.caller.user_id);
    let key = counts_generation_key(&access.workspace);
    let known = home::scope_state(env, Some(ctx), upstreams, &access.workspace, &key, min.as_ref(), &edge.trace).await;
    if let Err(err) = &known {
        edge.trace.failed(format!("state home read: {err}"));
    }
    let newest = known.as_ref().ok().map(|known| known.newest.clone());
    // With the generation unknown (or older than asked), cached counts may predate an
    // invalidation: read them afresh.
    let state = known.ok().filter(|known| min.as_ref().is_none_or(|min| known.newest >= *min)).map(|known| known.state);
    let fresh = asked_fresh || state.is_none();
    let state = state.unwrap_or_else(ScopeState::initial);
    let superseded = state.fallback(runtime::now(), upstreams.staleness_bound_ms).filter(|(previous, _)| min.as_ref().is_none_or(|min| *previous >= min));
    let superseded_generation = superseded.map(|(previous, _)| previous.clone());
    let acting = Acting::Caller(access.caller.token.clone());
    let scoped = Scoped { workspace: access.workspace.clone(), user: access.caller.user_id.clone(), generation: state.current.clone(), acting };
    match backend::counts(upstreams, &scoped, fresh, superseded).await {
        Ok((Answer::Found(body), labels)) => {
            // A superseded copy answers STALE: current as of the generation it was made under.
            let generation = if labels.status.as_deref() == Some("STALE") { superseded_generation } else { newest };
            let labels = [("X-Cache-Status", labels.status), ("X-Cache-Layer", labels.layer), ("Age", labels.age), ("X-Cache-Generation", generation.map(|g| g.to_string()))];
            Ok(JsonAnswer { body: body.into(), headers: labels.into_iter().filter_map(|(name, value)| Some((name, value?))).collect() })
        }
        Ok((Answer::Forbidden, _)) => Err(AppError::Forbidden),
        Ok((Answer::Missing, _)) => Err(AppError::Unavailable("the backend had no counts".into())),
        Err(err) => Err(AppError::Unavailable(format!("counts: {err}"))),
    }
}
