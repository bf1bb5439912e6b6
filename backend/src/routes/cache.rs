//! `POST /api/cache/store`, `POST /api/cache/invalidate` and `GET /api/cache/stats`.

use crate::capture::status::CaptureReport;
use crate::error::ApiError;
use crate::redis_store::RedisInfo;
use crate::routes::bad_request;
use crate::state::AppState;
use crate::stats::{count_key, hit_rate, StatsSnapshot, WorkspaceKeys};
use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::Json;
use contact_list_cache_core::capacity::{assess, Usage};
use contact_list_cache_core::invalidation::KeyPattern;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The longest TTL a stored entry may ask for, in seconds.
pub const MAX_TTL_SECONDS: i64 = 3600;
/// The largest entry stored, serialized (a page of 100 contacts is about 30 KiB).
pub const MAX_ENTRY_BYTES: usize = 512 * 1024;
/// The longest key stored.
pub const MAX_KEY_LEN: usize = 512;

#[derive(Debug, Deserialize)]
pub struct StoreRequest {
    pub key: String,
    pub data: Value,
    pub ttl: Option<i64>,
}

/// Stores `data` at `key` for `ttl` seconds (default CACHE_TTL_CONTACTS_LIST, at most an hour).
/// Keys must be in the `contacts:{workspace}…` or `counts:{workspace}…` namespaces.
pub async fn store(State(state): State<Arc<AppState>>, body: Result<Json<StoreRequest>, JsonRejection>) -> Result<Json<Value>, ApiError> {
    let Json(request) = body.map_err(|rejection| bad_request("body", rejection.body_text()))?;
    let key_ok = request.key.len() <= MAX_KEY_LEN
        && !request.key.contains('*')
        && KeyPattern::parse(&request.key).is_ok_and(|pattern| pattern.glob == request.key);
    if !key_ok {
        return Err(bad_request(
            "key",
            "key must be contacts:{workspace-id}… or counts:{workspace-id}…, without wildcards, at most 512 characters",
        ));
    }
    let ttl = request.ttl.unwrap_or(i64::from(state.config.ttl_contacts_list));
    if !(1..=MAX_TTL_SECONDS).contains(&ttl) {
        return Err(bad_request("ttl", format!("ttl must be from 1 to {MAX_TTL_SECONDS} seconds")));
    }
    let payload = serde_json::to_string(&request.data).expect("a JSON value serializes");
    if payload.len() > MAX_ENTRY_BYTES {
        return Err(bad_request("data", format!("data must be at most {MAX_ENTRY_BYTES} bytes serialized")));
    }
    state.redis.set_sealed(&state.config.keyring, &request.key, &payload, ttl as u32).await.inspect_err(|_| state.stats.redis_errors.increment())?;
    state.stats.stores.increment();
    Ok(Json(json!({"success": true, "data": {"key": request.key, "ttl": ttl, "bytes": payload.len()}})))
}

#[derive(Debug, Deserialize)]
pub struct InvalidateRequest {
    pub pattern: String,
}

/// Removes the keys matching `pattern`, which must stay within one workspace.
pub async fn invalidate(State(state): State<Arc<AppState>>, body: Result<Json<InvalidateRequest>, JsonRejection>) -> Result<Json<Value>, ApiError> {
    let Json(request) = body.map_err(|rejection| bad_request("body", rejection.body_text()))?;
    let pattern = KeyPattern::parse(&request.pattern).map_err(|err| bad_request("pattern", err.to_string()))?;
    let removed = state.redis.remove_matching(&pattern).await.inspect_err(|_| state.stats.redis_errors.increment())?;
    state.stats.invalidations.increment();
    state.stats.keys_removed.add(removed);
    tracing::info!(pattern = %pattern.glob, removed, "invalidated");
    Ok(Json(json!({"success": true, "data": {"pattern": pattern.glob, "removed": removed}})))
}

/// The most keys one stats call scans (SCAN, a thousand per round trip); beyond it the counts
/// per workspace are reported as truncated.
pub const STATS_SCAN_MAX_KEYS: u64 = 100_000;

#[derive(Debug, Serialize)]
pub struct CacheStats {
    pub service: StatsSnapshot,
    pub redis: RedisStats,
    /// Change capture's backlog and counters.
    pub change_capture: CaptureReport,
}

#[derive(Debug, Serialize)]
pub struct RedisStats {
    pub mode: &'static str,
    #[serde(flatten)]
    pub info: RedisInfo,
    pub hit_rate: f64,
    /// `used_memory` against `REDIS_MEMORY_LIMIT_BYTES` (else `maxmemory`), with its warning.
    pub memory: Usage,
    /// Keys under each workspace's hash tag, counted with SCAN on every node.
    pub keys_per_workspace: BTreeMap<String, WorkspaceKeys>,
    /// Whether the scan stopped at [`STATS_SCAN_MAX_KEYS`], so the counts are lower bounds.
    pub keys_per_workspace_truncated: bool,
}

/// The service's counters since start, Redis's own numbers (summed over cluster primaries), its
/// memory against the configured limit, and its keys per workspace.
pub async fn stats(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let texts = state.redis.info().await.inspect_err(|_| state.stats.redis_errors.increment())?;
    let info = RedisInfo::from_texts(&texts);
    let mut keys_per_workspace = BTreeMap::new();
    let truncated = state
        .redis
        .scan_each("*:{*}*", STATS_SCAN_MAX_KEYS, |key| count_key(&mut keys_per_workspace, key))
        .await
        .inspect_err(|_| state.stats.redis_errors.increment())?;
    let limit = state.config.redis_memory_limit_bytes.or(Some(info.maxmemory_bytes));
    let memory = assess("Redis memory", info.used_memory_bytes, limit, state.config.redis_memory_warn_ratio);
    if let Some(warning) = &memory.warning {
        tracing::warn!(%warning, "redis memory near its limit");
    }
    let stats = CacheStats {
        service: state.stats.snapshot(),
        redis: RedisStats {
            mode: if state.redis.is_cluster() { "cluster" } else { "single" },
            hit_rate: hit_rate(info.keyspace_hits, info.keyspace_misses),
            info,
            memory,
            keys_per_workspace,
            keys_per_workspace_truncated: truncated,
        },
        change_capture: crate::routes::health::capture_report(&state),
    };
    Ok(Json(json!({"success": true, "data": stats})))
}
