//! Following one request: the worker's `X-Request-ID` is logged with each request at `info`, and
//! while a request runs it is its task's id, which the database calls put in PostgreSQL's
//! `application_name` for their transaction (`pg_stat_activity`, `log_line_prefix` `%a`).

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use std::future::Future;
use std::time::Instant;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The `application_name` prefix of a traced transaction: `contact-list-cache-backend <id>`
/// would not fit PostgreSQL's 63 bytes with a long id.
const APPLICATION_PREFIX: &str = "clc-backend ";

/// An incoming `X-Request-ID` as the worker makes them (1 to 128 of `[A-Za-z0-9._-]`); anything
/// else is not used (it would be logged and put in SQL).
pub fn parse(raw: &str) -> Option<&str> {
    ((1..=128).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))).then_some(raw)
}

/// Runs `work` with `id` as the request's id.
pub async fn scoped<F: Future>(id: String, work: F) -> F::Output {
    REQUEST_ID.scope(id, work).await
}

/// The id of the request this task serves, if it has one.
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// The `application_name` a traced transaction sets: the prefix and as much of the id as fits.
pub fn application_name(id: &str) -> String {
    let mut name = format!("{APPLICATION_PREFIX}{id}");
    name.truncate(63);
    name
}

/// The middleware: one `info` line per request (method, path without its query, status, time,
/// request id) and the id as the task's while it is served.
pub async fn log_request(request: Request, next: Next) -> Response {
    let id = request.headers().get("x-request-id").and_then(|value| value.to_str().ok()).and_then(parse).map(str::to_owned);
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let started = Instant::now();
    let response = match id.clone() {
        Some(id) => scoped(id, next.run(request)).await,
        None => next.run(request).await,
    };
    tracing::info!(
        request_id = id.as_deref().unwrap_or("-"),
        method = %method,
        path,
        status = response.status().as_u16(),
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ids_the_worker_would_send_are_used_and_names_fit_postgres() {
        assert_eq!(parse("req-1.A_b"), Some("req-1.A_b"));
        for bad in ["", "a b", "x'; drop table t; --", &"a".repeat(129)] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert_eq!(application_name("abc"), "clc-backend abc");
        assert_eq!(application_name(&"a".repeat(128)).len(), 63);
    }

    #[tokio::test]
    async fn the_id_is_the_tasks_while_it_runs() {
        assert_eq!(current(), None);
        assert_eq!(scoped("r1".into(), async { current() }).await.as_deref(), Some("r1"));
    }
}
