//! `GET /health`: the service, its Redis and its PostgreSQL, answering `degraded` rather than
//! failing when a dependency is down. Both checks run concurrently, each bounded; change capture's
//! backlog is the one it last measured.

use crate::db::DbError;
use crate::capture::status::CaptureReport;
use crate::layers::runtime::now;
use crate::redis_store::RedisError;
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use contact_list_cache_core::envelope::HealthStatus;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// The backend's health body.
#[derive(Debug, Serialize)]
pub struct BackendHealth {
    pub status: HealthStatus,
    pub service: &'static str,
    pub version: &'static str,
    pub redis: DependencyHealth,
    pub database: DependencyHealth,
    /// Change capture: `lagging` (degraded) when its oldest undelivered change is older than
    /// `CHANGE_CAPTURE_LAG_DEGRADED_MS`, `down` (degraded) when it is not consuming.
    pub change_capture: CaptureReport,
    pub timestamp: String,
}

/// One dependency: `up` with its round-trip time, `down`, or `not_configured`. A `down` caused by
/// the configuration (a TLS certificate not trusted, say) carries the `error` naming the setting.
#[derive(Debug, Serialize)]
pub struct DependencyHealth {
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl DependencyHealth {
    fn from_check<E: std::fmt::Display>(name: &str, check: Result<Duration, E>, mode: Option<&'static str>, config_error: impl Fn(&E) -> Option<&str>) -> Self {
        if let Err(err) = &check {
            tracing::warn!(error = %err, "health: {name} unreachable");
        }
        Self {
            status: if check.is_ok() { "up" } else { "down" },
            mode,
            latency_ms: check.as_ref().ok().map(|rtt| (rtt.as_secs_f64() * 1e5).round() / 100.0),
            error: check.as_ref().err().and_then(config_error).map(str::to_owned),
        }
    }

    fn is_ok(&self) -> bool {
        self.status != "down"
    }
}

pub async fn get(State(state): State<Arc<AppState>>) -> Json<BackendHealth> {
    let (redis_check, db_check) = tokio::join!(state.redis.ping(), state.db.ping());
    let mode = if state.redis.is_cluster() { "cluster" } else { "single" };
    let redis = DependencyHealth::from_check("redis", redis_check, Some(mode), |err| match err {
        RedisError::Misconfigured(message) => Some(message),
        _ => None,
    });
    let database = if state.db.is_configured() {
        DependencyHealth::from_check("database", db_check, None, |err| match err {
            DbError::Misconfigured(message) => Some(message),
            _ => None,
        })
    } else {
        DependencyHealth { status: "not_configured", mode: None, latency_ms: None, error: None }
    };
    let change_capture = capture_report(&state);
    Json(BackendHealth {
        status: HealthStatus::from_checks([redis.is_ok(), database.is_ok(), change_capture.is_ok()]),
        service: "contact-list-cache-backend",
        version: contact_list_cache_core::VERSION,
        redis,
        database,
        change_capture,
        timestamp: now().to_string(),
    })
}

/// Change capture's report now, against its threshold.
pub fn capture_report(state: &AppState) -> CaptureReport {
    match &state.capture {
        Some(status) => status.report(now().0, state.config.capture.lag_degraded_ms),
        None => CaptureReport::not_configured(),
    }
}
