//! The backend binary: read configuration, start serving, stop gracefully on SIGINT/SIGTERM; or,
//! as `contact-list-cache-backend healthcheck`, ask the running service whether it serves.

use contact_list_cache_backend::config::Config;
use contact_list_cache_backend::healthcheck;
use contact_list_cache_backend::startup::{shutdown_signal, Application};
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

const USAGE: &str = "usage: contact-list-cache-backend [healthcheck]";

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        [] => serve().await,
        ["healthcheck"] => Ok(check().await),
        _ => {
            eprintln!("contact-list-cache-backend: unknown arguments {args:?}\n{USAGE}");
            Ok(ExitCode::from(2))
        }
    }
}

fn config() -> Result<Config, ExitCode> {
    Config::from_env().map_err(|err| {
        eprintln!("contact-list-cache-backend: configuration error: {err}");
        ExitCode::from(2)
    })
}

async fn serve() -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let config = match config() {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    let app = Application::build(config).await?;
    app.run_until_stopped(shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// Exit 0 when the service on this configuration's `HOST`/`PORT` serves (healthy or degraded),
/// 1 when it does not, 2 when the configuration is bad.
async fn check() -> ExitCode {
    let config = match config() {
        Ok(config) => config,
        Err(code) => return code,
    };
    let outcome = match healthcheck::health_url(&config) {
        Ok(url) => healthcheck::check(&url, healthcheck::CHECK_TIMEOUT).await,
        Err(err) => Err(err),
    };
    match outcome {
        Ok(status) => {
            println!("contact-list-cache-backend: {}", format!("{status:?}").to_lowercase());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("contact-list-cache-backend: unhealthy: {err}");
            ExitCode::FAILURE
        }
    }
}
