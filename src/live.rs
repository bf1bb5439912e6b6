//! The live channel, as this worker sees it: the `LIVE` service binding to the live worker
//! (live/), which holds each workspace's WebSockets in a Durable Object, outside this wasm. This
//! worker checks who connects (handlers/live.rs) and tells it what was invalidated.

use crate::config::LIVE_BINDING;
use contact_list_cache_core::query::{UserId, WorkspaceId};
use serde_json::{json, Value};
use worker::{Context, Env, Headers, Method, Request, RequestInit, WebSocket};

/// The WebSocket subprotocol of the channel; the token travels as a second one, `bearer.<jwt>`.
pub const PROTOCOL: &str = "contact-list-cache.v1";

/// Hands an authorized member's socket to the workspace's channel until `expires` (the token's
/// `exp`, Unix seconds). `None` when the channel is not bound or did not accept the socket.
pub async fn connect(env: &Env, workspace: &WorkspaceId, user: &UserId, expires: u64) -> worker::Result<Option<WebSocket>> {
    let Ok(live) = env.service(LIVE_BINDING) else {
        return Ok(None);
    };
    let headers = Headers::new();
    headers.set("Upgrade", "websocket")?;
    headers.set("X-Live-User", user.as_str())?;
    headers.set("X-Live-Expires", &expires.to_string())?;
    let mut init = RequestInit::new();
    init.with_method(Method::Get).with_headers(headers);
    let request = Request::new_with_init(&format!("https://live/connect/{workspace}"), &init)?;
    Ok(live.fetch_request(request).await?.websocket())
}

/// After the response, sends the invalidation `applied` (what `invalidation::apply` answers) to
/// the workspace's connected members. Nothing when the channel is not bound; a failed push is
/// only lost (clients refetch when they reconnect).
pub fn publish(env: &Env, ctx: &Context, applied: &Value) {
    let Ok(live) = env.service(LIVE_BINDING) else {
        return;
    };
    let workspace = applied["workspace_id"].as_str().unwrap_or_default().to_owned();
    let message = json!({
        "type": "invalidated",
        "workspace_id": workspace,
        "boards": applied["boards"],
        "scopes": applied["scopes"],
        "generation": applied["generation"],
    });
    ctx.wait_until(async move {
        let mut init = RequestInit::new();
        init.with_method(Method::Post).with_body(Some(message.to_string().into()));
        if let Ok(request) = Request::new_with_init(&format!("https://live/publish/{workspace}"), &init) {
            let _ = live.fetch_request(request).await;
        }
    });
}
