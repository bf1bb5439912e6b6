// L0, the isolate's memory of pages and scope states read from KV: a hot page answers as
// HIT/L0; after an invalidation made elsewhere (another isolate), an isolate's L0 answers show
// the old generation for less than the staleness bound; with the bound at 0 it never answers;
// its memory stays under L0_CACHE_MB however many distinct pages are asked for. The suite's
// other workers run with L0 off (tests/run.mjs), so their layers can be watched one by one.
import assert from "node:assert/strict";
import { request as httpRequest } from "node:http";
import { after, before, describe, test } from "node:test";
import { builtWorker, newStack, waitFor } from "../../scripts/stack.mjs";
import { expectedPage, ownWorker, seed, stack, tokenFor } from "./harness.mjs";

const WS = seed.workspace(3);
const BOARD = seed.board(3, 3);
const ME = seed.user(3); // member of workspace 3
const TOKEN = tokenFor(ME, { app_metadata: { workspace_ids: [WS] } });
const PEER = "peer.l0.test";
const headers = { Authorization: `Bearer ${TOKEN}`, "X-Workspace-ID": WS };

/** A request to `url`, to the worker routed by `host` when given (fetch would drop Host). */
function call(url, { method = "GET", path, host, body } = {}) {
  const target = new URL(path, url);
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = httpRequest(target, { method, headers: { ...headers, ...(host ? { Host: host } : {}), ...(payload ? { "Content-Type": "application/json" } : {}) } }, (res) => {
      let text = "";
      res.on("data", (chunk) => (text += chunk));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, text }));
    });
    req.on("error", reject);
    req.end(payload);
  });
}

async function list(url, query) {
  const res = await call(url, { path: `/api/boards/${BOARD}/contacts?${query}` });
  assert.equal(res.status, 200, res.text);
  return { label: `${res.headers["x-cache-status"]}/${res.headers["x-cache-layer"]}`, key: res.headers["x-cache-key"], text: res.text };
}

async function l0Usage(url) {
  const res = await fetch(`${url}/metrics`, { headers: { Authorization: `Bearer ${stack.secrets.METRICS_TOKEN}` } });
  assert.equal(res.status, 200);
  return (await res.json()).l0;
}

describe("L0", () => {
  const pieces = newStack();
  let worker; // L0 on (32 MB, bound 1 s), with a peer isolate (L0 off) in the same workerd and KV
  let strict; // L0 on, bound 0
  let small; // L0 on, 256 KB
  before(async () => {
    worker = await ownWorker(pieces, { L0_CACHE_MB: "32", STALENESS_BOUND_MS: "1000", REFRESH_AHEAD_PAGES: "0" }, {
      extraWorkers: [builtWorker({ name: "peer", bindings: { ...stack.bindings, L0_CACHE_MB: "0" }, routes: [`${PEER}/*`], serviceBindings: { LIVE: "contact-list-cache-live" } })],
    });
    strict = await ownWorker(pieces, { L0_CACHE_MB: "32", STALENESS_BOUND_MS: "0" });
  });
  after(() => pieces.stop());

  test("a hot page answers from L0, and an invalidation elsewhere shows within the bound", async () => {
    const query = "filter=open&page=1";
    let fromKv;
    await waitFor("the page in KV", async () => (fromKv = await list(worker, query)).label === "HIT/KV", 5000);
    const old = await list(worker, query);
    assert.equal(old.label, "HIT/L0");
    // L0 keeps the page as KV's copy opened: every answer from it is that page, whole (the
    // kept bytes are not used up by the first response), with SQL's rows.
    const again = [];
    for (let i = 0; i < 3; i++) again.push(await list(worker, query));
    assert.ok(again.some((answer) => answer.label === "HIT/L0"));
    for (const answer of [old, ...again]) assert.equal(answer.text, fromKv.text);
    const expected = expectedPage({ workspace: WS, board: BOARD, me: ME, filter: "open", page: 1 });
    assert.deepEqual(JSON.parse(fromKv.text).data.contacts.map((c) => c.id), expected.ids);
    // Invalidated through the peer isolate: this isolate's L0 does not hear of it (until it
    // reads the scope's state again from the state home, within the bound).
    const invalidated = await call(worker, { method: "POST", path: "/api/cache/invalidate", host: PEER, body: { workspace_id: WS, board_id: BOARD, filter: "open" } });
    assert.equal(invalidated.status, 200, invalidated.text);
    const at = Date.now();
    const answers = [];
    while (Date.now() - at < 1500) {
      const started = Date.now() - at;
      answers.push({ started, ...(await list(worker, query)) });
    }
    const late = answers.filter((a) => a.started >= 1000);
    assert.ok(late.length > 0);
    for (const answer of late) assert.notEqual(answer.key, old.key, `an answer ${answer.started} ms after the invalidation showed the old generation`);
    for (const answer of answers.filter((a) => a.key === old.key)) assert.ok(answer.started < 1000, `old generation at ${answer.started} ms`);
  });

  test("with the bound at 0 it never answers", async () => {
    const query = "filter=closed&page=1";
    await waitFor("the page in KV", async () => (await list(strict, query)).label === "HIT/KV", 5000);
    for (let i = 0; i < 20; i++) assert.equal((await list(strict, query)).label, "HIT/KV");
    assert.deepEqual([(await l0Usage(strict)).pages, (await l0Usage(strict)).enabled], [0, false]);
  });

  test("its memory stays under its budget however many distinct pages are asked for", async () => {
    small = await ownWorker(pieces, { L0_CACHE_MB: "1", REFRESH_AHEAD_PAGES: "0" });
    const distinct = Number(process.env.L0_TEST_PAGES ?? 2000);
    const queries = Array.from({ length: distinct }, (_, i) => `filter=all&pageSize=${1 + (i % 100)}&page=${1 + Math.floor(i / 100)}`);
    let most = 0;
    for (let i = 0; i < queries.length; i += 16) {
      await Promise.all(queries.slice(i, i + 16).map((query) => list(small, query)));
      if (i % 320 === 0) most = Math.max(most, (await l0Usage(small)).bytes);
    }
    const usage = await l0Usage(small);
    assert.equal(usage.max_bytes, 1 << 20);
    assert.ok(usage.pages > 10, `pages kept: ${usage.pages}`);
    assert.ok(Math.max(most, usage.bytes) <= usage.max_bytes, `${Math.max(most, usage.bytes)} bytes`);
  });
});
