//! `POST /api/cache/invalidate` (callers), `POST /api/cache/webhook` (database changes) and
//! `POST /api/cache/warm`. Invalidation writes one new generation per affected scope to KV: a
//! constant number of writes, whatever is cached, which makes the older entries in KV and in
//! Redis unreachable at once.

use crate::auth;
use crate::edge::Edge;
use crate::error::AppError;
use crate::layers::kv;
use crate::metrics::Trace;
use crate::read_path::PageRead;
use crate::runtime;
use contact_list_cache_core::access::bearer_token;
use contact_list_cache_core::engine::Mode;
use contact_list_cache_core::generation::{Generation, Scope};
use contact_list_cache_core::invalidation::{Event, KeyPattern, RowChange};
use contact_list_cache_core::filter::Filter;
use contact_list_cache_core::query::{BoardId, ContactQuery, QueryError, WorkspaceId};
use contact_list_cache_core::secure::secrets_match;
use contact_list_cache_core::settings::SettingError;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use worker::{js_sys, Context, Env, Request, Response};

/// The most events one call may carry.
const MAX_EVENTS: usize = 100;

#[derive(Deserialize)]
struct InvalidateBody {
    workspace_id: String,
    #[serde(default)]
    board_id: Option<String>,
    #[serde(default)]
    filter: Option<String>,
    #[serde(default)]
    pattern: Option<String>,
    #[serde(default)]
    event: Option<Value>,
    #[serde(default)]
    events: Option<Vec<Value>>,
}

async fn json_body<T: serde::de::DeserializeOwned>(req: &mut Request) -> Result<T, AppError> {
    let text = req.text().await?;
    serde_json::from_str(&text).map_err(|err| AppError::BadRequest(QueryError::new("body", format!("body is not valid: {err}"))))
}

fn event(value: Value) -> Result<Event, AppError> {
    serde_json::from_value(value).map_err(|err| AppError::BadRequest(QueryError::new("event", format!("event is not valid: {err}"))))
}

/// Writes a new generation for `scopes` and answers what was done.
async fn bump(env: &Env, workspace: &WorkspaceId, scopes: BTreeSet<Scope>, trace: &Trace) -> Result<Value, AppError> {
    let scopes: Vec<Scope> = scopes.into_iter().collect();
    let generation = Generation::new(runtime::now().0, (js_sys::Math::random() * f64::from(u32::MAX)) as u32);
    let store = kv::store(env).map_err(|_| SettingError::Missing { name: crate::config::KV_BINDING })?;
    let writes = kv::bump(&store, workspace, &scopes, &generation)
        .await
        .map_err(|err| AppError::Unavailable(format!("writing generations: {err}")))?;
    for _ in 0..writes {
        trace.kv_operation();
    }
    Ok(json!({
        "workspace_id": workspace,
        "scopes": scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "generation": generation.as_str(),
        "operations": {"kv_writes": writes, "kv_lists": 0, "redis": 0},
    }))
}

/// `{workspace_id, board_id?, filter?, pattern?, event?, events?}`: with none of filter, pattern
/// and events, every scope of the workspace.
pub async fn invalidate(mut req: Request, env: &Env, edge: &Edge) -> Result<Response, AppError> {
    let upstreams = edge.config()?.upstreams()?;
    let body: InvalidateBody = json_body(&mut req).await?;
    let workspace = WorkspaceId::parse("workspace_id", &body.workspace_id)?;
    if let Some(board) = &body.board_id {
        BoardId::parse("board_id", board)?;
    }
    let access = auth::authorize(&req, upstreams, workspace, &edge.trace).await?.confirmed()?;
    let workspace = access.workspace;
    let mut scopes = BTreeSet::new();
    if let Some(filter) = &body.filter {
        let filter = Filter::parse(filter)?;
        scopes.insert(Scope::List(filter));
    }
    if let Some(raw) = &body.pattern {
        let pattern = KeyPattern::parse(raw).map_err(|err| AppError::BadRequest(QueryError::new("pattern", err.to_string())))?;
        if pattern.workspace != workspace {
            return Err(AppError::BadRequest(QueryError::new("pattern", "pattern must be within workspace_id's keys")));
        }
        scopes.extend(pattern.scopes());
    }
    let events: Vec<Value> = body.event.into_iter().chain(body.events.unwrap_or_default()).collect();
    if events.len() > MAX_EVENTS {
        return Err(AppError::BadRequest(QueryError::new("events", format!("at most {MAX_EVENTS} events per call"))));
    }
    for value in events.iter().cloned() {
        scopes.extend(event(value)?.scopes());
    }
    if body.filter.is_none() && body.pattern.is_none() && events.is_empty() {
        scopes.extend(Scope::all());
    }
    let data = bump(env, &workspace, scopes, &edge.trace).await?;
    Ok(Response::from_json(&json!({"success": true, "data": data}))?)
}

/// A database change (from the backend's listener, or a Supabase Database Webhook), authenticated
/// with `WEBHOOK_SECRET` in `X-Webhook-Secret` or as a bearer token.
pub async fn webhook(mut req: Request, env: &Env, edge: &Edge) -> Result<Response, AppError> {
    let config = edge.config()?;
    let secret = config.webhook_secret.as_ref().ok_or(SettingError::Missing { name: "WEBHOOK_SECRET" })?;
    let given = match req.headers().get("X-Webhook-Secret")? {
        Some(given) => given,
        None => req.headers().get("Authorization")?.as_deref().and_then(bearer_token).map(str::to_owned).unwrap_or_default(),
    };
    if !secrets_match(given.as_bytes(), secret.expose().as_bytes()) {
        return Err(AppError::Unauthorized("missing or wrong webhook secret"));
    }
    let change: RowChange = json_body(&mut req).await?;
    let data = match change.event() {
        Some((workspace, event)) => {
            edge.trace.workspace(&workspace);
            bump(env, &workspace, event.scopes(), &edge.trace).await?
        }
        None => json!({"scopes": [], "ignored": format!("{} {} affects no cached list", change.kind, change.table)}),
    };
    Ok(Response::from_json(&json!({"success": true, "data": data}))?)
}

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
    let body: WarmBody = json_body(&mut req).await?;
    let access = auth::authorize(&req, upstreams, workspace, &edge.trace).await?.confirmed()?;
    let mut warmed = Vec::new();
    for raw in WARM_QUERIES {
        let query = ContactQuery::parse(&body.board_id, raw).map_err(|err| match err.field.as_str() {
            "boardId" => AppError::BadRequest(QueryError::new("board_id", "board_id must be a UUID")),
            _ => AppError::BadRequest(err),
        })?;
        let filter = query.filter.as_str();
        let page = PageRead::open(env, upstreams, &access, query, Mode::Bypass, &edge.trace).await?;
        let served = page.read(ctx, &edge.trace).await?;
        warmed.push(json!({"filter": filter, "page": 1, "source": served.layer.as_str()}));
    }
    Ok(Response::from_json(&json!({"success": true, "data": {"workspace_id": access.workspace, "warmed": warmed}}))?)
}
