//! The backend binary's startup and `/health`, over real HTTP on a port picked by the OS.

use contact_list_cache_backend::config::Config;
use contact_list_cache_backend::startup::Application;
use serde_json::Value;

/// Starts the service on 127.0.0.1:0 with `redis_url` and returns its base URL.
async fn spawn_app(redis_url: &str) -> String {
    let vars = [
        ("INTERNAL_AUTH_KEY", "test-key"),
        ("HOST", "127.0.0.1"),
        ("PORT", "0"),
        ("REDIS_PUBLIC_URL", redis_url),
        ("REDIS_TIMEOUT_MS", "200"),
        ("CACHE_ENCRYPTION_KEY", "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="),
    ];
    let config = Config::from_lookup(|name| {
        vars.iter().find(|(key, _)| *key == name).map(|(_, value)| value.to_string())
    })
    .expect("test configuration is valid");
    let app = Application::build(config).await.expect("the service binds");
    let port = app.port();
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    format!("http://127.0.0.1:{port}")
}

/// A loopback port with nothing listening on it.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test]
async fn health_reports_degraded_quickly_when_redis_is_unreachable() {
    let base = spawn_app(&format!("redis://127.0.0.1:{}", closed_port())).await;
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
    let base = spawn_app("redis://127.0.0.1:1").await;
    let response = reqwest::get(format!("{base}/nope")).await.unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["success"], false);
    assert_eq!(body["error"]["code"], "not_found");
}
