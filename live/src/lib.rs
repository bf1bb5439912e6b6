//! The live channel of each workspace: a Durable Object (`WorkspaceChannel`, one per workspace)
//! that holds the WebSockets of the workspace's members with the Hibernation API (no duration
//! billed while idle) and sends each of them every invalidation the main worker applies.
//!
//! This worker has no public route. The main worker, and only it, calls it through its `LIVE`
//! service binding:
//! - `GET /connect/{workspace}` with `X-Live-User` and `X-Live-Expires` (the token's `exp`, Unix
//!   seconds), after it has verified the caller's token and confirmed their membership: answers
//!   the accepted WebSocket (101).
//! - `POST /publish/{workspace}` with the invalidation as JSON: sent as is to every socket of
//!   the workspace whose token has not expired; answers `{"delivered": n}`.
//! - `POST /state/{workspace}/read` with `{"keys": [...], "prefix": "gen:"}` (the prefix
//!   optional): the workspace's state home (see below) answers `{"version": n, "newest":
//!   "<generation>", "values": {key: value or null}}`, with every value whose key starts with the
//!   prefix too (the main worker reads all of a workspace's scope states in one call).
//! - `POST /state/{workspace}/write` with `{"version": n, "newest": "<generation>", "values":
//!   {key: value}}`: stores every value and the newest generation at once if the version is
//!   still `n`, answering `{"version": n + 1}`; 409 when another write came first (read again).
//!
//! The state home: the object is also where the main worker keeps what must be fresh in every
//! location, its workspace's scope states (`gen:` keys) and carry records (sealed by the main
//! worker; opaque here), with the workspace's newest generation and a version counting the
//! writes. A write is conditioned on the version its writer read, so two invalidations racing
//! from two locations never lose one another: the second is refused and read again. The object
//! runs one event at a time and holds further events while its storage is read or written (its
//! input gate), so a check of the version and the write that follows are never interleaved.
//!
//! Keep-alive: the client sends `ping` every few seconds and expects `pong` before its next ping
//! (it closes and reconnects otherwise, so a dead socket never shows "live"). The runtime answers
//! `ping` with `pong` itself (`setWebSocketAutoResponse`): a ping neither wakes a hibernating
//! object nor bills its duration.
//!
//! A socket lives as long as the token it was opened with: at its `exp` (an alarm, which wakes
//! the object if it hibernates) it is sent `{"type":"expired"}` and closed with 4001, and gets
//! nothing more; the browser reconnects through the main worker with a current token, whose
//! membership is checked again.

use serde::{Deserialize, Serialize};
use worker::{
    durable_object, event, js_sys, Context, Date, DurableObject, Env, ListOptions, Method, Request, Response, Result, ScheduledTime, State, WebSocket, WebSocketIncomingMessage,
    WebSocketPair,
};

/// The Durable Object namespace binding.
const CHANNELS_BINDING: &str = "CHANNELS";

/// The client's keep-alive message and the runtime's answer to it (see the module doc).
const PING: &str = "ping";
const PONG: &str = "pong";

/// Close code when the socket's token expires: the client reconnects with a current one.
const TOKEN_EXPIRED: u16 = 4001;

/// Routes the main worker's call to the workspace's channel.
#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let path = req.path();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let workspace = match (req.method(), segments.as_slice()) {
        (Method::Get, ["connect", workspace]) | (Method::Post, ["publish", workspace] | ["state", workspace, "read" | "write"]) => (*workspace).to_owned(),
        _ => return Response::error("not found", 404),
    };
    let channel = env.durable_object(CHANNELS_BINDING)?.id_from_name(&workspace)?.get_stub()?;
    channel.fetch_with_request(req).await
}

/// What a socket carries through hibernation: whose it is and until when.
#[derive(Serialize, Deserialize)]
struct Member {
    user: String,
    /// The token's `exp`, in Unix milliseconds.
    expires_at: i64,
}

#[durable_object]
pub struct WorkspaceChannel {
    state: State,
}

impl DurableObject for WorkspaceChannel {
    fn new(state: State, _env: Env) -> Self {
        // Set on every start: the runtime answers pings from here on, awake or hibernating.
        match worker::worker_sys::WebSocketRequestResponsePair::new(PING, PONG) {
            Ok(pair) => state.set_websocket_auto_response(&pair),
            Err(err) => worker::console_error!("the ping auto-response could not be set: {err:?}"),
        }
        Self { state }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let path = req.path();
        if path.starts_with("/connect/") {
            self.accept(&req).await
        } else if path.starts_with("/publish/") {
            let message = req.text().await?;
            let delivered = self.publish(&message).await?;
            Response::from_json(&serde_json::json!({ "delivered": delivered }))
        } else if path.starts_with("/state/") && path.ends_with("/read") {
            let Ok(asked) = req.json::<ReadAsked>().await else { return Response::error("expected {\"keys\": [...], \"prefix\"?}", 400) };
            Response::from_json(&self.read_states(asked).await?)
        } else if path.starts_with("/state/") && path.ends_with("/write") {
            let Ok(asked) = req.json::<WriteAsked>().await else { return Response::error("expected {\"version\", \"newest\", \"values\"}", 400) };
            match self.write_states(asked).await? {
                Some(version) => Response::from_json(&serde_json::json!({ "version": version })),
                None => Response::error("the state changed since it was read", 409),
            }
        } else {
            Response::error("not found", 404)
        }
    }

    async fn websocket_message(&self, _ws: WebSocket, _message: WebSocketIncomingMessage) -> Result<()> {
        // Pings are answered by the runtime (`PING`/`PONG`) without reaching here; nothing else
        // is expected from a client.
        Ok(())
    }

    async fn websocket_close(&self, ws: WebSocket, code: usize, reason: String, _was_clean: bool) -> Result<()> {
        // Complete the closing handshake; the socket may already be gone.
        let code = u16::try_from(code).ok().filter(|c| *c == 1000 || (3000..5000).contains(c)).unwrap_or(1000);
        let _ = ws.close(Some(code), Some(reason));
        Ok(())
    }

    async fn websocket_error(&self, _ws: WebSocket, _error: worker::Error) -> Result<()> {
        Ok(())
    }

    async fn alarm(&self) -> Result<Response> {
        self.close_expired(Date::now().as_millis() as i64).await?;
        Response::ok("")
    }
}

impl WorkspaceChannel {
    /// Accepts a member's socket (the main worker checked who they are) until their token expires.
    async fn accept(&self, req: &Request) -> Result<Response> {
        let headers = req.headers();
        if !headers.get("Upgrade")?.is_some_and(|u| u.eq_ignore_ascii_case("websocket")) {
            return Response::error("expected a WebSocket upgrade", 426);
        }
        let user = headers.get("X-Live-User")?.unwrap_or_default();
        let expires_at = headers.get("X-Live-Expires")?.and_then(|s| s.parse::<i64>().ok()).map(|exp| exp * 1000);
        let Some(expires_at) = expires_at.filter(|_| !user.is_empty()) else {
            return Response::error("X-Live-User and X-Live-Expires are required", 400);
        };
        if expires_at <= Date::now().as_millis() as i64 {
            return Response::error("the token has expired", 401);
        }
        let pair = WebSocketPair::new()?;
        self.state.accept_web_socket(&pair.server);
        pair.server.serialize_attachment(Member { user, expires_at })?;
        self.wake_at(expires_at).await?;
        Response::from_websocket(pair.client)
    }

    /// Sends `message` to every socket whose token is current; closes the others.
    async fn publish(&self, message: &str) -> Result<usize> {
        let now = Date::now().as_millis() as i64;
        let mut delivered = 0;
        for ws in self.state.get_websockets() {
            match ws.deserialize_attachment::<Member>()? {
                Some(member) if member.expires_at > now => {
                    if ws.send_with_str(message).is_ok() {
                        delivered += 1;
                    }
                }
                _ => expire(&ws),
            }
        }
        Ok(delivered)
    }

    /// Closes the sockets whose token has expired by `now` and sets the alarm for the next one.
    async fn close_expired(&self, now: i64) -> Result<()> {
        let mut next: Option<i64> = None;
        for ws in self.state.get_websockets() {
            match ws.deserialize_attachment::<Member>()? {
                Some(member) if member.expires_at > now => next = Some(next.map_or(member.expires_at, |n| n.min(member.expires_at))),
                _ => expire(&ws),
            }
        }
        if let Some(at) = next {
            self.state.storage().set_alarm(instant(at)).await?;
        }
        Ok(())
    }

    /// Makes sure the alarm fires by `at`.
    async fn wake_at(&self, at: i64) -> Result<()> {
        let storage = self.state.storage();
        match storage.get_alarm().await? {
            Some(current) if current <= at => Ok(()),
            _ => storage.set_alarm(instant(at)).await,
        }
    }
}

/// Storage keys of the state home's own bookkeeping (the main worker's keys start with `gen:`
/// or `carry:`).
const VERSION: &str = "home:version";
const NEWEST: &str = "home:newest";

#[derive(Deserialize)]
struct ReadAsked {
    keys: Vec<String>,
    /// Also every value whose key starts with this.
    #[serde(default)]
    prefix: Option<String>,
}

#[derive(Deserialize)]
struct WriteAsked {
    version: u64,
    newest: String,
    values: serde_json::Map<String, serde_json::Value>,
}

/// What a read of the state home answers.
#[derive(Serialize)]
struct Snapshot {
    version: u64,
    newest: String,
    values: serde_json::Map<String, serde_json::Value>,
}

impl WorkspaceChannel {
    /// The values at `asked.keys` (null where none) and every value under `asked.prefix`, with the
    /// version and newest generation they are current as of.
    async fn read_states(&self, asked: ReadAsked) -> Result<Snapshot> {
        let storage = self.state.storage();
        let version = storage.get::<u64>(VERSION).await?.unwrap_or(0);
        let newest = storage.get::<String>(NEWEST).await?.unwrap_or_else(|| "0".to_owned());
        let mut values = serde_json::Map::new();
        if let Some(prefix) = &asked.prefix {
            let listed = storage.list_with_options(ListOptions::new().prefix(prefix)).await?;
            listed.for_each(&mut |value, key| {
                if let (Some(key), Some(value)) = (key.as_string(), value.as_string()) {
                    values.insert(key, serde_json::Value::String(value));
                }
            });
        }
        for key in asked.keys {
            let value = storage.get::<String>(&key).await?;
            values.insert(key, value.map_or(serde_json::Value::Null, serde_json::Value::String));
        }
        Ok(Snapshot { version, newest, values })
    }

    /// Stores `asked`'s values and newest generation, and the next version, in one write, if the
    /// version is still the one its writer read; `None` (nothing written) otherwise.
    async fn write_states(&self, asked: WriteAsked) -> Result<Option<u64>> {
        let storage = self.state.storage();
        if storage.get::<u64>(VERSION).await?.unwrap_or(0) != asked.version {
            return Ok(None);
        }
        let next = asked.version + 1;
        // A plain object (serde would make a JS Map, whose entries `put` does not see).
        let values = js_sys::Object::new();
        for (key, value) in asked.values {
            let Some(value) = value.as_str() else { return Err("every value is a string".into()) };
            js_sys::Reflect::set(&values, &key.into(), &value.into())?;
        }
        js_sys::Reflect::set(&values, &VERSION.into(), &(next as f64).into())?;
        js_sys::Reflect::set(&values, &NEWEST.into(), &asked.newest.into())?;
        storage.put_multiple_raw(values).await?;
        Ok(Some(next))
    }
}

/// Ends a socket whose token expired: `{"type":"expired"}` first (the client reconnects at once,
/// without waiting for the closing handshake to finish), then a close with 4001.
fn expire(ws: &WebSocket) {
    let _ = ws.send_with_str(r#"{"type":"expired"}"#);
    let _ = ws.close(Some(TOKEN_EXPIRED), Some("token expired"));
}

/// The alarm time of a Unix millisecond instant (a bare number would be an offset from now).
fn instant(at: i64) -> ScheduledTime {
    ScheduledTime::new(js_sys::Date::new(&(at as f64).into()))
}
