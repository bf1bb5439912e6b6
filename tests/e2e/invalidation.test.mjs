// Invalidation and freshness: events refresh exactly the lists they affect (in KV and Redis), direct
// database writes reach the edge through change capture, invalidation costs the same whatever is
// cached, bursts succeed, and only members invalidate their own workspace. Which lists an
// invalidation reached is read from their cache keys: an invalidated list's key carries a new
// generation (its answer may meanwhile be the superseded page, labelled STALE: see freshness).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { newStack, waitFor } from "../../scripts/stack.mjs";
import { FILTERS, expectedPage, filterSql, newer, ownWorker, redisCli, seed, sql, sqlLiteral, stack, tokenFor } from "./harness.mjs";

const WS = seed.workspace(3);
const BOARD = seed.board(3, 1);
const ME = seed.user(3); // member of workspace 3 only
const OUTSIDER = seed.user(1); // member of workspace 1 only

async function list(base, filter, { user = ME, extra = "" } = {}) {
  const res = await fetch(`${base}/api/boards/${BOARD}/contacts?filter=${filter}${extra}`, {
    headers: { Authorization: `Bearer ${tokenFor(user)}`, "X-Workspace-ID": WS },
  });
  return {
    status: res.status,
    cache: `${res.headers.get("x-cache-status")}/${res.headers.get("x-cache-layer")}`,
    key: res.headers.get("x-cache-key"),
    generation: res.headers.get("x-cache-generation"),
    json: await res.json(),
  };
}

/** An answer that is current as of a generation newer than `than`: not a superseded copy
 * (STALE), which a list or counts answer may be for a moment after an invalidation. */
const currentAfter = (answer, than) => answer.status === 200 && !answer.cache.startsWith("STALE") && newer(answer.generation, than);

/** A first page's label that means "served from a cache of the edge": KV, or the isolate's L0
 * in front of it when L0 is on (the production-defaults pass). */
const FROM_EDGE = ["HIT/KV", "HIT/L0"];

async function post(base, path, body, { user = ME, headers = {} } = {}) {
  const res = await fetch(`${base}${path}`, {
    method: "POST",
    headers: { Authorization: `Bearer ${tokenFor(user)}`, "Content-Type": "application/json", "X-Workspace-ID": WS, ...headers },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

/** Reads every filter's first page until each is served from KV. */
async function warmAll(base) {
  for (const filter of FILTERS) {
    await waitFor(`${filter} cached`, async () => FROM_EDGE.includes((await list(base, filter)).cache), 5000);
  }
}

/** Each filter's cache key now (its generation is the key's last part). */
async function keysOf(base) {
  const keys = {};
  for (const filter of FILTERS) keys[filter] = (await list(base, filter)).key;
  return keys;
}

/** The filters whose key changed between `before` and `after`. */
const changed = (before, after) => FILTERS.filter((filter) => before[filter] !== after[filter]);

/** Which filters an event must refresh: the table in docs/invalidation-and-freshness.md, written out independently. */
const EXPECTED = [
  [{ type: "contact:created", status: "Open", priority: "high", assigned_user_id: null, archived: false }, ["all", "open", "unassigned", "high_priority"]],
  [{ type: "contact:created", status: "Closed" }, ["all", "closed", "unassigned", "assigned_to_me", "high_priority", "medium_priority", "low_priority", "archived"]],
  [{ type: "contact:updated", old: { status: "Open", priority: "low", assigned_user_id: ME, archived: false }, new: { status: "Closed", priority: "low", assigned_user_id: ME, archived: false } }, ["all", "open", "closed", "assigned_to_me", "low_priority", "favorites"]],
  [{ type: "contact:updated" }, FILTERS],
  [{ type: "contact:deleted", status: "Open", priority: "medium", assigned_user_id: null, archived: false }, ["all", "open", "unassigned", "medium_priority", "favorites"]],
  [{ type: "contact:moved" }, FILTERS],
  [{ type: "contact:assigned" }, ["unassigned", "assigned_to_me"]],
  [{ type: "contact:unassigned" }, ["unassigned", "assigned_to_me"]],
  [{ type: "board:updated" }, FILTERS],
  [{ type: "column:created" }, []],
  [{ type: "column:deleted" }, FILTERS],
];

describe("events refresh exactly the affected lists", () => {
  for (const [event, affected] of EXPECTED) {
    test(`${JSON.stringify(event).slice(0, 90)} refreshes ${affected.length === 10 ? "every list" : affected.join(", ") || "nothing"}`, async () => {
      await warmAll(stack.urls.worker);
      const before = await keysOf(stack.urls.worker);
      const res = await post(stack.urls.worker, "/api/cache/invalidate", { workspace_id: WS, event });
      assert.equal(res.status, 200, JSON.stringify(res.json));
      assert.deepEqual(changed(before, await keysOf(stack.urls.worker)), FILTERS.filter((f) => affected.includes(f)), event.type);
    });
  }

  test("a batch of events refreshes the union of their lists, and counts follow their own generation", async () => {
    await warmAll(stack.urls.worker);
    const before = await keysOf(stack.urls.worker);
    const res = await post(stack.urls.worker, "/api/cache/invalidate", {
      workspace_id: WS,
      events: [{ type: "contact:assigned" }, { type: "contact:created", status: "Open", priority: "low", assigned_user_id: null, archived: false }],
    });
    assert.equal(res.status, 200);
    assert.deepEqual(res.json.data.scopes.sort(), ["all", "assigned_to_me", "counts", "low_priority", "open", "unassigned"]);
    assert.deepEqual(changed(before, await keysOf(stack.urls.worker)), ["all", "open", "unassigned", "assigned_to_me", "low_priority"]);
  });

  test("filter and pattern forms, and the whole workspace", async () => {
    await warmAll(stack.urls.worker);
    const before = await keysOf(stack.urls.worker);
    assert.equal((await post(stack.urls.worker, "/api/cache/invalidate", { workspace_id: WS, filter: "closed" })).status, 200);
    const afterFilter = await keysOf(stack.urls.worker);
    assert.deepEqual(changed(before, afterFilter), ["closed"]);
    assert.equal((await post(stack.urls.worker, "/api/cache/invalidate", { workspace_id: WS, pattern: `contacts:${WS}:archived:*` })).status, 200);
    const afterPattern = await keysOf(stack.urls.worker);
    assert.deepEqual(changed(afterFilter, afterPattern), ["archived"]);
    const all = await post(stack.urls.worker, "/api/cache/invalidate", { workspace_id: WS });
    assert.equal(all.json.data.scopes.length, 11);
    assert.deepEqual(all.json.data.boards.sort(), [seed.board(3, 1), seed.board(3, 2), seed.board(3, 3)].sort(), "every board of the workspace");
    assert.deepEqual(changed(afterPattern, await keysOf(stack.urls.worker)), FILTERS);
  });
});

describe("writes made directly in PostgreSQL", () => {
  const visible = (check) => waitFor("the change at the edge", check, 2000);

  // Each write is waited on by what it must do to the edge (a generation newer than the last
  // answer's, served by a layer under it, not a superseded STALE copy); the rows are then checked
  // once against SQL. A write whose invalidation never happens times out here instead of
  // passing on a page that happens to look right.
  const fresher = (filter, than) =>
    visible(async () => {
      const answer = await list(stack.urls.worker, filter);
      return currentAfter(answer, than) && answer;
    });
  const exactly = (answer, filter) =>
    assert.deepEqual(answer.json.data.contacts.map((c) => c.id), expectedPage({ workspace: WS, board: BOARD, me: ME, filter }).ids, `${filter} (${answer.cache}, ${answer.generation})`);

  test("an UPDATE, an INSERT and a DELETE run with psql become visible through the worker within 2 s", async () => {
    await warmAll(stack.urls.worker);
    const [[id]] = sql(`select id from contacts where board_id = '${BOARD}' and not archived order by created_at desc, id desc limit 1`);
    let last = (await list(stack.urls.worker, "all")).generation;
    sql(`update contacts set name = 'Renamed By Psql' where id = '${id}'`);
    const renamed = await fresher("all", last);
    exactly(renamed, "all");
    assert.equal(renamed.json.data.contacts[0].name, "Renamed By Psql");

    last = renamed.generation;
    const [[newId]] = sql(
      `insert into contacts (workspace_id, board_id, name, email, conversation_status, priority, created_at)
       values ('${WS}', '${BOARD}', 'Inserted By Psql', 'psql@example.test', 'Open', 'high', now() + interval '1 day') returning id`,
    );
    // Each list has its own bound: the open list may still be served stale for a moment after
    // the high-priority one is fresh.
    for (const filter of ["high_priority", "open"]) {
      const inserted = await fresher(filter, last);
      exactly(inserted, filter);
      assert.equal(inserted.json.data.contacts[0].id, newId, filter);
    }

    last = (await list(stack.urls.worker, "all")).generation;
    sql(`delete from contacts where id = '${newId}'`);
    const deleted = await fresher("all", last);
    exactly(deleted, "all");
    assert.ok(!deleted.json.data.contacts.some((c) => c.id === newId), "the deleted row is gone");
  });

  test("a workspace's changes apply in commit order: renamed A, B, C in three transactions, C is served and generations only grow", async () => {
    await warmAll(stack.urls.worker);
    const [[id, name]] = sql(`select id, name from contacts where board_id = '${BOARD}' and not archived order by created_at desc, id desc limit 1`);
    const first = await list(stack.urls.worker, "all");
    assert.equal(first.json.data.contacts[0].id, id);
    const [[seqBefore]] = sql("select coalesce(max(seq), 0) from contact_list_cache_outbox");
    try {
      // Three transactions back to back, each its own commit, in one session: change capture
      // usually reads them together and delivers them in one call (the worker carries the page
      // across each in turn), otherwise in calls one after another.
      sql(["Order A", "Order B", "Order C"].map((next) => `begin; update contacts set name = '${next}' where id = '${id}'; commit;`).join(" "));
      const seqs = sql(`select seq from contact_list_cache_outbox where seq > ${seqBefore} order by seq`).map(([seq]) => Number(seq));
      assert.ok(seqs.length >= 3, `three changes in the outbox: ${seqs}`);
      // Wait for change capture to have delivered them all (the cursor past them), then for an
      // answer current after them (newer than before, not a superseded copy); every answer on
      // the way is kept, to check that generations never go back.
      await waitFor("the three changes delivered", () => Number(sql("select seq from contact_list_cache_cursor where consumer = 'backend'")[0]?.[0] ?? 0) >= seqs.at(-1), 5000);
      const seen = [first.generation];
      const last = await visible(async () => {
        const answer = await list(stack.urls.worker, "all");
        if (answer.generation) seen.push(answer.generation);
        return currentAfter(answer, first.generation) && answer;
      });
      assert.equal(last.json.data.contacts[0].name, "Order C", `${last.cache}, ${last.generation}`);
      exactly(last, "all");
      for (let i = 1; i < seen.length; i++) assert.ok(!newer(seen[i - 1], seen[i]), `generations went back: ${seen[i - 1]} then ${seen[i]}`);
    } finally {
      sql(`update contacts set name = ${sqlLiteral(name)} where id = '${id}'`);
    }
  });

  test("favoriting in the database refreshes the favorites list", async () => {
    await warmAll(stack.urls.worker);
    const [[id]] = sql(
      `select id from contacts c where board_id = '${BOARD}' and not archived
       and not exists (select 1 from contact_favorites f where f.contact_id = c.id and f.user_id = '${ME}')
       order by created_at desc limit 1`,
    );
    const last = (await list(stack.urls.worker, "favorites")).generation;
    sql(`insert into contact_favorites (user_id, contact_id, workspace_id) values ('${ME}', '${id}', '${WS}')`);
    const favorites = await fresher("favorites", last);
    exactly(favorites, "favorites");
    assert.ok(favorites.json.data.contacts.some((c) => c.id === id));
    assert.ok(FROM_EDGE.includes((await list(stack.urls.worker, "closed")).cache), "other lists stay cached");
  });

  test("the webhook takes Supabase Database Webhook payloads and refuses a wrong secret", async () => {
    await warmAll(stack.urls.worker);
    const payload = { type: "UPDATE", table: "contacts", schema: "public", record: { workspace_id: WS, board_id: BOARD, board_column_id: null, conversation_status: "Open", priority: null, assigned_user_id: null, archived: false }, old_record: { workspace_id: WS, board_id: BOARD, board_column_id: null, conversation_status: "Closed", priority: null, assigned_user_id: null, archived: false } };
    const before = await keysOf(stack.urls.worker);
    const wrong = await fetch(`${stack.urls.worker}/api/cache/webhook`, { method: "POST", headers: { "X-Webhook-Secret": "nope" }, body: JSON.stringify(payload) });
    assert.equal(wrong.status, 401);
    assert.deepEqual(changed(before, await keysOf(stack.urls.worker)), []);
    const right = await fetch(`${stack.urls.worker}/api/cache/webhook`, { method: "POST", headers: { Authorization: `Bearer ${stack.secrets.WEBHOOK_SECRET}` }, body: JSON.stringify(payload) });
    assert.equal(right.status, 200);
    assert.deepEqual(changed(before, await keysOf(stack.urls.worker)), ["all", "open", "closed", "unassigned", "favorites"]);
  });
});

describe("counts at the edge", () => {
  const counts = async () => {
    const res = await fetch(`${stack.urls.worker}/api/workspaces/${WS}/counts`, { headers: { Authorization: `Bearer ${tokenFor(ME)}` } });
    assert.equal(res.status, 200);
    return { status: res.status, cache: `${res.headers.get("x-cache-status")}/${res.headers.get("x-cache-layer")}`, generation: res.headers.get("x-cache-generation"), counts: (await res.json()).data.counts };
  };
  /** Every filter's count, as SQL gives it now. */
  const sqlCounts = () =>
    Object.fromEntries(FILTERS.map((filter) => [filter, Number(sql(`select count(*) from contacts c where c.workspace_id = '${WS}' and ${filterSql(filter, ME)}`)[0][0])]));
  /** The counts once they are current as of a generation newer than `than` (not STALE). */
  const countsAfter = (than) =>
    waitFor("counts refreshed", async () => {
      const answer = await counts();
      return currentAfter(answer, than) && answer;
    }, 2000);

  test("the caller's counts equal SQL and follow a direct database write", async () => {
    const before = await counts();
    assert.deepEqual(before.counts, sqlCounts(), before.cache);
    const [[id]] = sql(
      `insert into contacts (workspace_id, board_id, name, conversation_status, priority)
       values ('${WS}', '${BOARD}', 'Counted By Psql', 'Open', 'low') returning id`,
    );
    const after = await countsAfter(before.generation);
    assert.deepEqual(after.counts, sqlCounts(), `${after.cache}, ${after.generation}`);
    assert.equal(after.counts.open, before.counts.open + 1);
    assert.equal(after.counts.low_priority, before.counts.low_priority + 1);
    assert.equal(after.counts.closed, before.counts.closed);
    sql(`delete from contacts where id = '${id}'`);
    const again = await countsAfter(after.generation);
    assert.deepEqual(again.counts, before.counts, `${again.cache}, ${again.generation}`);
  });

  test("a non-member gets 403", async () => {
    const res = await fetch(`${stack.urls.worker}/api/workspaces/${WS}/counts`, { headers: { Authorization: `Bearer ${tokenFor(OUTSIDER)}` } });
    assert.equal(res.status, 403);
  });
});

describe("bursts, permissions and hostile patterns", () => {
  test("200 invalidations for one workspace within one second all succeed", async () => {
    const started = Date.now();
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => post(stack.urls.worker, "/api/cache/invalidate", { workspace_id: WS, filter: FILTERS[i % 10] })),
    );
    assert.deepEqual(results.map((r) => r.status), Array(200).fill(200));
    assert.ok(results.every((r) => r.json.success));
    assert.ok(Date.now() - started < 10_000);
  });

  test("a member of A cannot invalidate B", async () => {
    const res = await post(stack.urls.worker, "/api/cache/invalidate", { workspace_id: WS }, { user: OUTSIDER });
    assert.equal(res.status, 403);
    assert.equal(res.json.error.code, "forbidden");
  });

  test("hostile or foreign patterns get 400 naming pattern", async () => {
    const other = seed.workspace(1);
    for (const pattern of ["*", "contacts:*", "counts:*", `contacts:${other}:*`, `counts:${other}*`, `contacts:${WS}:[a-z]*`, `contacts:${WS}x*`, "contacts:{*}:*"]) {
      const res = await post(stack.urls.worker, "/api/cache/invalidate", { workspace_id: WS, pattern });
      assert.equal(res.status, 400, pattern);
      assert.equal(res.json.error.field, "pattern", pattern);
    }
    const unknownEvent = await post(stack.urls.worker, "/api/cache/invalidate", { workspace_id: WS, event: { type: "contact:exploded" } });
    assert.equal(unknownEvent.status, 400);
    assert.equal(unknownEvent.json.error.field, "event");
    const noAuth = await fetch(`${stack.urls.worker}/api/cache/invalidate`, { method: "POST", body: JSON.stringify({ workspace_id: WS }) });
    assert.equal(noAuth.status, 401);
  });
});

// Its own worker, strict and without refresh-ahead, whatever the pass: the production-defaults
// pass would only run it again, and it is the longest of the file.
describe("cost does not grow with the cache", { skip: stack.productionDefaults && "its own worker: the same in both passes" }, () => {
  const pieces = newStack();
  let worker;
  let kv;
  // Fills the worker's KV from inside workerd, far faster than through Miniflare's Node API.
  const filler = {
    name: "kv-filler",
    script: `export default {
      async fetch(request, env) {
        const { prefix, from, count } = await request.json();
        await Promise.all(Array.from({ length: count }, (_, i) => env.CONTACT_CACHE.put(prefix + (from + i), "{}", { expirationTtl: 600 })));
        return new Response("ok");
      },
    };`,
  };
  let fill;
  before(async () => {
    // Strict, and no refresh-ahead: only the invalidation's own operations are counted.
    worker = await ownWorker(pieces, { STALENESS_BOUND_MS: "0", REFRESH_AHEAD_PAGES: "0" }, { extraWorkers: [filler] });
    kv = await pieces.miniflare.getKVNamespace("CONTACT_CACHE");
    const fillerWorker = await pieces.miniflare.getWorker("kv-filler");
    fill = (body) => fillerWorker.fetch("http://filler/", { method: "POST", body: JSON.stringify(body) });
  });
  after(() => pieces.stop());

  async function invalidationCost() {
    const redisBefore = Number(/total_commands_processed:(\d+)/.exec(redisCli(stack.ports.redis, "info", "stats"))[1]);
    const res = await post(worker, "/api/cache/invalidate", { workspace_id: WS });
    const redisAfter = Number(/total_commands_processed:(\d+)/.exec(redisCli(stack.ports.redis, "info", "stats"))[1]);
    assert.equal(res.status, 200);
    // The INFO call itself is the one command between the two readings. Change capture's clock
    // is read first when this isolate's reading is old, whatever is cached: left out.
    const { clock_reads, ...operations } = res.json.data.operations;
    assert.ok([0, 1].includes(clock_reads), `clock_reads ${clock_reads}`);
    return { kv: operations, redis: redisAfter - redisBefore - 1 };
  }

  test("invalidating with 100,000 cached entries costs the same state home, KV and Redis operations as with 10", async () => {
    await warmAll(worker);
    const small = await invalidationCost();

    const prefix = `contacts:${WS}:${BOARD}:filler-`;
    for (let from = 0; from < 100_000; from += 1000) {
      assert.equal((await fill({ prefix, from, count: 1000 })).status, 200);
    }
    let listed = 0;
    let cursor;
    do {
      const page = await kv.list({ prefix, cursor });
      listed += page.keys.length;
      cursor = page.list_complete ? undefined : page.cursor;
    } while (cursor);
    assert.equal(listed, 100_000, "KV holds 100,000 entries");
    redisCli(stack.ports.redis, "debug", "populate", "100000", `contacts:{${WS}}:all:board:${BOARD}:filler`, "64");
    assert.ok(Number(redisCli(stack.ports.redis, "dbsize")) >= 100_000);
    await warmAll(worker);
    const large = await invalidationCost();

    assert.deepEqual(large, small);
    // Every scope on every board (3 boards × 10 filters, and the counts) in one read and one
    // conditional write of the workspace's state home; nothing in KV.
    assert.deepEqual(
      [large.kv.state_home_reads, large.kv.state_home_writes, large.kv.state_home_conflicts],
      [1, 1, 0],
    );
    assert.deepEqual([large.kv.kv_reads, large.kv.kv_writes, large.kv.kv_lists], [0, 0, 0]);
    assert.equal(large.redis, 0, "the request path sends Redis nothing");
    for (const filter of ["all", "open"]) assert.equal((await list(worker, filter)).cache, "MISS/DATABASE", `${filter} was invalidated`);
  });
});

describe("cache warming", () => {
  test("warming makes the four common queries HIT", async () => {
    await post(stack.urls.worker, "/api/cache/invalidate", { workspace_id: WS });
    const res = await post(stack.urls.worker, "/api/cache/warm", { board_id: BOARD });
    assert.equal(res.status, 200, JSON.stringify(res.json));
    assert.deepEqual(res.json.data.warmed.map((w) => w.filter), ["all", "open", "unassigned", "assigned_to_me"]);
    for (const filter of ["all", "open", "unassigned", "assigned_to_me"]) {
      await waitFor(`${filter} warmed`, async () => FROM_EDGE.includes((await list(stack.urls.worker, filter)).cache), 3000);
    }
    // Not warmed: a page of another list that nothing has read, so the invalidation's
    // refresh-ahead (of pages read in the last 10 s: `closed`'s first page is, by the tests above)
    // does not bring it either: a miss.
    const closed = (await list(stack.urls.worker, "closed", { extra: "&sortBy=name&sortOrder=asc&pageSize=17" })).cache;
    assert.equal(closed, "MISS/DATABASE", "only the common queries are warmed");
  });

  test("warming needs a member and a valid board", async () => {
    assert.equal((await post(stack.urls.worker, "/api/cache/warm", { board_id: BOARD }, { user: OUTSIDER })).status, 403);
    const bad = await post(stack.urls.worker, "/api/cache/warm", { board_id: "board_456" });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.field, "board_id");
  });
});
