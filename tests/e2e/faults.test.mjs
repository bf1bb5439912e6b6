// Faults while requests run: Redis, PostgREST, the backend and PostgreSQL are stopped one at a
// time and then all together, under a steady load of list requests, and started again. Every
// response is checked as it arrives: a 200 carries exactly the rows SQL gives (the data does not
// change during the test), a stale one says STALE and its Age, anything else is the 503 JSON
// error; and after each restart the service answers fresh from its normal layers again by
// itself. This file runs its own stack (a small seed) so it can stop PostgreSQL.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { newStack, waitFor } from "../../scripts/stack.mjs";
import { expectedPage, fetchOnce, ownBackend, ownSupabase, ownWorker, sameRows, seal, seed, sqlOn, stack, storedAgo, tokenFor } from "./harness.mjs";

const WS = seed.workspace(2);
const BOARD = seed.board(2, 1);
const ME = seed.user(2); // member of workspace 2
const UNAVAILABLE = { success: false, error: { code: "unavailable", message: "the contact list is temporarily unavailable; retry shortly" } };

/** The queries the load cycles through: a warm set (in KV before the faults start) and, for
 * each phase, a cold set that misses every cache the first time it is asked. */
const FILTERS = ["all", "open", "high_priority", "unassigned", "favorites"];
const queryOf = ({ filter, sortBy, page, pageSize = 50 }) => `filter=${filter}&sortBy=${sortBy}&sortOrder=desc&page=${page}&pageSize=${pageSize}`;
const WARM = FILTERS.flatMap((filter) => ["created_at", "name"].map((sortBy) => ({ filter, sortBy, page: 1 })));
let phase = 0;
const coldSet = (n) => FILTERS.flatMap((filter) => [1, 2, 3, 4, 5, 6, 7, 8].map((page) => ({ filter, sortBy: "name", page, pageSize: 30 + n })));
/** Pages only the stale-if-error check asks for, planted in KV as old copies. */
const KEPT = FILTERS.map((filter) => ({ filter, sortBy: "created_at", page: 7 }));

describe("faults under load", { timeout: 600_000 }, () => {
  const pieces = newStack();
  let worker;
  let kv;
  let supabase;
  let redis;
  let backend;
  let backendOptions;
  let sql;
  const truth = new Map();
  const claimToken = tokenFor(ME, { app_metadata: { workspace_ids: [WS] } });
  const plainToken = tokenFor(ME);

  before(async () => {
    const pg = await pieces.startDatabase(5000);
    sql = sqlOn(pg.port);
    supabase = await ownSupabase(pieces, { pgPort: pg.port });
    redis = await pieces.startRedis();
    backendOptions = { redisUrl: redis.url, databaseUrl: pg.url };
    backend = await ownBackend(pieces, backendOptions);
    worker = await ownWorker(pieces, {
      SUPABASE_URL: supabase.url,
      BACKEND_URL: backend.url,
      SUPABASE_TIMEOUT_MS: "1500",
      BACKEND_TIMEOUT_MS: "1500",
    });
    kv = await pieces.miniflare.getKVNamespace("CONTACT_CACHE");
    learn([...WARM, ...KEPT]);
    for (const q of WARM) {
      const res = await list(queryOf(q), claimToken);
      assert.equal(res.status, 200);
    }
  });
  after(() => pieces.stop());

  /** Records SQL's answer for each of `queries` (the data does not change during the test). */
  function learn(queries) {
    for (const q of queries) {
      const { filter, sortBy, page, pageSize = 50 } = q;
      truth.set(queryOf(q), expectedPage({ workspace: WS, board: BOARD, me: ME, filter, sortBy, sortOrder: "desc", page, pageSize }, sql));
    }
  }

  function list(query, token, headers = {}) {
    return fetchOnce(`${worker}/api/boards/${BOARD}/contacts?${query}`, {
      headers: { Authorization: `Bearer ${token}`, "X-Workspace-ID": WS, ...headers },
    });
  }
  const label = (res) => `${res.headers.get("x-cache-status")}/${res.headers.get("x-cache-layer")}`;
  /** Answers served by the edge's caches: KV, or the isolate's L0 in front of it when L0 is on
   * (the production-defaults pass). */
  const fromEdge = (tally) => (tally["HIT/KV"] ?? 0) + (tally["HIT/L0"] ?? 0);

  /** Checks one response against the truth; returns its label, or "503", and throws on anything
   * wrong. */
  async function verdict(query, res) {
    const body = await res.json();
    if (res.status === 503) {
      assert.deepEqual(body, UNAVAILABLE, `${query}: a 503 is the JSON error`);
      assert.match(res.headers.get("content-type"), /application\/json/);
      return "503";
    }
    assert.equal(res.status, 200, `${query}: ${JSON.stringify(body)}`);
    const expected = truth.get(query);
    assert.ok(sameRows(body.data.contacts, expected.rows), `${query} (${label(res)}): rows differ from SQL`);
    assert.equal(body.data.pagination.total, expected.total, `${query}: total`);
    if (res.headers.get("x-cache-status") === "STALE") {
      assert.ok(Number(res.headers.get("age")) > 0, `${query}: a stale answer carries its Age`);
    }
    return label(res);
  }

  /**
   * Keeps `concurrency` clients requesting until `stop()`: warm and cold pages, a fifth of them
   * with `Cache-Control: no-cache`, half with a plain token (membership checked at Supabase) and
   * half with one whose `app_metadata` names the workspace. Returns the tally of labels.
   */
  function load(pool, concurrency = 6) {
    const tally = {};
    const failures = [];
    let running = true;
    let n = 0;
    const client = async () => {
      while (running) {
        const i = n++;
        const query = queryOf(pool[i % pool.length]);
        const token = i % 2 ? claimToken : plainToken;
        const headers = i % 5 === 0 ? { "Cache-Control": "no-cache" } : {};
        try {
          const seen = await verdict(query, await list(query, token, headers));
          tally[seen] = (tally[seen] ?? 0) + 1;
        } catch (err) {
          err.message += ` for ${query}`;
          failures.push(err);
        }
      }
    };
    const clients = Array.from({ length: concurrency }, client);
    return {
      tally,
      async stop() {
        running = false;
        await Promise.all(clients);
        if (failures.length) throw failures[0];
        return tally;
      },
    };
  }

  const pause = (ms) => new Promise((r) => setTimeout(r, ms));
  let fresh = 11;
  /**
   * Waits until the service answers as it does when healthy: a page never asked before is read
   * from the database (MISS/DATABASE), written back to Redis, and served from Redis once KV no
   * longer has it. Only the layers are waited on; each answer waited for is then checked
   * against SQL once (a wrong answer fails the test, it is not asked again).
   */
  async function recovered(within = 45_000) {
    const first = await waitFor("the database answers a page never asked before", async () => {
      const pageSize = fresh++;
      const query = `filter=all&sortBy=created_at&sortOrder=desc&page=1&pageSize=${pageSize}`;
      const res = await list(query, plainToken);
      return res.status === 200 && label(res) === "MISS/DATABASE" && { query, pageSize, res };
    }, within);
    truth.set(first.query, expectedPage({ workspace: WS, board: BOARD, me: ME, pageSize: first.pageSize }, sql));
    assert.equal(await verdict(first.query, first.res), "MISS/DATABASE");
    const key = first.res.headers.get("x-cache-key");
    const fromRedis = await waitFor("Redis serves the page once KV lacks it", async () => {
      await kv.delete(key);
      const res = await list(first.query, plainToken);
      return label(res) === "HIT/REDIS" && res;
    }, 10_000);
    assert.equal(await verdict(first.query, fromRedis), "HIT/REDIS");
  }

  /** Runs the load on warm pages, applies `fault`, adds cold pages to the load for `ms`, then
   * `heal`s and waits for recovery. */
  async function underLoad(fault, heal, ms = 3000) {
    const cold = coldSet(phase++);
    learn(cold);
    const pool = [...WARM];
    const running = load(pool);
    await pause(500);
    await fault();
    // Pages no cache has yet, asked for only while the fault lasts.
    pool.push(...cold);
    await pause(ms);
    await heal();
    const tally = await running.stop();
    const since = Date.now();
    await recovered();
    console.log(`# answers while faulty: ${JSON.stringify(tally)}; recovered ${Date.now() - since} ms after the restart`);
    return tally;
  }

  test("healthy: every answer is SQL's", async () => {
    const tally = await underLoad(async () => {}, async () => {}, 1500);
    assert.equal(tally["503"], undefined, JSON.stringify(tally));
    assert.ok(fromEdge(tally) > 0 && tally["MISS/DATABASE"] > 0, JSON.stringify(tally));
  });

  test("Redis stopped and restarted: the database answers meanwhile, nothing fails", async () => {
    const tally = await underLoad(
      () => pieces.stopService(redis.child),
      async () => {
        redis = await pieces.startRedis({ port: redis.port });
      },
    );
    assert.equal(tally["503"], undefined, JSON.stringify(tally));
    assert.ok(tally["MISS/DATABASE"] > 0, JSON.stringify(tally));
  });

  test("PostgREST stopped and restarted: the backend's fallback answers meanwhile, nothing fails", async () => {
    const tally = await underLoad(() => pieces.stopService(supabase.postgrest.child), () => supabase.restart());
    assert.equal(tally["503"], undefined, JSON.stringify(tally));
    assert.ok(tally["MISS/BACKEND-FALLBACK"] > 0 && tally["BYPASS/BACKEND-FALLBACK"] > 0, JSON.stringify(tally));
    assert.equal(tally["MISS/DATABASE"], undefined, JSON.stringify(tally));
  });

  test("the backend stopped and restarted: Supabase answers meanwhile, nothing fails", async () => {
    const tally = await underLoad(
      () => pieces.stopService(backend.child),
      async () => {
        backend = await ownBackend(pieces, { ...backendOptions, port: backend.port });
      },
    );
    assert.equal(tally["503"], undefined, JSON.stringify(tally));
    assert.ok(tally["MISS/DATABASE"] > 0, JSON.stringify(tally));
  });

  test("PostgreSQL stopped and restarted: cached pages are still served, the rest is 503 JSON", async () => {
    const tally = await underLoad(
      async () => pieces.haltPostgres(),
      async () => pieces.resumePostgres(),
    );
    assert.ok(tally["503"] > 0, JSON.stringify(tally));
    assert.ok(fromEdge(tally) > 0, JSON.stringify(tally));
  });

  test("everything stopped and restarted: old copies are served labelled STALE, the rest is 503 JSON", async () => {
    // Old copies of the KEPT pages, read from the database 400 s ago (past TTL and the
    // stale-while-revalidate window, inside the stale-if-error grace period).
    for (const q of KEPT) {
      const query = queryOf(q);
      const res = await list(query, claimToken, { "Cache-Control": "no-cache" });
      const key = res.headers.get("x-cache-key");
      const body = await res.json();
      const old = { ...body, cached_at: new Date(Date.now() - 400_000).toISOString().replace(/\.\d+Z$/, "Z") };
      await kv.put(key, seal(stack.secrets.CACHE_ENCRYPTION_KEY, key, JSON.stringify(old)), storedAgo(400));
    }
    // With L0 on, the isolate may still keep the fresh copies the no-cache reads wrote there: for
    // at most the staleness bound, after which the planted copies are what KV answers.
    if (Number(stack.bindings.L0_CACHE_MB ?? 32) > 0) await pause(Number(stack.bindings.STALENESS_BOUND_MS ?? 1000) + 300);
    const stale = {};
    const tally = await underLoad(
      async () => {
        await Promise.all([pieces.stopService(redis.child), pieces.stopService(supabase.postgrest.child), pieces.stopService(backend.child)]);
        await pieces.haltPostgres();
        // Only now ask for the KEPT pages (with the token that vouches for the membership,
        // which nobody can check while Supabase is down).
        for (const q of KEPT) {
          const query = queryOf(q);
          const seen = await verdict(query, await list(query, claimToken));
          stale[seen] = (stale[seen] ?? 0) + 1;
        }
      },
      async () => {
        await pieces.resumePostgres();
        await supabase.restart();
        redis = await pieces.startRedis({ port: redis.port });
        backend = await ownBackend(pieces, { ...backendOptions, port: backend.port });
      },
    );
    assert.deepEqual(stale, { "STALE/KV": KEPT.length });
    assert.ok(tally["503"] > 0, JSON.stringify(tally));
    assert.ok(fromEdge(tally) > 0, JSON.stringify(tally));
  });

  test("after all that, a steady load is answered without a single failure", async () => {
    const tally = await underLoad(async () => {}, async () => {}, 1500);
    assert.equal(tally["503"], undefined, JSON.stringify(tally));
    const health = await (await fetch(`${worker}/health?deep=1`)).json();
    assert.equal(health.status, "healthy");
  });
});
