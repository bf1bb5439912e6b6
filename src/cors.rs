//! CORS headers on every response and the answer to preflight requests.

use contact_list_cache_core::cors::{
    CorsPolicy, ALLOW_HEADERS, ALLOW_METHODS, EXPOSE_HEADERS, MAX_AGE_SECONDS,
};
use worker::{Headers, Response, Result};

/// Adds the CORS headers that `policy` allows for a request from `origin`.
pub fn apply(headers: &Headers, policy: &CorsPolicy, origin: Option<&str>) -> Result<()> {
    if policy.varies_by_origin() {
        headers.append("Vary", "Origin")?;
    }
    if let Some(allowed) = policy.allow_origin(origin) {
        headers.set("Access-Control-Allow-Origin", &allowed)?;
        headers.set("Access-Control-Expose-Headers", EXPOSE_HEADERS)?;
    }
    Ok(())
}

/// `OPTIONS` on any path: 204 with the allowed methods and headers.
pub fn preflight() -> Result<Response> {
    let headers = Headers::new();
    headers.set("Access-Control-Allow-Methods", ALLOW_METHODS)?;
    headers.set("Access-Control-Allow-Headers", ALLOW_HEADERS)?;
    headers.set("Access-Control-Max-Age", &MAX_AGE_SECONDS.to_string())?;
    Ok(Response::empty()?.with_status(204).with_headers(headers))
}
