//! `GET /dashboard`: a self-contained page (no build step, no external assets) that charts
//! per-layer hit rates and latency percentiles live from `/metrics`. With `METRICS_TOKEN` set,
//! open it as `/dashboard#token=<METRICS_TOKEN>` (the fragment never leaves the browser).

use crate::error::AppError;
use worker::Response;

const PAGE: &str = include_str!("dashboard.html");

pub fn get() -> Result<Response, AppError> {
    let response = Response::from_html(PAGE)?;
    let headers = response.headers();
    headers.set("Cache-Control", "no-store")?;
    headers.set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:")?;
    Ok(response)
}
