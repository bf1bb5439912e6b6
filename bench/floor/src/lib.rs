//! The benchmark's floor: a worker that does nothing but answer constant JSON, so its throughput
//! and latency are those of workerd, the wasm boundary and the load generator alone. `GET /kv`
//! also reads the KV entries named by its `key` parameters, in order, and answers the last one:
//! the floor of any worker that answers from KV here.

use worker::{event, Context, Env, Request, Response, Result};

/// An empty page in the list endpoint's envelope: the same shape, none of the work.
const BODY: &str = r#"{"success":true,"data":{"contacts":[],"pagination":{"page":1,"pageSize":50,"total":0,"totalPages":0}}}"#;

/// The KV namespace the worker caches pages in (wrangler.toml, src/config.rs).
const CONTACT_CACHE: &str = "CONTACT_CACHE";

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let mut body = BODY.to_owned();
    if req.path() == "/kv" {
        let store = env.kv(CONTACT_CACHE)?;
        let url = req.url()?;
        for key in url.query_pairs().filter(|(name, _)| name == "key").map(|(_, key)| key) {
            body = store.get(&key).text().await?.unwrap_or_default();
        }
    }
    let mut response = Response::ok(body)?;
    response.headers_mut().set("content-type", "application/json")?;
    Ok(response)
}
