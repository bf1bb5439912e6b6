// Cursor pagination: a 2,000-contact list walked by `nextCursor` (and back by `prevCursor`)
// returns every contact once, in SQL's order, for each sort (ties and null last_message_time
// included), through the worker (PostgREST) and the backend's fallback (SQL) alike; walked while
// contacts are inserted, renamed and deleted, every untouched contact is still seen exactly once
// and in order, and a touched one once or not at all; a tampered or foreign cursor is 400 naming
// `cursor`; a cursor page is cached and invalidated like a numbered one.
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { waitFor } from "../../scripts/stack.mjs";
import { fetchOnce, seed, sql, stack, tokenFor } from "./harness.mjs";

// Workspace 5, board 3: no other test reads or writes it.
const WS = seed.workspace(5);
const BOARD = seed.board(5, 3);
const ME = seed.user(5); // member of workspace 5
const TOKEN = tokenFor(ME, { app_metadata: { workspace_ids: [WS] } });
const SIZE = 2000;
const PAGE_SIZE = 100;

/** One list request through the worker (a new connection: the test blocks on psql between). */
async function list(query, headers = {}) {
  const res = await fetchOnce(`${stack.urls.worker}/api/boards/${BOARD}/contacts?${query}`, { headers: { Authorization: `Bearer ${TOKEN}`, "X-Workspace-ID": WS, ...headers } });
  return { status: res.status, key: res.headers.get("x-cache-key"), label: `${res.headers.get("x-cache-status")}/${res.headers.get("x-cache-layer")}`, body: await res.json() };
}

/** One list request to the backend's fallback (PostgreSQL when Redis misses or is skipped), as
 * the worker makes it: the internal key and the user's own token. */
async function fallback(query) {
  const headers = { "X-Internal-Auth": stack.secrets.INTERNAL_AUTH_KEY, "X-Workspace-ID": WS, Authorization: `Bearer ${TOKEN}`, "Cache-Control": "no-cache" };
  const res = await fetchOnce(`${stack.urls.backend}/api/boards/${BOARD}/contacts?${query}`, { headers });
  return { status: res.status, body: await res.json() };
}

/** The list's ids in SQL's order (nulls last both ways, ties by id in the same direction). */
function sqlIds(sortBy, sortOrder) {
  const nulls = sortBy === "last_message_time" ? " nulls last" : "";
  return sql(`select id from contacts where workspace_id = '${WS}' and board_id = '${BOARD}' and not archived order by ${sortBy} ${sortOrder}${nulls}, id ${sortOrder}`).map(([id]) => id);
}

/**
 * Walks `query` from its first page by `nextCursor` (or, with `backwards`, from `start`'s
 * `prevCursor`), calling `between()` after each page; answers the pages' ids in the list's order.
 */
async function walk(query, { read = list, between = () => {}, start, backwards = false } = {}) {
  const pages = [];
  let res = start ?? (await read(query));
  for (let n = 0; n < 200; n += 1) {
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const ids = res.body.data.contacts.map((c) => c.id);
    pages.push(ids);
    const cursor = backwards ? res.body.data.pagination.prevCursor : res.body.data.pagination.nextCursor;
    if (!cursor) break;
    await between(n);
    res = await read(`${query}&cursor=${cursor}`);
  }
  if (backwards) pages.reverse();
  return pages.flat();
}

/** Contacts inserted for this test: `n` of them, in batches sharing one created_at (ties), some
 * without a last message, names from a short list (ties in name order too). */
function insertContacts(n, label) {
  sql(`insert into contacts (workspace_id, board_id, name, email, conversation_status, last_message_time, created_at)
       select '${WS}', '${BOARD}', (array['Ann Lee', 'Bo Chen', 'Cy Park', 'Di Ruiz'])[1 + i % 4] || ' ${label}', null, 'Open',
              case when i % 7 = 0 then null else now() - (i % 50) * interval '1 hour' end,
              now() - (i / 10) * interval '1 minute'
       from generate_series(1, ${n}) as i`);
}

describe("cursor pagination", () => {
  before(() => {
    const [[live]] = sql(`select count(*) from contacts where board_id = '${BOARD}' and not archived`);
    if (Number(live) < SIZE) insertContacts(SIZE - Number(live), "seeded");
    const [[now]] = sql(`select count(*) from contacts where board_id = '${BOARD}' and not archived`);
    assert.ok(Number(now) >= SIZE, `the list holds ${now} contacts`);
  });

  for (const [sortBy, sortOrder] of [["created_at", "desc"], ["last_message_time", "asc"], ["last_message_time", "desc"], ["name", "asc"]]) {
    test(`walking ${sortBy} ${sortOrder} by cursor, forwards and back, returns every contact once in SQL's order`, async () => {
      const query = `pageSize=${PAGE_SIZE}&sortBy=${sortBy}&sortOrder=${sortOrder}`;
      const expected = sqlIds(sortBy, sortOrder);
      const first = await list(query);
      assert.equal(first.body.data.pagination.total, expected.length, "total from the counters");
      assert.equal(first.body.data.pagination.prevCursor, null, "nothing before page 1");
      const forwards = await walk(query, { start: first });
      assert.deepEqual(forwards, expected);
      const last = await list(`${query}&cursor=${(await lastPageCursor(query))}`);
      assert.equal(last.body.data.pagination.page, 0, "a cursor page has no number");
      assert.ok(last.body.data.contacts.length > 0);
      assert.deepEqual(await walk(query, { start: last, backwards: true }), expected, "back to the first contact");
    });
  }

  /** The cursor naming the last page that has contacts, found by walking. */
  async function lastPageCursor(query) {
    let res = await list(query);
    let cursor = null;
    for (let next = res.body.data.pagination.nextCursor; next; next = res.body.data.pagination.nextCursor) {
      const following = await list(`${query}&cursor=${next}`);
      if (following.body.data.contacts.length === 0) break;
      [cursor, res] = [next, following];
    }
    return cursor;
  }

  test("the backend's fallback walks the same list by the same cursors, in SQL's order", async () => {
    for (const [sortBy, sortOrder] of [["last_message_time", "desc"], ["name", "desc"]]) {
      const query = `pageSize=${PAGE_SIZE}&sortBy=${sortBy}&sortOrder=${sortOrder}`;
      assert.deepEqual(await walk(query, { read: fallback }), sqlIds(sortBy, sortOrder), `${sortBy} ${sortOrder}`);
      // A cursor the worker gave reads the same page at the backend.
      const viaWorker = await list(query);
      const next = viaWorker.body.data.pagination.nextCursor;
      const [edge, backend] = [await list(`${query}&cursor=${next}`, { "Cache-Control": "no-cache" }), await fallback(`${query}&cursor=${next}`)];
      assert.deepEqual(backend.body.data.contacts.map((c) => c.id), edge.body.data.contacts.map((c) => c.id));
    }
  });

  // A rename moves a contact in a list sorted by name: one renamed behind the cursor to a name
  // ahead of it is met again (and one renamed the other way not at all), as with any keyset
  // walk. In lists sorted by time a rename moves nothing, and every contact is seen at most once.
  test("while contacts are inserted, renamed and deleted, untouched ones are seen once, in order, touched ones at most once", async () => {
    for (const [sortBy, sortOrder] of [["created_at", "desc"], ["last_message_time", "asc"], ["name", "asc"]]) {
      const query = `pageSize=${PAGE_SIZE}&sortBy=${sortBy}&sortOrder=${sortOrder}`;
      const touched = new Set();
      const renames = new Set();
      let writes = 0;
      const between = (n) => {
        writes += 3;
        // Every page: a contact inserted, one renamed and one deleted, anywhere in the list.
        const [[inserted]] = sql(`insert into contacts (workspace_id, board_id, name, created_at, last_message_time)
                                  values ('${WS}', '${BOARD}', 'Walk Insert ${n}', now() - random() * interval '700 days', now()) returning id`);
        const [[renamed]] = sql(`update contacts set name = 'Walk Rename ' || md5(random()::text) where id = (
                                   select id from contacts where board_id = '${BOARD}' and not archived order by random() limit 1) returning id`);
        const [[deleted]] = sql(`delete from contacts where id = (
                                   select id from contacts where board_id = '${BOARD}' and not archived order by random() limit 1) returning id`);
        for (const id of [inserted, renamed, deleted]) touched.add(id);
        renames.add(renamed);
      };
      const before = sqlIds(sortBy, sortOrder);
      const seen = await walk(query, { between, read: (q) => list(q, { "Cache-Control": "no-cache" }) });
      const twice = seen.filter((id, i) => seen.indexOf(id) !== i);
      const moved = sortBy === "name" ? renames : new Set();
      assert.deepEqual(twice.filter((id) => !moved.has(id)), [], `${sortBy}: no contact seen twice (but one renamed ahead in a list by name)`);
      const after = new Set(sqlIds(sortBy, sortOrder));
      const untouched = before.filter((id) => !touched.has(id) && after.has(id));
      assert.deepEqual(seen.filter((id) => !touched.has(id)), untouched, "every untouched contact once, in order");
      assert.ok(writes >= 3 * (Math.floor(before.length / PAGE_SIZE) - 1), `the walk saw writes (${writes})`);
    }
  });

  test("a tampered or foreign cursor is 400 naming cursor", async () => {
    const query = `pageSize=${PAGE_SIZE}&sortBy=name&sortOrder=asc`;
    const next = (await list(query)).body.data.pagination.nextCursor;
    const flip = (s, at) => s.slice(0, at) + (s[at] === "A" ? "B" : "A") + s.slice(at + 1);
    const cases = {
      "a character changed": `${query}&cursor=${flip(next, 10)}`,
      "its tag changed": `${query}&cursor=${flip(next, next.length - 3)}`,
      "cut short": `${query}&cursor=${next.slice(0, 20)}`,
      "not base64": `${query}&cursor=%21%21%21`,
      "another filter": `pageSize=${PAGE_SIZE}&sortBy=name&sortOrder=asc&filter=open&cursor=${next}`,
      "another order": `pageSize=${PAGE_SIZE}&sortBy=name&sortOrder=desc&cursor=${next}`,
      "another page size": `pageSize=20&sortBy=name&sortOrder=asc&cursor=${next}`,
      "another search": `${query}&search=ann&cursor=${next}`,
      "with a page number": `${query}&page=2&cursor=${next}`,
    };
    for (const [what, q] of Object.entries(cases)) {
      const res = await list(q);
      assert.equal(res.status, 400, what);
      assert.equal(res.body.success, false, what);
      assert.equal(res.body.error.field, "cursor", what);
      assert.equal(res.body.error.code, "invalid_parameter", what);
    }
    const otherBoard = await fetchOnce(`${stack.urls.worker}/api/boards/${seed.board(5, 2)}/contacts?${query}&cursor=${next}`, { headers: { Authorization: `Bearer ${TOKEN}`, "X-Workspace-ID": WS } });
    assert.equal(otherBoard.status, 400, "another board");
    assert.equal((await otherBoard.json()).error.field, "cursor");
    assert.equal((await fallback(`${query}&cursor=${flip(next, 10)}`)).status, 400, "the backend refuses it too");
  });

  test("a cursor page is cached, and invalidated like a numbered one", async () => {
    const query = `pageSize=${PAGE_SIZE}&sortBy=created_at&sortOrder=desc`;
    const next = (await list(query)).body.data.pagination.nextCursor;
    const page = `${query}&cursor=${next}`;
    const cached = await waitFor("the cursor page in KV", async () => { const res = await list(page); return res.label === "HIT/KV" && res; }, 5000);
    assert.match(cached.key, /:cursor=[0-9a-f]{32}&pageSize=100&filter=all&sortBy=created_at&sortOrder=desc&gen=/);
    const target = cached.body.data.contacts[10].id;
    sql(`update contacts set name = 'Cursor Invalidated' where id = '${target}'`);
    const fresh = await waitFor("the rename on the cursor page", async () => {
      const res = await list(page);
      return res.body.data.contacts.find((c) => c.id === target)?.name === "Cursor Invalidated" && res;
    }, 5000);
    assert.notEqual(fresh.key, cached.key, "a new generation, a new key");
    assert.deepEqual(fresh.body.data.contacts.map((c) => c.id), cached.body.data.contacts.map((c) => c.id));
  });
});
