//! HTTP routes of the backend, one module per endpoint family, and the request headers they share.

pub mod audit;
pub mod cache;
pub mod contacts;
pub mod counts;
pub mod health;
pub mod metrics;
pub mod read;
pub mod reads;

use crate::error::ApiError;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use contact_list_cache_core::engine::Mode;
use contact_list_cache_core::envelope::ErrorBody;
use contact_list_cache_core::layer::{CacheLayer, CacheStatus};
use contact_list_cache_core::generation::Generation;
use contact_list_cache_core::query::{QueryError, WorkspaceId};
use contact_list_cache_core::access::refresh_ahead_seal_name;
use contact_list_cache_core::sealed::NONCE_LEN;
use crate::access::Acting;
use crate::state::AppState;
use contact_list_cache_core::time::UnixMillis;

/// Any unknown path: the shared JSON error shape with 404.
pub async fn not_found(uri: Uri) -> (StatusCode, Json<ErrorBody>) {
    let message = format!("no route for {}", uri.path());
    (StatusCode::NOT_FOUND, Json(ErrorBody::new("not_found", message, None)))
}

/// The value of header `name`, trimmed (`None` when absent or not visible ASCII).
pub(crate) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok()).map(str::trim)
}

/// `X-Workspace-ID`: the workspace the worker verified the caller belongs to.
pub fn workspace_header(headers: &HeaderMap) -> Result<WorkspaceId, ApiError> {
    let raw = header(headers, "x-workspace-id").unwrap_or_default();
    Ok(WorkspaceId::parse("X-Workspace-ID", raw)?)
}

/// The answer to a refresh-ahead read (`Acting::Ahead`): its body sealed with the cache's
/// keyring under [`refresh_ahead_seal_name`] of `redis_key`, its status and headers kept; any
/// other answer as it is.
pub async fn answer_for(state: &AppState, acting: &Acting, redis_key: &str, response: Response) -> Result<Response, ApiError> {
    if !matches!(acting, Acting::Ahead(_)) || !response.status().is_success() {
        return Ok(response);
    }
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.map_err(|err| ApiError::unavailable(CacheLayer::Redis, anyhow::anyhow!("reading an answer to seal: {err}")))?;
    let text = String::from_utf8(body.to_vec()).map_err(|_| ApiError::unavailable(CacheLayer::Redis, anyhow::anyhow!("an answer that is not text")))?;
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::getrandom(&mut nonce).expect("the OS provides randomness");
    let sealed = state.config.keyring.seal(&refresh_ahead_seal_name(redis_key), &text, nonce);
    let mut response = Response::from_parts(parts, axum::body::Body::from(sealed));
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(response)
}

/// `X-Cache-Generation`: the generation of the request's scope, as the worker read it (the
/// initial generation when absent). Part of every Redis key, so an invalidation at the edge makes
/// older Redis entries unreachable too.
pub fn generation_header(headers: &HeaderMap) -> Result<Generation, ApiError> {
    match header(headers, "x-cache-generation") {
        None | Some("") => Ok(Generation::initial()),
        Some(raw) => Ok(Generation::parse("X-Cache-Generation", raw)?),
    }
}

/// `X-Cache-Superseded-Generation` and `X-Cache-Superseded-Until` (milliseconds since the
/// epoch): the generation an invalidation superseded and until when its copies may be served.
pub fn superseded_header(headers: &HeaderMap) -> Result<Option<(Generation, UnixMillis)>, ApiError> {
    let (Some(previous), Some(until)) = (header(headers, "x-cache-superseded-generation"), header(headers, "x-cache-superseded-until")) else {
        return Ok(None);
    };
    let previous = Generation::parse("X-Cache-Superseded-Generation", previous)?;
    let until = until.parse().map_err(|_| bad_request("X-Cache-Superseded-Until", "X-Cache-Superseded-Until must be milliseconds since the epoch"))?;
    Ok(Some((previous, UnixMillis(until))))
}

/// `Bypass` when the request asks to skip cached copies (`Cache-Control: no-cache`).
pub fn read_mode(headers: &HeaderMap) -> Mode {
    if contact_list_cache_core::layer::wants_fresh(header(headers, CACHE_CONTROL.as_str())) {
        Mode::Bypass
    } else {
        Mode::Normal
    }
}

/// Whether `X-Cache-Only: true` was sent.
pub fn cache_only(headers: &HeaderMap) -> bool {
    header(headers, "x-cache-only").is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// A JSON body already serialized (as stored in Redis), with the cache headers.
pub fn cached_json(body: String, status: CacheStatus, layer: CacheLayer, key: &str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert("x-cache-status", HeaderValue::from_static(status.as_str()));
    headers.insert("x-cache-layer", HeaderValue::from_static(layer.as_str()));
    if let Ok(key) = HeaderValue::from_str(key) {
        headers.insert("x-cache-key", key);
    }
    response
}

/// A request parameter error as an [`ApiError`].
pub fn bad_request(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::BadRequest(QueryError::new(field, message))
}
