//! The backend's one error type: typed inside, the shared JSON error shape outside.

use crate::db::DbError;
use crate::redis_store::RedisError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use contact_list_cache_core::engine::{LayerError, ReadError};
use contact_list_cache_core::envelope::ErrorBody;
use contact_list_cache_core::layer::CacheLayer;
use contact_list_cache_core::query::QueryError;

/// Everything a handler can fail with. Details of server-side failures are logged, never sent.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("X-Internal-Auth is missing or wrong")]
    Unauthorized,
    /// A user-scoped read without a valid user credential (the message says what is wrong).
    #[error("{0}")]
    NoUser(&'static str),
    #[error("metrics need Authorization: Bearer <METRICS_TOKEN>")]
    NoMetricsToken,
    #[error("{0}")]
    BadRequest(#[from] QueryError),
    #[error("the user is not a member of this workspace")]
    NotAMember,
    #[error("the audit log is for the workspace's owners and admins")]
    NotAnAdmin,
    #[error("no cached entry for this key")]
    CacheMiss,
    /// Redis or PostgreSQL failed; `cause` (with its context) goes to the logs only.
    #[error("{}", if is_redis(*.layer) { "redis is unavailable" } else { "the database is unavailable" })]
    Unavailable { layer: CacheLayer, cause: anyhow::Error },
}

/// The backend's layers are Redis and PostgreSQL (KV and the fallback are the worker's).
fn is_redis(layer: CacheLayer) -> bool {
    layer == CacheLayer::Redis
}

impl ApiError {
    /// `layer` failed; `cause` says how, for the logs.
    pub fn unavailable(layer: CacheLayer, cause: impl Into<anyhow::Error>) -> Self {
        Self::Unavailable { layer, cause: cause.into() }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Unauthorized | Self::NoUser(_) | Self::NoMetricsToken => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "invalid_parameter"),
            Self::NotAMember | Self::NotAnAdmin => (StatusCode::FORBIDDEN, "forbidden"),
            Self::CacheMiss => (StatusCode::NOT_FOUND, "cache_miss"),
            Self::Unavailable { layer, .. } if is_redis(*layer) => (StatusCode::SERVICE_UNAVAILABLE, "redis_unavailable"),
            Self::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable"),
        }
    }
}

impl From<RedisError> for ApiError {
    fn from(err: RedisError) -> Self {
        Self::unavailable(CacheLayer::Redis, err)
    }
}

impl From<DbError> for ApiError {
    fn from(err: DbError) -> Self {
        Self::unavailable(CacheLayer::Database, err)
    }
}

impl From<LayerError> for ApiError {
    fn from(err: LayerError) -> Self {
        Self::unavailable(err.layer(), err)
    }
}

impl From<ReadError> for ApiError {
    /// A source that turned the caller away is 403. Otherwise the last layer that failed (the
    /// lowest one asked) answers for the read; when none failed, or entries were only refused,
    /// nothing held the page: a cache miss (what a cache-only read answers).
    fn from(err: ReadError) -> Self {
        match err {
            ReadError::Forbidden => Self::NotAMember,
            ReadError::Unavailable(failures) => {
                let failed = failures.into_iter().rev().find(|err| !matches!(err, LayerError::Refused { .. }));
                failed.map_or(Self::CacheMiss, Self::from)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let Self::Unavailable { layer, cause } = &self {
            tracing::warn!(layer = layer.as_str(), error = format!("{cause:#}"), "{self}");
        }
        let field = match &self {
            Self::BadRequest(err) => Some(err.field.clone()),
            _ => None,
        };
        (status, Json(ErrorBody::new(code, self.to_string(), field))).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(err: ApiError) -> &'static str {
        err.status_and_code().1
    }

    #[test]
    fn a_read_that_found_nothing_is_a_cache_miss_even_past_refused_entries() {
        assert_eq!(code(ReadError::Unavailable(vec![]).into()), "cache_miss");
        let refused = LayerError::Refused { layer: CacheLayer::Redis, reason: "tampered".into() };
        assert_eq!(code(ReadError::Unavailable(vec![refused]).into()), "cache_miss");
    }

    #[test]
    fn the_lowest_layer_that_failed_answers_for_the_read() {
        let redis = LayerError::Timeout { layer: CacheLayer::Redis, budget_ms: 1000 };
        let database = LayerError::failed(CacheLayer::Database, "down");
        assert_eq!(code(ReadError::Unavailable(vec![redis.clone()]).into()), "redis_unavailable");
        assert_eq!(code(ReadError::Unavailable(vec![redis, database]).into()), "database_unavailable");
        assert_eq!(code(ReadError::Forbidden.into()), "forbidden");
    }

    #[test]
    fn the_message_names_the_layer_and_hides_the_cause() {
        let err = ApiError::unavailable(CacheLayer::Database, anyhow::anyhow!("password authentication failed"));
        assert_eq!(err.to_string(), "the database is unavailable");
        assert_eq!(ApiError::from(LayerError::failed(CacheLayer::Redis, "refused")).to_string(), "redis is unavailable");
    }
}
