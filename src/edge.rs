//! What happens to every request at the edge, whatever its route: its id, its configuration and
//! trace, CORS, the JSON error answer, the isolate's metrics, the Analytics Engine data point and
//! the request log.

use crate::body::PageBody;
use crate::config::{Config, ANALYTICS_BINDING};
use crate::error::AppError;
use crate::metrics::Trace;
use crate::runtime::now;
use contact_list_cache_core::cors::{CorsPolicy, ALLOW_HEADERS, ALLOW_METHODS, EXPOSE_HEADERS, MAX_AGE_SECONDS};
use contact_list_cache_core::layer::{CacheLayer, CacheStatus};
use contact_list_cache_core::settings::SettingError;
use contact_list_cache_core::time::UnixMillis;
use std::rc::Rc;
use wasm_bindgen::prelude::wasm_bindgen;
use worker::worker_sys::web_sys;
use worker::js_sys::Uint8Array;
use worker::{Context, Env, Headers, Method, Request, Response, Result};

#[wasm_bindgen(inline_js = "
export function json_response(body, headers) {
  const list = headers.split('\\n');
  const record = {};
  for (let i = 0; i + 1 < list.length; i += 2) {
    const name = list[i];
    record[name] = name in record ? `${record[name]}, ${list[i + 1]}` : list[i + 1];
  }
  return new Response(body, { headers: record });
}")]
extern "C" {
    /// A `200` answer with `body` and `headers`, names and values separated by newlines (which
    /// no header holds; a name given twice has its values joined with a comma, as
    /// `Headers.append` joins them): one call into the runtime instead of one per header.
    fn json_response(body: &Uint8Array, headers: &str) -> web_sys::Response;
}

/// What a route answers: a JSON page the edge builds in one call with every header, or any
/// other response.
pub enum Answer {
    Json(JsonAnswer),
    Response(Response),
}

impl From<Response> for Answer {
    fn from(response: Response) -> Self {
        Self::Response(response)
    }
}

/// A `200` JSON answer: its body and its headers besides `Content-Type`, `Cache-Control`,
/// `X-Worker-Location`, `X-Response-Time`, CORS and `X-Request-ID`, which the edge adds.
pub struct JsonAnswer {
    pub body: PageBody,
    pub headers: Vec<(&'static str, String)>,
}

/// The routes that observe the others, kept out of the numbers they report.
const OBSERVERS: [&str; 3] = ["/metrics", "/dashboard", "/api/cache/stats"];

/// One request as the edge sees it, from arrival to answer.
pub struct Edge {
    pub started: UnixMillis,
    pub trace: Trace,
    /// The Cloudflare colo (`SFO`, `AMS`, ...) that serves the request, `local` outside Cloudflare.
    pub location: String,
    config: std::result::Result<Rc<Config>, SettingError>,
    request_id: String,
    origin: Option<String>,
    method: Method,
    path: String,
    user_agent: Option<String>,
}

impl Edge {
    pub fn begin(req: &Request, env: &Env) -> Result<Self> {
        let headers = req.headers();
        let (started, trace) = (now(), Trace::default());
        trace.asked(started);
        Ok(Self {
            started,
            trace,
            location: req.cf().map(|cf| cf.colo()).filter(|colo| !colo.is_empty()).unwrap_or_else(|| "local".to_owned()),
            config: Config::load(env),
            request_id: request_id(headers.get("X-Request-ID")?.as_deref()),
            origin: headers.get("Origin")?,
            method: req.method(),
            path: req.path(),
            user_agent: headers.get("User-Agent")?,
        })
    }

    /// `X-Request-ID`: the caller's valid one, else a new one.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// This isolate's configuration, or the error naming what is wrong with it.
    pub fn config(&self) -> std::result::Result<&Rc<Config>, AppError> {
        self.config.as_ref().map_err(|err| AppError::Config(err.clone()))
    }

    /// `X-Response-Time`: milliseconds since the request arrived.
    pub fn elapsed(&self) -> String {
        format!("{}ms", now().since(self.started))
    }

    /// The answer as sent: errors as JSON, CORS and `X-Request-ID` on everything; then the
    /// request is counted, logged and written to the Analytics Engine, and the cache operations it
    /// did are sent to the audit log after the response.
    pub fn finish(self, outcome: std::result::Result<Answer, AppError>, env: &Env, ctx: &Context) -> Result<web_sys::Response> {
        let mut detail = None;
        let answer = match outcome {
            Ok(answer) => answer,
            Err(err) => {
                if err.is_server_error() {
                    self.trace.failed(err.to_string());
                }
                detail = Some(err.code());
                Answer::Response(err.into_response()?)
            }
        };
        let policy = self.config.as_ref().map(|c| c.cors.clone()).unwrap_or(CorsPolicy::AnyOrigin);
        let (response, status) = match answer {
            Answer::Json(json) => (self.json(json, &policy), 200),
            Answer::Response(response) => {
                cors(response.headers(), &policy, self.origin.as_deref())?;
                response.headers().set("X-Request-ID", &self.request_id)?;
                let status = response.status_code();
                (response.into(), status)
            }
        };
        let elapsed = now().since(self.started);
        if !OBSERVERS.contains(&self.path.as_str()) && self.method != Method::Options {
            self.trace.record(elapsed, status >= 500 || !self.trace.failures().is_empty());
            self.write_analytics(env, status, elapsed);
        }
        let notes = self.trace.audited();
        if !notes.is_empty() {
            let upstreams = self.config.as_ref().ok().and_then(|config| config.upstreams().ok().cloned());
            crate::audit::send(ctx, upstreams, notes, status, detail, &self.request_id, now().0);
        }
        self.log(status, elapsed);
        Ok(response)
    }

    /// A JSON answer with every header, built in one call.
    fn json(&self, json: JsonAnswer, policy: &CorsPolicy) -> web_sys::Response {
        let mut headers = String::with_capacity(512);
        let mut add = |name: &str, value: &str| {
            for part in [name, "\n", value, "\n"] {
                headers.push_str(part);
            }
        };
        add("Content-Type", "application/json");
        add("Cache-Control", "private, no-store");
        for (name, value) in &json.headers {
            add(name, value);
        }
        add("X-Worker-Location", &self.location);
        add("X-Response-Time", &self.elapsed());
        for (name, value) in cors_headers(policy, self.origin.as_deref()) {
            add(name, &value);
        }
        add("X-Request-ID", &self.request_id);
        let body = match json.body {
            PageBody::Opened(bytes) => bytes,
            // Copied out of the wasm's memory (a view of it would not outlive the next growth).
            PageBody::Text(text) => Uint8Array::from(text.as_bytes()),
        };
        json_response(&body, &headers)
    }

    /// One JSON line for the request, and one more when something failed on the way: the spec's
    /// performance fields. Never the query string, a token, or anything from the contacts.
    fn log(&self, status: u16, elapsed: u64) {
        let (timestamp, answer, trace) = (now().to_string(), self.trace.answer(), &self.trace);
        let line = RequestLine {
            kind: "request",
            request_id: &self.request_id,
            method: self.method.as_ref(),
            path: &self.path,
            status,
            board_id: trace.board_id(),
            workspace_id: trace.workspace_id(),
            response_time: elapsed,
            cache_hit: answer.map(|(status, _)| status == CacheStatus::Hit),
            cache_status: answer.map(|(status, _)| status.as_str()),
            cache_layer: answer.map(|(_, layer)| layer.as_str()),
            edge_location: &self.location,
            user_agent: self.user_agent.as_deref(),
            timestamp: &timestamp,
        };
        worker::console_log!("{}", serde_json::to_string(&line).expect("a request line serializes"));
        let failures = trace.failures();
        if !failures.is_empty() || status >= 500 {
            let error = if failures.is_empty() { format!("answered {status}") } else { failures.join("; ") };
            let line = serde_json::json!({
                "type": "error",
                "requestId": self.request_id,
                "error": error,
                "url": self.path,
                "status": status,
                "responseTime": elapsed,
                "edgeLocation": self.location,
                "fallbackUsed": answer.is_some_and(|(_, layer)| layer == CacheLayer::BackendFallback),
                "timestamp": timestamp,
            });
            worker::console_error!("{line}");
        }
    }

    /// The request's data point: index the workspace; blobs layer, status and location; doubles
    /// response time, HTTP status and the operation counts.
    fn write_analytics(&self, env: &Env, status: u16, elapsed: u64) {
        thread_local! {
            /// Whether the dataset is bound: looked up once, bindings do not change in an isolate.
            static BOUND: std::cell::OnceCell<bool> = const { std::cell::OnceCell::new() };
        }
        if !BOUND.with(|bound| *bound.get_or_init(|| env.analytics_engine(ANALYTICS_BINDING).is_ok())) {
            return;
        }
        let Ok(dataset) = env.analytics_engine(ANALYTICS_BINDING) else {
            return;
        };
        let answer = self.trace.answer();
        let workspace = self.trace.workspace_id().unwrap_or_default();
        let (kv, redis, database) = self.trace.operations();
        let point = worker::AnalyticsEngineDataPointBuilder::new()
            .indexes([workspace.as_str()].as_slice())
            .blobs([
                answer.map_or("", |(_, layer)| layer.as_str()).to_owned(),
                answer.map_or("", |(status, _)| status.as_str()).to_owned(),
                self.location.clone(),
            ])
            .doubles([elapsed as f64, f64::from(status), f64::from(kv), f64::from(redis), f64::from(database)]);
        if let Err(err) = point.write_to(&dataset) {
            worker::console_warn!("analytics engine write skipped: {err}");
        }
    }
}

/// The request log's line, in the spec's order.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct RequestLine<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    request_id: &'a str,
    method: &'a str,
    path: &'a str,
    status: u16,
    board_id: Option<String>,
    workspace_id: Option<String>,
    response_time: u64,
    cache_hit: Option<bool>,
    cache_status: Option<&'static str>,
    cache_layer: Option<&'static str>,
    edge_location: &'a str,
    user_agent: Option<&'a str>,
    timestamp: &'a str,
}

/// The CORS headers that `policy` gives a request from `origin`: `Vary: Origin` (added to the
/// answer's own `Vary`) when the answer depends on the origin, then the origin allowed and the
/// headers exposed.
fn cors_headers(policy: &CorsPolicy, origin: Option<&str>) -> Vec<(&'static str, String)> {
    let mut headers = Vec::new();
    if policy.varies_by_origin() {
        headers.push(("Vary", "Origin".to_owned()));
    }
    if let Some(allowed) = policy.allow_origin(origin) {
        headers.push(("Access-Control-Allow-Origin", allowed.to_string()));
        headers.push(("Access-Control-Expose-Headers", EXPOSE_HEADERS.to_owned()));
    }
    headers
}

/// Adds the CORS headers that `policy` gives a request from `origin` to `headers`.
fn cors(headers: &Headers, policy: &CorsPolicy, origin: Option<&str>) -> Result<()> {
    for (name, value) in cors_headers(policy, origin) {
        if name == "Vary" {
            headers.append(name, &value)?;
        } else {
            headers.set(name, &value)?;
        }
    }
    Ok(())
}

/// `OPTIONS` on any path: 204 with the allowed methods and headers.
pub fn preflight() -> Result<Response> {
    let headers = Headers::new();
    headers.set("Access-Control-Allow-Methods", ALLOW_METHODS)?;
    headers.set("Access-Control-Allow-Headers", ALLOW_HEADERS)?;
    headers.set("Access-Control-Max-Age", &MAX_AGE_SECONDS.to_string())?;
    Ok(Response::empty()?.with_status(204).with_headers(headers))
}

/// The request's id: a valid incoming `X-Request-ID` (1 to 128 of `[A-Za-z0-9._-]`), else a new
/// random one.
fn request_id(incoming: Option<&str>) -> String {
    match incoming {
        Some(id) if (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) => {
            id.to_owned()
        }
        _ => {
            let mut bytes = [0u8; 16];
            if getrandom::getrandom(&mut bytes).is_err() {
                bytes = (worker::js_sys::Math::random().to_bits() as u128 ^ u128::from(now().0)).to_le_bytes();
            }
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        }
    }
}
