// The state home: each workspace's scope states and carry records live in its Durable Object
// (the live worker's), written only on the condition that nothing was written since they were
// read. Lists and counts say as of which generation they are current (X-Cache-Generation); a
// request naming a newer one (minGeneration) is never answered older, even by an isolate whose
// L0 and kept state predate it; an explicit invalidation is hard by default (the caller's next
// read is the new data, not a superseded page), soft when asked; and two invalidations of one
// scope racing from two locations (the API and change capture) are both kept.
import assert from "node:assert/strict";
import { request as httpRequest } from "node:http";
import { after, before, describe, test } from "node:test";
import { builtWorker, newStack, waitFor } from "../../scripts/stack.mjs";
import { expectedPage, ownWorker, sameRows, seed, sql, sqlLiteral, stack, stateHome, tokenFor } from "./harness.mjs";

// Workspace 3, board 2: no other test writes its contacts.
const WS = seed.workspace(3);
const BOARD = seed.board(3, 2);
const ME = seed.user(3); // member of workspace 3
const TOKEN = tokenFor(ME, { app_metadata: { workspace_ids: [WS] } });
const PEER = "peer.state-home.test"; // a second isolate (another location), with its own memory
const BOUND_MS = 10_000;

/** A request to the worker at `url`, to the peer isolate when `host` is PEER. */
function call(url, { method = "GET", path, host, body, headers = {} }) {
  const target = new URL(path, url);
  const payload = body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body);
  const all = { Authorization: `Bearer ${TOKEN}`, "X-Workspace-ID": WS, ...(host ? { Host: host } : {}), ...(payload ? { "Content-Type": "application/json" } : {}), ...headers };
  return new Promise((resolve, reject) => {
    const req = httpRequest(target, { method, headers: all }, (res) => {
      let text = "";
      res.on("data", (chunk) => (text += chunk));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) }));
    });
    req.on("error", reject);
    req.end(payload);
  });
}

/** A list page: its label, key, generation and contacts. */
async function list(url, query, { host } = {}) {
  const res = await call(url, { path: `/api/boards/${BOARD}/contacts?${query}`, host });
  assert.equal(res.status, 200, res.text);
  return {
    label: `${res.headers["x-cache-status"]}/${res.headers["x-cache-layer"]}`,
    key: res.headers["x-cache-key"],
    generation: res.headers["x-cache-generation"],
    contacts: res.json().data.contacts,
  };
}

async function invalidate(url, body, { host } = {}) {
  const res = await call(url, { method: "POST", path: "/api/cache/invalidate", host, body: { workspace_id: WS, ...body } });
  assert.equal(res.status, 200, res.text);
  return res.json().data;
}

/** Generations compare by their millisecond part (hexadecimal, before the `-`), then the rest. */
function compare(a, b) {
  const millis = (g) => BigInt(`0x${g.split("-")[0] || "0"}`);
  const [ma, mb] = [millis(a), millis(b)];
  return ma !== mb ? (ma < mb ? -1 : 1) : a === b ? 0 : a < b ? -1 : 1;
}

/** The first contact of `filter=all`'s first page, renamed in the database to a new name. */
function rename(id, name) {
  sql(`update contacts set name = ${sqlLiteral(name)} where id = '${id}'`);
}

describe("the state home", () => {
  const pieces = newStack();
  let worker; // L0 on (32 MB, bound 10 s), with a peer isolate (L0 on too) beside it
  before(async () => {
    const bindings = { ...stack.bindings, L0_CACHE_MB: "32", STALENESS_BOUND_MS: String(BOUND_MS), REFRESH_AHEAD_PAGES: "0" };
    worker = await ownWorker(pieces, { L0_CACHE_MB: "32", STALENESS_BOUND_MS: String(BOUND_MS), REFRESH_AHEAD_PAGES: "0" }, {
      extraWorkers: [builtWorker({ name: "peer", bindings, routes: [`${PEER}/*`], serviceBindings: { LIVE: "contact-list-cache-live" } })],
    });
    // Generations of this worker's own, apart from every other worker's generation 0 in Redis.
    await invalidate(worker, { board_id: BOARD });
  });
  after(() => pieces.stop());

  test("lists and counts say as of which generation they are current, and CORS exposes it", async () => {
    const { generation } = await invalidate(worker, { board_id: BOARD });
    const page = await list(worker, "filter=open&page=2");
    assert.equal(page.generation, generation, "a page of the current generation, current as of the newest");
    const counts = await call(worker, { path: `/api/workspaces/${WS}/counts`, headers: { Origin: "https://app.example" } });
    assert.equal(counts.status, 200, counts.text);
    assert.equal(counts.headers["x-cache-generation"], generation);
    assert.match(counts.headers["access-control-expose-headers"], /X-Cache-Generation/);
  });

  test("a malformed minGeneration or mode is a 400 naming it", async () => {
    for (const bad of ["", "UPPER", "a%20b", "x".repeat(41), "1&minGeneration=2"]) {
      for (const path of [`/api/boards/${BOARD}/contacts?filter=open&minGeneration=${bad}`, `/api/workspaces/${WS}/counts?minGeneration=${bad}`]) {
        const res = await call(worker, { path });
        assert.equal(res.status, 400, `${path}: ${res.text}`);
        assert.equal(res.json().error.field, "minGeneration", path);
      }
    }
    const res = await call(worker, { method: "POST", path: "/api/cache/invalidate", body: { workspace_id: WS, mode: "later" } });
    assert.equal(res.status, 400, res.text);
    assert.equal(res.json().error.field, "mode");
  });

  test("an isolate whose state is older than minGeneration reads it again: never older than asked", async () => {
    const query = "filter=unassigned&page=1";
    const old = await waitFor("the page in L0", async () => {
      const page = await list(worker, query);
      return page.label === "HIT/L0" && page;
    }, 5000);
    // Invalidated through the other isolate: this one's memory does not hear of it.
    const { generation } = await invalidate(worker, { board_id: BOARD, filter: "unassigned" }, { host: PEER });
    const unasked = await list(worker, query);
    assert.equal(unasked.key, old.key, "within the bound, without minGeneration, the page it keeps");
    assert.ok(compare(unasked.generation, generation) < 0, `${unasked.generation} is older than ${generation}`);
    const asked = await list(worker, `${query}&minGeneration=${generation}`);
    assert.notEqual(asked.key, old.key, "the state was read again");
    assert.equal(asked.label, "MISS/DATABASE", "the new generation's page, not a superseded one");
    assert.ok(compare(asked.generation, generation) >= 0, `${asked.generation} is at least ${generation}`);
    assert.deepEqual(asked.contacts.map((c) => c.id), expectedPage({ workspace: WS, board: BOARD, me: ME, filter: "unassigned" }).ids);
    // A generation the home never issued: answered from the database, never from a cache.
    const future = await list(worker, `${query}&minGeneration=ffffffffffff-0`);
    assert.equal(future.label, "MISS/DATABASE");
  });

  test("a hard invalidation's next read is the new data; a soft one's is the superseded page, STALE", async () => {
    const query = "filter=all&page=1";
    const cached = await waitFor("the page in L0", async () => {
      const page = await list(worker, query);
      return page.label === "HIT/L0" && page;
    }, 5000);
    const [first] = cached.contacts;

    rename(first.id, `Soft ${Date.now()}`);
    const soft = await invalidate(worker, { board_id: BOARD, filter: "all", mode: "soft" });
    assert.equal(soft.mode, "soft");
    const stale = await list(worker, query);
    assert.equal(stale.label, "STALE/KV", "soft: the superseded page within the bound");
    assert.equal(stale.contacts[0].name, first.name);
    assert.ok(compare(stale.generation, soft.generation) < 0, "labelled with the generation it was current as of");

    await waitFor("the new page in L0", async () => (await list(worker, query)).label === "HIT/L0", 5000);
    const renamed = `Hard ${Date.now()}`;
    rename(first.id, renamed);
    const hard = await invalidate(worker, { board_id: BOARD, filter: "all" });
    assert.equal(hard.mode, "hard");
    const next = await list(worker, query);
    assert.equal(next.label, "MISS/DATABASE", "hard: no superseded page, the new data");
    assert.equal(next.contacts[0].name, renamed);
    assert.equal(next.generation, hard.generation);
    // From the other isolate too, with the generation the invalidation answered.
    const elsewhere = await list(worker, `${query}&minGeneration=${hard.generation}`, { host: PEER });
    assert.equal(elsewhere.contacts[0].name, renamed);
  });

  test("two invalidations of one scope racing from two locations (the API and change capture) are both kept", async () => {
    const home = stateHome(pieces.miniflare, WS);
    const stateKey = `gen:${WS}:${BOARD}:all`;
    const query = "filter=all&page=1";
    for (let round = 0; round < 5; round++) {
      // A page of the current generation in KV, the one a lost update would carry.
      await waitFor("the page in KV", async () => ["HIT/KV", "HIT/L0"].includes((await list(worker, query, { host: PEER })).label), 5000);
      const { contacts } = await list(worker, query, { host: PEER });
      const [x, y] = contacts;
      // x changed in a way only the caller of the API knows; y through change capture.
      rename(x.id, `Api ${round} ${Date.now()}`);
      const [[before]] = sql(`select to_jsonb(c)::text from contacts c where id = '${y.id}'`);
      rename(y.id, `Captured ${round} ${Date.now()}`);
      const [[after]] = sql(`select to_jsonb(c)::text from contacts c where id = '${y.id}'`);
      const change = { type: "UPDATE", table: "contacts", schema: "public", record: JSON.parse(after), old_record: JSON.parse(before) };
      const { version } = await home.read([]);
      const [api, captured] = await Promise.all([
        invalidate(worker, { board_id: BOARD, filter: "all" }),
        call(worker, { method: "POST", path: "/api/cache/webhook", host: PEER, body: change, headers: { "X-Webhook-Secret": stack.secrets.WEBHOOK_SECRET } }),
      ]);
      assert.equal(captured.status, 200, captured.text);
      const webhook = captured.json().data.generation;
      const now = await home.read([stateKey]);
      assert.equal(now.version, version + 2, "both writes landed");
      const last = compare(api.generation, webhook) > 0 ? api.generation : webhook;
      assert.equal(now.newest, last);
      assert.equal(now.values[stateKey].split(" ")[0], last, "the scope's state is the later write's");
      // Whatever was carried, the page shows both changes.
      const page = await list(worker, `${query}&minGeneration=${last}`);
      const expected = expectedPage({ workspace: WS, board: BOARD, me: ME, filter: "all" });
      assert.ok(sameRows(page.contacts, expected.rows), `round ${round}: ${page.label}, both changes shown`);
    }
  });
});
