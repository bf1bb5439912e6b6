// Cache size monitoring: the backend's /api/cache/stats reports Redis's memory against its limit
// and the keys under each workspace (SCAN on every primary); the worker's /api/cache/stats adds
// its estimate of KV's use, and both warn before their configured limits.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { after, before, describe, test } from "node:test";
import { newStack, waitFor } from "../../scripts/stack.mjs";
import { ownBackend, ownWorker, seed, stack, tokenFor } from "./harness.mjs";

const WS = seed.workspace(1);
const BOARD = seed.board(1, 1);
const WS2 = seed.workspace(2);
const ME = seed.user(1);
const METRICS_TOKEN = "stats-token-for-tests";

const redisCli = async (port, ...args) => (await promisify(execFile)("redis-cli", ["-p", String(port), ...args])).stdout.trim();
const listKey = (ws, board, page) => `contacts:{${ws}}:all:board:${board}:page:${page}:limit:50:sort:created_at-desc:gen:0`;
const internal = (backend, path, init = {}) =>
  fetch(`${backend.url}${path}`, {
    ...init,
    headers: { "X-Internal-Auth": stack.backendOptions.internalAuthKey, "Content-Type": "application/json", ...init.headers },
  });
const store = async (backend, key) => {
  const res = await internal(backend, "/api/cache/store", { method: "POST", body: JSON.stringify({ key, data: { page: key }, ttl: 120 }) });
  assert.equal(res.status, 200, await res.text());
};
const backendStats = async (backend) => {
  // The backend's metrics token opens its statistics; its internal key does not.
  assert.equal((await internal(backend, "/api/cache/stats")).status, 401);
  const res = await fetch(`${backend.url}/api/cache/stats`, { headers: { Authorization: `Bearer ${stack.backendOptions.metricsToken}` } });
  assert.equal(res.status, 200);
  return (await res.json()).data.redis;
};

describe("Redis memory and keys per workspace at the backend", () => {
  const pieces = newStack();
  let redis;
  after(() => pieces.stop());
  before(async () => {
    redis = await pieces.startRedis();
  });

  test("keys per workspace count the keys really written, and no limit means no warning", async () => {
    const backend = await ownBackend(pieces, { redisUrl: redis.url });
    for (let page = 1; page <= 7; page++) await store(backend, listKey(WS, BOARD, page));
    for (let page = 1; page <= 3; page++) await store(backend, listKey(WS2, seed.board(2, 1), page));
    await store(backend, `counts:{${WS2}}:${ME}:gen:0`);
    const stats = await backendStats(backend);
    const real = async (ws) => (await redisCli(redis.port, "--scan", "--pattern", `*:{${ws}}*`)).split("\n").filter(Boolean).length;
    assert.equal(await real(WS), 7);
    assert.deepEqual(stats.keys_per_workspace[WS], { total: 7, contacts: 7, counts: 0, reads: 0, other: 0 });
    assert.deepEqual(stats.keys_per_workspace[WS2], { total: 4, contacts: 3, counts: 1, reads: 0, other: 0 });
    assert.equal(stats.keys_per_workspace_truncated, false);
    assert.ok(stats.used_memory_bytes > 0);
    assert.equal(stats.maxmemory_bytes, 0, "this Redis has no maxmemory");
    assert.deepEqual([stats.memory.level, stats.memory.warning, stats.memory.limit_bytes], ["unlimited", null, null]);
  });

  test("a lowered REDIS_MEMORY_LIMIT_BYTES warns, and so does Redis's own maxmemory", async () => {
    const used = Number((await redisCli(redis.port, "info", "memory")).match(/used_memory:(\d+)/)[1]);
    // The limit at 1.5 times what Redis uses: warned of at 0.5 of it, not yet reached.
    const lowered = await ownBackend(pieces, { redisUrl: redis.url, env: { REDIS_MEMORY_LIMIT_BYTES: String(Math.round(used * 1.5)), REDIS_MEMORY_WARN_RATIO: "0.5" } });
    const warned = (await backendStats(lowered)).memory;
    assert.equal(warned.level, "warning", JSON.stringify(warned));
    assert.equal(warned.limit_bytes, Math.round(used * 1.5));
    assert.match(warned.warning, /^Redis memory is at \d+% of its limit \(\d+ of \d+ bytes; warning from 50%\)$/);

    const plain = await ownBackend(pieces, { redisUrl: redis.url });
    assert.equal((await backendStats(plain)).memory.level, "unlimited");
    await redisCli(redis.port, "config", "set", "maxmemory", String(used * 1.1 | 0));
    try {
      const memory = (await backendStats(plain)).memory;
      assert.ok(["warning", "exceeded"].includes(memory.level), JSON.stringify(memory));
      assert.equal(memory.limit_bytes, used * 1.1 | 0, "maxmemory is the limit when none is configured");
    } finally {
      await redisCli(redis.port, "config", "set", "maxmemory", "0");
    }
  });

  test("in a cluster the keys of every primary are counted", async () => {
    const cluster = await pieces.startRedisCluster(3);
    const backend = await ownBackend(pieces, { redisUrl: cluster.url, env: { REDIS_CLUSTER_ENABLED: "true" } });
    const workspaces = [1, 2, 3, 4, 5].map((w) => seed.workspace(w));
    for (const [i, ws] of workspaces.entries()) {
      for (let page = 1; page <= i + 1; page++) await store(backend, listKey(ws, BOARD, page));
    }
    const stats = await backendStats(backend);
    assert.equal(stats.nodes, 3);
    for (const [i, ws] of workspaces.entries()) assert.equal(stats.keys_per_workspace[ws]?.total, i + 1, ws);
    const perNode = await Promise.all(cluster.nodes.map((n) => redisCli(n.port, "dbsize")));
    assert.ok(perNode.filter((n) => Number(n) > 0).length >= 2, `keys on several primaries: ${perNode}`);
  });
});

describe("the worker's /api/cache/stats", () => {
  const lowPieces = newStack();
  const defaultPieces = newStack();
  let low;
  let plain;
  after(() => Promise.all([lowPieces.stop(), defaultPieces.stop()]));
  before(async () => {
    [low, plain] = await Promise.all([
      ownWorker(lowPieces, { METRICS_TOKEN, KV_STORAGE_LIMIT_BYTES: "40000", KV_WARN_RATIO: "0.5" }),
      ownWorker(defaultPieces, { METRICS_TOKEN }),
    ]);
  });
  const stats = async (worker) => {
    const res = await fetch(`${worker}/api/cache/stats`, { headers: { Authorization: `Bearer ${METRICS_TOKEN}` } });
    assert.equal(res.status, 200);
    return (await res.json()).data;
  };
  const read = async (worker, filter) => {
    const res = await fetch(`${worker}/api/boards/${BOARD}/contacts?filter=${filter}`, { headers: { Authorization: `Bearer ${tokenFor(ME)}`, "X-Workspace-ID": WS } });
    assert.equal(res.status, 200);
  };

  test("is guarded like /metrics", async () => {
    assert.equal((await fetch(`${low}/api/cache/stats`)).status, 401);
  });

  test("estimates KV from the entries this isolate wrote and warns near a lowered limit", async () => {
    const before = await stats(low);
    assert.deepEqual([before.kv.entries, before.kv.bytes, before.kv.usage.level, before.warnings], [0, 0, "ok", []]);
    assert.equal(before.kv.estimate, true);
    for (const filter of ["all", "open", "closed"]) await read(low, filter);
    const kv = await lowPieces.miniflare.getKVNamespace("CONTACT_CACHE");
    const after = await waitFor("the KV writes", async () => {
      const now = await stats(low);
      return now.kv.entries >= 3 ? now : null;
    }, 10_000);
    // The estimate is exactly what is in KV: every key with its value (and metadata) size.
    const { keys } = await kv.list();
    let bytes = 0;
    for (const { name, metadata } of keys) bytes += name.length + (await kv.get(name)).length + (metadata ? 20 : 0);
    assert.deepEqual([after.kv.entries, after.kv.bytes], [keys.length, bytes]);
    assert.ok(bytes >= 20_000, `three sealed pages weigh ${bytes} bytes, over half the 40000 limit`);
    assert.ok(["warning", "exceeded"].includes(after.kv.usage.level), JSON.stringify(after.kv.usage));
    assert.equal(after.warnings.length, 1);
    assert.match(after.warnings[0], /^KV storage \(this isolate's estimate\) is at \d+% of its limit/);
    assert.ok(after.backend.redis.used_memory_bytes > 0, "the backend's numbers are included");
    assert.ok(after.backend.redis.keys_per_workspace[WS]?.contacts >= 1, "the pages written back to Redis are counted");
  });

  test("the same writes under the default limit warn of nothing", async () => {
    for (const filter of ["all", "open", "closed"]) await read(plain, filter);
    const after = await waitFor("the KV writes", async () => {
      const now = await stats(plain);
      return now.kv.entries >= 3 ? now : null;
    }, 10_000);
    assert.equal(after.kv.usage.limit_bytes, 1073741824);
    assert.deepEqual([after.kv.usage.level, after.warnings], ["ok", []]);
  });
});
