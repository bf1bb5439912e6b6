//! `GET /api/boards/{boardId}/contacts/cache` (Redis only, for the worker's second layer) and
//! `GET /api/boards/{boardId}/contacts` (the fallback when Supabase is unreachable: Redis, then
//! PostgreSQL directly). Both take the worker's query string unchanged plus `X-Workspace-ID` and
//! `X-User-ID`, and derive the Redis key with the same code as everything else.

use crate::error::ApiError;
use crate::routes::read_through::{self, CachePolicy};
use crate::routes::{cache_only, generation_header, now, user_header, wants_fresh, workspace_header};
use crate::state::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use contact_list_cache_core::cache_key::redis_list_key;
use contact_list_cache_core::envelope::ContactListResponse;
use contact_list_cache_core::query::ContactQuery;
use std::sync::Arc;

/// Redis only with `X-Cache-Only: true` (404 on a miss); otherwise the same as the fallback.
pub async fn cached(state: State<Arc<AppState>>, board: Path<String>, query: RawQuery, headers: HeaderMap) -> Result<Response, ApiError> {
    let policy = if cache_only(&headers) { CachePolicy::CacheOnly } else { policy_for(&headers) };
    list(state, board, query, headers, policy).await
}

/// Redis, then PostgreSQL; `Cache-Control: no-cache` skips Redis and refreshes it. Membership is
/// checked in PostgreSQL first, even for a Redis hit: the worker calls this when Supabase is
/// unreachable, which may be exactly when it could not check membership itself.
pub async fn fallback(state: State<Arc<AppState>>, board: Path<String>, query: RawQuery, headers: HeaderMap) -> Result<Response, ApiError> {
    let workspace = workspace_header(&headers)?;
    let caller = user_header(&headers)?;
    if !state.db.is_member(&workspace, &caller).await? {
        return Err(ApiError::NotAMember);
    }
    let policy = policy_for(&headers);
    list(state, board, query, headers, policy).await
}

fn policy_for(headers: &HeaderMap) -> CachePolicy {
    if wants_fresh(headers) {
        CachePolicy::Refresh
    } else {
        CachePolicy::ReadThrough
    }
}

async fn list(
    State(state): State<Arc<AppState>>,
    Path(board): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    policy: CachePolicy,
) -> Result<Response, ApiError> {
    let query = ContactQuery::parse(&board, raw.as_deref().unwrap_or_default())?;
    let workspace = workspace_header(&headers)?;
    let caller = user_header(&headers)?;
    let key = redis_list_key(&workspace, &caller, &query, &generation_header(&headers)?);
    let ttl = state.config.ttl_contacts_list;
    read_through::serve(&state, key, ttl, policy, || async {
        let read = state.db.contact_page(&workspace, &caller, &query).await?;
        if !read.member {
            return Err(ApiError::NotAMember);
        }
        let body = ContactListResponse::new(&query, read.contacts, read.total, now(), ttl);
        Ok(serde_json::to_string(&body).expect("a response serializes"))
    })
    .await
}
