//! `X-Internal-Auth`: the shared secret between the worker and this service, checked in constant
//! time on every route but `/health`.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use contact_list_cache_core::secure::secrets_match;
use std::sync::Arc;

pub const HEADER: &str = "x-internal-auth";

pub async fn require_internal_auth(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let given = request.headers().get(HEADER).map(|value| value.as_bytes()).unwrap_or_default();
    if secrets_match(given, state.config.internal_auth_key.expose().as_bytes()) {
        next.run(request).await
    } else {
        state.stats.unauthorized.increment();
        ApiError::Unauthorized.into_response()
    }
}
