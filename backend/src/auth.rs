//! The shared secrets of the service's routes, each compared in constant time and accepted in its
//! current and (while it rotates) previous value: `X-Internal-Auth` (`INTERNAL_AUTH_KEY`), the
//! worker's key, on every route but `/health` and the metrics; the metrics token
//! (`METRICS_TOKEN`, as a bearer token) on `/metrics` and `/api/cache/stats`. Who a read is for
//! is `crate::access`'s.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use contact_list_cache_core::access::bearer_token;
use std::sync::Arc;

pub const HEADER: &str = "x-internal-auth";

pub async fn require_internal_auth(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let given = request.headers().get(HEADER).map(|value| value.as_bytes()).unwrap_or_default();
    if state.config.internal_auth_key.accepts(given) {
        next.run(request).await
    } else {
        state.stats.unauthorized.increment();
        ApiError::Unauthorized.into_response()
    }
}

/// `Authorization: Bearer <METRICS_TOKEN>`; without `METRICS_TOKEN` set, metrics are closed.
pub async fn require_metrics_token(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let given = request.headers().get("authorization").and_then(|value| value.to_str().ok()).and_then(bearer_token);
    let accepted = match (&state.config.metrics_token, given) {
        (Some(token), Some(given)) => token.accepts(given.as_bytes()),
        _ => false,
    };
    if accepted {
        next.run(request).await
    } else {
        state.stats.unauthorized.increment();
        ApiError::NoMetricsToken.into_response()
    }
}
