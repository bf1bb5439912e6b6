//! The benchmark's floor: a worker that does nothing but answer constant JSON, so its throughput
//! and latency are those of workerd, the wasm boundary and the load generator alone.

use worker::{event, Context, Env, Request, Response, Result};

/// An empty page in the list endpoint's envelope: the same shape, none of the work.
const BODY: &str = r#"{"success":true,"data":{"contacts":[],"pagination":{"page":1,"pageSize":50,"total":0,"totalPages":0}}}"#;

#[event(fetch)]
async fn fetch(_req: Request, _env: Env, _ctx: Context) -> Result<Response> {
    let mut response = Response::ok(BODY)?;
    response.headers_mut().set("content-type", "application/json")?;
    Ok(response)
}
