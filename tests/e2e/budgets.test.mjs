// Time budgets at the edge: a KV read that never answers is given up after KV_TIMEOUT_MS and
// the read goes on without it (the page from Redis or the database, SQL's rows); a read of the
// scope's state from the state home that never answers is given up after the same budget. The
// worker's KV binding here is wrapped by a small worker whose reads of chosen keys never
// settle, and its LIVE binding (the state home) by one whose reads of chosen states never do.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { newStack } from "../../scripts/stack.mjs";
import { expectedPage, fetchOnce, ownWorker, sameRows, seed, tokenFor } from "./harness.mjs";

const WS = seed.workspace(1);
const BOARD = seed.board(1, 3);
const ME = seed.user(6); // member of workspace 1

/** A KV binding over the real namespace whose reads of pages 17 rows long never settle. */
const HANGING_KV = `
  const never = () => new Promise(() => {});
  export default function (env) {
    return {
      get: (...args) => env.REAL.get(...args),
      getWithMetadata: (key, ...args) => (key.includes("pageSize=17&") ? never() : env.REAL.getWithMetadata(key, ...args)),
      list: (...args) => env.REAL.list(...args),
      delete: (...args) => env.REAL.delete(...args),
      put: (...args) => env.REAL.put(...args),
    };
  }`;

/** The live worker (the state home) behind a worker whose reads of the `closed` lists' state
 * never settle. */
const HANGING_HOME = `
  export default {
    async fetch(request, env) {
      const body = await request.text();
      if (new URL(request.url).pathname.endsWith("/read") && body.includes(':closed"')) return new Promise(() => {});
      return env.REAL.fetch(request.url, { method: request.method, headers: request.headers, body });
    },
  };`;

describe("time budgets", () => {
  const pieces = newStack();
  let worker;
  before(async () => {
    worker = await ownWorker(pieces, { KV_TIMEOUT_MS: "300" }, {
      extraWorkers: [
        // A wrapped binding takes its compatibility date from the worker using it.
        { name: "hanging-kv", script: HANGING_KV, kvNamespaces: { REAL: "contact-cache" }, compatibilityDate: undefined },
        { name: "hanging-home", script: HANGING_HOME, serviceBindings: { REAL: "contact-list-cache-live" } },
      ],
      app: { kvNamespaces: {}, wrappedBindings: { CONTACT_CACHE: { scriptName: "hanging-kv" } }, serviceBindings: { LIVE: "hanging-home" } },
    });
  });
  after(() => pieces.stop());

  const headers = { Authorization: `Bearer ${tokenFor(ME)}`, "X-Workspace-ID": WS };
  const label = (res) => `${res.status} ${res.headers.get("x-cache-status")}/${res.headers.get("x-cache-layer")}`;

  /** Reads `filter`'s first page of `pageSize` rows, checks it against SQL and gives its label. */
  async function read(filter, pageSize) {
    const expected = expectedPage({ workspace: WS, board: BOARD, me: ME, filter, pageSize });
    const res = await fetchOnce(`${worker}/api/boards/${BOARD}/contacts?filter=${filter}&pageSize=${pageSize}`, { headers, timeoutMs: 10_000 });
    const body = await res.json();
    assert.ok(sameRows(body.data.contacts, expected.rows), `${filter}, ${pageSize} a page: SQL's rows`);
    return label(res);
  }

  test("a page read that never answers is given up, and the database answers", async () => {
    assert.equal(await read("open", 17), "200 MISS/DATABASE");
    assert.equal(await read("open", 17), "200 HIT/REDIS", "KV's copy never came; Redis's did");
    // The same list at another size is read from KV as usual.
    assert.equal(await read("open", 18), "200 MISS/DATABASE");
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(await read("open", 18), "200 HIT/KV");
  });

  test("a scope state that never answers is given up: the caches are skipped, the database answers", async () => {
    const started = Date.now();
    assert.equal(await read("closed", 20), "200 MISS/DATABASE");
    assert.ok(Date.now() - started < 5000, "given up after the budget");
    assert.equal(await read("closed", 20), "200 MISS/DATABASE");
  });
});
