//! Building and running the service: bind (port 0 picks a free one), serve, shut down gracefully.

use crate::config::Config;
use crate::redis_store::RedisStore;
use crate::routes;
use anyhow::Context;
use axum::routing::get;
use axum::Router;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// What every handler shares.
pub struct AppState {
    pub config: Config,
    pub redis: RedisStore,
}

/// A bound, not yet serving, instance of the service.
pub struct Application {
    listener: TcpListener,
    router: Router,
}

impl Application {
    /// Binds the listener and builds the routes. Redis is not contacted here: the service starts
    /// while Redis is down and connects on first use.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let addr = SocketAddr::new(config.host, config.port);
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the HTTP listener to {addr}"))?;
        let redis = RedisStore::new(
            config.redis_url.clone(),
            config.redis_cluster_enabled,
            config.redis_timeout,
        );
        let state = Arc::new(AppState { config, redis });
        Ok(Self { listener, router: router(state) })
    }

    /// The port actually bound (useful with `PORT=0`).
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|addr| addr.port()).unwrap_or(0)
    }

    /// Serves until `shutdown` completes, then drains in-flight requests.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let addr = self.listener.local_addr().context("reading the bound address")?;
        tracing::info!(%addr, port = addr.port(), "listening");
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
            .context("serving HTTP")?;
        tracing::info!("stopped");
        Ok(())
    }
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/health", get(routes::health::get))
        .fallback(routes::not_found)
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = terminate => {} }
    tracing::info!("shutdown signal received");
}
