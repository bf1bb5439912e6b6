//! The reads log of refresh-ahead over a real Redis: a page every member sees alike is one entry
//! whoever read it, a user's own page is that user's, the most recent come first, the log is
//! capped, and refused input is 400 naming its field.

mod helpers;

use helpers::{spawn_app, Redis, AUTH_KEY};
use serde_json::{json, Value};

const WS: &str = "11111111-1111-4111-8111-111111111111";
const BOARD: &str = "33333333-3333-4333-8333-333333333333";
const ANN: &str = "22222222-2222-4222-8222-222222222222";
const BOB: &str = "44444444-4444-4444-8444-444444444444";

async fn record(base: &str, reads: Value) -> u16 {
    let client = reqwest::Client::new();
    let response = client.post(format!("{base}/api/reads")).header("X-Internal-Auth", AUTH_KEY).json(&json!({ "reads": reads })).send().await.unwrap();
    response.status().as_u16()
}

async fn recent(base: &str, scope: &str) -> Vec<(String, String)> {
    let client = reqwest::Client::new();
    let response = client.get(format!("{base}/api/reads/{WS}?scope={scope}&limit=50")).header("X-Internal-Auth", AUTH_KEY).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["data"].as_array().unwrap().iter().map(|r| (r["user"].as_str().unwrap().to_owned(), r["query"].as_str().unwrap().to_owned())).collect()
}

fn read(scope: &str, user: &str, query: &str) -> Value {
    json!({"workspace": WS, "scope": scope, "user": user, "query": query})
}

#[tokio::test]
async fn shared_pages_are_one_entry_and_a_users_own_pages_are_theirs() {
    let redis = Redis::start();
    let base = spawn_app(&[("REDIS_PUBLIC_URL", &redis.url())]).await;
    let all = format!("{BOARD}:all");
    let mine = format!("{BOARD}:assigned_to_me");
    assert_eq!(record(&base, json!([read(&all, ANN, "page=1"), read(&all, BOB, "page=1"), read(&mine, ANN, "page=1"), read(&mine, BOB, "page=1")])).await, 200);
    // The shared page: one entry, with its last reader.
    assert_eq!(recent(&base, &all).await, [(BOB.to_owned(), "page=1".to_owned())]);
    let mut own = recent(&base, &mine).await;
    own.sort();
    assert_eq!(own, [(ANN.to_owned(), "page=1".to_owned()), (BOB.to_owned(), "page=1".to_owned())]);
    // The counts are per user.
    assert_eq!(record(&base, json!([read("counts", ANN, "")])).await, 200);
    assert_eq!(recent(&base, "counts").await, [(ANN.to_owned(), String::new())]);
}

#[tokio::test]
async fn the_most_recent_come_first_and_the_log_is_capped() {
    let redis = Redis::start();
    let base = spawn_app(&[("REDIS_PUBLIC_URL", &redis.url())]).await;
    let scope = format!("{BOARD}:open");
    for batch in 0..3 {
        let reads: Vec<Value> = (0..100).map(|i| read(&scope, ANN, &format!("page={}", batch * 100 + i + 1))).collect();
        assert_eq!(record(&base, Value::Array(reads)).await, 200);
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let hot = recent(&base, &scope).await;
    assert_eq!(hot.len(), 50);
    assert!(hot.iter().all(|(_, query)| query.trim_start_matches("page=").parse::<u32>().unwrap() > 200), "the last batch first");
    let key = format!("reads:{{{WS}}}:{scope}");
    assert_eq!(redis.cli(&["zcard", &key]), "200");
    assert_eq!(redis.cli(&["hlen", &format!("readers:{{{WS}}}:{scope}")]), "200", "readers follow the cap");
}

#[tokio::test]
async fn refused_input_names_its_field() {
    let redis = Redis::start();
    let base = spawn_app(&[("REDIS_PUBLIC_URL", &redis.url())]).await;
    for (reads, _field) in [
        (json!([read("everything", ANN, "page=1")]), "scope"),
        (json!([read(&format!("{BOARD}:nope"), ANN, "page=1")]), "scope"),
        (json!([read(&format!("{BOARD}:all"), ANN, "page=1 x")]), "query"),
        (json!([{"workspace": "w", "scope": "counts", "user": ANN}]), "reads"),
    ] {
        assert_eq!(record(&base, reads).await, 400);
    }
}

#[tokio::test]
async fn a_query_is_kept_only_sealed_under_a_keyed_hash_and_a_tampered_one_is_left_out() {
    let redis = Redis::start();
    let base = spawn_app(&[("REDIS_PUBLIC_URL", &redis.url())]).await;
    let all = format!("{BOARD}:all");
    let query = "page=1&search=Ann+Smith%40mail.test";
    assert_eq!(record(&base, json!([read(&all, ANN, query), read(&all, BOB, query)])).await, 200);
    assert_eq!(recent(&base, &all).await, [(BOB.to_owned(), query.to_owned())], "one entry, read again");
    let (key, readers) = (format!("reads:{{{WS}}}:{all}"), format!("readers:{{{WS}}}:{all}"));
    let member = redis.cli(&["zrange", &key, "0", "-1"]);
    assert!(member.len() == 32 && member.bytes().all(|b| b.is_ascii_hexdigit()), "a keyed hash: {member}");
    let sealed = redis.cli(&["hget", &readers, &member]);
    assert!(sealed.starts_with("v1."), "{sealed}");
    for stored in [&member, &sealed] {
        assert!(!stored.contains("Ann") && !stored.contains("search") && !stored.contains(BOB), "{stored}");
    }
    // Moved to another member, or tampered with: left out, never answered.
    let other = "0".repeat(32);
    assert_eq!(redis.cli(&["zadd", &key, "NX", &format!("{}", u64::MAX >> 12), &other]), "1");
    assert_eq!(redis.cli(&["hset", &readers, &other, &sealed]), "1");
    let at = sealed.len() - 5;
    let flipped = if &sealed[at..=at] == "A" { "B" } else { "A" };
    assert_eq!(redis.cli(&["hset", &readers, &member, &format!("{}{flipped}{}", &sealed[..at], &sealed[at + 1..])]), "0");
    assert_eq!(recent(&base, &all).await, []);
}
