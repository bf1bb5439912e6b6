//! `POST /api/cache/warm`: the spec's common queries, read for the caller from the database and
//! written to KV and Redis.

use crate::audit::Note;
use crate::auth;
use crate::edge::Edge;
use crate::error::AppError;
use crate::handlers::invalidate::json_body;
use crate::limits::{Action, BodyLimit};
use crate::read_path::{PageRead, Reader};
use contact_list_cache_core::audit::{Actor, Operation};
use contact_list_cache_core::engine::Mode;
use contact_list_cache_core::query::{BoardId, ContactQuery, QueryError, WorkspaceId};
use serde::Deserialize;
use serde_json::json;
use worker::{Context, Env, Request, Response};

#[derive(Deserialize)]
struct WarmBody {
    board_id: String,
}

/// The spec's common queries, page 1: all, open, unassigned, assigned_to_me.
const WARM_QUERIES: [&str; 4] = ["filter=all", "filter=open", "filter=unassigned", "filter=assigned_to_me"];

/// `{board_id}`: reads the common queries for the caller's workspace and fills KV and Redis.
pub async fn warm(mut req: Request, env: &Env, ctx: &Context, edge: &Edge) -> Result<Response, AppError> {
    let upstreams = edge.config()?.upstreams()?;
    let workspace = WorkspaceId::parse("X-Workspace-ID", req.headers().get("X-Workspace-ID")?.unwrap_or_default().trim())?;
    let body: WarmBody = json_body(&mut req, BodyLimit::Command).await?;
    let access = auth::authorize(&req, upstreams, workspace, &edge.trace).await?.confirmed()?;
    upstreams.limiters.admit(Action::Warm, &access.caller.user_id, &access.workspace, &edge.trace).await?;
    edge.trace.audit(Note {
        actor: Actor::User(access.caller.user_id.clone()),
        workspace: access.workspace.clone(),
        operation: Operation::Warm,
        scopes: WARM_QUERIES.iter().filter_map(|raw| raw.strip_prefix("filter=")).map(str::to_owned).collect(),
        boards: BoardId::parse("board_id", &body.board_id).into_iter().collect(),
    });
    let mut warmed = Vec::new();
    for raw in WARM_QUERIES {
        let query = ContactQuery::parse(&body.board_id, raw).map_err(|err| match err.field.as_str() {
            "boardId" => AppError::BadRequest(QueryError::new("board_id", "board_id must be a UUID")),
            _ => AppError::BadRequest(err),
        })?;
        let filter = query.filter.as_str();
        let page = PageRead::open(env, upstreams, Reader::Caller { access: &access, ctx, min: None }, query, Mode::Bypass, &edge.trace).await?;
        let (served, _) = page.read(ctx, &edge.trace).await?;
        warmed.push(json!({"filter": filter, "page": 1, "source": served.layer.as_str()}));
    }
    Ok(Response::from_json(&json!({"success": true, "data": {"workspace_id": access.workspace, "warmed": warmed}}))?)
}
