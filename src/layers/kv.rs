//! Workers KV, the edge layer (`CONTACT_CACHE`).

use crate::config::KV_BINDING;
use worker::{js_sys, Env};

/// The shortest expiration KV accepts, in seconds; probe keys vanish on their own.
const PROBE_TTL_SECONDS: u64 = 60;

/// Whether KV accepts a write and returns it on read. Each probe uses its own key, so concurrent
/// probes never contend for KV's one-write-per-second-per-key limit.
pub async fn probe(env: &Env) -> bool {
    let Ok(store) = env.kv(KV_BINDING) else {
        return false;
    };
    let nonce = format!("{:016x}", (js_sys::Math::random() * 2f64.powi(53)) as u64);
    let key = format!("health:probe:{nonce}");
    let written = match store.put(&key, nonce.as_str()) {
        Ok(put) => put.expiration_ttl(PROBE_TTL_SECONDS).execute().await.is_ok(),
        Err(_) => false,
    };
    written && matches!(store.get(&key).text().await, Ok(Some(read)) if read == nonce)
}
