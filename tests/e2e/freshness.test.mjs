// Freshness under writes: an invalidation reaches only its board's lists; within the staleness
// bound after a soft one (change capture, or the API's "mode": "soft"), the page it superseded
// may be served, labelled STALE, while one read per page fetches the current one; strict mode (bound 0) never serves it; past the bound nothing
// superseded is served; a burst of invalidations refreshes each hot page once. Database reads
// are counted where they land, in PostgreSQL's pg_stat_statements.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { newStack, waitFor } from "../../scripts/stack.mjs";
import { expectedPage, ownBackend, ownSupabase, ownWorker, sameRows, seed, sql, stack, statementCalls, tokenFor } from "./harness.mjs";

const WS = seed.workspace(2);
const ME = seed.user(2); // member of workspace 2
// A token that vouches for the workspace itself, so no membership lookup (and no query) is needed.
const TOKEN = tokenFor(ME, { app_metadata: { workspace_ids: [WS] } });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** GET one list page: status, label, key, age and body. */
async function list(worker, board, query) {
  const res = await fetch(`${worker}/api/boards/${board}/contacts?${query}`, { headers: { Authorization: `Bearer ${TOKEN}`, "X-Workspace-ID": WS } });
  const body = await res.json();
  return { status: res.status, label: `${res.headers.get("x-cache-status")}/${res.headers.get("x-cache-layer")}`, key: res.headers.get("x-cache-key"), age: res.headers.get("age"), body };
}

/** Reads until the page is served from KV. */
const cached = (worker, board, query) => waitFor(`${query} in KV`, async () => (await list(worker, board, query)).label === "HIT/KV", 5000);

async function invalidate(worker, body) {
  const res = await fetch(`${worker}/api/cache/invalidate`, {
    method: "POST",
    headers: { Authorization: `Bearer ${TOKEN}`, "Content-Type": "application/json" },
    body: JSON.stringify({ workspace_id: WS, ...body }),
  });
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()).data;
}

/** Statements run since the last reset that read the contacts table. */
const contactReads = () => statementCalls("%contacts%");

describe("scopes no wider than the change", () => {
  test("a write to board A changes A's lists and leaves board B's pages HIT", async () => {
    const [boardA, boardB] = [seed.board(2, 1), seed.board(2, 2)];
    const query = "filter=all&page=1";
    await cached(stack.urls.worker, boardA, query);
    await cached(stack.urls.worker, boardB, query);
    const keyB = (await list(stack.urls.worker, boardB, query)).key;
    const [[id]] = sql(`select id from contacts where board_id = '${boardA}' and not archived order by created_at desc, id desc limit 1`);
    sql(`update contacts set name = 'Renamed On Board A' where id = '${id}'`);
    await waitFor("the write at the edge", async () => (await list(stack.urls.worker, boardA, query)).body.data.contacts[0].name === "Renamed On Board A", 3000);
    const b = await list(stack.urls.worker, boardB, query);
    assert.equal(b.label, "HIT/KV");
    assert.equal(b.key, keyB, "board B's generation did not move");
  });
});

describe("bounded soft invalidation", () => {
  const pieces = newStack();
  let soft;
  let strict;
  before(async () => {
    sql("create extension if not exists pg_stat_statements");
    // Refresh-ahead off: what is counted is what readers cause.
    soft = await ownWorker(pieces, { REFRESH_AHEAD_PAGES: "0" });
    strict = await ownWorker(pieces, { REFRESH_AHEAD_PAGES: "0", STALENESS_BOUND_MS: "0" });
  });
  after(() => pieces.stop());

  test("strict mode never serves a page of the previous generation", async () => {
    const board = seed.board(2, 3);
    for (const query of ["filter=open&page=2", "filter=closed&page=2", "filter=all&page=4"]) {
      await cached(strict, board, query);
      const filter = new URLSearchParams(query).get("filter");
      await invalidate(strict, { board_id: board, filter });
      const res = await list(strict, board, query);
      assert.equal(res.label, "MISS/DATABASE", query);
    }
  });

  test("within the bound the superseded page is served labelled STALE, past it never; 50 readers make one database read", async () => {
    const board = seed.board(2, 3);
    const query = "filter=unassigned&sortBy=name&page=2&pageSize=23";
    await cached(soft, board, query);
    const before = await list(soft, board, query);
    sql("select pg_stat_statements_reset()");
    const invalidatedAt = Date.now();
    await invalidate(soft, { board_id: board, filter: "unassigned", mode: "soft" });
    const readers = await Promise.all(Array.from({ length: 50 }, () => list(soft, board, query)));
    for (const res of readers) {
      assert.equal(res.status, 200);
      assert.ok(res.label === "STALE/KV" || res.label === "HIT/KV", res.label);
      if (res.label === "STALE/KV") {
        assert.deepEqual(res.body, before.body, "the superseded page, as it was");
        assert.ok(res.age !== null, "with its Age");
      }
    }
    assert.ok(Date.now() - invalidatedAt < 1000, "the readers were within the bound");
    await waitFor("the current page in KV", async () => (await list(soft, board, query)).label === "HIT/KV", 3000);
    assert.equal(contactReads(), 1, "one database read for fifty readers");
    const expected = expectedPage({ workspace: WS, board, me: ME, filter: "unassigned", sortBy: "name", page: 2, pageSize: 23 });
    assert.ok(sameRows((await list(soft, board, query)).body.data.contacts, expected.rows));
  });

  test("the bound runs from when the database changed, not from when the change arrived", async () => {
    const board = seed.board(2, 3);
    const query = "filter=medium_priority&sortBy=name&page=4";
    const webhook = async (changedAt) => {
      // A contact's priority changed on the board; its rows say too little to be carried.
      const row = (priority) => ({ workspace_id: WS, board_id: board, conversation_status: "Open", priority, assigned_user_id: null, archived: false });
      const change = { type: "UPDATE", table: "contacts", schema: "public", record: row("medium"), old_record: row("low"), changed_at: changedAt };
      const res = await fetch(`${soft}/api/cache/webhook`, { method: "POST", headers: { "X-Webhook-Secret": stack.secrets.WEBHOOK_SECRET, "Content-Type": "application/json" }, body: JSON.stringify([change]) });
      assert.equal(res.status, 200, await res.text());
    };
    await cached(soft, board, query);
    await webhook(Date.now() - 200); // arrived 200 ms after the change: 800 ms of the bound left
    assert.equal((await list(soft, board, query)).label, "STALE/KV");
    await cached(soft, board, query);
    await webhook(Date.now() - 1500); // arrived after the bound: nothing superseded is served
    assert.equal((await list(soft, board, query)).label, "MISS/DATABASE");
  });

  test("a page first asked for past the bound is read through, never superseded", async () => {
    const board = seed.board(2, 3);
    const query = "filter=high_priority&page=3";
    await cached(soft, board, query);
    await invalidate(soft, { board_id: board, filter: "high_priority", mode: "soft" });
    await sleep(1100);
    assert.equal((await list(soft, board, query)).label, "MISS/DATABASE");
  });
});

describe("a refresh that fails", () => {
  const pieces = newStack();
  let worker;
  let postgrest;
  let backend;
  before(async () => {
    const supabase = await ownSupabase(pieces);
    postgrest = supabase.postgrest;
    backend = await ownBackend(pieces);
    worker = await ownWorker(pieces, { SUPABASE_URL: supabase.url, BACKEND_URL: backend.url, REFRESH_AHEAD_PAGES: "0" });
  });
  after(() => pieces.stop());

  test("leaves the previous page served only within the bound, then falls through as before", async () => {
    const board = seed.board(2, 1);
    const query = "filter=low_priority&sortBy=name&page=3";
    await cached(worker, board, query);
    const before = await list(worker, board, query);
    await pieces.stopService(postgrest.child);
    await pieces.stopService(backend.child);
    const invalidatedAt = Date.now();
    await invalidate(worker, { board_id: board, filter: "low_priority", mode: "soft" });
    const answers = [];
    while (Date.now() - invalidatedAt < 1600) {
      answers.push({ at: Date.now() - invalidatedAt, ...(await list(worker, board, query)) });
      await sleep(50);
    }
    for (const { at, status, label, body } of answers) {
      if (at < 950) {
        assert.equal(label, "STALE/KV", `at ${at} ms`);
        assert.deepEqual(body, before.body);
      } else if (at > 1050) {
        assert.equal(status, 503, `at ${at} ms: ${label}`);
        assert.equal(body.error.code, "unavailable");
      }
    }
  });
});

describe("refresh-ahead", () => {
  const pieces = newStack();
  let worker;
  before(async () => {
    sql("create extension if not exists pg_stat_statements");
    worker = await ownWorker(pieces);
  });
  after(() => pieces.stop());

  test("a burst of 20 invalidations within the debounce window refreshes each hot page once, before readers ask", async () => {
    const board = seed.board(2, 2);
    const queries = [1, 2, 3].map((page) => `filter=medium_priority&sortBy=last_message_time&sortOrder=asc&page=${page}`);
    for (const query of queries) await cached(worker, board, query);
    // The reads reach the backend's log within a second.
    const scope = `${board}:medium_priority`;
    const hot = async () => {
      const res = await fetch(`${stack.urls.backend}/api/reads/${WS}?scope=${scope}&limit=50`, { headers: { "X-Internal-Auth": stack.secrets.INTERNAL_AUTH_KEY } });
      return (await res.json()).data;
    };
    await waitFor("the reads logged", async () => (await hot()).length >= queries.length, 5000);
    const pages = (await hot()).length;
    sql("select pg_stat_statements_reset()");
    await Promise.all(Array.from({ length: 20 }, () => invalidate(worker, { board_id: board, filter: "medium_priority" })));
    await sleep(1500);
    assert.equal(contactReads(), pages, "one database read per hot page, not one per invalidation");
    for (const query of queries) {
      const res = await list(worker, board, query);
      assert.equal(res.label, "HIT/KV", `${query} was refreshed before it was asked for`);
    }
    assert.equal(contactReads(), pages);
  });
});

describe("counts follow the same rules", () => {
  test("after a write the counts are served STALE only within the bound, then fresh", async () => {
    const counts = async () => {
      const res = await fetch(`${stack.urls.worker}/api/workspaces/${WS}/counts`, { headers: { Authorization: `Bearer ${TOKEN}` } });
      assert.equal(res.status, 200);
      return { label: `${res.headers.get("x-cache-status")}/${res.headers.get("x-cache-layer")}`, counts: (await res.json()).data.counts };
    };
    await counts();
    await waitFor("counts in Redis", async () => (await counts()).label === "HIT/REDIS", 3000);
    const before = (await counts()).counts;
    const board = seed.board(2, 1);
    const [[id]] = sql(`insert into contacts (workspace_id, board_id, name, conversation_status, priority) values ('${WS}', '${board}', 'Counted Soft', 'Open', 'low') returning id`);
    const wroteAt = Date.now();
    const answers = [];
    while (Date.now() - wroteAt < 2000) {
      answers.push({ at: Date.now() - wroteAt, ...(await counts()) });
      await sleep(40);
    }
    sql(`delete from contacts where id = '${id}'`);
    assert.ok(answers.some((a) => a.counts.open === before.open + 1), "the write reached the counts");
    for (const { at, label, counts: seen } of answers) {
      if (seen.open !== before.open + 1) {
        assert.ok(label === "STALE/REDIS" || at < 500, `old counts at ${at} ms labelled ${label}`);
        assert.ok(at < 1500, `old counts at ${at} ms`);
      }
    }
  });
});
