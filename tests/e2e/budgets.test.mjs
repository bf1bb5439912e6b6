// Time budgets at the edge: a KV read that never answers is given up after KV_TIMEOUT_MS and
// the read goes on without it (the page from Redis or the database, SQL's rows); a read of the
// scope's state from the state home that never answers is given up after the same budget. The
// worker's KV binding here is wrapped by a small worker whose reads of chosen keys never
// settle, and its LIVE binding (the state home) by one whose reads of one workspace's states
// never do (an isolate reads all of a workspace's states at once).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { newStack } from "../../scripts/stack.mjs";
import { expectedPage, fetchOnce, ownWorker, sameRows, seed, tokenFor } from "./harness.mjs";

const WS = seed.workspace(1);
const BOARD = seed.board(1, 3);
const ME = seed.user(6); // member of workspace 1
/** The workspace whose state home never answers. */
const HUNG_WS = seed.workspace(2);
const HUNG_BOARD = seed.board(2, 1);
const HUNG_ME = seed.user(2); // member of workspace 2

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

/** The live worker (the state home) behind a worker whose reads of HUNG_WS's states never settle. */
const HANGING_HOME = `
  export default {
    async fetch(request, env) {
      const body = await request.text();
      if (new URL(request.url).pathname === "/state/${HUNG_WS}/read") return new Promise(() => {});
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

  const label = (res) => `${res.status} ${res.headers.get("x-cache-status")}/${res.headers.get("x-cache-layer")}`;

  /** Reads `filter`'s first page of `pageSize` rows (of `at`'s board, as its member), checks it
   * against SQL and gives its label. */
  async function read(filter, pageSize, at = { workspace: WS, board: BOARD, me: ME }) {
    const expected = expectedPage({ ...at, filter, pageSize });
    const headers = { Authorization: `Bearer ${tokenFor(at.me)}`, "X-Workspace-ID": at.workspace };
    const res = await fetchOnce(`${worker}/api/boards/${at.board}/contacts?filter=${filter}&pageSize=${pageSize}`, { headers, timeoutMs: 10_000 });
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
    const hung = { workspace: HUNG_WS, board: HUNG_BOARD, me: HUNG_ME };
    const started = Date.now();
    assert.equal(await read("closed", 20, hung), "200 MISS/DATABASE");
    assert.ok(Date.now() - started < 5000, "given up after the budget");
    assert.equal(await read("closed", 20, hung), "200 MISS/DATABASE");
  });
});
