//! `GET /api/boards/{boardId}/contacts`: parse the request, authorize the caller for the
//! workspace, read the page through the engine (KV, the backend's Redis, Supabase, the backend's
//! fallback; see `read_path`), and answer with the page and its `X-Cache-*` headers, never older
//! than the request's `minGeneration`.

use crate::auth;
use crate::body::PageBody;
use crate::edge::{Edge, JsonAnswer};
use crate::error::AppError;
use crate::limits::Action;
use crate::read_path::{PageRead, Reader};
use crate::refresh;
use contact_list_cache_core::engine::{Mode, Served};
use contact_list_cache_core::generation::{min_generation, Generation};
use contact_list_cache_core::layer::wants_fresh;
use contact_list_cache_core::query::{ContactQuery, WorkspaceId};
use worker::{Context, Env, Request};

pub async fn list(req: &Request, env: &Env, ctx: &Context, edge: &Edge, board: &str) -> Result<JsonAnswer, AppError> {
    let upstreams = edge.config()?.upstreams()?;
    let workspace = WorkspaceId::parse("X-Workspace-ID", req.headers().get("X-Workspace-ID")?.unwrap_or_default().trim())?;
    let url = req.url()?;
    let query = ContactQuery::parse(board, url.query().unwrap_or_default())?;
    let min = min_generation(url.query().unwrap_or_default())?;
    edge.trace.board(&query.board_id);
    let access = auth::authorize(req, upstreams, workspace, &edge.trace).await?;
    let mode = if wants_fresh(req.headers().get("Cache-Control")?.as_deref()) { Mode::Bypass } else { Mode::Normal };
    if mode == Mode::Bypass {
        upstreams.limiters.admit(Action::FreshRead, &access.caller.user_id, &access.workspace, &edge.trace).await?;
    }
    let page = PageRead::open(env, upstreams, Reader::Caller { access: &access, ctx, min: min.as_ref() }, query.clone(), mode, &edge.trace).await?;
    let key = page.key().to_owned();
    refresh::record_page(ctx, upstreams, &key, &access.workspace, &access.caller.user_id, &query);
    let (served, generation) = page.read(ctx, &edge.trace).await?;
    Ok(respond(served, key, generation))
}

fn respond(served: Served<PageBody>, key: String, generation: Option<Generation>) -> JsonAnswer {
    let mut headers = vec![
        ("Vary", "Authorization, X-Workspace-ID".to_owned()),
        ("X-Cache-Status", served.status.as_str().to_owned()),
        ("X-Cache-Layer", served.layer.as_str().to_owned()),
        ("X-Cache-Key", key),
    ];
    if let Some(age) = served.age {
        headers.push(("Age", age.to_string()));
    }
    if served.coalesced {
        headers.push(("X-Cache-Coalesced", "true".to_owned()));
    }
    if let Some(generation) = generation {
        headers.push(("X-Cache-Generation", generation.to_string()));
    }
    JsonAnswer { body: served.body, headers }
}
