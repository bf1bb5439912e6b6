//! Wiring only: which method and path go to which handler, plus CORS on every answer.

use crate::config::Config;
use crate::error::AppError;
use crate::metrics::{self, RequestLog, Trace};
use crate::{clock, cors, handlers};
use contact_list_cache_core::cors::CorsPolicy;
use worker::{Context, Env, Method, Request, Response, Result};

pub async fn handle(req: Request, env: Env, ctx: Context) -> Result<Response> {
    let started = clock::now();
    let origin = req.headers().get("Origin")?;
    let request_id = metrics::request_id(req.headers().get("X-Request-ID")?.as_deref());
    let (method, path) = (req.method(), req.path());
    let user_agent = req.headers().get("User-Agent")?;
    let location = handlers::health::edge_location(&req);
    let trace = Trace::default();
    let config = Config::from_env(&env);
    let outcome = match &config {
        Ok(config) => dispatch(req, &env, &ctx, config, started, &trace).await,
        Err(err) => Err(AppError::Config(err.clone())),
    };
    let response = match outcome {
        Ok(response) => response,
        Err(err) => {
            if err.is_server_error() {
                trace.failed(err.to_string());
            }
            err.into_response()?
        }
    };
    let policy = config.map(|c| c.cors).unwrap_or(CorsPolicy::AnyOrigin);
    cors::apply(response.headers(), &policy, origin.as_deref())?;
    response.headers().set("X-Request-ID", &request_id)?;
    let elapsed = clock::now().since(started);
    let status = response.status_code();
    // The observers' own routes stay out of the numbers they report.
    if !matches!(path.as_str(), "/metrics" | "/dashboard" | "/api/cache/stats") && method != Method::Options {
        trace.record(elapsed, status >= 500 || !trace.failures().is_empty());
        metrics::write_analytics(&env, &trace, status, elapsed, &location);
    }
    metrics::log(&trace, &RequestLog {
        request_id: &request_id,
        method: method.as_ref(),
        path: &path,
        status,
        response_time: elapsed,
        edge_location: &location,
        user_agent,
    });
    Ok(response)
}

async fn dispatch(
    req: Request,
    env: &Env,
    ctx: &Context,
    _config: &Config,
    started: contact_list_cache_core::time::UnixMillis,
    trace: &Trace,
) -> std::result::Result<Response, AppError> {
    let path = req.path();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let not_allowed = |allow| AppError::MethodNotAllowed { method: req.method().to_string(), path: path.clone(), allow };
    match (req.method(), segments.as_slice()) {
        (Method::Options, _) => Ok(cors::preflight()?),
        (Method::Get | Method::Head, ["health"]) => handlers::health::get(&req, env, started).await,
        (_, ["health"]) => Err(not_allowed("GET, HEAD, OPTIONS")),
        (Method::Get, ["metrics"]) => handlers::metrics::get(&req, env).await,
        (_, ["metrics"]) => Err(not_allowed("GET, OPTIONS")),
        (Method::Get, ["dashboard"]) => handlers::dashboard::get(),
        (Method::Get, ["api", "cache", "stats"]) => handlers::metrics::stats(&req, env).await,
        (Method::Get, ["api", "boards", board, "contacts"]) => handlers::contacts::list(&req, env, ctx, board, started, trace).await,
        (_, ["api", "boards", _, "contacts"]) => Err(not_allowed("GET, OPTIONS")),
        (Method::Get, ["api", "workspaces", workspace, "counts"]) => handlers::counts::get(&req, env, workspace, started, trace).await,
        (_, ["api", "workspaces", _, "counts"]) => Err(not_allowed("GET, OPTIONS")),
        (Method::Post, ["api", "cache", "invalidate"]) => handlers::invalidate::invalidate(req, env, trace).await,
        (Method::Post, ["api", "cache", "webhook"]) => handlers::invalidate::webhook(req, env, trace).await,
        (Method::Post, ["api", "cache", "warm"]) => handlers::invalidate::warm(req, env, ctx, trace).await,
        (_, ["api", "cache", "invalidate" | "webhook" | "warm"]) => Err(not_allowed("POST, OPTIONS")),
        (method, _) => Err(AppError::NotFound { method: method.to_string(), path: path.clone() }),
    }
}
