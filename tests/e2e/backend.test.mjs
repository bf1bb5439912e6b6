// The backend service against real Redis (single node and a 3-primary Redis Cluster) and the real
// seeded PostgreSQL: every endpoint, auth, TTLs, isolation, counts and fallback rows against SQL,
// and recovery after Redis restarts.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { newStack, waitFor } from "../../scripts/stack.mjs";
import { FILTERS, expectedPage, filterSql, ownBackend, readAnswer, redisCli, sameRows, seed, sql, stack, tokenFor } from "./harness.mjs";

const WS_A = seed.workspace(1);
const WS_B = seed.workspace(2);
const ME = seed.user(1); // member of workspace 1 only
const MEMBER_B = seed.user(2); // member of workspace 2
const BOARD_A = seed.board(1, 1);

/** A client for one backend instance. */
function backendClient(url, key) {
  return async function call(path, { method = "GET", body, headers = {}, auth = key } = {}) {
    const all = { ...headers };
    if (auth !== null) all["X-Internal-Auth"] = auth;
    if (body !== undefined) all["Content-Type"] = "application/json";
    return readAnswer(await fetch(`${url}${path}`, { method, headers: all, body: typeof body === "string" ? body : body && JSON.stringify(body) }));
  };
}

const call = backendClient(stack.urls.backend, stack.secrets.INTERNAL_AUTH_KEY);
/** A client for a backend of the test's own in `pieces`, on the Redis at `redisUrl`, with `env`. */
const ownClient = async (pieces, redisUrl, env) => backendClient((await ownBackend(pieces, { redisUrl, env })).url, stack.secrets.INTERNAL_AUTH_KEY);
/** What the worker sends for a user's read: the workspace, the user and the user's own token. */
const userHeaders = (user = ME) => ({ "X-User-ID": user, Authorization: `Bearer ${tokenFor(user)}` });
const listHeaders = (workspace = WS_A, user = ME) => ({ "X-Workspace-ID": workspace, ...userHeaders(user) });
/** The backend's metrics token, which alone opens /metrics and /api/cache/stats. */
const metricsAuth = { Authorization: `Bearer ${stack.backendOptions.metricsToken}` };
const listKey = (workspace, board, filter = "all") =>
  `contacts:{${workspace}}:${filter}:board:${board}:page:1:limit:50:sort:created_at-desc:gen:0`;

/** The operations every cache backend must support, run against one backend instance. */
function cacheContract(name, client) {
  describe(`${name}: store, read, expire, invalidate`, () => {
    test("a stored entry is read back from the cache-only endpoint", async () => {
      const key = listKey(WS_A, BOARD_A, "closed");
      const data = { success: true, marker: `${name}-stored` };
      const stored = await client("/api/cache/store", { method: "POST", body: { key, data, ttl: 60 } });
      assert.equal(stored.status, 200);
      assert.equal(stored.json.data.ttl, 60);
      const read = await client(`/api/boards/${BOARD_A}/contacts/cache?filter=closed`, { headers: { ...listHeaders(), "X-Cache-Only": "true" } });
      assert.equal(read.status, 200);
      assert.deepEqual(read.json, data);
      assert.equal(read.headers.get("x-cache-status"), "HIT");
      assert.equal(read.headers.get("x-cache-layer"), "REDIS");
      assert.equal(read.headers.get("x-cache-key"), key);
    });

    test("a miss on the cache-only endpoint is 404 and never reads the database", async () => {
      const res = await client(`/api/boards/${BOARD_A}/contacts/cache?filter=low_priority&page=77`, {
        headers: { ...listHeaders(), "X-Cache-Only": "true" },
      });
      assert.equal(res.status, 404);
      assert.equal(res.json.error.code, "cache_miss");
    });

    test("entries expire after their TTL", async () => {
      const key = listKey(WS_A, BOARD_A, "medium_priority");
      assert.equal((await client("/api/cache/store", { method: "POST", body: { key, data: { n: 1 }, ttl: 1 } })).status, 200);
      const headers = { ...listHeaders(), "X-Cache-Only": "true" };
      assert.equal((await client(`/api/boards/${BOARD_A}/contacts/cache?filter=medium_priority`, { headers })).status, 200);
      await new Promise((r) => setTimeout(r, 2100));
      assert.equal((await client(`/api/boards/${BOARD_A}/contacts/cache?filter=medium_priority`, { headers })).status, 404);
    });

    test("invalidating workspace A removes A's keys and leaves B's untouched", async () => {
      const boardB = seed.board(2, 1);
      const keysA = FILTERS.map((f) => listKey(WS_A, BOARD_A, f));
      const keysB = FILTERS.map((f) => listKey(WS_B, boardB, f));
      for (const key of [...keysA, ...keysB, `counts:{${WS_A}}:${ME}`]) {
        assert.equal((await client("/api/cache/store", { method: "POST", body: { key, data: { key }, ttl: 120 } })).status, 200);
      }
      const res = await client("/api/cache/invalidate", { method: "POST", body: { pattern: `contacts:${WS_A}:*` } });
      assert.equal(res.status, 200);
      assert.equal(res.json.data.pattern, `contacts:{${WS_A}}:*`);
      assert.ok(res.json.data.removed >= keysA.length, `removed ${res.json.data.removed}`);
      const read = (workspace, board, filter) =>
        client(`/api/boards/${board}/contacts/cache?filter=${filter}`, { headers: { ...listHeaders(workspace, workspace === WS_A ? ME : MEMBER_B), "X-Cache-Only": "true" } });
      for (const filter of ["all", "open", "archived"]) {
        assert.equal((await read(WS_A, BOARD_A, filter)).status, 404, `A ${filter} is gone`);
        assert.equal((await read(WS_B, boardB, filter)).status, 200, `B ${filter} is kept`);
      }
      const counts = await client("/api/cache/invalidate", { method: "POST", body: { pattern: `counts:${WS_A}*` } });
      assert.ok(counts.json.data.removed >= 1);
      const left = await client("/api/cache/invalidate", { method: "POST", body: { pattern: `counts:${WS_A}*` } });
      assert.equal(left.json.data.removed, 0, "nothing of A's counts is left");
    });

    test("stats report the service's counters and Redis's numbers", async () => {
      const res = await client("/api/cache/stats", { headers: metricsAuth });
      assert.equal(res.status, 200);
      const { service, redis } = res.json.data;
      assert.ok(service.hits >= 1 && service.misses >= 1 && service.stores >= 1 && service.invalidations >= 1);
      assert.equal(service.hit_rate, service.hits / (service.hits + service.misses));
      assert.ok(redis.keys >= 1, `keys ${redis.keys}`);
      assert.ok(redis.used_memory_bytes > 0);
      assert.ok(redis.total_commands_processed > 0);
      assert.equal(typeof redis.hit_rate, "number");
    });
  });
}

describe("internal auth", () => {
  const protectedCalls = [
    ["GET", `/api/boards/${BOARD_A}/contacts/cache`],
    ["GET", `/api/boards/${BOARD_A}/contacts`],
    ["GET", `/api/workspaces/${WS_A}/counts`],
    ["POST", "/api/cache/store"],
    ["POST", "/api/cache/invalidate"],
  ];
  for (const [method, path] of protectedCalls) {
    test(`${method} ${path.replace(/[0-9a-f-]{36}/g, ":id")} needs X-Internal-Auth`, async () => {
      for (const auth of [null, "", "wrong-key", `${stack.secrets.INTERNAL_AUTH_KEY}x`]) {
        const res = await call(path, { method, auth, headers: listHeaders(), body: method === "POST" ? {} : undefined });
        assert.equal(res.status, 401, `auth ${JSON.stringify(auth)}`);
        assert.deepEqual(res.json, { success: false, error: { code: "unauthorized", message: "X-Internal-Auth is missing or wrong" } });
      }
    });
  }

  test("/health needs no auth", async () => {
    const res = await call("/health", { auth: null });
    assert.equal(res.status, 200);
    assert.equal(res.json.status, "healthy");
    assert.equal(res.json.redis.status, "up");
    assert.equal(res.json.database.status, "up");
  });
});

describe("store validation", () => {
  const store = (body) => call("/api/cache/store", { method: "POST", body });
  const key = listKey(WS_A, BOARD_A);
  const cases = [
    ["a key outside the namespaces", { key: "sessions:abc", data: {} }, "key"],
    ["a key without a workspace id", { key: "contacts:{everyone}:all", data: {} }, "key"],
    ["a key in the spec's bare form", { key: `contacts:${WS_A}:all`, data: {} }, "key"],
    ["a key with a wildcard", { key: `contacts:{${WS_A}}:*`, data: {} }, "key"],
    ["a TTL above an hour", { key, data: {}, ttl: 3601 }, "ttl"],
    ["a zero TTL", { key, data: {}, ttl: 0 }, "ttl"],
    ["an oversize payload", { key, data: { blob: "x".repeat(600 * 1024) } }, "data"],
    ["a missing key", { data: {} }, "body"],
  ];
  for (const [what, body, field] of cases) {
    test(`${what} is 400 naming ${field}`, async () => {
      const res = await store(body);
      assert.equal(res.status, 400);
      assert.equal(res.json.success, false);
      assert.equal(res.json.error.field, field);
    });
  }

  test("malformed JSON is 400", async () => {
    const res = await call("/api/cache/store", { method: "POST", body: "{not json" });
    assert.equal(res.status, 400);
    assert.equal(res.json.error.field, "body");
  });

  test("the TTL defaults to CACHE_TTL_CONTACTS_LIST", async () => {
    const res = await store({ key, data: { x: 1 } });
    assert.equal(res.json.data.ttl, 180);
    const ttl = Number(redisCli(stack.ports.redis, "ttl", key));
    assert.ok(ttl > 170 && ttl <= 180, `ttl ${ttl}`);
  });

  test("hostile invalidation patterns are 400 naming pattern", async () => {
    for (const pattern of ["*", "contacts:*", `contacts:${WS_A}x*`, `contacts:${WS_A}:[a-z]*`, "counts:*", 42]) {
      const res = await call("/api/cache/invalidate", { method: "POST", body: { pattern } });
      assert.equal(res.status, 400, String(pattern));
      assert.ok(["pattern", "body"].includes(res.json.error.field));
    }
  });
});

describe("fallback list from PostgreSQL", () => {
  for (const filter of FILTERS) {
    test(`filter=${filter} returns exactly SQL's rows, order and totals`, async () => {
      for (const [sortBy, sortOrder, page] of [["created_at", "desc", 1], ["last_message_time", "asc", 2], ["name", "asc", 1]]) {
        const qs = `filter=${filter}&sortBy=${sortBy}&sortOrder=${sortOrder}&page=${page}&pageSize=25`;
        const res = await call(`/api/boards/${BOARD_A}/contacts?${qs}`, { headers: { ...listHeaders(), "Cache-Control": "no-cache" } });
        assert.equal(res.status, 200, res.text);
        const expected = expectedPage({ workspace: WS_A, board: BOARD_A, me: ME, filter, sortBy, sortOrder, page, pageSize: 25 });
        assert.deepEqual(res.json.data.contacts.map((c) => c.id), expected.ids, qs);
        assert.ok(sameRows(res.json.data.contacts, expected.rows), `${qs}: every field equals SQL`);
        const { nextCursor, prevCursor, ...numbers } = res.json.data.pagination;
        assert.deepEqual(numbers, { page, pageSize: 25, total: expected.total, totalPages: expected.totalPages });
        assert.equal(nextCursor !== null, page * 25 < expected.total, `${qs}: nextCursor`);
        assert.equal(prevCursor !== null, page > 1 && expected.ids.length > 0, `${qs}: prevCursor`);
        assert.deepEqual(res.json.data.sort, { sortBy, sortOrder });
        assert.equal(res.json.data.filters.filter, filter);
      }
    });
  }

  test("a first read is MISS from the database, the next a HIT from Redis, no-cache a BYPASS", async () => {
    const qs = "filter=open&sortBy=name&page=3";
    const first = await call(`/api/boards/${BOARD_A}/contacts?${qs}`, { headers: listHeaders() });
    assert.equal(first.headers.get("x-cache-status"), "MISS");
    assert.equal(first.headers.get("x-cache-layer"), "DATABASE");
    await waitFor("the write-back", async () => (await call(`/api/boards/${BOARD_A}/contacts?${qs}`, { headers: listHeaders() })).headers.get("x-cache-status") === "HIT", 5000);
    const second = await call(`/api/boards/${BOARD_A}/contacts?${qs}`, { headers: listHeaders() });
    assert.equal(second.headers.get("x-cache-layer"), "REDIS");
    assert.deepEqual(second.json, first.json);
    const cacheOnly = await call(`/api/boards/${BOARD_A}/contacts/cache?page=3&sortBy=name&filter=open`, { headers: { ...listHeaders(), "X-Cache-Only": "true" } });
    assert.equal(cacheOnly.status, 200, "the cache endpoint derives the same key");
    const bypass = await call(`/api/boards/${BOARD_A}/contacts?${qs}`, { headers: { ...listHeaders(), "Cache-Control": "no-cache" } });
    assert.equal(bypass.headers.get("x-cache-status"), "BYPASS");
    assert.equal(bypass.headers.get("x-cache-layer"), "DATABASE");
  });

  test("isolation is enforced in SQL: a board of B read as workspace A is empty, a non-member is 403", async () => {
    const boardB = seed.board(2, 1);
    const crossed = await call(`/api/boards/${boardB}/contacts?pageSize=5`, { headers: { ...listHeaders(WS_A), "Cache-Control": "no-cache" } });
    assert.equal(crossed.status, 200);
    assert.deepEqual(crossed.json.data.contacts, []);
    assert.equal(crossed.json.data.pagination.total, 0);
    const outsider = await call(`/api/boards/${boardB}/contacts`, { headers: { ...listHeaders(WS_B, ME), "Cache-Control": "no-cache" } });
    assert.equal(outsider.status, 403);
    assert.equal(outsider.json.error.code, "forbidden");
  });

  test("bad parameters and headers are 400 naming them", async () => {
    const cases = [
      [`/api/boards/${BOARD_A}/contacts?pageSize=500`, listHeaders(), "pageSize"],
      [`/api/boards/${BOARD_A}/contacts?filter=nope`, listHeaders(), "filter"],
      ["/api/boards/not-a-board/contacts", listHeaders(), "boardId"],
      [`/api/boards/${BOARD_A}/contacts`, { "X-User-ID": ME }, "X-Workspace-ID"],
      [`/api/boards/${BOARD_A}/contacts`, { "X-Workspace-ID": WS_A, "X-User-ID": "me" }, "X-User-ID"],
    ];
    for (const [path, headers, field] of cases) {
      const res = await call(path, { headers });
      assert.equal(res.status, 400, path);
      assert.equal(res.json.error.field, field);
    }
  });
});

describe("counts", () => {
  test("every per-filter count equals SQL, then comes from Redis", async () => {
    const res = await call(`/api/workspaces/${WS_A}/counts`, { headers: { ...userHeaders(), "Cache-Control": "no-cache" } });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.headers.get("x-cache-key"), `counts:{${WS_A}}:${ME}:gen:0`);
    for (const filter of FILTERS) {
      const [[expected]] = sql(`select count(*) from contacts c where c.workspace_id = '${WS_A}' and ${filterSql(filter, ME)}`);
      assert.equal(res.json.data.counts[filter], Number(expected), filter);
    }
    assert.ok(res.json.data.counts.favorites > 0 && res.json.data.counts.assigned_to_me > 0);
    assert.equal(res.json.cache_ttl, 300);
    await waitFor("the counts write-back", async () => (await call(`/api/workspaces/${WS_A}/counts`, { headers: userHeaders() })).headers.get("x-cache-status") === "HIT", 5000);
    const ttl = Number(redisCli(stack.ports.redis, "ttl", `counts:{${WS_A}}:${ME}:gen:0`));
    assert.ok(ttl > 290 && ttl <= 300, `ttl ${ttl}`);
  });

  test("a non-member gets 403", async () => {
    const res = await call(`/api/workspaces/${WS_B}/counts`, { headers: userHeaders() });
    assert.equal(res.status, 403);
  });
});

cacheContract("single Redis", call);

describe("Redis Cluster (3 primaries)", () => {
  const pieces = newStack();
  let cluster;
  let clusterCall;
  before(async () => {
    cluster = await pieces.startRedisCluster(3);
    clusterCall = await ownClient(pieces, cluster.url, { REDIS_CLUSTER_ENABLED: "true" });
  });
  after(() => pieces.stop());

  test("health reports the cluster", async () => {
    const res = await clusterCall("/health");
    assert.equal(res.json.redis.status, "up");
    assert.equal(res.json.redis.mode, "cluster");
  });

  cacheContract("cluster", (...args) => clusterCall(...args));

  test("one workspace's keys live on one node, and stats sum every primary", async () => {
    const keys = FILTERS.map((f) => listKey(WS_A, BOARD_A, f));
    for (const key of keys) await clusterCall("/api/cache/store", { method: "POST", body: { key, data: {}, ttl: 60 } });
    const slots = new Set(keys.map((key) => redisCli(cluster.nodes[0].port, "cluster", "keyslot", key)));
    assert.equal(slots.size, 1);
    const holders = cluster.nodes.filter((n) => Number(redisCli(n.port, "dbsize")) > 0);
    assert.ok(holders.length >= 1);
    const stats = await clusterCall("/api/cache/stats", { headers: metricsAuth });
    assert.equal(stats.json.data.redis.nodes, 3);
    assert.equal(stats.json.data.redis.mode, "cluster");
  });

  test("the fallback list reads through the cluster", async () => {
    const qs = "filter=high_priority&page=2";
    const first = await clusterCall(`/api/boards/${BOARD_A}/contacts?${qs}`, { headers: listHeaders() });
    assert.equal(first.headers.get("x-cache-layer"), "DATABASE");
    await waitFor("the write-back", async () => (await clusterCall(`/api/boards/${BOARD_A}/contacts?${qs}`, { headers: listHeaders() })).headers.get("x-cache-status") === "HIT", 5000);
  });
});

describe("Redis stopped and restarted mid-test", () => {
  const pieces = newStack();
  let redis;
  let own;
  before(async () => {
    redis = await pieces.startRedis({ name: "redis-flaky" });
    own = await ownClient(pieces, redis.url, { REDIS_TIMEOUT_MS: "300" });
  });
  after(() => pieces.stop());

  test("cache endpoints answer 503 quickly, lists still come from the database, and the service recovers", async () => {
    const key = listKey(WS_A, BOARD_A, "open");
    assert.equal((await own("/api/cache/store", { method: "POST", body: { key, data: { v: 1 }, ttl: 60 } })).status, 200);

    await pieces.stopService(redis.child);
    for (const [method, path, body] of [
      ["POST", "/api/cache/store", { key, data: { v: 2 } }],
      ["GET", `/api/boards/${BOARD_A}/contacts/cache?filter=open`],
      ["POST", "/api/cache/invalidate", { pattern: `contacts:${WS_A}:*` }],
      ["GET", "/api/cache/stats"],
    ]) {
      const started = Date.now();
      const res = await own(path, { method, body, headers: { ...listHeaders(), "X-Cache-Only": "true", ...(path === "/api/cache/stats" && metricsAuth) } });
      assert.equal(res.status, 503, `${method} ${path}`);
      assert.equal(res.json.error.code, "redis_unavailable");
      assert.ok(Date.now() - started < 2000, `${path} answered in ${Date.now() - started} ms`);
    }
    const list = await own(`/api/boards/${BOARD_A}/contacts?filter=open`, { headers: listHeaders() });
    assert.equal(list.status, 200);
    assert.equal(list.headers.get("x-cache-layer"), "DATABASE");
    const expected = expectedPage({ workspace: WS_A, board: BOARD_A, me: ME, filter: "open" });
    assert.deepEqual(list.json.data.contacts.map((c) => c.id), expected.ids);
    const health = await own("/health");
    assert.equal(health.status, 200);
    assert.equal(health.json.status, "degraded");
    assert.equal(health.json.redis.status, "down");

    redis = await pieces.startRedis({ port: redis.port, name: "redis-flaky" });
    await waitFor("the backend to reconnect", async () => (await own("/api/cache/store", { method: "POST", body: { key, data: { v: 3 }, ttl: 60 } })).status === 200, 15_000);
    const read = await own(`/api/boards/${BOARD_A}/contacts/cache?filter=open`, { headers: { ...listHeaders(), "X-Cache-Only": "true" } });
    assert.equal(read.status, 200);
    assert.deepEqual(read.json, { v: 3 });
    assert.equal((await own("/health")).json.status, "healthy");
  });
});
