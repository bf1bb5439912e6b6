// Writes carried in place: a contact update that keeps the contact where it is in a list (a new
// name in a list sorted by date, say) makes the pages of the new generation from the cached
// ones, with that contact's row replaced, and no database read; a write that moves contacts
// across pages (one leaving a list) is read from the database again, and the pages read after it
// are where the next writes carry from; so is a page first read after a write, for which KV held
// no earlier copy. Either way every page matches SQL. The writes go through PostgreSQL and the backend's change capture, as in
// production; database reads are counted in pg_stat_statements.
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { waitFor } from "../../scripts/stack.mjs";
import { expectedPage, sameRows, seed, sql, stack, statementCalls, tokenFor } from "./harness.mjs";

// Workspace 5, board 2: no other test reads it, so no other page of its lists is refreshed.
const WS = seed.workspace(5);
const BOARD = seed.board(5, 2);
const ME = seed.user(5); // member of workspace 5
const TOKEN = tokenFor(ME, { app_metadata: { workspace_ids: [WS] } });

async function list(query) {
  const res = await fetch(`${stack.urls.worker}/api/boards/${BOARD}/contacts?${query}`, { headers: { Authorization: `Bearer ${TOKEN}`, "X-Workspace-ID": WS } });
  assert.equal(res.status, 200, query);
  return { label: `${res.headers.get("x-cache-status")}/${res.headers.get("x-cache-layer")}`, key: res.headers.get("x-cache-key"), body: await res.json() };
}

/** Served by the edge's caches: KV, or the isolate's L0 in front of it when L0 is on (the
 * production-defaults pass). */
const FROM_EDGE = ["HIT/KV", "HIT/L0"];

/** Statements run since the last reset that read the contacts table (not the test's own UPDATE). */
const contactReads = () => statementCalls("%from%contacts%");

/** Waits until every page of `queries` is served from KV (or L0) under a generation other than `keys`'. */
async function settled(queries, keys) {
  const pages = new Map();
  for (const query of queries) {
    pages.set(query, await waitFor(`${query} at the new generation`, async () => {
      const res = await list(query);
      return res.key !== keys.get(query) && FROM_EDGE.includes(res.label) && res;
    }, 3000));
  }
  return pages;
}

/** Every page matches SQL (the test's own queries: count database reads before). */
function matchSql(pages) {
  for (const [query, res] of pages) {
    const params = Object.fromEntries(new URLSearchParams(query));
    const expected = expectedPage({ workspace: WS, board: BOARD, me: ME, filter: params.filter, page: Number(params.page), pageSize: Number(params.pageSize ?? 50) });
    assert.ok(sameRows(res.body.data.contacts, expected.rows), `${query} matches SQL`);
    assert.equal(res.body.data.pagination.total, expected.total, `${query}: total`);
  }
}

/** The newest live contact of the board, its status and the lists it shows on page 1 of. */
function newest() {
  const [[id, status]] = sql(`select id, conversation_status from contacts where board_id = '${BOARD}' and not archived order by created_at desc, id desc limit 1`);
  return { id, status, statusFilter: status === "Open" ? "open" : "closed" };
}

describe("writes carried in place", () => {
  before(() => sql("create extension if not exists pg_stat_statements"));

  test("a rename reaches every page of its lists with no database read", async () => {
    const { id, statusFilter } = newest();
    const queries = ["filter=all&page=1", "filter=all&page=2", "filter=all&page=3", `filter=${statusFilter}&page=1`, `filter=${statusFilter}&page=2`];
    const keys = new Map();
    for (const query of queries) {
      keys.set(query, (await waitFor(`${query} in KV`, async () => { const res = await list(query); return FROM_EDGE.includes(res.label) && res; }, 5000)).key);
    }
    sql("select pg_stat_statements_reset()");
    sql(`update contacts set name = 'Carried Across' where id = '${id}'`);
    await waitFor("the rename at the edge", async () => (await list("filter=all&page=1")).body.data.contacts[0].name === "Carried Across", 3000);
    const pages = await settled(queries, keys);
    assert.equal(contactReads(), 0, "the pages were carried, not read");
    matchSql(pages);
  });

  test("a contact leaving a list is read again, and every page matches SQL", async () => {
    const { id, status, statusFilter } = newest();
    const queries = ["filter=all&page=1", `filter=${statusFilter}&page=1`, `filter=${statusFilter}&page=2`];
    const keys = new Map();
    for (const query of queries) keys.set(query, (await list(query)).key);
    sql("select pg_stat_statements_reset()");
    sql(`update contacts set conversation_status = '${status === "Open" ? "Closed" : "Open"}' where id = '${id}'`);
    await waitFor("the write at the edge", async () => !(await list(`filter=${statusFilter}&page=1`)).body.data.contacts.some((c) => c.id === id), 3000);
    const pages = await settled(queries, keys);
    assert.ok(contactReads() > 0, "the list it left was read from the database");
    matchSql(pages);
  });

  test("after a contact left a list, the pages read again carry the next rename", async () => {
    const { id, status, statusFilter } = newest();
    const queries = [`filter=${statusFilter}&page=1`, `filter=${statusFilter}&page=2`];
    const before = new Map();
    for (const query of queries) before.set(query, (await list(query)).key);
    sql(`update contacts set conversation_status = '${status === "Open" ? "Closed" : "Open"}' where id = '${id}'`);
    // The list it left, read again (or refreshed ahead) at the generation after the write.
    const left = await settled(queries, before);
    const keys = new Map([...left].map(([query, res]) => [query, res.key]));
    const [[other]] = sql(`select id from contacts where board_id = '${BOARD}' and not archived and conversation_status = '${status}' order by created_at desc, id desc limit 1`);
    sql("select pg_stat_statements_reset()");
    sql(`update contacts set name = 'Carried After Leaving' where id = '${other}'`);
    await waitFor("the rename at the edge", async () => (await list(`filter=${statusFilter}&page=1`)).body.data.contacts[0].name === "Carried After Leaving", 3000);
    const pages = await settled(queries, keys);
    assert.equal(contactReads(), 0, "carried from the pages read after the contact left, not read again");
    matchSql(pages);
  });

  test("a page first read after a write carries the next one", async () => {
    const { id } = newest();
    // A page no other test asks for: KV holds no copy of it at any generation.
    const query = "filter=all&page=1&pageSize=7";
    const [[other]] = sql(`select id from contacts where board_id = '${BOARD}' and not archived and id <> '${id}' order by created_at desc, id desc limit 1`);
    const before = (await list("filter=all&page=1")).key;
    sql(`update contacts set name = 'Renamed Before Reading' where id = '${other}'`);
    await waitFor("the first rename at the edge", async () => (await list("filter=all&page=1")).key !== before, 3000);
    const first = await list(query);
    assert.equal(first.label, "MISS/DATABASE", "never read before");
    await waitFor(`${query} in KV`, async () => FROM_EDGE.includes((await list(query)).label), 3000);
    // The page is also kept at the generation the carry record starts from, after the response.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    sql("select pg_stat_statements_reset()");
    sql(`update contacts set name = 'Carried From Its First Read' where id = '${id}'`);
    await waitFor("the second rename at the edge", async () => (await list("filter=all&page=1")).body.data.contacts[0].name === "Carried From Its First Read", 3000);
    const pages = await settled([query], new Map([[query, first.key]]));
    assert.equal(contactReads(), 0, "carried from the copy its first read kept, not read again");
    assert.equal(pages.get(query).body.data.contacts[0].name, "Carried From Its First Read");
    matchSql(pages);
  });
});
