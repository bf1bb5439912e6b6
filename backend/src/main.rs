//! The backend binary: read configuration, start serving, stop gracefully on SIGINT/SIGTERM.

use contact_list_cache_backend::config::Config;
use contact_list_cache_backend::startup::{shutdown_signal, Application};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("contact-list-cache-backend: configuration error: {err}");
            std::process::exit(2);
        }
    };
    let app = Application::build(config).await?;
    app.run_until_stopped(shutdown_signal()).await
}
