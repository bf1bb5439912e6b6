//! Wiring only: which method and path go to which handler.

use crate::edge::{self, Answer, Edge};
use crate::error::AppError;
use crate::handlers::{audit, contacts, counts, dashboard, health, invalidate, live, metrics, warm};
use worker::{Context, Env, Method, Request, Response};

pub async fn route(req: Request, env: &Env, ctx: &Context, edge: &Edge) -> Result<Answer, AppError> {
    let path = req.path();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (req.method(), segments.as_slice()) {
        (Method::Get, ["api", "boards", board, "contacts"]) => contacts::list(&req, env, ctx, edge, board).await.map(Answer::Json),
        (Method::Get, ["api", "workspaces", workspace, "counts"]) => counts::get(&req, env, ctx, edge, workspace).await.map(Answer::Json),
        _ => others(req, env, ctx, edge, &path, &segments).await.map(Answer::from),
    }
}

async fn others(req: Request, env: &Env, ctx: &Context, edge: &Edge, path: &str, segments: &[&str]) -> Result<Response, AppError> {
    let not_allowed = |allow| AppError::MethodNotAllowed { method: req.method().to_string(), path: path.to_owned(), allow };
    match (req.method(), segments) {
        (Method::Options, _) => Ok(edge::preflight()?),
        (Method::Get | Method::Head, ["health"]) => health::get(&req, env, edge).await,
        (_, ["health"]) => Err(not_allowed("GET, HEAD, OPTIONS")),
        (Method::Get, ["metrics"]) => metrics::get(&req, edge),
        (Method::Get, ["dashboard"]) => dashboard::get(),
        (Method::Get, ["api", "cache", "stats"]) => metrics::stats(&req, edge).await,
        (Method::Get, ["api", "workspaces", workspace, "live"]) => live::connect(&req, env, edge, workspace).await,
        (Method::Get, ["api", "workspaces", workspace, "audit"]) => audit::list(&req, edge, workspace).await,
        (_, ["metrics" | "dashboard"] | ["api", "cache", "stats"] | ["api", "boards", _, "contacts"] | ["api", "workspaces", _, "counts" | "live" | "audit"]) => {
            Err(not_allowed("GET, OPTIONS"))
        }
        (Method::Post, ["api", "cache", "invalidate"]) => invalidate::invalidate(req, env, ctx, edge).await,
        (Method::Post, ["api", "cache", "webhook"]) => invalidate::webhook(req, env, ctx, edge).await,
        (Method::Post, ["api", "cache", "warm"]) => warm::warm(req, env, ctx, edge).await,
        (_, ["api", "cache", "invalidate" | "webhook" | "warm"]) => Err(not_allowed("POST, OPTIONS")),
        (method, _) => Err(AppError::NotFound { method: method.to_string(), path: path.to_owned() }),
    }
}
