//! What the backend's integration tests start: the service on 127.0.0.1:0, and a throwaway
//! `redis-server`, each stopped when the test ends.
#![allow(dead_code)]

use contact_list_cache_backend::config::Config;
use contact_list_cache_backend::startup::Application;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const AUTH_KEY: &str = "test-key";
pub const ENCRYPTION_KEY: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
pub const JWT_SECRET: &str = "test-jwt-secret-of-reasonable-length";
pub const METRICS_TOKEN: &str = "test-metrics-token";

/// The service, started with the test configuration plus `extra` variables; its base URL.
pub async fn spawn_app(extra: &[(&str, &str)]) -> String {
    let defaults = [
        ("INTERNAL_AUTH_KEY", AUTH_KEY),
        ("HOST", "127.0.0.1"),
        ("PORT", "0"),
        ("REDIS_TIMEOUT_MS", "200"),
        ("CACHE_ENCRYPTION_KEY", ENCRYPTION_KEY),
        ("SUPABASE_URL", "http://127.0.0.1:1"),
        ("SUPABASE_JWT_SECRET", JWT_SECRET),
        ("METRICS_TOKEN", METRICS_TOKEN),
    ];
    let lookup = |name: &str| {
        let find = |vars: &[(&str, &str)]| vars.iter().find(|(key, _)| *key == name).map(|(_, value)| value.to_string());
        find(extra).or_else(|| find(&defaults))
    };
    let config = Config::from_lookup(lookup).expect("test configuration is valid");
    let app = Application::build(config).await.expect("the service binds");
    let port = app.port();
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    format!("http://127.0.0.1:{port}")
}

/// A loopback port with nothing listening on it.
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A `redis-server` of its own on a free port, without persistence; killed on drop.
pub struct Redis {
    pub port: u16,
    child: Child,
}

impl Redis {
    pub fn start() -> Self {
        Self::start_on(closed_port())
    }

    /// Starts one on `port` (again, after [`Redis::stop`]).
    pub fn start_on(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/bootstrap.sh)");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { port, child }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Runs `redis-cli` against this server and returns what it printed.
    pub fn cli(&self, args: &[&str]) -> String {
        let output = Command::new("redis-cli").args(["-p", &self.port.to_string()]).args(args).output().expect("redis-cli runs");
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}
