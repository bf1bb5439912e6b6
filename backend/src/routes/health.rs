//! `GET /health`: the service and its Redis, answering `degraded` rather than failing.

use crate::startup::AppState;
use axum::extract::State;
use axum::Json;
use contact_list_cache_core::envelope::HealthStatus;
use contact_list_cache_core::time::UnixMillis;
use serde::Serialize;
use std::sync::Arc;

/// The backend's health body.
#[derive(Debug, Serialize)]
pub struct BackendHealth {
    pub status: HealthStatus,
    pub service: &'static str,
    pub version: &'static str,
    pub redis: DependencyHealth,
    pub timestamp: String,
}

/// One dependency: `up` with its round-trip time, or `down`.
#[derive(Debug, Serialize)]
pub struct DependencyHealth {
    pub status: &'static str,
    pub mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
}

pub async fn get(State(state): State<Arc<AppState>>) -> Json<BackendHealth> {
    let ping = state.redis.ping().await;
    if let Err(err) = &ping {
        tracing::warn!(error = %err, "health: redis unreachable");
    }
    let redis = DependencyHealth {
        status: if ping.is_ok() { "up" } else { "down" },
        mode: if state.redis.is_cluster() { "cluster" } else { "single" },
        latency_ms: ping.as_ref().ok().map(|rtt| (rtt.as_secs_f64() * 1e5).round() / 100.0),
    };
    Json(BackendHealth {
        status: HealthStatus::from_checks([ping.is_ok()]),
        service: "contact-list-cache-backend",
        version: contact_list_cache_core::VERSION,
        redis,
        timestamp: now().to_string(),
    })
}

fn now() -> UnixMillis {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    UnixMillis(since_epoch.as_millis() as u64)
}
