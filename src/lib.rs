//! The contact-list-cache Cloudflare Worker: each request passes the edge (ids, CORS, errors,
//! metrics, logs) on its way to the router.

mod audit;
mod auth;
mod body;
mod config;
mod edge;
mod error;
mod handlers;
mod invalidation;
mod layers;
mod limits;
mod live;
mod metrics;
mod read_path;
mod refresh;
mod router;
mod runtime;
mod webcrypto;

use worker::worker_sys::web_sys;
use worker::{event, Context, Env, Request, Result};

#[event(start)]
fn start() {
    console_error_panic_hook::set_once();
    contact_list_cache_core::token::crypto::install();
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<web_sys::Response> {
    let edge = edge::Edge::begin(&req, &env)?;
    let outcome = runtime::traced(edge.request_id(), router::route(req, &env, &ctx, &edge)).await;
    edge.finish(outcome, &env, &ctx)
}
