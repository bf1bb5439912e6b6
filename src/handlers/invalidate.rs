//! `POST /api/cache/invalidate` (callers) and `POST /api/cache/webhook` (database changes): what
//! is invalidated on which boards; `crate::invalidation` writes the new generations.

use crate::audit::Note;
use crate::auth;
use crate::config::KV_BINDING;
use crate::layers::kv;
use crate::edge::Edge;
use crate::error::AppError;
use crate::invalidation::{self, Boards, Target, Targets};
use crate::limits::{self, Action, BodyLimit};
use contact_list_cache_core::access::bearer_token;
use contact_list_cache_core::applied::AppliedMark;
use contact_list_cache_core::audit::{Actor, Operation};
use contact_list_cache_core::carry::ContactUpdate;
use contact_list_cache_core::filter::Filter;
use contact_list_cache_core::generation::{InvalidationMode, Scope};
use contact_list_cache_core::invalidation::{Event, KeyPattern, RowChange};
use contact_list_cache_core::query::{BoardId, QueryError, WorkspaceId};
use contact_list_cache_core::settings::SettingError;
use contact_list_cache_core::time::UnixMillis;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use worker::{Context, Env, Request, Response};

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
    /// `hard` (the default) or `soft`.
    #[serde(default)]
    mode: Option<String>,
}

/// The request's JSON body, at most `limit` bytes (413 beyond).
pub async fn json_body<T: serde::de::DeserializeOwned>(req: &mut Request, limit: BodyLimit) -> Result<T, AppError> {
    let bytes = limits::read_body(req, limit).await?;
    serde_json::from_slice(&bytes).map_err(|err| AppError::BadRequest(QueryError::new("body", format!("body is not valid: {err}"))))
}

fn change(value: Value) -> Result<RowChange, AppError> {
    serde_json::from_value(value).map_err(|err| AppError::BadRequest(QueryError::new("body", format!("a change is not valid: {err}"))))
}

fn event(value: Value) -> Result<Event, AppError> {
    serde_json::from_value(value).map_err(|err| AppError::BadRequest(QueryError::new("event", format!("event is not valid: {err}"))))
}

/// `{workspace_id, board_id?, filter?, pattern?, event?, events?, mode?}`: with none of filter,
/// pattern and events, every scope; on `board_id` only when given, else on every board of the
/// workspace. Hard unless `mode` is `soft`: the caller's next read (with the answer's
/// `generation` as `minGeneration`) is the new data, not a superseded page.
pub async fn invalidate(mut req: Request, env: &Env, ctx: &Context, edge: &Edge) -> Result<Response, AppError> {
    let upstreams = edge.config()?.upstreams()?;
    let body: InvalidateBody = json_body(&mut req, BodyLimit::Command).await?;
    let workspace = WorkspaceId::parse("workspace_id", &body.workspace_id)?;
    let mode = body.mode.as_deref().map_or(Ok(InvalidationMode::Hard), InvalidationMode::parse)?;
    let board = body.board_id.as_deref().map(|board| BoardId::parse("board_id", board)).transpose()?;
    let access = auth::authorize(&req, upstreams, workspace, &edge.trace).await?.confirmed()?;
    upstreams.limiters.admit(Action::Invalidate, &access.caller.user_id, &access.workspace, &edge.trace).await?;
    let workspace = access.workspace;
    let boards_touched = board.iter().cloned().collect();
    edge.trace.audit(Note { actor: Actor::User(access.caller.user_id), workspace: workspace.clone(), operation: Operation::Invalidate, scopes: Vec::new(), boards: boards_touched });
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
    edge.trace.audit_scopes(scopes.iter().map(|scope| scope.as_str().to_owned()).collect());
    let boards = board.map_or(Boards::All, |board| Boards::These(BTreeSet::from([board])));
    let target = Target { scopes, boards, update: None, changed_at: None };
    let data = invalidation::apply(env, ctx, upstreams, &workspace, vec![target], mode, &edge.trace).await?;
    Ok(Response::from_json(&json!({"success": true, "data": data}))?)
}

/// A database change (from the backend's change capture, or a Supabase Database Webhook), authenticated
/// with `WEBHOOK_SECRET` (or, while it rotates, `WEBHOOK_SECRET_PREVIOUS`) in `X-Webhook-Secret`
/// or as a bearer token.
pub async fn webhook(mut req: Request, env: &Env, ctx: &Context, edge: &Edge) -> Result<Response, AppError> {
    let config = edge.config()?;
    let secret = config.webhook_secret.as_ref().ok_or(SettingError::Missing { name: "WEBHOOK_SECRET" })?;
    let given = match req.headers().get("X-Webhook-Secret")? {
        Some(given) => given,
        None => req.headers().get("Authorization")?.as_deref().and_then(bearer_token).map(str::to_owned).unwrap_or_default(),
    };
    if !secret.accepts(given.as_bytes()) {
        return Err(AppError::Unauthorized("missing or wrong webhook secret"));
    }
    // One change (as a Supabase Database Webhook sends it) or a batch (as the backend's change
    // capture does): one invalidation per workspace.
    let changes: Vec<RowChange> = match json_body::<Value>(&mut req, BodyLimit::Webhook).await? {
        Value::Array(changes) => changes.into_iter().map(change).collect::<Result<_, _>>()?,
        one => vec![change(one)?],
    };
    let mut by_workspace: Vec<(WorkspaceId, Vec<(&RowChange, Event)>)> = Vec::new();
    let mut ignored = Vec::new();
    for change in &changes {
        let Some((workspace, event)) = change.event() else {
            ignored.push(format!("{} {} affects no cached list", change.kind, change.table));
            continue;
        };
        match by_workspace.iter_mut().find(|(w, _)| *w == workspace) {
            Some((_, events)) => events.push((change, event)),
            None => by_workspace.push((workspace, vec![(change, event)])),
        }
    }
    let mut applied = Vec::new();
    for (workspace, events) in by_workspace {
        edge.trace.workspace(&workspace);
        // Redelivered changes (at or below the workspace's applied mark) are skipped.
        let delivered = events.iter().any(|(change, _)| change.outbox_seq.is_some());
        let store = kv::store(env).map_err(|_| SettingError::Missing { name: KV_BINDING })?;
        let mark = if delivered {
            edge.trace.kv_operation();
            kv::applied_mark(&store, &workspace).await
        } else {
            AppliedMark::default()
        };
        let (fresh, again): (Vec<_>, Vec<_>) = events.into_iter().partition(|(change, _)| mark.admits(change.outbox_seq));
        ignored.extend(again.iter().map(|(change, _)| format!("change {} was applied before", change.outbox_seq.unwrap_or_default())));
        if fresh.is_empty() {
            continue;
        }
        let moved = mark.after(fresh.iter().map(|(change, _)| change.outbox_seq));
        let targets: Targets = fresh
            .into_iter()
            .map(|(change, event)| Target {
                scopes: event.scopes(),
                boards: change.boards().map_or(Boards::All, Boards::These),
                update: ContactUpdate::from_change(change),
                changed_at: change.changed_at.map(UnixMillis),
            })
            .collect();
        edge.trace.audit(webhook_note(&workspace, &targets));
        applied.push(invalidation::apply(env, ctx, config.upstreams()?, &workspace, targets, InvalidationMode::Soft, &edge.trace).await?);
        if let Some(moved) = moved {
            edge.trace.kv_operation();
            if let Err(err) = kv::mark_applied(&store, &workspace, moved).await {
                worker::console_warn!("storing the applied mark of {workspace}: {err}");
            }
        }
    }
    let data = match (applied.len(), changes.len()) {
        (1, 1) => applied.remove(0),
        (0, 1) => json!({"scopes": [], "ignored": ignored.remove(0)}),
        _ => json!({"applied": applied, "ignored": ignored}),
    };
    Ok(Response::from_json(&json!({"success": true, "data": data}))?)
}

/// The audit note of one workspace's share of a webhook call: every scope and board it touches
/// (no boards when any change reaches every board).
fn webhook_note(workspace: &WorkspaceId, targets: &Targets) -> Note {
    let scopes: BTreeSet<Scope> = targets.iter().flat_map(|target| target.scopes.iter().copied()).collect();
    let mut boards = BTreeSet::new();
    for target in targets {
        match &target.boards {
            Boards::All => {
                boards.clear();
                break;
            }
            Boards::These(these) => boards.extend(these.iter().cloned()),
        }
    }
    Note {
        actor: Actor::Service("webhook"),
        workspace: workspace.clone(),
        operation: Operation::Webhook,
        scopes: scopes.iter().map(|scope| scope.as_str().to_owned()).collect(),
        boards: boards.into_iter().collect(),
    }
}
