//! The read path shared by lists and counts: Redis first (unless skipped), then the database,
//! writing the database's answer back to Redis without delaying the response.

use crate::error::ApiError;
use crate::redis_store::Sealed;
use crate::routes::cached_json;
use crate::state::AppState;
use axum::response::Response;
use contact_list_cache_core::layer::{CacheLayer, CacheStatus};
use std::future::Future;
use std::sync::Arc;

/// How a request may use the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CachePolicy {
    /// Redis or nothing: a miss is 404 and the database is never touched; Redis down is 503.
    CacheOnly,
    /// Redis, then the database; a failing Redis is skipped.
    ReadThrough,
    /// The database, then refresh Redis (`Cache-Control: no-cache`).
    Refresh,
}

/// Answers `key` per `policy`, loading from the database with `load` (a serialized JSON body)
/// and keeping it in Redis for `ttl_seconds`.
pub async fn serve<F, Fut>(state: &Arc<AppState>, key: String, ttl_seconds: u32, policy: CachePolicy, load: F) -> Result<Response, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<String, ApiError>>,
{
    if policy != CachePolicy::Refresh {
        match state.redis.get_sealed(&state.config.keyring, &key).await {
            Ok(Sealed::Found(body)) => {
                state.stats.hits.increment();
                return Ok(cached_json(body, CacheStatus::Hit, CacheLayer::Redis, &key));
            }
            Ok(Sealed::Missing) => state.stats.misses.increment(),
            Ok(Sealed::Refused(err)) => {
                state.stats.misses.increment();
                state.stats.refused_entries.increment();
                tracing::warn!(error = %err, "a Redis entry was refused");
            }
            Err(err) if policy == CachePolicy::CacheOnly => {
                state.stats.redis_errors.increment();
                return Err(err.into());
            }
            Err(err) => {
                state.stats.redis_errors.increment();
                tracing::warn!(error = %err, "redis read skipped");
            }
        }
    }
    if policy == CachePolicy::CacheOnly {
        return Err(ApiError::CacheMiss);
    }
    state.stats.database_queries.increment();
    let body = load().await?;
    let writer = Arc::clone(state);
    let (stored_key, stored_body) = (key.clone(), body.clone());
    tokio::spawn(async move {
        match writer.redis.set_sealed(&writer.config.keyring, &stored_key, &stored_body, ttl_seconds).await {
            Ok(()) => writer.stats.stores.increment(),
            Err(err) => {
                writer.stats.redis_errors.increment();
                tracing::warn!(error = %err, "redis write-back skipped");
            }
        }
    });
    let status = if policy == CachePolicy::Refresh { CacheStatus::Bypass } else { CacheStatus::Miss };
    Ok(cached_json(body, status, CacheLayer::Database, &key))
}
