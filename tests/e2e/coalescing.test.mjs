// Request coalescing: concurrent identical misses in one isolate make one upstream query,
// counted where it lands, in PostgreSQL's pg_stat_statements.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { newStack } from "../../scripts/stack.mjs";
import { expectedPage, ownWorker, sameRows, seed, sql, tokenFor } from "./harness.mjs";

const WS = seed.workspace(3);
const BOARD = seed.board(3, 2);
const ME = seed.user(3); // member of workspace 3; its token names no workspace, so membership is looked up

/** Statements run since the last reset that read the contacts table, the membership table
 * through PostgREST (the worker's lookups: PostgREST quotes its names), and the membership table
 * in the backend's own check before it answers from Redis (remembered there for 60 s, so made
 * at most once here). */
function statements() {
  const [[contacts, members, backendMembers]] = sql(`
    select coalesce(sum(calls) filter (where query ilike '%contacts%'), 0),
           coalesce(sum(calls) filter (where query ilike '%"workspace_members"%' and query not ilike '%contacts%'), 0),
           coalesce(sum(calls) filter (where query ilike '%public.workspace_members m%' and query not ilike '%contacts%'), 0)
    from pg_stat_statements where query not ilike '%pg_stat_statements%'`);
  return { contacts: Number(contacts), members: Number(members), backendMembers: Number(backendMembers) };
}

describe("request coalescing", () => {
  const pieces = newStack();
  let worker;
  before(async () => {
    sql("create extension if not exists pg_stat_statements");
    // A fresh isolate with an empty KV and a cold membership cache.
    worker = await ownWorker(pieces);
  });
  after(() => pieces.stop());

  const burst = (query, headers = {}) =>
    Promise.all(
      Array.from({ length: 50 }, () =>
        fetch(`${worker}/api/boards/${BOARD}/contacts?${query}`, {
          headers: { Authorization: `Bearer ${tokenFor(ME)}`, "X-Workspace-ID": WS, ...headers },
        }),
      ),
    );

  test("50 concurrent identical misses make one database query, and all get SQL's rows", async () => {
    // A page no other test asks for, so neither KV nor Redis has it.
    const query = "filter=medium_priority&sortBy=name&sortOrder=asc&page=3&pageSize=17";
    const expected = expectedPage({ workspace: WS, board: BOARD, me: ME, filter: "medium_priority", sortBy: "name", sortOrder: "asc", page: 3, pageSize: 17 });
    sql("select pg_stat_statements_reset()");
    const responses = await burst(query);
    const counted = statements();
    const labels = responses.map((r) => `${r.status} ${r.headers.get("x-cache-status")}/${r.headers.get("x-cache-layer")}`);
    assert.deepEqual(new Set(labels), new Set(["200 MISS/DATABASE"]));
    assert.equal(responses.filter((r) => r.headers.get("x-cache-coalesced") === "true").length, 49);
    for (const res of responses) {
      const body = await res.json();
      assert.ok(sameRows(body.data.contacts, expected.rows));
      assert.equal(body.data.pagination.total, expected.total);
    }
    assert.deepEqual({ contacts: counted.contacts, members: counted.members }, { contacts: 1, members: 1 });
    assert.ok(counted.backendMembers <= 1, `the backend checked membership ${counted.backendMembers} times`);
  });

  test("the count is real: 50 concurrent requests asking for fresh data make 50 queries", async () => {
    const query = "filter=medium_priority&sortBy=name&sortOrder=asc&page=4&pageSize=17";
    sql("select pg_stat_statements_reset()");
    const responses = await burst(query, { "Cache-Control": "no-cache" });
    assert.ok(responses.every((r) => r.status === 200 && r.headers.get("x-cache-status") === "BYPASS"));
    assert.equal(responses.filter((r) => r.headers.get("x-cache-coalesced")).length, 0);
    assert.equal(statements().contacts, 50);
  });

  test("a miss after the burst is a KV hit: the leader wrote its page back", async () => {
    const query = "filter=medium_priority&sortBy=name&sortOrder=asc&page=3&pageSize=17";
    const res = await fetch(`${worker}/api/boards/${BOARD}/contacts?${query}`, {
      headers: { Authorization: `Bearer ${tokenFor(ME)}`, "X-Workspace-ID": WS },
    });
    assert.equal(`${res.headers.get("x-cache-status")}/${res.headers.get("x-cache-layer")}`, "HIT/KV");
  });
});
