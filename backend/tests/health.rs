//! The backend binary's startup and `/health`, over real HTTP on a port picked by the OS.

mod helpers;

use helpers::{closed_port, spawn_app};
use serde_json::Value;

#[tokio::test]
async fn health_reports_degraded_quickly_when_redis_is_unreachable() {
    let base = spawn_app(&[("REDIS_PUBLIC_URL", &format!("redis://127.0.0.1:{}", closed_port()))]).await;
    let started = std::time::Instant::now();
    let response = reqwest::get(format!("{base}/health")).await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["service"], "contact-list-cache-backend");
    assert_eq!(body["redis"]["status"], "down");
    assert_eq!(body["redis"]["mode"], "single");
    assert_eq!(body["database"]["status"], "not_configured");
    assert!(started.elapsed() < std::time::Duration::from_secs(2), "health must not hang on a dead redis");
}

#[tokio::test]
async fn unknown_routes_are_404() {
    let base = spawn_app(&[("REDIS_PUBLIC_URL", "redis://127.0.0.1:1")]).await;
    let response = reqwest::get(format!("{base}/nope")).await.unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["success"], false);
    assert_eq!(body["error"]["code"], "not_found");
}
