//! Building and running the service: bind (port 0 picks a free one), serve, shut down gracefully
//! within a bounded drain.

use crate::access::Verifier;
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
use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The largest request body read; larger ones get 413 before any parsing.
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// A bound, not yet serving, instance of the service.
pub struct Application {
    listener: TcpListener,
    router: Router,
    drain_timeout: Duration,
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
            config.redis_ca_cert.clone(),
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
        let drain_timeout = config.shutdown_timeout;
        let verifier = Verifier::new(config.jwt_secret.clone(), &config.supabase_url);
        let state = Arc::new(AppState { config, redis: Arc::new(redis), db: Arc::new(db), stats: Stats::default(), verifier, leases: Leased::default(), capture });
        tokio::spawn(check_tls(Arc::clone(&state)));
        Ok(Self { listener, router: router(state), drain_timeout })
    }

    /// The port actually bound (useful with `PORT=0`).
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|addr| addr.port()).unwrap_or(0)
    }

    /// Serves until `shutdown` completes, then stops accepting connections and lets the requests
    /// in flight finish (idle keep-alive connections are closed at once). Answers `Ok` once they
    /// have all finished, and an error when some were still running `SHUTDOWN_TIMEOUT_SECS` after
    /// the signal: they are dropped with the process rather than holding it up.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let addr = self.listener.local_addr().context("reading the bound address")?;
        tracing::info!(%addr, port = addr.port(), "listening");
        let (signalled, on_signal) = oneshot::channel();
        let signal = async move {
            shutdown.await;
            let _ = signalled.send(());
        };
        let serve = axum::serve(self.listener, self.router).with_graceful_shutdown(signal).into_future();
        tokio::pin!(serve);
        tokio::select! {
            served = &mut serve => return served.context("serving HTTP"),
            _ = on_signal => {}
        }
        tracing::info!(drain_timeout_secs = self.drain_timeout.as_secs(), "draining in-flight requests");
        match tokio::time::timeout(self.drain_timeout, serve).await {
            Ok(served) => {
                served.context("serving HTTP")?;
                tracing::info!("stopped");
                Ok(())
            }
            Err(_) => anyhow::bail!(
                "requests were still in flight {}s after the shutdown signal (SHUTDOWN_TIMEOUT_SECS); stopped without them",
                self.drain_timeout.as_secs()
            ),
        }
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
        .route("/api/audit", post(routes::audit::write))
        .route("/api/workspaces/{workspace_id}/audit", get(routes::audit::read))
        .route_layer(middleware::from_fn_with_state(Arc::clone(&state), auth::require_internal_auth));
    let metrics = Router::new()
        .route("/api/cache/stats", get(routes::cache::stats))
        .route("/metrics", get(routes::metrics::get))
        .route_layer(middleware::from_fn_with_state(Arc::clone(&state), auth::require_metrics_token));
    Router::new()
        .route("/health", get(routes::health::get))
        .merge(internal)
        .merge(metrics)
        .fallback(routes::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(middleware::from_fn(crate::tracing_id::log_request))
        .with_state(state)
}

/// Connects once at startup to each layer configured for TLS (a `rediss://` URL, `sslmode`
/// `require` or `verify-full`), so a certificate or host name that will never be accepted is in
/// the log from the start, naming the setting to fix. Plain layers still connect on first use.
async fn check_tls(state: Arc<AppState>) {
    if state.redis.is_tls() {
        match state.redis.ping().await {
            Ok(_) => tracing::info!("redis: TLS connection established"),
            Err(err) => tracing::error!(error = %err, "redis: TLS connection failed at startup"),
        }
    }
    if state.db.requires_tls() {
        match state.db.ping().await {
            Ok(_) => tracing::info!("database: TLS connection established"),
            Err(err) => tracing::error!(error = %err, "database: TLS connection failed at startup"),
        }
    }
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
