//! `GET /health`: liveness plus a real KV round trip, in the spec's JSON shape.

use crate::clock;
use crate::error::AppError;
use crate::layers::kv;
use contact_list_cache_core::envelope::{HealthStatus, WorkerHealth};
use contact_list_cache_core::time::UnixMillis;
use contact_list_cache_core::{VERSION, WORKER_NAME};
use worker::{Env, Request, Response};

/// Always 200: a failing dependency makes the status `degraded`, not the request.
pub async fn get(req: &Request, env: &Env, started: UnixMillis) -> Result<Response, AppError> {
    let kv_available = kv::probe(env).await;
    let now = clock::now();
    let body = WorkerHealth {
        status: HealthStatus::from_checks([kv_available]),
        worker: WORKER_NAME.to_owned(),
        version: VERSION.to_owned(),
        edge_location: edge_location(req),
        kv_available,
        timestamp: now.to_string(),
        response_time: format!("{}ms", now.since(started)),
    };
    let response = Response::from_json(&body)?;
    response.headers().set("Cache-Control", "no-store")?;
    Ok(response)
}

/// The Cloudflare colo (`SFO`, `AMS`, ...) that served the request, `local` outside Cloudflare.
pub fn edge_location(req: &Request) -> String {
    req.cf()
        .map(|cf| cf.colo())
        .filter(|colo| !colo.is_empty())
        .unwrap_or_else(|| "local".to_owned())
}
