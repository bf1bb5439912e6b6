//! The one read path of the list and counts routes: the core's read-through engine over this
//! service's Redis entry and PostgreSQL (`crate::layers`), its steps counted for
//! `/api/cache/stats`, its answer sent with the cache headers, its write-back to Redis run in a
//! task of its own so the response never waits for it.

use crate::error::ApiError;
use crate::layers::postgres::Postgres;
use crate::layers::redis::RedisEntry;
use crate::layers::runtime::Tokio;
use crate::routes::cached_json;
use crate::state::AppState;
use axum::response::Response;
use contact_list_cache_core::access::Membership;
use crate::layers::runtime::Leased;
use contact_list_cache_core::time::UnixMillis;
use contact_list_cache_core::engine::{Engine, Event, GenerationState, Mode, Outcome, Request};
use std::sync::Arc;

/// Redis, then PostgreSQL. Reads are not coalesced here (Redis is what concurrent requests share,
/// and the worker coalesces the reads it sends), but a stale copy's refresh runs once per lease.
type ReadEngine = Engine<RedisEntry, Postgres, Tokio, Leased>;

/// One page to read.
pub struct Read {
    /// Its Redis key, derived from the request (and its generation) by the core.
    pub key: String,
    /// How long it is fresh, and kept in Redis.
    pub ttl_seconds: u32,
    /// Where it is read on a miss; `None` for a cache-only read, which answers a miss with 404
    /// and a failing Redis with 503.
    pub source: Option<Postgres>,
    /// `Bypass` skips Redis and refreshes it (`BYPASS`).
    pub mode: Mode,
    /// The page's key under the generation an invalidation superseded, and until when its copy
    /// may be served, labelled `STALE`, while the current page is read (the worker's staleness
    /// bound, `X-Cache-Superseded-Generation` and `X-Cache-Superseded-Until`).
    pub superseded: Option<(String, UnixMillis)>,
}

/// Reads `read` and answers it as stored, with `X-Cache-Status`, `X-Cache-Layer` and
/// `X-Cache-Key`. The caller's membership is taken as confirmed: the route confirmed it before a
/// read that may be served from Redis (`crate::access::require_member`, or in PostgreSQL
/// directly), and the source checks it again in the statement that reads the rows.
pub async fn serve(state: &Arc<AppState>, read: Read) -> Result<Response, ApiError> {
    let Read { key, ttl_seconds, source, mode, superseded } = read;
    let policy = state.config.read_policy(ttl_seconds);
    let retention = policy.freshness.retention_seconds();
    let entry = |key: String| RedisEntry::new(Arc::clone(&state.redis), Arc::clone(&state.config.keyring), key, retention);
    let (superseded, superseded_until) = match superseded {
        Some((key, until)) => (vec![entry(key)], Some(until)),
        None => (Vec::new(), None),
    };
    let caches = vec![entry(key.clone())];
    let engine: ReadEngine = Engine { caches, superseded, sources: source.into_iter().collect(), policy, runtime: Tokio, coalescer: state.leases.clone() };
    let request = Request { mode, membership: Membership::Confirmed, generation: GenerationState::Known, key, superseded_until };
    let Outcome { result, steps, after } = engine.read(&request).await;
    state.stats.record(&steps);
    for step in &steps {
        if let Event::Failed(err) = &step.event {
            tracing::warn!(layer = step.layer.as_str(), error = %err, "a layer did not answer the read");
        }
    }
    let served = result?;
    let mut response = cached_json(served.body, served.status, served.layer, &request.key);
    if let Some(age) = served.age {
        response.headers_mut().insert("age", age.into());
    }
    if !after.is_empty() {
        let state = Arc::clone(state);
        let writes = after.writes().count();
        tokio::spawn(async move {
            let failures = engine.finish(&request, after).await;
            for err in &failures {
                tracing::warn!(layer = err.layer().as_str(), error = %err, "write-back skipped");
            }
            state.stats.record_writes(writes, &failures);
        });
    }
    Ok(response)
}
