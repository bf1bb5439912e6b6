//! `GET /api/workspaces/{workspaceId}/counts`: per-filter counts for the caller (`X-User-ID`),
//! the sidebar badges, cached at `counts:{workspace}:user` for CACHE_TTL_CONTACT_COUNTS.

use crate::error::ApiError;
use crate::routes::read_through::{self, CachePolicy};
use crate::routes::{generation_header, now, user_header, wants_fresh};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use contact_list_cache_core::cache_key::redis_counts_key;
use contact_list_cache_core::envelope::CountsResponse;
use contact_list_cache_core::query::WorkspaceId;
use std::sync::Arc;

pub async fn get(State(state): State<Arc<AppState>>, Path(workspace): Path<String>, headers: HeaderMap) -> Result<Response, ApiError> {
    let workspace = WorkspaceId::parse("workspaceId", &workspace)?;
    let user = user_header(&headers)?;
    let key = redis_counts_key(&workspace, &user, &generation_header(&headers)?);
    let ttl = state.config.ttl_contact_counts;
    let policy = if wants_fresh(&headers) { CachePolicy::Refresh } else { CachePolicy::ReadThrough };
    read_through::serve(&state, key, ttl, policy, || async {
        let read = state.db.contact_counts(&workspace, &user).await?;
        if !read.member {
            return Err(ApiError::NotAMember);
        }
        let body = CountsResponse::new(&workspace, &user, read.counts, now(), ttl);
        Ok(serde_json::to_string(&body).expect("a response serializes"))
    })
    .await
}
