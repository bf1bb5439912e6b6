//! Workers KV, the edge layer (`CONTACT_CACHE`).

use crate::config::KV_BINDING;
use crate::layers::LayerError;
use contact_list_cache_core::generation::{Generation, Scope};
use contact_list_cache_core::query::WorkspaceId;
use crate::webcrypto;
use contact_list_cache_core::sealed::Keyring;
use contact_list_cache_core::time::UnixMillis;
use worker::{js_sys, Env};

/// The shortest expiration KV accepts, in seconds; probe keys vanish on their own.
const PROBE_TTL_SECONDS: u64 = 60;

/// The cached body at `key`, if any.
pub async fn get(env: &Env, key: &str) -> Result<Option<String>, LayerError> {
    let store = env.kv(KV_BINDING)?;
    store.get(key).text().await.map_err(|err| LayerError::Failed(err.to_string()))
}

/// When a page was stored, kept in the KV entry's metadata.
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    /// Milliseconds since the epoch at which the page was read from its source.
    t: u64,
}

/// A cached page at `key`, opened with `keyring`, and when it was read from its source (the epoch
/// when unknown, which no freshness window accepts). An entry that does not open (tampered, unknown
/// key id, written for another key) is refused as `Err`, never served.
pub async fn get_sealed(env: &Env, keyring: &Keyring, key: &str) -> Result<Option<(String, UnixMillis)>, LayerError> {
    let store = env.kv(KV_BINDING)?;
    let (value, stored) = store.get(key).text_with_metadata::<Stored>().await.map_err(|err| LayerError::Failed(err.to_string()))?;
    let Some(sealed) = value else { return Ok(None) };
    let body = webcrypto::open(keyring, key, &sealed).await.map_err(|err| LayerError::Failed(format!("KV entry refused: {err}")))?;
    Ok(Some((body, UnixMillis(stored.map_or(0, |s| s.t)))))
}

/// Stores a page at `key`, sealed with the current key of `keyring`, read from its source at
/// `stored_at`, kept for `retention_seconds`.
pub async fn put_sealed(env: &Env, keyring: &Keyring, key: &str, body: &str, stored_at: UnixMillis, retention_seconds: u32) -> Result<(), LayerError> {
    let sealed = webcrypto::seal(keyring, key, body).await.map_err(|err| LayerError::Failed(format!("sealing: {err}")))?;
    write(env, key, &sealed, Some(Stored { t: stored_at.0 }), retention_seconds).await
}

/// Stores `body` at `key` for `ttl_seconds` (at least KV's minimum of 60).
pub async fn put(env: &Env, key: &str, body: &str, ttl_seconds: u32) -> Result<(), LayerError> {
    write(env, key, body, None, ttl_seconds).await
}

/// One KV write, with optional metadata, expiring after `ttl_seconds` (at least 60).
async fn write(env: &Env, key: &str, value: &str, stored: Option<Stored>, ttl_seconds: u32) -> Result<(), LayerError> {
    let failed = |err: worker::kv::KvError| LayerError::Failed(err.to_string());
    let mut put = env.kv(KV_BINDING)?.put(key, value).map_err(failed)?;
    if let Some(stored) = stored {
        put = put.metadata(stored).map_err(failed)?;
    }
    put.expiration_ttl(u64::from(ttl_seconds).max(PROBE_TTL_SECONDS)).execute().await.map_err(failed)
}

/// Whether KV accepts a write and returns it on read. Each probe uses its own key, so concurrent
/// probes never contend for KV's one-write-per-second-per-key limit.
pub async fn probe(env: &Env) -> bool {
    let nonce = format!("{:016x}", (js_sys::Math::random() * 2f64.powi(53)) as u64);
    let key = format!("health:probe:{nonce}");
    put(env, &key, &nonce, PROBE_TTL_SECONDS as u32).await.is_ok()
        && matches!(get(env, &key).await, Ok(Some(read)) if read == nonce)
}

/// How long a generation key lives without being bumped: far longer than any cached page, so
/// a page can never outlive the generation that made it reachable.
const GENERATION_TTL_SECONDS: u32 = 86_400;
/// Attempts at writing one generation (KV allows one write per second to a key).
const GENERATION_WRITE_ATTEMPTS: u32 = 3;

/// The current generation of `scope` in `workspace` (the initial one when never bumped).
pub async fn generation(env: &Env, workspace: &WorkspaceId, scope: Scope) -> Result<Generation, LayerError> {
    match get(env, &scope.generation_key(workspace)).await? {
        None => Ok(Generation::initial()),
        Some(raw) => Generation::parse("generation", &raw).map_err(|err| LayerError::Failed(err.to_string())),
    }
}

/// Writes `generation` for every scope, retrying a rejected write after a second (KV's
/// per-key write rate). Returns the number of KV writes made. Costs one write per scope, however
/// many pages are cached.
pub async fn bump(env: &Env, workspace: &WorkspaceId, scopes: &[Scope], generation: &Generation) -> Result<u32, LayerError> {
    let mut writes = 0;
    for scope in scopes {
        let key = scope.generation_key(workspace);
        let mut attempt = 1;
        loop {
            writes += 1;
            match put(env, &key, generation.as_str(), GENERATION_TTL_SECONDS).await {
                Ok(()) => break,
                Err(err) if attempt < GENERATION_WRITE_ATTEMPTS => {
                    worker::console_warn!("generation write retried: {err}");
                    worker::Delay::from(std::time::Duration::from_millis(1100)).await;
                    attempt += 1;
                }
                Err(err) => return Err(err),
            }
        }
    }
    Ok(writes)
}
