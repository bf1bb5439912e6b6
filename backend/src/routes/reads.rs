//! The reads log of refresh-ahead: `POST /api/reads` records which pages (and counts) were read,
//! `GET /api/reads/{workspaceId}?scope=…&limit=…` answers the most recently read of one scope;
//! and `GET /api/workspaces/{workspaceId}/boards`, the boards an invalidation of a whole
//! workspace reaches. Kept in Redis per scope, with the workspace in the key's hash tag: a sorted
//! set of pages by last read (`reads:{<workspace>}:<board>:<filter>`, `reads:{<workspace>}:counts`),
//! capped, and beside it a hash keeping each page and its last reader (`readers:{<workspace>}:…`),
//! sealed: a query may hold a search term (see `RedisStore::add_recent`). A
//! page every member sees alike is one entry, whoever read it; a page of one user's
//! (`assigned_to_me`, `favorites`, counts) is that user's.

use crate::error::ApiError;
use crate::layers::runtime::now;
use crate::redis_store::RecentLog;
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
/// A page counts as hot when it was read this recently.
const HOT_WITHIN_MS: u64 = 10_000;

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

fn readers_key(workspace: &WorkspaceId, scope: &str) -> String {
    format!("readers:{{{workspace}}}:{scope}")
}

/// Whether the pages of `scope` differ per user (its filter is user-relative, or it is the counts).
fn per_user(scope: &str) -> bool {
    scope.split_once(':').is_none_or(|(_, filter)| Filter::parse(filter).is_ok_and(Filter::is_user_relative))
}

/// Records reads: each page (or user's counts) scored by now, and who read it last.
pub async fn record(State(state): State<Arc<AppState>>, body: Result<Json<RecordRequest>, JsonRejection>) -> Result<Json<Value>, ApiError> {
    let Json(request) = body.map_err(|rejection| bad_request("reads", rejection.body_text()))?;
    if request.reads.len() > MAX_READS {
        return Err(bad_request("reads", format!("at most {MAX_READS} reads per call")));
    }
    let mut by_scope: BTreeMap<(WorkspaceId, String), Vec<(String, String)>> = BTreeMap::new();
    for read in &request.reads {
        if read.query.len() > MAX_QUERY_LEN || read.query.contains(char::is_whitespace) {
            return Err(bad_request("query", format!("query must be a query string of at most {MAX_QUERY_LEN} characters")));
        }
        let scope = scope(&read.scope)?;
        let page = if per_user(&scope) { format!("{} {}", read.query, read.user) } else { read.query.clone() };
        by_scope.entry((read.workspace.clone(), scope)).or_default().push((page, read.user.to_string()));
    }
    let score = now().0;
    for ((workspace, scope), pages) in &by_scope {
        let recorded = state.redis.add_recent(&state.config.keyring, RecentLog { pages: &key(workspace, scope), readers: &readers_key(workspace, scope) }, pages, score, KEEP, TTL_SECONDS).await;
        recorded.inspect_err(|_| state.stats.redis_errors.increment())?;
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

/// The pages of one scope read in the last [`HOT_WITHIN_MS`], most recent first, at most `limit`:
/// `[{user, query}]` with the user who read each last.
pub async fn recent(State(state): State<Arc<AppState>>, Path(workspace): Path<String>, Query(params): Query<RecentQuery>) -> Result<Json<Value>, ApiError> {
    let workspace = WorkspaceId::parse("workspaceId", &workspace)?;
    let scope = scope(&params.scope)?;
    let limit = params.limit.clamp(1, KEEP);
    let since = now().0.saturating_sub(HOT_WITHIN_MS);
    let pages = state.redis.recent(&state.config.keyring, RecentLog { pages: &key(&workspace, &scope), readers: &readers_key(&workspace, &scope) }, since, limit).await;
    let pages = pages.inspect_err(|_| state.stats.redis_errors.increment())?;
    let reads: Vec<Value> = pages
        .into_iter()
        .map(|(page, user)| {
            let query = page.split(' ').next().unwrap_or_default();
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
