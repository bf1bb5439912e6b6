//! `GET /health`: liveness from what costs nothing (the isolate's configuration and bindings: no
//! KV operation, no subrequest), so anyone may call it as often as they like. `GET /health?deep=1`,
//! guarded like `/metrics`, is the spec's check: a real KV round trip and the reachability of the
//! backend and of Supabase, each within a short budget, in the spec's JSON shape plus those two
//! fields.

use crate::config::KV_BINDING;
use crate::edge::Edge;
use crate::error::AppError;
use crate::handlers::metrics::guard;
use crate::layers::{backend, kv, supabase};
use crate::runtime::now;
use contact_list_cache_core::envelope::{HealthStatus, WorkerHealth};
use contact_list_cache_core::query::QueryError;
use contact_list_cache_core::{VERSION, WORKER_NAME};
use futures_util::future::join3;
use serde::Serialize;
use worker::{Env, Request, Response};

/// The budget of each reachability check, in milliseconds.
const PROBE_BUDGET_MS: u32 = 1000;

/// Which check a request asks for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Depth {
    /// The isolate's configuration only.
    Shallow,
    /// KV, the backend and Supabase, each called.
    Deep,
}

impl Depth {
    fn parse(req: &Request) -> Result<Self, AppError> {
        let url = req.url()?;
        match url.query_pairs().find(|(name, _)| name == "deep").as_ref().map(|(_, value)| value.as_ref()) {
            None | Some("0" | "false") => Ok(Self::Shallow),
            Some("1" | "true") => Ok(Self::Deep),
            Some(_) => Err(AppError::BadRequest(QueryError::new("deep", "deep must be 1 or 0"))),
        }
    }
}

/// The plain `/health` body: what the isolate knows without asking anything.
#[derive(Serialize)]
struct ShallowHealth {
    status: HealthStatus,
    worker: &'static str,
    version: &'static str,
    edge_location: String,
    /// Every variable and secret the read path needs is set and well formed.
    configured: bool,
    /// The KV namespace is bound (whether it answers is the deep check's question).
    kv_bound: bool,
    timestamp: String,
    response_time: String,
}

/// Always 200: a failing dependency (or configuration) makes the status `degraded`, not the
/// request. The deep check answers 401 without the metrics token (503 in production when none is
/// set).
pub async fn get(req: &Request, env: &Env, edge: &Edge) -> Result<Response, AppError> {
    let response = match Depth::parse(req)? {
        Depth::Shallow => shallow(env, edge)?,
        Depth::Deep => {
            guard(req, edge)?;
            deep(env, edge).await?
        }
    };
    response.headers().set("Cache-Control", "no-store")?;
    Ok(response)
}

fn shallow(env: &Env, edge: &Edge) -> Result<Response, AppError> {
    let configured = edge.config().is_ok_and(|config| config.upstreams().is_ok());
    // A property of `env`: no call to KV.
    let kv_bound = env.kv(KV_BINDING).is_ok();
    let now = now();
    Ok(Response::from_json(&ShallowHealth {
        status: HealthStatus::from_checks([configured, kv_bound]),
        worker: WORKER_NAME,
        version: VERSION,
        edge_location: edge.location.clone(),
        configured,
        kv_bound,
        timestamp: now.to_string(),
        response_time: format!("{}ms", now.since(edge.started)),
    })?)
}

async fn deep(env: &Env, edge: &Edge) -> Result<Response, AppError> {
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
    Ok(Response::from_json(&body)?)
}
