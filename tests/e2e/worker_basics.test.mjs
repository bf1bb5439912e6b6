// The worker's /health, JSON errors and CORS, served by the built wasm in Miniflare.
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { newStack } from "../../scripts/stack.mjs";
import { ownWorker, seed, stack, tokenFor } from "./harness.mjs";

const worker = stack.urls.worker;

describe("GET /health", () => {
  test("plain, answers from the isolate's configuration alone", async () => {
    const before = Date.now();
    const res = await fetch(`${worker}/health`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("cache-control"), "no-store");
    const body = await res.json();
    assert.deepEqual(Object.keys(body).sort(), ["configured", "edge_location", "kv_bound", "response_time", "status", "timestamp", "version", "worker"]);
    assert.deepEqual(
      { status: body.status, worker: body.worker, version: body.version, configured: body.configured, kv_bound: body.kv_bound },
      { status: "healthy", worker: "contact-list-cache", version: "1.0.0", configured: true, kv_bound: true },
    );
    const stamped = Date.parse(body.timestamp);
    assert.ok(stamped >= before - 1000 && stamped <= Date.now() + 1000, `timestamp ${body.timestamp} is now`);
    assert.match(body.response_time, /^\d+ms$/);
  });

  test("?deep=1 answers the spec's JSON with a working KV (open outside production without METRICS_TOKEN)", async () => {
    const before = Date.now();
    const res = await fetch(`${worker}/health?deep=1`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type"), /application\/json/);
    assert.equal(res.headers.get("cache-control"), "no-store");
    const body = await res.json();
    assert.deepEqual(Object.keys(body).sort(), [
      "backend_available", "edge_location", "kv_available", "response_time", "status", "supabase_available", "timestamp", "version", "worker",
    ]);
    assert.equal(body.backend_available, true);
    assert.equal(body.supabase_available, true);
    assert.equal(body.status, "healthy");
    assert.equal(body.worker, "contact-list-cache");
    assert.equal(body.version, "1.0.0");
    assert.equal(body.kv_available, true);
    assert.equal(typeof body.edge_location, "string");
    assert.ok(body.edge_location.length > 0);
    assert.match(body.timestamp, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
    const stamped = Date.parse(body.timestamp);
    assert.ok(stamped >= before - 1000 && stamped <= Date.now() + 1000, `timestamp ${body.timestamp} is now`);
    assert.match(body.response_time, /^\d+ms$/);
  });

  test("?deep= other than 1, true, 0 or false is a 400 naming deep", async () => {
    const res = await fetch(`${worker}/health?deep=yes`);
    assert.equal(res.status, 400);
    assert.equal((await res.json()).error.field, "deep");
  });

  describe("without a KV namespace bound", () => {
    const pieces = newStack();
    after(() => pieces.stop());

    test("reports kv_available false and status degraded, still 200; plain, kv_bound and configured false", async () => {
      // The worker with no bindings at all.
      const url = await pieces.startMiniflare({ app: { kvNamespaces: {} } });
      const res = await fetch(`${url}/health?deep=1`);
      assert.equal(res.status, 200);
      const body = await res.json();
      assert.equal(body.kv_available, false);
      assert.equal(body.backend_available, false, "no BACKEND_URL configured");
      assert.equal(body.status, "degraded");
      const plain = await (await fetch(`${url}/health`)).json();
      assert.deepEqual({ status: plain.status, configured: plain.configured, kv_bound: plain.kv_bound }, { status: "degraded", configured: false, kv_bound: false });
    });
  });
});

describe("errors", () => {
  test("an unknown route is a JSON 404 naming the path", async () => {
    const res = await fetch(`${worker}/no/such/route`);
    assert.equal(res.status, 404);
    assert.deepEqual(await res.json(), {
      success: false,
      error: { code: "not_found", message: "no route for GET /no/such/route" },
    });
  });

  test("a wrong method on /health is a JSON 405 with Allow", async () => {
    const res = await fetch(`${worker}/health`, { method: "POST" });
    assert.equal(res.status, 405);
    assert.equal(res.headers.get("allow"), "GET, HEAD, OPTIONS");
    const body = await res.json();
    assert.equal(body.success, false);
    assert.equal(body.error.code, "method_not_allowed");
  });

  test("every route answers a wrong method with a JSON 405 and its Allow, not a 404", async () => {
    const routes = [
      ["DELETE", "/metrics", "GET, OPTIONS"],
      ["POST", "/dashboard", "GET, OPTIONS"],
      ["PUT", "/api/cache/stats", "GET, OPTIONS"],
      ["POST", "/api/boards/b1/contacts", "GET, OPTIONS"],
      ["PATCH", "/api/workspaces/w1/counts", "GET, OPTIONS"],
      ["POST", "/api/workspaces/w1/audit", "GET, OPTIONS"],
      ["GET", "/api/cache/invalidate", "POST, OPTIONS"],
      ["GET", "/api/cache/warm", "POST, OPTIONS"],
    ];
    for (const [method, path, allow] of routes) {
      const res = await fetch(`${worker}${path}`, { method });
      assert.equal(res.status, 405, `${method} ${path}`);
      assert.equal(res.headers.get("allow"), allow, `${method} ${path}`);
      assert.equal((await res.json()).error.code, "method_not_allowed", `${method} ${path}`);
    }
  });
});

describe("CORS", () => {
  test("a preflight gets 204 with the allowed methods and headers", async () => {
    const res = await fetch(`${worker}/api/boards/x/contacts`, {
      method: "OPTIONS",
      headers: {
        Origin: "https://app.example.com",
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization, x-workspace-id",
      },
    });
    assert.equal(res.status, 204);
    assert.equal(res.headers.get("access-control-allow-origin"), "*");
    assert.equal(res.headers.get("access-control-allow-methods"), "GET, POST, OPTIONS");
    assert.match(res.headers.get("access-control-allow-headers"), /Authorization/);
    assert.match(res.headers.get("access-control-allow-headers"), /X-Workspace-ID/);
    assert.equal(res.headers.get("access-control-allow-credentials"), null);
  });

  test("responses expose the cache headers to browser scripts", async () => {
    const res = await fetch(`${worker}/health`, { headers: { Origin: "https://app.example.com" } });
    assert.equal(res.headers.get("access-control-allow-origin"), "*");
    assert.match(res.headers.get("access-control-expose-headers"), /X-Cache-Status/);
  });
});

describe("CORS from an allowlist", () => {
  const pieces = newStack();
  let worker;
  const allowed = ["https://app.example.com", "http://localhost:5173"];
  after(() => pieces.stop());

  const fromOrigin = async (origin, path = "/health", init = {}) => {
    worker ??= await ownWorker(pieces, { CORS_ALLOWED_ORIGINS: `${allowed[0]}, ${allowed[1]}/` });
    return fetch(`${worker}${path}`, { ...init, headers: { ...init.headers, ...(origin ? { Origin: origin } : {}) } });
  };

  test("a listed origin is echoed back, with Vary: Origin and never with credentials", async () => {
    for (const origin of allowed) {
      const res = await fromOrigin(origin);
      assert.equal(res.headers.get("access-control-allow-origin"), origin);
      assert.match(res.headers.get("vary"), /Origin/);
      assert.equal(res.headers.get("access-control-allow-credentials"), null);
    }
  });

  test("a list answer to a listed origin keeps its own Vary and adds Origin to it", async () => {
    const list = `/api/boards/${seed.board(1, 1)}/contacts`;
    const auth = { headers: { Authorization: `Bearer ${tokenFor(seed.user(1))}`, "X-Workspace-ID": seed.workspace(1) } };
    const res = await fromOrigin(allowed[0], list, auth);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("access-control-allow-origin"), allowed[0]);
    assert.deepEqual(res.headers.get("vary").split(",").map((v) => v.trim()), ["Authorization", "X-Workspace-ID", "Origin"]);
    assert.match(res.headers.get("access-control-expose-headers"), /X-Cache-Status/);
    assert.equal(res.headers.get("content-type"), "application/json");
  });

  test("an unlisted or look-alike origin gets no CORS header, on data too", async () => {
    const list = `/api/boards/${seed.board(1, 1)}/contacts`;
    const auth = { headers: { Authorization: `Bearer ${tokenFor(seed.user(1))}`, "X-Workspace-ID": seed.workspace(1) } };
    for (const origin of ["https://evil.example", "https://app.example.com.evil.example", "http://app.example.com", "null"]) {
      for (const res of [await fromOrigin(origin), await fromOrigin(origin, list, auth)]) {
        assert.equal(res.headers.get("access-control-allow-origin"), null, origin);
        assert.equal(res.headers.get("access-control-allow-credentials"), null, origin);
      }
    }
    const res = await fromOrigin(null);
    assert.equal(res.headers.get("access-control-allow-origin"), null);
  });

  test("a preflight from a listed origin names it, not a wildcard", async () => {
    const res = await fromOrigin(allowed[0], "/api/boards/x/contacts", {
      method: "OPTIONS",
      headers: { "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization, x-workspace-id" },
    });
    assert.equal(res.status, 204);
    assert.equal(res.headers.get("access-control-allow-origin"), allowed[0]);
    assert.equal(res.headers.get("access-control-allow-credentials"), null);
  });
});
