//! `GET /metrics`: this isolate's numbers over the last five minutes, as the spec's JSON or in the
//! Prometheus text format (`?format=prometheus` or `Accept: text/plain`), and the edge's
//! `/api/cache/stats`. Protected by a bearer token when `METRICS_TOKEN` is set, and not served in
//! production without it (see [`guard`]).

use crate::config::Environment;
use crate::edge::Edge;
use crate::error::AppError;
use crate::layers::{backend, kv};
use crate::metrics;
use crate::runtime::now;
use contact_list_cache_core::access::bearer_token;
use contact_list_cache_core::capacity::assess;
use contact_list_cache_core::metrics::prometheus;
use contact_list_cache_core::WORKER_NAME;
use serde_json::{json, Value};
use worker::{Request, Response};

/// Who may read the observers (`/metrics`, `/api/cache/stats`, the deep `/health`): with
/// `METRICS_TOKEN` set, a caller sending it (or, while it rotates, `METRICS_TOKEN_PREVIOUS`) as a
/// bearer token; without it, anyone outside production and no one in production (503 naming it).
pub fn guard(req: &Request, edge: &Edge) -> Result<(), AppError> {
    let config = edge.config()?;
    match (&config.metrics_token, config.environment) {
        (Some(token), _) => {
            let header = req.headers().get("Authorization")?.unwrap_or_default();
            let given = bearer_token(&header).unwrap_or_default();
            if !token.accepts(given.as_bytes()) {
                return Err(AppError::Unauthorized("this route needs Authorization: Bearer <METRICS_TOKEN>"));
            }
            Ok(())
        }
        (None, Environment::Production) => Err(AppError::NeedsSecret { name: "METRICS_TOKEN" }),
        (None, _) => Ok(()),
    }
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
        text.push_str(
            "# HELP contact_cache_rate_limited_total Requests this isolate refused with 429, by limited action.\n\
             # TYPE contact_cache_rate_limited_total counter\n",
        );
        for (action, count) in metrics::limited_counts() {
            text.push_str(&format!("contact_cache_rate_limited_total{{action=\"{}\"}} {count}\n", action.as_str()));
        }
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
            "state_home": snapshot.state_home,
            "l0": l0_usage(edge),
            "audit": crate::audit::counts(),
            "rate_limited": rate_limited(),
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
                "state_home": snapshot.state_home,
                "l0": l0_usage(edge),
            },
            "backend": backend,
        },
        "timestamp": now().to_string(),
    }))?;
    response.headers().set("Cache-Control", "no-store")?;
    Ok(response)
}

/// Requests this isolate refused with 429 since it started, by limited action.
fn rate_limited() -> Value {
    Value::Object(metrics::limited_counts().into_iter().map(|(action, count)| (action.as_str().to_owned(), json!(count))).collect())
}

/// This isolate's L0, or `null` when the configuration cannot be read.
fn l0_usage(edge: &Edge) -> Value {
    edge.config().ok().and_then(|config| config.upstreams().ok()).map_or(Value::Null, |upstreams| crate::layers::l0::usage(upstreams.l0))
}
