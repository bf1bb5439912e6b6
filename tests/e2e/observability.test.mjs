// /metrics, request logs and X-Request-ID, on a fresh worker isolate driven through a known mix of
// KV hits, a Redis hit, database reads, 4xx answers and an upstream failure.
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { chromium } from "playwright-core";
import parsePrometheus from "parse-prometheus-text-format";
import { ROOT, newStack, waitFor } from "../../scripts/stack.mjs";
import { ownBackend, ownWorker, redisCli, seed, stack, tokenFor } from "./harness.mjs";

const WS = seed.workspace(4);
const BOARD = seed.board(4, 2);
const ME = seed.user(4); // member of workspace 4 only
const METRICS_TOKEN = "metrics-token-for-tests";
const SEARCH_TERM = "zzqx-secret-term";

describe("metrics and logs over a known mix", () => {
  const pieces = newStack();
  const lines = [];
  let worker;
  let kv;
  let backend;
  before(async () => {
    backend = await ownBackend(pieces);
    const capture = (stream) => {
      let rest = "";
      stream.on("data", (chunk) => {
        const text = rest + chunk.toString("utf8");
        const parts = text.split("\n");
        rest = parts.pop();
        lines.push(...parts);
      });
    };
    worker = await ownWorker(pieces, { BACKEND_URL: backend.url, METRICS_TOKEN }, {
      handleRuntimeStdio: (stdout, stderr) => { capture(stdout); capture(stderr); },
    });
    kv = await pieces.miniflare.getKVNamespace("CONTACT_CACHE");
  });
  after(() => pieces.stop());

  const list = (query, headers = {}) =>
    fetch(`${worker}/api/boards/${BOARD}/contacts?${query}`, {
      headers: { Authorization: `Bearer ${tokenFor(ME)}`, "X-Workspace-ID": WS, ...headers },
    });
  const metrics = async (format) => {
    const res = await fetch(`${worker}/metrics${format ? `?format=${format}` : ""}`, { headers: { Authorization: `Bearer ${METRICS_TOKEN}` } });
    assert.equal(res.status, 200);
    return format ? res.text() : res.json();
  };

  test("the mix is reported exactly, in JSON and in Prometheus format", async () => {
    const query = "filter=open&sortBy=name&page=2";
    const first = await list(query); // KV miss, Redis miss, database
    assert.equal(first.headers.get("x-cache-layer"), "DATABASE");
    const kvKey = first.headers.get("x-cache-key");
    const gen = kvKey.split("&gen=")[1];
    const redisKey = `contacts:{${WS}}:open:board:${BOARD}:page:2:limit:50:sort:name-desc:gen:${gen}`;
    await waitFor("write-back to KV and Redis", async () => (await kv.get(kvKey)) !== null && redisCli(stack.ports.redis, "exists", redisKey) === "1", 5000);
    for (let i = 0; i < 3; i++) assert.equal((await list(query)).headers.get("x-cache-layer"), "KV");
    await kv.delete(kvKey);
    assert.equal((await list(query)).headers.get("x-cache-layer"), "REDIS");
    assert.equal((await list("pageSize=0")).status, 400);
    assert.equal((await fetch(`${worker}/api/boards/${BOARD}/contacts`, { headers: { "X-Workspace-ID": WS } })).status, 401);
    await pieces.stopService(backend.child);
    await waitFor("write-back from the Redis hit", async () => (await kv.get(kvKey)) !== null, 5000);
    await kv.delete(kvKey);
    const degraded = await list(query); // KV miss, Redis unreachable, database
    assert.equal(degraded.status, 200);
    assert.equal(degraded.headers.get("x-cache-layer"), "DATABASE");

    const body = await metrics();
    assert.equal(body.worker, "contact-list-cache");
    assert.equal(body.scope.kind, "isolate");
    assert.equal(body.scope.window_seconds, 300);
    assert.deepEqual(
      { total: body.analytics.totalRequests, hits: body.analytics.cacheHits, misses: body.analytics.cacheMisses, errors: body.metrics.errors },
      { total: 8, hits: 4, misses: 2, errors: 1 },
    );
    assert.equal(body.analytics.hitRate, 0.67);
    assert.equal(body.metrics.cache_hit_rate, 0.67);
    assert.deepEqual(body.layers, {
      L0: { hits: 0, misses: 0, served: 0 }, // off in the suite's workers
      KV: { hits: 3, misses: 3, served: 3 },
      REDIS: { hits: 1, misses: 1, served: 1 },
      DATABASE: { hits: 0, misses: 0, served: 2 },
      "BACKEND-FALLBACK": { hits: 0, misses: 0, served: 0 },
    });
    // a: get, put; 3 KV hits: get; Redis hit: get, put; degraded: get, put. (The scope's state
    // is the state home's, not KV's.)
    assert.equal(body.analytics.kvOperations, 9);
    assert.equal(body.metrics.kv_operations, 9);
    // The state home: read by the first list, then kept for the bound (read again, in the
    // background, past half of it): at least one read, at most one per list answered; no writes.
    const home = body.state_home;
    assert.ok(home.reads >= 1 && home.reads <= 6, JSON.stringify(home));
    assert.deepEqual([home.writes, home.conflicts], [0, 0]);
    // a: lookup, store; Redis hit: lookup; degraded: failed lookup, store.
    assert.equal(body.analytics.redisOperations, 5);
    // a: membership, page; degraded: page (membership is cached for a minute).
    assert.equal(body.analytics.databaseQueries, 3);
    for (const key of ["requests_per_minute", "average_response_time"]) assert.equal(typeof body.metrics[key], "number");
    assert.ok(body.latency.p50 <= body.latency.p95 && body.latency.p95 <= body.latency.p99);
    assert.equal(body.analytics.p95ResponseTime, body.latency.p95);

    const families = parsePrometheus(await metrics("prometheus"));
    const value = (name, labels = {}) => {
      const family = families.find((f) => f.name === name);
      assert.ok(family, `${name} is exposed`);
      assert.ok(family.help && family.type, `${name} has HELP and TYPE`);
      const metric = family.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
      return Number(metric.value);
    };
    assert.equal(value("contact_cache_requests"), 8);
    assert.equal(value("contact_cache_hits"), 4);
    assert.equal(value("contact_cache_misses"), 2);
    assert.equal(value("contact_cache_errors"), 1);
    assert.equal(value("contact_cache_hit_ratio"), 0.67);
    assert.equal(value("contact_cache_kv_operations"), 9);
    assert.equal(value("contact_cache_state_home_reads"), home.reads);
    assert.equal(value("contact_cache_state_home_writes"), 0);
    assert.equal(value("contact_cache_redis_operations"), 5);
    assert.equal(value("contact_cache_database_queries"), 3);
    assert.equal(value("contact_cache_layer_hits", { layer: "KV" }), 3);
    assert.equal(value("contact_cache_layer_misses", { layer: "REDIS" }), 1);
    assert.equal(value("contact_cache_response_time_milliseconds", { quantile: "0.99" }), body.latency.p99);
    const text = await (await fetch(`${worker}/metrics`, { headers: { Authorization: `Bearer ${METRICS_TOKEN}`, Accept: "text/plain" } })).text();
    assert.match(text, /^# HELP /);
  });

  test("request and error log lines are JSON with the spec's fields and no secrets", async () => {
    await list(`search=${SEARCH_TERM}&filter=all`);
    await waitFor("log lines", () => lines.some((l) => l.includes('"type":"error"')), 3000);
    const entries = lines.filter((l) => l.trim().startsWith("{")).map((l) => JSON.parse(l));
    const requests = entries.filter((e) => e.type === "request" && e.path.startsWith("/api/boards/"));
    assert.equal(requests.length, 9);
    for (const field of ["requestId", "boardId", "workspaceId", "responseTime", "cacheHit", "cacheLayer", "edgeLocation", "userAgent", "timestamp"]) {
      assert.ok(field in requests[0], `request lines carry ${field}`);
    }
    assert.equal(requests[0].workspaceId, WS);
    assert.equal(requests[0].boardId, BOARD);
    const errors = entries.filter((e) => e.type === "error");
    assert.ok(errors.length >= 1);
    for (const field of ["requestId", "error", "url", "responseTime", "edgeLocation", "fallbackUsed", "timestamp"]) {
      assert.ok(field in errors[0], `error lines carry ${field}`);
    }
    const all = lines.join("\n");
    for (const secret of [stack.secrets.INTERNAL_AUTH_KEY, stack.secrets.SUPABASE_JWT_SECRET, stack.secrets.SUPABASE_ANON_KEY, tokenFor(ME).split(".")[1], METRICS_TOKEN, SEARCH_TERM, "@example."]) {
      assert.ok(!all.includes(secret), `logs never contain ${secret.slice(0, 12)}…`);
    }
  });

  test("every response carries X-Request-ID, keeping a valid incoming one", async () => {
    const kept = await fetch(`${worker}/health`, { headers: { "X-Request-ID": "req-abc.123_XYZ" } });
    assert.equal(kept.headers.get("x-request-id"), "req-abc.123_XYZ");
    const replaced = await fetch(`${worker}/nope`, { headers: { "X-Request-ID": "bad id with spaces" } });
    assert.match(replaced.headers.get("x-request-id"), /^[0-9a-f]{32}$/);
    const errored = await list("pageSize=1000");
    assert.match(errored.headers.get("x-request-id"), /^[0-9a-f]{32}$/);
  });

  test("the deep /health is degraded, not failing, with the backend down", async () => {
    const res = await fetch(`${worker}/health?deep=1`, { headers: { Authorization: `Bearer ${METRICS_TOKEN}` } });
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.equal(body.status, "degraded");
    assert.equal(body.backend_available, false);
    assert.equal(body.supabase_available, true);
    assert.equal(body.kv_available, true);
  });

  test("the dashboard shows the numbers in headless Chromium", async () => {
    const expected = await metrics();
    const browser = await chromium.launch({
      executablePath: "/usr/bin/chromium",
      args: ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking", "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync"],
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
      await page.goto(`${worker}/dashboard#token=${METRICS_TOKEN}`);
      await page.waitForSelector("body[data-ready='true']", { timeout: 10_000 });
      assert.equal(await page.textContent("#total-requests"), String(expected.analytics.totalRequests));
      assert.equal(await page.textContent("#hit-rate"), `${Math.round(expected.analytics.hitRate * 100)}%`);
      assert.equal(await page.textContent("#errors"), String(expected.metrics.errors));
      assert.equal(await page.locator("#layers rect").count(), 2, "a hit-rate bar for KV and for Redis");
      assert.match(await page.textContent("#latency"), new RegExp(`${expected.latency.p99} ms`));
      const dir = join(ROOT, "tests", "artifacts");
      mkdirSync(dir, { recursive: true });
      await page.screenshot({ path: join(dir, "dashboard.png"), fullPage: true });
    } finally {
      await browser.close();
    }
  });

  test("METRICS_TOKEN protects /metrics", async () => {
    assert.equal((await fetch(`${worker}/metrics`)).status, 401);
    assert.equal((await fetch(`${worker}/metrics`, { headers: { Authorization: "Bearer wrong" } })).status, 401);
  });
});

describe("edge cache statistics", () => {
  test("GET /api/cache/stats merges the backend's Redis numbers with the edge's own, without leaking the internal key", async () => {
    const res = await fetch(`${stack.urls.worker}/api/cache/stats`);
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.ok(!text.includes(stack.secrets.INTERNAL_AUTH_KEY));
    const body = JSON.parse(text);
    assert.equal(typeof body.data.backend.redis.keys, "number");
    assert.equal(body.data.backend.redis.mode, "single");
    assert.equal(typeof body.data.backend.service.hits, "number");
    assert.equal(typeof body.data.edge.analytics.totalRequests, "number");
    assert.ok(body.data.edge.layers.KV);
  });
});
