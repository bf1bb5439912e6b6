// What a caller can make us spend: rate limits (Cloudflare's Rate Limiting binding as Miniflare
// emulates it, here with small limits) per caller and per workspace on invalidations, warms,
// `no-cache` reads, live connects and membership lookups; unauthenticated requests that touch KV
// not once (counted through a wrapped KV binding); the observers in production only with
// METRICS_TOKEN, which rotates; request bodies over their limit refused with 413.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { request } from "node:http";
import { after, before, describe, test } from "node:test";
import { newStack } from "../../scripts/stack.mjs";
import { liveWorker, rateLimits } from "../../scripts/stack/services.mjs";
import { ownWorker, seed, stack, tokenFor, websocketHandshake } from "./harness.mjs";

const PROTOCOL = "contact-list-cache.v1";
/** Each limit in the tests' worker: per caller 3, per workspace 5, a minute each. */
const PER_CALLER = 3;
const PER_WORKSPACE = 5;
const SMALL_LIMITS = rateLimits((name) => (name.endsWith("_PER_CALLER") ? PER_CALLER : PER_WORKSPACE));
const COMMAND_LIMIT = 64 * 1024;
const WEBHOOK_LIMIT = 8 * 1024 * 1024;

/** Seconds left in the current minute: Miniflare's rate limit windows are whole minutes. */
const windowLeft = () => 60 - (Math.floor(Date.now() / 1000) % 60);

/** Waits for the next window when fewer than 15 s are left in this one, so that a test's counts
 * all fall in one window. */
async function roomInWindow() {
  if (windowLeft() < 15) await new Promise((r) => setTimeout(r, windowLeft() * 1000 + 300));
}

/** An answer as { status, retryAfter, body }. */
async function answer(res) {
  const text = await res.text();
  return { status: res.status, retryAfter: res.headers.get("retry-after"), body: text && res.headers.get("content-type")?.includes("json") ? JSON.parse(text) : text };
}

/** Asserts a 429 for `action`, refused for the caller's or the workspace's use (`per`), with a
 * Retry-After that is the rest of the minute. */
function assertLimited({ status, retryAfter, body }, action, per) {
  assert.equal(status, 429, `${action} past the ${per}'s limit: ${JSON.stringify(body)}`);
  const left = windowLeft();
  assert.ok(Number(retryAfter) >= left - 1 && Number(retryAfter) <= Math.min(60, left + 1), `Retry-After ${retryAfter} is the rest of the minute (${left} s)`);
  assert.deepEqual(body, {
    success: false,
    error: { code: "rate_limited", message: `this ${per} has made too many ${action} requests; retry in ${retryAfter} s` },
  });
}

describe("rate limits per caller and per workspace", () => {
  const pieces = newStack();
  let worker;
  /** The 429s seen, per action, to compare with /metrics. */
  const refused = { invalidate: 0, warm: 0, fresh_read: 0, live_connect: 0, membership_lookup: 0 };
  const limited = (res, action, per) => {
    assertLimited(res, action, per);
    refused[action] += 1;
  };
  before(async () => {
    worker = await ownWorker(pieces, {}, {
      app: { ratelimits: SMALL_LIMITS, serviceBindings: { LIVE: liveWorker().name } },
      extraWorkers: [liveWorker()],
    });
  });
  after(() => pieces.stop());

  const as = (user, workspace) => ({ Authorization: `Bearer ${tokenFor(user)}`, "X-Workspace-ID": workspace });
  const invalidate = async (user, w) =>
    answer(await fetch(`${worker}/api/cache/invalidate`, {
      method: "POST",
      headers: { ...as(user, seed.workspace(w)), "Content-Type": "application/json" },
      body: JSON.stringify({ workspace_id: seed.workspace(w), board_id: seed.board(w, 1), filter: "open" }),
    }));
  const warm = async (user, w) =>
    answer(await fetch(`${worker}/api/cache/warm`, {
      method: "POST",
      headers: { ...as(user, seed.workspace(w)), "Content-Type": "application/json" },
      body: JSON.stringify({ board_id: seed.board(w, 2) }),
    }));
  const list = async (user, w, headers = {}) =>
    answer(await fetch(`${worker}/api/boards/${seed.board(w, 1)}/contacts?filter=open`, { headers: { ...as(user, seed.workspace(w)), ...headers } }));
  const counts = async (user, w, headers = {}) =>
    answer(await fetch(`${worker}/api/workspaces/${seed.workspace(w)}/counts`, { headers: { ...as(user, seed.workspace(w)), ...headers } }));
  const live = async (user, workspace) => {
    const res = await websocketHandshake(`${worker}/api/workspaces/${workspace}/live`, [PROTOCOL, `bearer.${tokenFor(user)}`]);
    return { status: res.status, retryAfter: res.headers["retry-after"] ?? null, body: res.body };
  };
  const fresh = { "Cache-Control": "no-cache" };

  test("invalidate: a caller past its limit gets 429; another caller of the workspace only when the workspace is past its own; another workspace not at all", async () => {
    await roomInWindow();
    const [first, second, elsewhere] = [seed.user(1), seed.user(6), seed.user(2)]; // workspaces 1, 1, 2
    for (let i = 0; i < PER_CALLER; i++) assert.equal((await invalidate(first, 1)).status, 200);
    limited(await invalidate(first, 1), "invalidate", "caller");
    // The workspace counted 3 (the refused call is not counted): 2 more are allowed.
    for (let i = 0; i < PER_WORKSPACE - PER_CALLER; i++) assert.equal((await invalidate(second, 1)).status, 200, "a second caller is not limited by the first's use");
    limited(await invalidate(second, 1), "invalidate", "workspace");
    assert.equal((await invalidate(elsewhere, 2)).status, 200, "another workspace is not limited by the first's use");
  });

  test("warm: the same limits, counted apart from invalidations", async () => {
    await roomInWindow();
    const [first, second, elsewhere] = [seed.user(3), seed.user(8), seed.user(4)]; // workspaces 3, 3, 4
    for (let i = 0; i < PER_CALLER; i++) assert.equal((await warm(first, 3)).status, 200);
    limited(await warm(first, 3), "warm", "caller");
    for (let i = 0; i < PER_WORKSPACE - PER_CALLER; i++) assert.equal((await warm(second, 3)).status, 200);
    limited(await warm(second, 3), "warm", "workspace");
    assert.equal((await warm(elsewhere, 4)).status, 200);
  });

  test("no-cache reads of lists and counts share a limit; cached reads are not limited", async () => {
    await roomInWindow();
    const [first, second, elsewhere] = [seed.user(5), seed.user(10), seed.user(11)]; // workspaces 5, 5, 1
    assert.equal((await list(first, 5, fresh)).status, 200);
    assert.equal((await counts(first, 5, fresh)).status, 200);
    assert.equal((await list(first, 5, fresh)).status, 200);
    limited(await counts(first, 5, fresh), "fresh_read", "caller");
    limited(await list(first, 5, fresh), "fresh_read", "caller");
    for (let i = 0; i < 5; i++) {
      assert.equal((await list(first, 5)).status, 200, "a read that caches may serve is not limited");
      assert.equal((await counts(first, 5)).status, 200);
    }
    for (let i = 0; i < PER_WORKSPACE - PER_CALLER; i++) assert.equal((await list(second, 5, fresh)).status, 200);
    limited(await counts(second, 5, fresh), "fresh_read", "workspace");
    assert.equal((await list(elsewhere, 1, fresh)).status, 200);
  });

  test("live connects: 101 up to the limit, then 429 with Retry-After", async () => {
    await roomInWindow();
    const [first, second, elsewhere] = [seed.user(12), seed.user(17), seed.user(13)]; // workspaces 2, 2, 3
    for (let i = 0; i < PER_CALLER; i++) assert.equal((await live(first, seed.workspace(2))).status, 101);
    limited(await live(first, seed.workspace(2)), "live_connect", "caller");
    for (let i = 0; i < PER_WORKSPACE - PER_CALLER; i++) assert.equal((await live(second, seed.workspace(2))).status, 101);
    limited(await live(second, seed.workspace(2)), "live_connect", "workspace");
    assert.equal((await live(elsewhere, seed.workspace(3))).status, 101);
  });

  test("membership lookups: a caller naming workspace after workspace, and callers crowding one workspace", async () => {
    await roomInWindow();
    const prober = seed.user(40); // a member of workspace 5 only
    const lookup = async (user, workspace, board = seed.board(1, 1)) => answer(await fetch(`${worker}/api/boards/${board}/contacts`, { headers: as(user, workspace) }));
    for (let i = 0; i < PER_CALLER; i++) assert.equal((await lookup(prober, randomUUID())).status, 403, "each lookup asks Supabase: not a member");
    limited(await lookup(prober, randomUUID()), "membership_lookup", "caller");
    // One unknown workspace, asked about by one caller after another (each their first lookup).
    const crowded = randomUUID();
    const strangers = [21, 22, 23, 24, 26, 27].map(seed.user);
    for (const user of strangers.slice(0, PER_WORKSPACE)) assert.equal((await lookup(user, crowded)).status, 403);
    limited(await lookup(strangers[PER_WORKSPACE], crowded), "membership_lookup", "workspace");
    // Neither counts against another caller in another workspace.
    assert.equal((await lookup(seed.user(35), seed.workspace(5), seed.board(5, 1))).status, 200);
  });

  test("/metrics counts every refusal per action, in JSON and in Prometheus format", async () => {
    const json = await (await fetch(`${worker}/metrics`)).json();
    assert.deepEqual(json.rate_limited, refused);
    assert.deepEqual(refused, { invalidate: 2, warm: 2, fresh_read: 3, live_connect: 2, membership_lookup: 2 });
    const text = await (await fetch(`${worker}/metrics?format=prometheus`)).text();
    for (const [action, count] of Object.entries(refused)) {
      assert.ok(text.includes(`contact_cache_rate_limited_total{action="${action}"} ${count}\n`), `${action}: ${count} in\n${text}`);
    }
  });
});

/** A KV binding over the real namespace that logs every operation (as `op key`) to the LOG
 * namespace, which the test reads. */
const COUNTING_KV = `
  export default function (env) {
    const log = (op, key) => env.LOG.put(Date.now() + ":" + crypto.randomUUID(), op + " " + (typeof key === "string" ? key : JSON.stringify(key ?? null)));
    return {
      async get(key, ...rest) { await log("get", key); return env.REAL.get(key, ...rest); },
      async getWithMetadata(key, ...rest) { await log("getWithMetadata", key); return env.REAL.getWithMetadata(key, ...rest); },
      async list(options) { await log("list", options?.prefix); return env.REAL.list(options); },
      async put(key, ...rest) { await log("put", key); return env.REAL.put(key, ...rest); },
      async delete(key) { await log("delete", key); return env.REAL.delete(key); },
    };
  }`;

describe("in production", () => {
  const pieces = newStack();
  const barePieces = newStack();
  const METRICS_TOKEN = "metrics-token-new";
  const METRICS_TOKEN_PREVIOUS = "metrics-token-old";
  let worker;
  let bare;
  let kvLog;
  before(async () => {
    worker = await ownWorker(pieces, { ENVIRONMENT: "production", METRICS_TOKEN, METRICS_TOKEN_PREVIOUS }, {
      extraWorkers: [{ name: "counting-kv", script: COUNTING_KV, kvNamespaces: { REAL: "contact-cache", LOG: "kv-log" }, compatibilityDate: undefined }],
      app: { kvNamespaces: {}, wrappedBindings: { CONTACT_CACHE: { scriptName: "counting-kv" } } },
    });
    kvLog = await pieces.miniflare.getKVNamespace("LOG", "counting-kv");
    bare = await ownWorker(barePieces, { ENVIRONMENT: "production" });
  });
  after(() => Promise.all([pieces.stop(), barePieces.stop()]));

  /** Every operation logged so far, oldest first. */
  const kvOperations = async () => {
    const { keys } = await kvLog.list();
    return Promise.all(keys.map((k) => kvLog.get(k.name)));
  };

  test("without METRICS_TOKEN, /metrics, /api/cache/stats and the deep /health are refused with 503 naming it, with or without a token sent", async () => {
    for (const path of ["/metrics", "/metrics?format=prometheus", "/api/cache/stats", "/health?deep=1"]) {
      for (const headers of [{}, { Authorization: `Bearer ${METRICS_TOKEN}` }]) {
        const res = await answer(await fetch(`${bare}${path}`, { headers }));
        assert.equal(res.status, 503, path);
        assert.deepEqual(res.body, {
          success: false,
          error: { code: "not_configured", message: "in production this route is served only with METRICS_TOKEN set" },
        });
      }
    }
    const health = await answer(await fetch(`${bare}/health`));
    assert.equal(health.status, 200);
    assert.equal(health.body.status, "healthy");
  });

  test("with METRICS_TOKEN, the observers answer its current and its previous value, and nothing else", async () => {
    for (const path of ["/metrics", "/api/cache/stats", "/health?deep=1"]) {
      for (const token of [METRICS_TOKEN, METRICS_TOKEN_PREVIOUS]) {
        const res = await fetch(`${worker}${path}`, { headers: { Authorization: `Bearer ${token}` } });
        assert.equal(res.status, 200, `${path} with ${token}`);
      }
      for (const headers of [{}, { Authorization: "Bearer metrics-token-other" }, { Authorization: `Bearer ${METRICS_TOKEN}x` }]) {
        const res = await answer(await fetch(`${worker}${path}`, { headers }));
        assert.equal(res.status, 401, `${path} with ${JSON.stringify(headers)}`);
        assert.equal(res.body.error.code, "unauthorized");
      }
    }
    const deep = await (await fetch(`${worker}/health?deep=1`, { headers: { Authorization: `Bearer ${METRICS_TOKEN}` } })).json();
    assert.deepEqual(
      { status: deep.status, kv: deep.kv_available, backend: deep.backend_available, supabase: deep.supabase_available },
      { status: "healthy", kv: true, backend: true, supabase: true },
    );
  });

  test("1,000 unauthenticated requests to every public route touch KV not once", async () => {
    await kvLog.list().then(({ keys }) => Promise.all(keys.map((k) => kvLog.delete(k.name))));
    const w = seed.workspace(1);
    const board = seed.board(1, 1);
    const json = (body) => ({ method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    // Each route with what it must answer; every other call of a route sends a wrong credential.
    const routes = [
      ["GET /health", "/health", {}, 200],
      ["HEAD /health", "/health", { method: "HEAD" }, 200],
      ["GET /health?deep=1", "/health?deep=1", {}, 401],
      ["POST /health", "/health", { method: "POST" }, 405],
      ["GET /metrics", "/metrics", {}, 401],
      ["GET /metrics (prometheus)", "/metrics?format=prometheus", {}, 401],
      ["GET /api/cache/stats", "/api/cache/stats", {}, 401],
      ["GET /dashboard", "/dashboard", {}, 200],
      ["GET contacts", `/api/boards/${board}/contacts?filter=open`, { headers: { "X-Workspace-ID": w } }, 401],
      ["GET contacts no-cache", `/api/boards/${board}/contacts`, { headers: { "X-Workspace-ID": randomUUID(), "Cache-Control": "no-cache" } }, 401],
      ["GET counts", `/api/workspaces/${w}/counts`, { headers: { "Cache-Control": "no-cache" } }, 401],
      ["GET live (no upgrade)", `/api/workspaces/${w}/live`, {}, 400],
      ["GET audit", `/api/workspaces/${w}/audit`, {}, 401],
      ["POST invalidate", "/api/cache/invalidate", json({ workspace_id: w }), 401],
      ["POST webhook", "/api/cache/webhook", json({ type: "UPDATE", table: "contacts", record: { workspace_id: w, board_id: board } }), 401],
      ["POST warm", "/api/cache/warm", { ...json({ board_id: board }), headers: { "Content-Type": "application/json", "X-Workspace-ID": w } }, 401],
      ["OPTIONS", `/api/boards/${board}/contacts`, { method: "OPTIONS", headers: { Origin: "https://app.example.com", "Access-Control-Request-Method": "GET" } }, 204],
      ["GET unknown", "/no/such/route", {}, 404],
      ["POST unknown", "/api/cache/nothing", { method: "POST" }, 404],
    ];
    const wrong = { Authorization: `Bearer ${tokenFor(seed.user(1)).slice(0, -6)}AAAAAA`, "X-Webhook-Secret": "not-the-secret" };
    const unexpected = [];
    for (const [name, path, init, expected] of routes) {
      let next = 0;
      const one = async () => {
        while (next < 1000) {
          const i = next++;
          const headers = { ...(init.headers ?? {}), ...(i % 2 ? wrong : {}) };
          const res = await fetch(`${worker}${path}`, { ...init, headers });
          await res.arrayBuffer();
          if (res.status !== expected) unexpected.push(`${name}: ${res.status}`);
        }
      };
      await Promise.all(Array.from({ length: 16 }, one));
    }
    // Live connects with a WebSocket upgrade, with no token and a wrong one.
    for (let i = 0; i < 1000; i++) {
      const protocols = i % 2 ? [PROTOCOL, `bearer.${wrong.Authorization.slice(7)}`] : [PROTOCOL];
      const res = await websocketHandshake(`${worker}/api/workspaces/${w}/live`, protocols);
      if (res.status !== 401) unexpected.push(`live upgrade: ${res.status}`);
    }
    assert.deepEqual(unexpected.slice(0, 10), [], `${unexpected.length} unexpected answers`);
    assert.deepEqual(await kvOperations(), [], "no KV operation at all");
    // The count is real: an authorized deep health check writes its probe and reads it back.
    assert.equal((await fetch(`${worker}/health?deep=1`, { headers: { Authorization: `Bearer ${METRICS_TOKEN}` } })).status, 200);
    const probe = await kvOperations();
    assert.equal(probe.length, 2, JSON.stringify(probe));
    assert.match(probe.join("\n"), /^put health:probe:[0-9a-f]{16}$/m);
  });
});

describe("rate limit bindings left unbound", () => {
  const production = newStack();
  const development = newStack();
  after(() => Promise.all([production.stop(), development.stop()]));

  test("in production the routes that need them answer 500 naming the first missing; elsewhere nothing is limited", async () => {
    const [prod, dev] = await Promise.all([
      ownWorker(production, { ENVIRONMENT: "production", METRICS_TOKEN: "t" }, { app: { ratelimits: {} } }),
      ownWorker(development, { ENVIRONMENT: "development" }, { app: { ratelimits: {} } }),
    ]);
    const user = seed.user(9); // workspace 4
    const read = (base) => fetch(`${base}/api/boards/${seed.board(4, 1)}/contacts`, { headers: { Authorization: `Bearer ${tokenFor(user)}`, "X-Workspace-ID": seed.workspace(4), "Cache-Control": "no-cache" } });
    const refused = await answer(await read(prod));
    assert.equal(refused.status, 500);
    assert.deepEqual(refused.body, {
      success: false,
      error: { code: "misconfigured", message: "the worker is misconfigured: LIMIT_INVALIDATE_PER_CALLER is required but not set" },
    });
    assert.equal((await (await fetch(`${prod}/health`)).json()).configured, false, "the plain /health shows it");
    for (let i = 0; i < PER_WORKSPACE + 1; i++) assert.equal((await read(dev)).status, 200);
  });
});

describe("request body limits", () => {
  const worker = stack.urls.worker;
  const headers = { Authorization: `Bearer ${tokenFor(seed.user(1))}`, "X-Workspace-ID": seed.workspace(1), "Content-Type": "application/json" };
  /** A JSON body of exactly `size` bytes. */
  const sized = (size) => {
    const body = JSON.stringify({ workspace_id: "x", pad: "" });
    return body.replace('"pad":""', `"pad":"${"a".repeat(size - body.length)}"`);
  };
  const tooLarge = (limit) => ({
    success: false,
    error: { code: "payload_too_large", message: `the request body is larger than the limit of ${limit} bytes`, field: "body" },
  });

  test("invalidate and warm refuse a body over 64 KiB with 413 naming the limit; a body at the limit is read", async () => {
    for (const path of ["/api/cache/invalidate", "/api/cache/warm"]) {
      const over = await answer(await fetch(`${worker}${path}`, { method: "POST", headers, body: sized(COMMAND_LIMIT + 1) }));
      assert.equal(over.status, 413, path);
      assert.deepEqual(over.body, tooLarge(COMMAND_LIMIT));
      const at = await answer(await fetch(`${worker}${path}`, { method: "POST", headers, body: sized(COMMAND_LIMIT) }));
      assert.equal(at.status, 400, `${path}: read, then refused for what it says`);
      assert.equal(at.body.error.code, "invalid_parameter");
    }
  });

  test("a streamed body without Content-Length is cut off at the limit", async () => {
    const chunk = new TextEncoder().encode("a".repeat(16 * 1024));
    let sent = 0;
    const body = new ReadableStream({
      pull(controller) {
        if (sent >= COMMAND_LIMIT + chunk.length) return controller.close(); // 80 KiB in all
        sent += chunk.length;
        controller.enqueue(chunk);
      },
    });
    const res = await answer(await fetch(`${worker}/api/cache/invalidate`, { method: "POST", headers, body, duplex: "half" }));
    assert.equal(res.status, 413);
    assert.deepEqual(res.body, tooLarge(COMMAND_LIMIT));
  });

  /** A POST to `path` announcing `length` bytes, of which 1 KiB is sent and the request left
   * open: the answer, which must come without the rest. */
  const announced = (path, headers, length) =>
    new Promise((resolve, reject) => {
      const req = request(`${worker}${path}`, { method: "POST", agent: false, headers: { ...headers, "Content-Length": String(length) } });
      req.on("response", (res) => {
        let text = "";
        res.on("data", (c) => (text += c));
        res.on("end", () => {
          req.destroy();
          resolve({ status: res.statusCode, body: JSON.parse(text) });
        });
      });
      req.on("error", reject);
      req.write("a".repeat(1024));
      setTimeout(() => reject(new Error("no answer within 5 s: the worker waited for the body")), 5000).unref();
    });

  test("a Content-Length over the limit is refused before the body arrives", async () => {
    const res = await announced("/api/cache/invalidate", headers, 1e9);
    assert.equal(res.status, 413);
    assert.deepEqual(res.body, tooLarge(COMMAND_LIMIT));
  });

  test("the webhook refuses a body over 8 MiB with 413, and reads one of 8 MiB", async () => {
    const webhook = { "Content-Type": "application/json", "X-Webhook-Secret": stack.secrets.WEBHOOK_SECRET };
    const over = await announced("/api/cache/webhook", webhook, WEBHOOK_LIMIT + 1);
    assert.equal(over.status, 413);
    assert.deepEqual(over.body, tooLarge(WEBHOOK_LIMIT));
    const at = await answer(await fetch(`${worker}/api/cache/webhook`, { method: "POST", headers: webhook, body: sized(WEBHOOK_LIMIT) }));
    assert.equal(at.status, 400, "read, then refused for what it says");
    assert.equal(at.body.error.code, "invalid_parameter");
  });
});
