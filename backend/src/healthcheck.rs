//! `contact-list-cache-backend healthcheck`: the container image's HEALTHCHECK, which has no shell
//! or curl to run. It asks the running service's own `GET /health` and answers whether it serves.
//!
//! This is liveness: `degraded` (Redis or PostgreSQL down) still passes, because the service keeps
//! answering then and reconnects by itself; restarting it would not bring a dependency back.

use crate::config::Config;
use contact_list_cache_core::envelope::HealthStatus;
use serde::Deserialize;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// The bound on the whole check (connecting, the request, the body); the image's HEALTHCHECK
/// allows a little more.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

const SERVICE: &str = "contact-list-cache-backend";

/// The part of the `/health` body the check reads.
#[derive(Debug, Deserialize)]
struct Health {
    status: HealthStatus,
    service: String,
}

/// The `/health` URL of the service this configuration starts: on `HOST`, or on loopback when
/// `HOST` is the unspecified address (`0.0.0.0`, `::`), at `PORT`.
pub fn health_url(config: &Config) -> Result<String, String> {
    if config.port == 0 {
        return Err("PORT is 0 (a free port picked at startup): the health check needs the port itself".into());
    }
    let host = match config.host {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let authority = std::net::SocketAddr::new(host, config.port);
    Ok(format!("http://{authority}/health"))
}

/// GETs `url` and answers the status the service reported, or why it is not serving: no
/// answer within `timeout`, a status other than 200, or a body that is not this service's.
pub async fn check(url: &str, timeout: Duration) -> Result<HealthStatus, String> {
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|err| format!("building the HTTP client: {err}"))?;
    let response = client.get(url).send().await.map_err(|err| format!("GET {url}: {err}"))?;
    let status = response.status();
    let body = response.bytes().await.map_err(|err| format!("GET {url}: reading the body: {err}"))?;
    if !status.is_success() {
        return Err(format!("GET {url} answered {status}"));
    }
    let health: Health = serde_json::from_slice(&body).map_err(|err| format!("GET {url}: not a health body: {err}"))?;
    if health.service != SERVICE {
        return Err(format!("GET {url}: answered by {:?}, not {SERVICE}", health.service));
    }
    Ok(health.status)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(host: &str, port: &str) -> Config {
        let vars = [
            ("INTERNAL_AUTH_KEY", "k"),
            ("SUPABASE_URL", "http://supabase.test"),
            ("SUPABASE_JWT_SECRET", "jwt-secret"),
            ("CACHE_ENCRYPTION_KEY", "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="),
            ("HOST", host),
            ("PORT", port),
        ];
        Config::from_lookup(|name| vars.iter().find(|(key, _)| *key == name).map(|(_, value)| value.to_string()))
            .expect("valid test configuration")
    }

    #[test]
    fn an_unspecified_host_is_checked_on_loopback() {
        assert_eq!(health_url(&config("0.0.0.0", "8080")).unwrap(), "http://127.0.0.1:8080/health");
        assert_eq!(health_url(&config("::", "9000")).unwrap(), "http://[::1]:9000/health");
    }

    #[test]
    fn a_specific_host_is_checked_where_it_listens() {
        assert_eq!(health_url(&config("10.1.2.3", "8080")).unwrap(), "http://10.1.2.3:8080/health");
    }

    #[test]
    fn port_zero_cannot_be_checked_and_says_so() {
        assert!(health_url(&config("0.0.0.0", "0")).unwrap_err().starts_with("PORT is 0"));
    }

    #[tokio::test]
    async fn nothing_listening_fails_within_the_timeout() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let started = std::time::Instant::now();
        let err = check(&format!("http://127.0.0.1:{port}/health"), CHECK_TIMEOUT).await.unwrap_err();
        assert!(err.starts_with(&format!("GET http://127.0.0.1:{port}/health")), "{err}");
        assert!(started.elapsed() < CHECK_TIMEOUT + Duration::from_secs(1));
    }
}
