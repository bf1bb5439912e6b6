//! The JSON bodies the API answers with: errors, and the `/health` report.

use serde::{Deserialize, Serialize};

/// `{"success": false, "error": {"code", "message", "field"?}}`: the one error shape of every
/// endpoint, worker and backend alike.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub success: bool,
    pub error: ErrorDetail,
}

/// What went wrong: a stable machine-readable `code`, a sentence for people, and the request
/// field at fault when there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ErrorBody {
    pub fn new(code: impl Into<String>, message: impl Into<String>, field: Option<String>) -> Self {
        Self {
            success: false,
            error: ErrorDetail { code: code.into(), message: message.into(), field },
        }
    }
}

/// Overall health: `Healthy` when every dependency answered, `Degraded` when the service runs
/// but a dependency does not. Health endpoints answer 200 in both cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Healthy,
    Degraded,
}

impl HealthStatus {
    /// Healthy only when every check passed.
    pub fn from_checks(checks: impl IntoIterator<Item = bool>) -> Self {
        if checks.into_iter().all(|ok| ok) {
            Self::Healthy
        } else {
            Self::Degraded
        }
    }
}

/// The worker's `GET /health` body, field for field as in the spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerHealth {
    pub status: HealthStatus,
    pub worker: String,
    pub version: String,
    pub edge_location: String,
    pub kv_available: bool,
    pub timestamp: String,
    /// Milliseconds spent answering, as `"5ms"`.
    pub response_time: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_error_body_has_the_pinned_shape() {
        let body = ErrorBody::new("invalid_parameter", "pageSize must be 1..=100", Some("pageSize".into()));
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            json!({"success": false, "error": {
                "code": "invalid_parameter", "message": "pageSize must be 1..=100", "field": "pageSize"
            }})
        );
        let no_field = ErrorBody::new("not_found", "no route", None);
        assert_eq!(
            serde_json::to_value(&no_field).unwrap(),
            json!({"success": false, "error": {"code": "not_found", "message": "no route"}})
        );
    }

    #[test]
    fn health_is_degraded_when_any_check_fails() {
        assert_eq!(HealthStatus::from_checks([true, true]), HealthStatus::Healthy);
        assert_eq!(HealthStatus::from_checks([true, false]), HealthStatus::Degraded);
        assert_eq!(HealthStatus::from_checks([]), HealthStatus::Healthy);
    }

    #[test]
    fn the_worker_health_body_matches_the_spec_example() {
        let health = WorkerHealth {
            status: HealthStatus::Healthy,
            worker: "contact-list-cache".into(),
            version: "1.0.0".into(),
            edge_location: "SFO".into(),
            kv_available: true,
            timestamp: "2025-01-27T10:35:00Z".into(),
            response_time: "5ms".into(),
        };
        assert_eq!(
            serde_json::to_value(&health).unwrap(),
            json!({
                "status": "healthy", "worker": "contact-list-cache", "version": "1.0.0",
                "edge_location": "SFO", "kv_available": true,
                "timestamp": "2025-01-27T10:35:00Z", "response_time": "5ms"
            })
        );
    }
}
