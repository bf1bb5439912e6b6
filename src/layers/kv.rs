//! Workers KV, the edge layer (`CONTACT_CACHE`).

use crate::config::KV_BINDING;
use crate::layers::LayerError;
use worker::{js_sys, Env};

/// The shortest expiration KV accepts, in seconds; probe keys vanish on their own.
const PROBE_TTL_SECONDS: u64 = 60;

/// The cached body at `key`, if any.
pub async fn get(env: &Env, key: &str) -> Result<Option<String>, LayerError> {
    let store = env.kv(KV_BINDING)?;
    store.get(key).text().await.map_err(|err| LayerError::Failed(err.to_string()))
}

/// Stores `body` at `key` for `ttl_seconds` (at least KV's minimum of 60).
pub async fn put(env: &Env, key: &str, body: &str, ttl_seconds: u32) -> Result<(), LayerError> {
    let store = env.kv(KV_BINDING)?;
    let put = store.put(key, body).map_err(|err| LayerError::Failed(err.to_string()))?;
    put.expiration_ttl(u64::from(ttl_seconds).max(PROBE_TTL_SECONDS))
        .execute()
        .await
        .map_err(|err| LayerError::Failed(err.to_string()))
}

/// Whether KV accepts a write and returns it on read. Each probe uses its own key, so concurrent
/// probes never contend for KV's one-write-per-second-per-key limit.
pub async fn probe(env: &Env) -> bool {
    let nonce = format!("{:016x}", (js_sys::Math::random() * 2f64.powi(53)) as u64);
    let key = format!("health:probe:{nonce}");
    put(env, &key, &nonce, PROBE_TTL_SECONDS as u32).await.is_ok()
        && matches!(get(env, &key).await, Ok(Some(read)) if read == nonce)
}
