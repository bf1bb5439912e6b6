//! The contact-list-cache Cloudflare Worker: builds per-request state and hands it to the router.

mod auth;
mod clock;
mod coalesce;
mod config;
mod cors;
mod error;
mod handlers;
mod layers;
mod metrics;
mod router;
mod webcrypto;

use worker::{event, Context, Env, Request, Response, Result};

#[event(start)]
fn start() {
    console_error_panic_hook::set_once();
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    router::handle(req, env, ctx).await
}
