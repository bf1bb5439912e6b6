//! `GET /metrics`: this isolate's numbers over the last five minutes, as the spec's JSON or in the
//! Prometheus text format (`?format=prometheus` or `Accept: text/plain`), and the edge's
//! `/api/cache/stats`. Protected by a bearer token when `METRICS_TOKEN` is set.

use crate::edge::Edge;
use crate::error::AppError;
use crate::layers::{backend, kv};
use crate::metrics;
use crate::runtime::now;
use contact_list_cache_core::access::bearer_token;
use contact_list_cache_core::capacity::assess;
use contact_list_cache_core::metrics::prometheus;
use contact_list_cache_core::secure::secrets_match;
use contact_list_cache_core::WORKER_NAME;
use serde_json::{json, Value};
use worker::{Request, Response};

/// With `METRICS_TOKEN` set, the caller must send it as a bearer token.
fn guard(req: &Request, edge: &Edge) -> Result<(), AppError> {
    if let Some(token) = &edge.config()?.metrics_token {
        let header = req.headers().get("Authorization")?.unwrap_or_default();
        let given = bearer_token(&header).unwrap_or_default();
        if !secrets_match(given.as_bytes(), token.expose().as_bytes()) {
            return Err(AppError::Unauthorized("metrics need Authorization: Bearer <METRICS_TOKEN>"));
        }
    }
    Ok(())
}

pub fn get(req: &Request, edge: &Edge) -> Result<Response, AppError> {
    guard(req, edge)?;
    let url = req.url()?;
    let wants_text = url.query_pairs().any(|(k, v)| k == "format" && v == "prometheus")
        || req.headers().get("Accept")?.is_some_and(|accept| accept.contains("text/plain") && !accept.contains("application/json"));
    let location = &edge.location;
    let snapshot = metrics::snapshot();
    let response = if wants_text {
        let audit = crate::audit::counts();
        let mut text = prometheus(&snapshot, location);
        text.push_str(&format!(
            "# HELP contact_cache_audit_records_total Audit records this isolate sent to the backend, by result.\n\
             # TYPE contact_cache_audit_records_total counter\n\
             contact_cache_audit_records_total{{result=\"written\"}} {}\n\
             contact_cache_audit_records_total{{result=\"failed\"}} {}\n",
            audit.written, audit.failed
        ));
        let response = Response::ok(text)?;
        response.headers().set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")?;
        response
    } else {
        Response::from_json(&json!({
            "worker": WORKER_NAME,
            "edge_location": location,
            "scope": snapshot.scope,
            "metrics": snapshot.metrics,
            "analytics": snapshot.analytics,
            "layers": snapshot.layers,
            "latency": snapshot.latency,
            "l0": l0_usage(edge),
            "audit": crate::audit::counts(),
            "timestamp": now().to_string(),
        }))?
    };
    response.headers().set("Cache-Control", "no-store")?;
    Ok(response)
}

/// `GET /api/cache/stats` at the edge: the backend's Redis statistics (the worker adds the
/// internal auth) beside this isolate's own numbers. Guarded like `/metrics`.
pub async fn stats(req: &Request, edge: &Edge) -> Result<Response, AppError> {
    guard(req, edge)?;
    let upstreams = edge.config()?.upstreams()?;
    let backend = match backend::stats(upstreams).await {
        Ok(body) => body.get("data").cloned().unwrap_or(body),
        Err(err) => json!({"status": "unreachable", "error": err.to_string()}),
    };
    let snapshot = metrics::snapshot();
    let config = edge.config()?;
    let written = kv::written_estimate();
    let kv_usage = assess("KV storage (this isolate's estimate)", written.bytes, Some(config.kv_storage_limit_bytes), config.kv_warn_ratio);
    let redis_warning = backend.pointer("/redis/memory/warning").and_then(Value::as_str).map(str::to_owned);
    let warnings: Vec<String> = kv_usage.warning.iter().cloned().chain(redis_warning).collect();
    let response = Response::from_json(&json!({
        "success": true,
        "data": {
            "warnings": warnings,
            "kv": {
                "estimate": true,
                "basis": "entries this isolate wrote to KV that have not expired yet; other isolates and locations are not counted",
                "entries": written.entries,
                "bytes": written.bytes,
                "lower_bound": written.lower_bound,
                "usage": kv_usage,
            },
            "edge": {
                "edge_location": edge.location,
                "scope": snapshot.scope,
                "analytics": snapshot.analytics,
                "layers": snapshot.layers,
                "latency": snapshot.latency,
                "l0": l0_usage(edge),
            },
            "backend": backend,
        },
        "timestamp": now().to_string(),
    }))?;
    response.headers().set("Cache-Control", "no-store")?;
    Ok(response)
}

/// This isolate's L0, or `null` when the configuration cannot be read.
fn l0_usage(edge: &Edge) -> Value {
    edge.config().ok().and_then(|config| config.upstreams().ok()).map_or(Value::Null, |upstreams| crate::layers::l0::usage(upstreams.l0))
}
