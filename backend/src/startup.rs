//! Building and running the service: bind (port 0 picks a free one), serve, shut down gracefully.

use crate::capture::forward::Forwarder;
use crate::capture::status::CaptureStatus;
use crate::config::Config;
use crate::db::Database;
use crate::layers::runtime::Leased;
use crate::redis_store::RedisStore;
use crate::state::AppState;
use crate::stats::Stats;
use crate::{auth, routes};
use anyhow::Context;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::{middleware, Router};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The largest request body read; larger ones get 413 before any parsing.
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// A bound, not yet serving, instance of the service.
pub struct Application {
    listener: TcpListener,
    router: Router,
}

impl Application {
    /// Binds the listener and builds the routes. Neither Redis nor PostgreSQL is contacted here:
    /// the service starts while they are down and connects on first use.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let addr = SocketAddr::new(config.host, config.port);
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the HTTP listener to {addr}"))?;
        let redis = RedisStore::new(
            config.redis_url.expose().clone(),
            config.redis_cluster_enabled,
            config.redis_timeout,
        );
        let database_url = config.database_url.as_ref().map(|url| url.expose().as_str());
        let db = Database::new(database_url, config.database_timeout, config.database_pool_size)?;
        let mut capture = None;
        if let (Some(database_url), Some((url, secret))) = (database_url, &config.webhook) {
            let status = Arc::new(CaptureStatus::default());
            let forwarder = Forwarder::new(url.clone(), secret.expose().clone(), config.capture.retry_max, Arc::clone(&status));
            tokio::spawn(crate::capture::run(database_url.to_owned(), forwarder, config.capture.clone()));
            capture = Some(status);
        }
        let state = Arc::new(AppState { config, redis: Arc::new(redis), db: Arc::new(db), stats: Stats::default(), leases: Leased::default(), capture });
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
    let internal = Router::new()
        .route("/api/boards/{board_id}/contacts/cache", get(routes::contacts::cached))
        .route("/api/boards/{board_id}/contacts", get(routes::contacts::fallback))
        .route("/api/workspaces/{workspace_id}/counts", get(routes::counts::get))
        .route("/api/workspaces/{workspace_id}/boards", get(routes::reads::boards))
        .route("/api/reads", post(routes::reads::record))
        .route("/api/reads/{workspace_id}", get(routes::reads::recent))
        .route("/api/cache/store", post(routes::cache::store))
        .route("/api/cache/invalidate", post(routes::cache::invalidate))
        .route("/api/cache/stats", get(routes::cache::stats))
        .route_layer(middleware::from_fn_with_state(Arc::clone(&state), auth::require_internal_auth));
    Router::new()
        .route("/health", get(routes::health::get))
        .merge(internal)
        .fallback(routes::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
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
