//! The read routes' gate over a real Redis, without PostgreSQL: the internal key alone reads
//! nothing as a user, a user's token is verified here (not taken from `X-User-ID`), a page held
//! in Redis is not served while membership cannot be confirmed, and statistics need the metrics
//! token. (What Redis serves to a member, misses, TTLs, a dead Redis and the reads from
//! PostgreSQL are exercised end to end, with a database, in tests/e2e/backend.test.mjs and
//! tests/e2e/backend_auth.test.mjs.)

mod helpers;

use helpers::{spawn_app, Redis, AUTH_KEY, JWT_SECRET, METRICS_TOKEN};
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::{json, Value};
use std::time::{SystemTime, UNIX_EPOCH};

const WS: &str = "11111111-1111-4111-8111-111111111111";
const ME: &str = "22222222-2222-4222-8222-222222222222";
const OTHER: &str = "44444444-4444-4444-8444-444444444444";
const BOARD: &str = "33333333-3333-4333-8333-333333333333";

fn list_key(filter: &str, user_relative: Option<&str>) -> String {
    let scope = user_relative.map(|user| format!(":user:{user}")).unwrap_or_default();
    format!("contacts:{{{WS}}}:{filter}{scope}:board:{BOARD}:page:1:limit:50:sort:created_at-desc:gen:0")
}

/// A user's access token signed with `secret`, expiring `expires_in` seconds from now.
fn token(sub: &str, secret: &str, expires_in: i64) -> String {
    contact_list_cache_core::token::crypto::install();
    let now = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()).unwrap();
    let claims = json!({"sub": sub, "aud": "authenticated", "role": "authenticated", "exp": now + expires_in});
    encode(&Header::default(), &claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

/// `GET base+path` with the internal key and `extra` headers: the status and the JSON body.
async fn get(base: &str, path: &str, extra: &[(&str, &str)]) -> (u16, Value) {
    let mut request = reqwest::Client::new().get(format!("{base}{path}")).header("X-Internal-Auth", AUTH_KEY).header("X-Workspace-ID", WS);
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

async fn store(base: &str, key: &str, data: Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}/api/cache/store"))
        .header("X-Internal-Auth", AUTH_KEY)
        .json(&json!({"key": key, "data": data, "ttl": 60}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

fn error(body: &Value) -> (&str, &str) {
    (body["error"]["code"].as_str().unwrap_or_default(), body["error"]["message"].as_str().unwrap_or_default())
}

#[tokio::test]
async fn the_internal_key_with_a_user_id_alone_reads_nothing() {
    let redis = Redis::start();
    let base = spawn_app(&[("REDIS_PUBLIC_URL", &redis.url())]).await;
    store(&base, &list_key("closed", None), json!({"success": true, "marker": "stored"})).await;
    let cache = format!("/api/boards/{BOARD}/contacts/cache?filter=closed");
    let bearer = |token: String| format!("Bearer {token}");
    let cases: [(Vec<(&str, String)>, &str); 6] = [
        (vec![("X-User-ID", ME.into()), ("X-Cache-Only", "true".into())], "missing Authorization: Bearer token (the user's own access token)"),
        (vec![("Authorization", "Basic abc".into())], "Authorization must be Bearer <token>"),
        (vec![("Authorization", bearer(token(ME, "another-secret", 60)))], "invalid token"),
        (vec![("Authorization", bearer(token(ME, JWT_SECRET, -120)))], "token expired"),
        (vec![("Authorization", bearer(token("me", JWT_SECRET, 60)))], "token subject is not a user id"),
        (vec![("Authorization", bearer(token(OTHER, JWT_SECRET, 60))), ("X-User-ID", ME.into())], "X-User-ID must be the token's subject"),
    ];
    for (headers, message) in cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(name, value)| (*name, value.as_str())).collect();
        for path in [cache.clone(), format!("/api/workspaces/{WS}/counts"), format!("/api/workspaces/{WS}/audit")] {
            let (status, body) = get(&base, &path, &headers).await;
            assert_eq!((status, error(&body)), (401, ("unauthorized", message)), "{path} {headers:?}");
        }
    }
    let (status, body) = get(&base, &format!("/api/workspaces/{WS}/audit"), &[("X-Refresh-Ahead", "sealed"), ("X-User-ID", ME)]).await;
    assert_eq!((status, error(&body).1), (401, "the audit log needs the user's own access token"), "refresh-ahead reads no audit log");
}

#[tokio::test]
async fn a_stored_page_is_not_served_while_membership_cannot_be_confirmed() {
    let redis = Redis::start();
    let base = spawn_app(&[("REDIS_PUBLIC_URL", &redis.url())]).await;
    store(&base, &list_key("closed", None), json!({"success": true})).await;
    let valid = format!("Bearer {}", token(ME, JWT_SECRET, 60));
    let path = format!("/api/boards/{BOARD}/contacts/cache?filter=closed");
    for headers in [vec![("Authorization", valid.as_str()), ("X-Cache-Only", "true")], vec![("X-Refresh-Ahead", "sealed"), ("X-User-ID", ME), ("X-Cache-Only", "true")]] {
        let (status, body) = get(&base, &path, &headers).await;
        assert_eq!((status, error(&body).0), (503, "database_unavailable"), "{headers:?}");
    }
}

#[tokio::test]
async fn statistics_and_metrics_need_the_metrics_token_in_either_of_its_values() {
    let redis = Redis::start();
    let base = spawn_app(&[("REDIS_PUBLIC_URL", &redis.url()), ("METRICS_TOKEN_PREVIOUS", "old-metrics-token")]).await;
    let client = reqwest::Client::new();
    for path in ["/api/cache/stats", "/metrics"] {
        let status = |request: reqwest::RequestBuilder| async move { request.send().await.unwrap().status().as_u16() };
        assert_eq!(status(client.get(format!("{base}{path}")).header("X-Internal-Auth", AUTH_KEY)).await, 401, "{path}: the internal key");
        assert_eq!(status(client.get(format!("{base}{path}")).bearer_auth("wrong")).await, 401, "{path}");
        assert_eq!(status(client.get(format!("{base}{path}")).bearer_auth(METRICS_TOKEN)).await, 200, "{path}");
        assert_eq!(status(client.get(format!("{base}{path}")).bearer_auth("old-metrics-token")).await, 200, "{path}: the previous value");
    }
}
