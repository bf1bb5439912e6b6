//! The backend's one error type: typed inside, the shared JSON error shape outside.

use crate::db::DbError;
use crate::redis_store::RedisError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use contact_list_cache_core::envelope::ErrorBody;
use contact_list_cache_core::query::QueryError;

/// Everything a handler can fail with. Details of server-side failures are logged, never sent.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("X-Internal-Auth is missing or wrong")]
    Unauthorized,
    #[error("{0}")]
    BadRequest(#[from] QueryError),
    #[error("the user is not a member of this workspace")]
    NotAMember,
    #[error("no cached entry for this key")]
    CacheMiss,
    #[error("redis is unavailable")]
    Redis(#[from] RedisError),
    #[error("the database is unavailable")]
    Database(#[from] DbError),
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "invalid_parameter"),
            Self::NotAMember => (StatusCode::FORBIDDEN, "forbidden"),
            Self::CacheMiss => (StatusCode::NOT_FOUND, "cache_miss"),
            Self::Redis(_) => (StatusCode::SERVICE_UNAVAILABLE, "redis_unavailable"),
            Self::Database(_) => (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        match &self {
            Self::Redis(err) => tracing::warn!(error = %err, "redis call failed"),
            Self::Database(err) => tracing::warn!(error = %err, "database call failed"),
            _ => {}
        }
        let field = match &self {
            Self::BadRequest(err) => Some(err.field.clone()),
            _ => None,
        };
        (status, Json(ErrorBody::new(code, self.to_string(), field))).into_response()
    }
}
