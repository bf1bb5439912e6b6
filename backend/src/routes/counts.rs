//! `GET /api/workspaces/{workspaceId}/counts`: per-filter counts for the user of the forwarded
//! access token (or refresh-ahead's `X-User-ID`, answered sealed: `crate::access`), who must be
//! a member of the workspace to be served from Redis;
//! the sidebar badges: Redis at `counts:{workspace}:user:gen:…`, then PostgreSQL (which checks
//! membership in the same statement), kept for CACHE_TTL_CONTACT_COUNTS. Within the staleness
//! bound after an invalidation (the worker names the superseded generation and until when), the
//! counts of the superseded generation are served, labelled `STALE`, while the current ones are
//! read.

use crate::error::ApiError;
use crate::layers::postgres::Postgres;
use crate::routes::read::{self, Read};
use crate::access;
use crate::routes::{answer_for, generation_header, read_mode, superseded_header};
use contact_list_cache_core::engine::Mode;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use contact_list_cache_core::cache_key::redis_counts_key;
use contact_list_cache_core::query::WorkspaceId;
use std::sync::Arc;

pub async fn get(State(state): State<Arc<AppState>>, Path(workspace): Path<String>, headers: HeaderMap) -> Result<Response, ApiError> {
    let workspace = WorkspaceId::parse("workspaceId", &workspace)?;
    let generation = generation_header(&headers)?;
    let acting = access::acting(&state, &headers).await?;
    let user = acting.user().clone();
    let mode = read_mode(&headers);
    if mode == Mode::Normal {
        access::require_member(&state, &user, &workspace).await?;
    }
    let key = redis_counts_key(&workspace, &user, &generation);
    let superseded = superseded_header(&headers)?.map(|(previous, until)| (redis_counts_key(&workspace, &user, &previous), until));
    let ttl_seconds = state.config.ttl_contact_counts;
    let source = Postgres::counts(Arc::clone(&state.db), workspace, user, ttl_seconds);
    let answer = read::serve(&state, Read { key: key.clone(), ttl_seconds, source: Some(source), mode, superseded }).await?;
    answer_for(&state, &acting, &key, answer).await
}
