//! `GET /api/workspaces/{workspaceId}/live`: a member's WebSocket to the workspace's live
//! channel. The token comes as the subprotocol `bearer.<jwt>` (browsers cannot set headers on a
//! WebSocket) or as `Authorization`; it and the membership go through the same gate as reads,
//! membership confirmed. The socket lasts until the token's `exp`.

use crate::auth;
use crate::edge::Edge;
use crate::error::AppError;
use crate::limits::Action;
use crate::live;
use crate::runtime;
use contact_list_cache_core::query::{QueryError, WorkspaceId};
use web_sys::WorkerGlobalScope;
use worker::wasm_bindgen::JsCast;
use worker::{js_sys, Env, Headers, Request, RequestInit, Response};

pub async fn connect(req: &Request, env: &Env, edge: &Edge, workspace: &str) -> Result<Response, AppError> {
    let upstreams = edge.config()?.upstreams()?;
    let workspace = WorkspaceId::parse("workspaceId", workspace)?;
    if !req.headers().get("Upgrade")?.is_some_and(|u| u.eq_ignore_ascii_case("websocket")) {
        return Err(AppError::BadRequest(QueryError::new("Upgrade", "this route answers WebSocket upgrades only")));
    }
    let protocols = req.headers().get("Sec-WebSocket-Protocol")?.unwrap_or_default();
    let offered: Vec<&str> = protocols.split(',').map(str::trim).collect();
    if !offered.contains(&live::PROTOCOL) {
        return Err(AppError::BadRequest(QueryError::new("Sec-WebSocket-Protocol", format!("the subprotocol {} is required", live::PROTOCOL))));
    }
    let authorization = match offered.iter().find_map(|p| p.strip_prefix("bearer.")) {
        Some(token) => Some(format!("Bearer {token}")),
        None => req.headers().get("Authorization")?,
    };
    let headers = Headers::new();
    if let Some(authorization) = &authorization {
        headers.set("Authorization", authorization)?;
    }
    let mut init = RequestInit::new();
    init.with_headers(headers);
    let as_read = Request::new_with_init(req.url()?.as_ref(), &init)?;
    let access = auth::authorize(&as_read, upstreams, workspace, &edge.trace).await?.confirmed()?;
    upstreams.limiters.admit(Action::LiveConnect, &access.caller.user_id, &access.workspace, &edge.trace).await?;
    let expires = authorization.as_deref().and_then(token_expiry).ok_or(AppError::Unauthorized("the token has no exp"))?;
    // Reads allow 30 s of clock skew past `exp`; a socket would end at once.
    if expires.saturating_mul(1000) <= runtime::now().0 {
        return Err(AppError::Unauthorized("the token has expired"));
    }
    let socket = live::connect(env, &access.workspace, &access.caller.user_id, expires)
        .await?
        .ok_or_else(|| AppError::Unavailable("the live channel did not accept the socket".into()))?;
    let response = Response::from_websocket(socket)?;
    response.headers().set("Sec-WebSocket-Protocol", live::PROTOCOL)?;
    Ok(response)
}

/// The `exp` of a token `auth` has verified, from its payload.
fn token_expiry(authorization: &str) -> Option<u64> {
    let payload = authorization.split('.').nth(1)?;
    let mut base64 = payload.replace('-', "+").replace('_', "/");
    base64.push_str(&"=".repeat((4 - base64.len() % 4) % 4));
    let scope: WorkerGlobalScope = js_sys::global().unchecked_into();
    let json = scope.atob(&base64).ok()?;
    serde_json::from_str::<serde_json::Value>(&json).ok()?.get("exp")?.as_u64()
}
