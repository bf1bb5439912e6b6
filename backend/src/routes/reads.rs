//! The reads log of refresh-ahead: `POST /api/reads` records which pages (and counts) were read,
//! `GET /api/reads/{workspaceId}?scope=…&limit=…` answers the most recently read of one scope;
//! and `GET /api/workspaces/{workspaceId}/boards`, the boards an invalidation of a whole
//! workspace reaches. Kept in Redis per scope as a sorted set by last read, capped, with the
//! workspace in the key's hash tag: `reads:{<workspace>}:<board>:<filter>`, `reads:{<workspace>}:counts`.

use crate::error::ApiError;
use crate::layers::runtime::now;
use crate::routes::bad_request;
use crate::state::AppState;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use contact_list_cache_core::filter::Filter;
use contact_list_cache_core::query::{BoardId, UserId, WorkspaceId};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Reads kept per scope: the most recent ones.
const KEEP: u32 = 200;
/// A scope's log expires this long after its last read.
const TTL_SECONDS: u32 = 3600;
/// The most reads one call may record.
const MAX_READS: usize = 1000;
/// The longest query string recorded.
const MAX_QUERY_LEN: usize = 512;

#[derive(Debug, Deserialize)]
pub struct Read {
    workspace: WorkspaceId,
    scope: String,
    user: UserId,
    #[serde(default)]
    query: String,
}

#[derive(Debug, Deserialize)]
pub struct RecordRequest {
    reads: Vec<Read>,
}

/// A scope as named in the log: `<board>:<filter>` or `counts`; anything else is refused.
fn scope(raw: &str) -> Result<String, ApiError> {
    let valid = raw == "counts"
        || raw.split_once(':').is_some_and(|(board, filter)| BoardId::parse("scope", board).is_ok() && Filter::parse(filter).is_ok());
    if valid {
        Ok(raw.to_owned())
    } else {
        Err(bad_request("scope", "scope must be <board id>:<filter> or counts"))
    }
}

fn key(workspace: &WorkspaceId, scope: &str) -> String {
    format!("reads:{{{workspace}}}:{scope}")
}

/// Records reads: each page (or user's counts) scored by now.
pub async fn record(State(state): State<Arc<AppState>>, body: Result<Json<RecordRequest>, JsonRejection>) -> Result<Json<Value>, ApiError> {
    let Json(request) = body.map_err(|rejection| bad_request("reads", rejection.body_text()))?;
    if request.reads.len() > MAX_READS {
        return Err(bad_request("reads", format!("at most {MAX_READS} reads per call")));
    }
    let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for read in &request.reads {
        if read.query.len() > MAX_QUERY_LEN || read.query.contains(char::is_whitespace) {
            return Err(bad_request("query", format!("query must be a query string of at most {MAX_QUERY_LEN} characters")));
        }
        let member = if read.query.is_empty() { read.user.to_string() } else { format!("{} {}", read.user, read.query) };
        by_key.entry(key(&read.workspace, &scope(&read.scope)?)).or_default().push(member);
    }
    let score = now().0;
    for (key, members) in &by_key {
        state.redis.add_recent(key, members, score, KEEP, TTL_SECONDS).await.inspect_err(|_| state.stats.redis_errors.increment())?;
    }
    Ok(Json(json!({"success": true, "data": {"recorded": request.reads.len()}})))
}

#[derive(Debug, Deserialize)]
pub struct RecentQuery {
    scope: String,
    #[serde(default = "default_limit")]
    limit: u32,
}

fn default_limit() -> u32 {
    20
}

/// The most recently read pages of one scope, newest first: `[{user, query}]`.
pub async fn recent(State(state): State<Arc<AppState>>, Path(workspace): Path<String>, Query(params): Query<RecentQuery>) -> Result<Json<Value>, ApiError> {
    let workspace = WorkspaceId::parse("workspaceId", &workspace)?;
    let scope = scope(&params.scope)?;
    let limit = params.limit.clamp(1, KEEP);
    let members = state.redis.recent(&key(&workspace, &scope), limit).await.inspect_err(|_| state.stats.redis_errors.increment())?;
    let reads: Vec<Value> = members
        .iter()
        .map(|member| {
            let (user, query) = member.split_once(' ').unwrap_or((member, ""));
            json!({"user": user, "query": query})
        })
        .collect();
    Ok(Json(json!({"success": true, "data": reads})))
}

/// Every board of the workspace (for an invalidation of all of them).
pub async fn boards(State(state): State<Arc<AppState>>, Path(workspace): Path<String>) -> Result<Json<Value>, ApiError> {
    let workspace = WorkspaceId::parse("workspaceId", &workspace)?;
    let boards = state.db.boards(&workspace).await?;
    Ok(Json(json!({"success": true, "data": boards})))
}
