//! `GET /health`: liveness plus a real KV round trip and the reachability of the backend and of
//! Supabase, each within a short budget, in the spec's JSON shape plus those two fields.

use crate::edge::Edge;
use crate::error::AppError;
use crate::layers::{backend, kv, supabase};
use crate::runtime::now;
use contact_list_cache_core::envelope::{HealthStatus, WorkerHealth};
use contact_list_cache_core::{VERSION, WORKER_NAME};
use futures_util::future::join3;
use worker::{Env, Response};

/// The budget of each reachability check, in milliseconds.
const PROBE_BUDGET_MS: u32 = 1000;

/// Always 200: a failing dependency makes the status `degraded`, not the request.
pub async fn get(env: &Env, edge: &Edge) -> Result<Response, AppError> {
    let upstreams = edge.config().ok().and_then(|config| config.upstreams().ok());
    let (kv_available, backend_available, supabase_available) = join3(
        kv::probe(env),
        async { match &upstreams { Some(up) => backend::reachable(up, PROBE_BUDGET_MS).await, None => false } },
        async { match &upstreams { Some(up) => supabase::reachable(up, PROBE_BUDGET_MS).await, None => false } },
    )
    .await;
    let now = now();
    let body = WorkerHealth {
        status: HealthStatus::from_checks([kv_available, backend_available, supabase_available]),
        worker: WORKER_NAME.to_owned(),
        version: VERSION.to_owned(),
        edge_location: edge.location.clone(),
        kv_available,
        backend_available,
        supabase_available,
        timestamp: now.to_string(),
        response_time: format!("{}ms", now.since(edge.started)),
    };
    let response = Response::from_json(&body)?;
    response.headers().set("Cache-Control", "no-store")?;
    Ok(response)
}
