//! `GET /metrics`: the service's counters and change capture's backlog in the Prometheus text
//! exposition format (version 0.0.4), for a scraper holding the metrics token (`METRICS_TOKEN`). Read from memory
//! only: scraping never calls Redis or PostgreSQL (`/api/cache/stats` does, for sizes).

use crate::capture::status::CaptureReport;
use crate::state::AppState;
use crate::stats::StatsSnapshot;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use std::fmt::Write;
use std::sync::Arc;

pub async fn get(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let text = render(&state.stats.snapshot(), &crate::routes::health::capture_report(&state));
    ([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text)
}

/// The exposition of `stats` and `capture`. Change capture's gauges are left out while it has
/// not measured its backlog (or is not configured); its status is always there, as a label.
pub fn render(stats: &StatsSnapshot, capture: &CaptureReport) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, labels: &str, value: f64| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{labels} {value}");
    };
    let counters: [(&str, &str, u64); 9] = [
        ("redis_hits", "Redis lookups that found a page served.", stats.hits),
        ("redis_misses", "Redis lookups that found nothing to serve.", stats.misses),
        ("redis_stores", "Entries written to Redis.", stats.stores),
        ("invalidations", "Invalidation calls.", stats.invalidations),
        ("keys_removed", "Redis keys removed by invalidations.", stats.keys_removed),
        ("database_queries", "Page and counts statements sent to PostgreSQL.", stats.database_queries),
        ("redis_errors", "Redis calls that failed or ran out of time.", stats.redis_errors),
        ("unauthorized", "Requests refused for a missing or wrong internal key, user token or metrics token.", stats.unauthorized),
        ("refused_entries", "Redis entries that did not open and were not served.", stats.refused_entries),
    ];
    for (name, help, value) in counters {
        metric(&format!("contact_cache_backend_{name}_total"), "counter", help, "", value as f64);
    }
    metric(
        "contact_cache_backend_change_capture_info",
        "gauge",
        "Change capture's status (starting, up, standby, lagging, down, not_configured) as a label.",
        &format!("{{status=\"{}\"}}", capture.status),
        1.0,
    );
    let gauges = [
        ("change_capture_lag_milliseconds", "gauge", "Age of the oldest undelivered change, 0 with none.", capture.lag_ms),
        ("change_capture_undelivered", "gauge", "Changes in the outbox after the cursor.", capture.undelivered),
        ("change_capture_cursor", "gauge", "The last sequence delivered.", capture.cursor.map(|c| c.max(0) as u64)),
        ("change_capture_delivered_total", "counter", "Changes the worker acknowledged since start.", capture.delivered),
        ("change_capture_webhook_failures_total", "counter", "Webhook calls that failed and were retried.", capture.webhook_failures),
        ("change_capture_pruned_total", "counter", "Delivered outbox rows pruned.", capture.pruned),
        ("change_capture_clock_posts_total", "counter", "Posts of change capture's clock the worker took.", capture.clock_posts),
        ("change_capture_clock_lag_milliseconds", "gauge", "How far behind now the clock the worker last took is; past the staleness bound the edge reads the database.", capture.clock_lag_ms),
    ];
    for (name, kind, help, value) in gauges {
        if let Some(value) = value {
            metric(&format!("contact_cache_backend_{name}"), kind, help, "", value as f64);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_the_capture_backlog_are_exposed() {
        let stats = StatsSnapshot { hits: 3, misses: 1, database_queries: 2, ..StatsSnapshot::default() };
        let capture = CaptureReport {
            status: "lagging",
            cursor: Some(41),
            undelivered: Some(7),
            lag_ms: Some(6_500),
            delivered: Some(41),
            webhook_failures: Some(3),
            pruned: Some(0),
            clock_posts: Some(12),
            clock_lag_ms: Some(180),
        };
        let text = render(&stats, &capture);
        assert!(text.contains("# TYPE contact_cache_backend_redis_hits_total counter\ncontact_cache_backend_redis_hits_total 3\n"), "{text}");
        assert!(text.contains("contact_cache_backend_database_queries_total 2\n"));
        assert!(text.contains("contact_cache_backend_change_capture_info{status=\"lagging\"} 1\n"));
        assert!(text.contains("# TYPE contact_cache_backend_change_capture_lag_milliseconds gauge\ncontact_cache_backend_change_capture_lag_milliseconds 6500\n"));
        assert!(text.contains("contact_cache_backend_change_capture_undelivered 7\n"));
        assert!(text.contains("contact_cache_backend_change_capture_clock_lag_milliseconds 180\n"));
    }

    #[test]
    fn capture_gauges_wait_for_a_measurement() {
        let text = render(&StatsSnapshot::default(), &CaptureReport::not_configured());
        assert!(text.contains("contact_cache_backend_change_capture_info{status=\"not_configured\"} 1\n"));
        assert!(!text.contains("lag_milliseconds"));
    }
}
