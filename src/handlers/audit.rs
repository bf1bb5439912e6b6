//! `GET /api/workspaces/{workspaceId}/audit?limit=&before=`: one page of the workspace's audit
//! log, newest first, for its owners and admins. The token is verified here; the backend checks
//! the caller's role in the same statement that reads the records (403 for members without it
//! and for non-members).

use crate::auth;
use crate::edge::Edge;
use crate::error::AppError;
use crate::layers::backend::{self, Answer};
use contact_list_cache_core::audit::{page_before, page_limit};
use contact_list_cache_core::query::WorkspaceId;
use worker::{Request, Response};

pub async fn list(req: &Request, edge: &Edge, workspace: &str) -> Result<Response, AppError> {
    let upstreams = edge.config()?.upstreams()?;
    let caller = auth::authenticate(req.headers().get("Authorization")?.as_deref(), upstreams).await?;
    let workspace = WorkspaceId::parse("workspaceId", workspace)?;
    edge.trace.workspace(&workspace);
    let url = req.url()?;
    let param = |name: &str| url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
    let limit = page_limit(param("limit").as_deref())?;
    let before = page_before(param("before").as_deref())?;
    match backend::audit_page(upstreams, &workspace, &caller, limit, before).await {
        Ok(Answer::Found(body)) => {
            let response = Response::ok(body)?;
            response.headers().set("Content-Type", "application/json")?;
            response.headers().set("Cache-Control", "private, no-store")?;
            Ok(response)
        }
        Ok(Answer::Forbidden) => Err(AppError::NotAnAdmin),
        Ok(Answer::Missing) => Err(AppError::Unavailable("the backend has no audit log".into())),
        Err(err) => {
            edge.trace.failed(format!("audit log: {err}"));
            Err(AppError::Unavailable(err.to_string()))
        }
    }
}
