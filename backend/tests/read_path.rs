//! The read routes over a real Redis, without PostgreSQL: what Redis answers, what a miss, a
//! refused or an outdated entry, a bypass and a dead Redis become, and how `/api/cache/stats`
//! counts them. (Reads from PostgreSQL and their write-backs are exercised end to end, in
//! tests/e2e/backend.test.mjs.)

mod helpers;

use contact_list_cache_core::time::UnixMillis;
use helpers::{spawn_app, Redis, AUTH_KEY};
use serde_json::{json, Value};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const WS: &str = "11111111-1111-4111-8111-111111111111";
const ME: &str = "22222222-2222-4222-8222-222222222222";
const BOARD: &str = "33333333-3333-4333-8333-333333333333";

fn list_key(filter: &str) -> String {
    format!("contacts:{{{WS}}}:{filter}:board:{BOARD}:page:1:limit:50:sort:created_at-desc:gen:0")
}

struct Answer {
    status: u16,
    cache: [Option<String>; 4],
    body: Value,
}

/// `GET base+path` as the worker sends it, with `extra` headers.
async fn get(base: &str, path: &str, extra: &[(&str, &str)]) -> Answer {
    let mut request = reqwest::Client::new().get(format!("{base}{path}")).header("X-Internal-Auth", AUTH_KEY);
    for (name, value) in [("X-Workspace-ID", WS), ("X-User-ID", ME)].iter().chain(extra) {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
    let cache = [header("x-cache-status"), header("x-cache-layer"), header("x-cache-key"), header("content-type")];
    Answer { status: response.status().as_u16(), cache, body: response.json().await.unwrap() }
}

async fn cache_only(base: &str, filter: &str) -> Answer {
    get(base, &format!("/api/boards/{BOARD}/contacts/cache?filter={filter}"), &[("X-Cache-Only", "true")]).await
}

async fn store(base: &str, key: &str, data: Value, ttl: u32) {
    let response = reqwest::Client::new()
        .post(format!("{base}/api/cache/store"))
        .header("X-Internal-Auth", AUTH_KEY)
        .json(&json!({"key": key, "data": data, "ttl": ttl}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

/// The service's counters: hits, misses, refused entries, Redis errors, database queries.
async fn counters(base: &str) -> [u64; 5] {
    let stats = get(base, "/api/cache/stats", &[]).await.body;
    let service = &stats["data"]["service"];
    ["hits", "misses", "refused_entries", "redis_errors", "database_queries"].map(|name| service[name].as_u64().unwrap())
}

fn code(answer: &Answer) -> &str {
    answer.body["error"]["code"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_stored_page_is_served_from_redis_by_both_list_routes_with_its_headers() {
    let redis = Redis::start();
    let base = spawn_app(&[("REDIS_PUBLIC_URL", &redis.url())]).await;
    let data = json!({"success": true, "marker": "stored"});
    store(&base, &list_key("closed"), data.clone(), 60).await;

    let read = cache_only(&base, "closed").await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body, data, "a body without cached_at is served as stored");
    let expected = ["HIT", "REDIS", &list_key("closed"), "application/json"].map(|v| Some(v.to_owned()));
    assert_eq!(read.cache, expected);
    // Without X-Cache-Only the cache route reads through (the fallback route would first check
    // membership in the database this test has none of).
    let through = get(&base, &format!("/api/boards/{BOARD}/contacts/cache?filter=closed"), &[]).await;
    assert_eq!((through.status, through.body), (200, data));
    assert_eq!(counters(&base).await, [2, 0, 0, 0, 0]);
}

#[tokio::test]
async fn a_cache_only_miss_is_404_and_a_refused_entry_is_a_miss_too() {
    let redis = Redis::start();
    let base = spawn_app(&[("REDIS_PUBLIC_URL", &redis.url())]).await;
    let miss = cache_only(&base, "open").await;
    assert_eq!((miss.status, code(&miss)), (404, "cache_miss"));
    assert_eq!(redis.cli(&["set", &list_key("archived"), "v1.k1.AAAAAAAAAAAAAAAA.AAAA", "EX", "60"]), "OK");
    let refused = cache_only(&base, "archived").await;
    assert_eq!((refused.status, code(&refused)), (404, "cache_miss"));
    assert_eq!(counters(&base).await, [0, 2, 1, 0, 0]);
}

#[tokio::test]
async fn a_page_read_longer_ago_than_its_ttl_is_not_served() {
    let redis = Redis::start();
    let base = spawn_app(&[("REDIS_PUBLIC_URL", &redis.url()), ("CACHE_TTL_CONTACTS_LIST", "180")]).await;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    let page = |read_at: u64| json!({"success": true, "data": {}, "cached_at": UnixMillis(read_at).to_string(), "cache_ttl": 180});
    store(&base, &list_key("open"), page(now - 170_000), 60).await;
    store(&base, &list_key("closed"), page(now - 200_000), 60).await;
    assert_eq!(cache_only(&base, "open").await.status, 200);
    assert_eq!(cache_only(&base, "closed").await.status, 404);
    assert_eq!(counters(&base).await[..2], [1, 1]);
}

#[tokio::test]
async fn without_a_database_a_miss_or_a_bypass_is_503_and_no_cache_skips_redis() {
    let redis = Redis::start();
    let base = spawn_app(&[("REDIS_PUBLIC_URL", &redis.url())]).await;
    store(&base, &list_key("all"), json!({"success": true}), 60).await;
    let list = |filter: &'static str, extra: &'static [(&'static str, &'static str)]| {
        let base = base.clone();
        async move { get(&base, &format!("/api/boards/{BOARD}/contacts/cache?filter={filter}"), extra).await }
    };
    let miss = list("open", &[]).await;
    assert_eq!((miss.status, code(&miss)), (503, "database_unavailable"));
    let bypass = list("all", &[("Cache-Control", "no-cache")]).await;
    assert_eq!((bypass.status, code(&bypass)), (503, "database_unavailable"), "the cached page is skipped");
    let counts = get(&base, &format!("/api/workspaces/{WS}/counts"), &[]).await;
    assert_eq!((counts.status, code(&counts)), (503, "database_unavailable"));
    // Two Redis misses (the list and the counts), no hit; three statements that could not run.
    assert_eq!(counters(&base).await, [0, 2, 0, 0, 3]);
}

#[tokio::test]
async fn with_redis_down_cache_only_is_503_quickly_and_the_service_recovers() {
    let mut redis = Redis::start();
    let base = spawn_app(&[("REDIS_PUBLIC_URL", &redis.url()), ("REDIS_TIMEOUT_MS", "300")]).await;
    store(&base, &list_key("open"), json!({"v": 1}), 60).await;
    redis.stop();

    let started = Instant::now();
    let down = cache_only(&base, "open").await;
    assert_eq!((down.status, code(&down)), (503, "redis_unavailable"));
    let through = get(&base, &format!("/api/boards/{BOARD}/contacts/cache?filter=open"), &[]).await;
    assert_eq!((through.status, code(&through)), (503, "database_unavailable"), "a failing Redis is skipped");
    assert!(started.elapsed() < Duration::from_secs(3), "answered in {:?}", started.elapsed());

    let redis = Redis::start_on(redis.port);
    let deadline = Instant::now() + Duration::from_secs(15);
    while cache_only(&base, "closed").await.status != 404 {
        assert!(Instant::now() < deadline, "the service did not reconnect");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    store(&base, &list_key("open"), json!({"v": 3}), 60).await;
    assert_eq!(cache_only(&base, "open").await.body, json!({"v": 3}));
    let [.., redis_errors, database_queries] = counters(&base).await;
    assert!(redis_errors >= 2, "{redis_errors}");
    assert_eq!(database_queries, 1);
    drop(redis);
}
