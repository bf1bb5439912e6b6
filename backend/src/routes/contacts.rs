//! `GET /api/boards/{boardId}/contacts/cache` (Redis only, for the worker's second layer) and
//! `GET /api/boards/{boardId}/contacts` (the fallback when Supabase is unreachable: Redis, then
//! PostgreSQL directly). Both take the worker's query string unchanged plus `X-Workspace-ID`, and
//! the user's own access token (`crate::access`: the user is its `sub`; or refresh-ahead's
//! `X-Refresh-Ahead: sealed` with `X-User-ID`, answered sealed), and derive the Redis key with the
//! same code as everything else. A page is served from Redis only to a member of the workspace.

use crate::error::ApiError;
use crate::layers::postgres::{Postgres, Totals};
use crate::routes::read::{self, Read};
use crate::access::{self, Acting};
use crate::routes::{answer_for, cache_only, generation_header, read_mode, workspace_header};
use crate::state::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use contact_list_cache_core::cache_key::{redis_list_key, redis_total_key};
use contact_list_cache_core::generation::Generation;
use contact_list_cache_core::engine::Mode;
use contact_list_cache_core::query::{ContactQuery, UserId, WorkspaceId};
use std::sync::Arc;

/// One list request, parsed: the page, who asks for it in which workspace, and its Redis key.
struct ListRequest {
    acting: Acting,
    query: ContactQuery,
    workspace: WorkspaceId,
    caller: UserId,
    generation: Generation,
    key: String,
}

impl ListRequest {
    async fn parse(state: &AppState, board: &str, raw_query: Option<&str>, headers: &HeaderMap) -> Result<Self, ApiError> {
        let query = ContactQuery::parse(board, raw_query.unwrap_or_default())?;
        let workspace = workspace_header(headers)?;
        let generation = generation_header(headers)?;
        let acting = access::acting(state, headers).await?;
        let caller = acting.user().clone();
        let key = redis_list_key(&workspace, &caller, &query, &generation);
        Ok(Self { acting, query, workspace, caller, generation, key })
    }

    /// Redis, then (unless `cache_only`) PostgreSQL, as `mode` says.
    fn read(self, state: &AppState, cache_only: bool, mode: Mode) -> (Acting, Read) {
        let ttl_seconds = state.config.ttl_contacts_list;
        let totals = self.query.is_narrowed().then(|| Totals {
            redis: Arc::clone(&state.redis),
            keyring: Arc::clone(&state.config.keyring),
            key: redis_total_key(&self.workspace, &self.caller, &self.query, &self.generation),
        });
        let source = (!cache_only).then(|| Postgres::page(Arc::clone(&state.db), self.workspace, self.caller, self.query, totals, ttl_seconds));
        (self.acting, Read { key: self.key, ttl_seconds, source, mode, superseded: None })
    }

    /// Reads the page and answers it (sealed for refresh-ahead).
    async fn serve(self, state: &Arc<AppState>, cache_only: bool, mode: Mode) -> Result<Response, ApiError> {
        let key = self.key.clone();
        let (acting, read) = self.read(state, cache_only, mode);
        answer_for(state, &acting, &key, read::serve(state, read).await?).await
    }
}

/// Redis only with `X-Cache-Only: true` (404 on a miss, 503 when Redis fails; `Cache-Control`
/// is not looked at); otherwise the same as the fallback. Either way the user's membership is
/// confirmed first (remembered for at most a minute).
pub async fn cached(State(state): State<Arc<AppState>>, Path(board): Path<String>, RawQuery(raw): RawQuery, headers: HeaderMap) -> Result<Response, ApiError> {
    let list = ListRequest::parse(&state, &board, raw.as_deref(), &headers).await?;
    access::require_member(&state, &list.caller, &list.workspace).await?;
    let only = cache_only(&headers);
    let mode = if only { Mode::Normal } else { read_mode(&headers) };
    list.serve(&state, only, mode).await
}

/// Redis, then PostgreSQL; `Cache-Control: no-cache` skips Redis and refreshes it. Membership is
/// checked in PostgreSQL before Redis is read, even for a Redis hit: the worker calls this when
/// Supabase is unreachable, which may be exactly when it could not check membership itself. (A
/// read that skips Redis is checked by the statement that reads the rows.)
pub async fn fallback(State(state): State<Arc<AppState>>, Path(board): Path<String>, RawQuery(raw): RawQuery, headers: HeaderMap) -> Result<Response, ApiError> {
    let list = ListRequest::parse(&state, &board, raw.as_deref(), &headers).await?;
    let mode = read_mode(&headers);
    if mode == Mode::Normal && !state.db.is_member(&list.workspace, &list.caller).await? {
        return Err(ApiError::NotAMember);
    }
    list.serve(&state, false, mode).await
}
