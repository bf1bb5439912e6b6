// KV's write limits: Cloudflare rejects writes beyond one per second per key (and under account
// limits). A page write-back that KV rejects is dropped without failing the read; an
// invalidation writes nothing to KV (its generations are the state home's), so KV's limits
// never hold it up. The worker's KV binding here is wrapped by a small worker that rejects
// writes the way KV does.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { newStack } from "../../scripts/stack.mjs";
import { expectedPage, ownWorker, sameRows, seed, tokenFor } from "./harness.mjs";

const WS = seed.workspace(1);
const BOARD = seed.board(1, 3);
const ME = seed.user(6); // member of workspace 1

/** A KV binding over the real namespace that rejects every write. */
const RATE_LIMITED_KV = `
  const limit = () => new Error("KV PUT failed: 429 Too Many Requests");
  export default function (env) {
    return {
      get: (...args) => env.REAL.get(...args),
      getWithMetadata: (...args) => env.REAL.getWithMetadata(...args),
      list: (...args) => env.REAL.list(...args),
      delete: (...args) => env.REAL.delete(...args),
      async put() {
        throw limit();
      },
    };
  }`;

describe("KV write limits", () => {
  const pieces = newStack();
  let worker;
  before(async () => {
    worker = await ownWorker(pieces, {}, {
      extraWorkers: [
        // A wrapped binding takes its compatibility date from the worker using it.
        { name: "rate-limited-kv", script: RATE_LIMITED_KV, kvNamespaces: { REAL: "contact-cache" }, compatibilityDate: undefined },
      ],
      app: { kvNamespaces: {}, wrappedBindings: { CONTACT_CACHE: { scriptName: "rate-limited-kv" } } },
    });
  });
  after(() => pieces.stop());

  const headers = { Authorization: `Bearer ${tokenFor(ME)}`, "X-Workspace-ID": WS };
  const list = (query) => fetch(`${worker}/api/boards/${BOARD}/contacts?${query}`, { headers });
  const label = (res) => `${res.status} ${res.headers.get("x-cache-status")}/${res.headers.get("x-cache-layer")}`;

  test("a rejected page write is dropped: the reader gets SQL's rows, the next one Redis's copy", async () => {
    const query = "filter=open&sortBy=name&sortOrder=asc&page=2&pageSize=19";
    const expected = expectedPage({ workspace: WS, board: BOARD, me: ME, filter: "open", sortBy: "name", sortOrder: "asc", page: 2, pageSize: 19 });
    const first = await list(query);
    assert.equal(label(first), "200 MISS/DATABASE");
    assert.ok(sameRows((await first.json()).data.contacts, expected.rows));
    await new Promise((r) => setTimeout(r, 300));
    const second = await list(query);
    assert.equal(label(second), "200 HIT/REDIS", "KV never stored it; Redis did");
    assert.ok(sameRows((await second.json()).data.contacts, expected.rows));
  });

  test("an invalidation writes nothing to KV: with every KV write rejected it succeeds at once", async () => {
    const started = Date.now();
    const res = await fetch(`${worker}/api/cache/invalidate`, {
      method: "POST",
      headers: { ...headers, "Content-Type": "application/json" },
      body: JSON.stringify({ workspace_id: WS, filter: "open" }),
    });
    assert.equal(res.status, 200);
    const { data } = await res.json();
    assert.deepEqual([data.operations.kv_writes, data.operations.state_home_writes], [0, 1], "one write, to the state home");
    assert.ok(Date.now() - started < 1000, "no retry waits out KV's one write per second per key");
    const after = await list("filter=open&sortBy=name&sortOrder=asc&page=2&pageSize=19");
    assert.equal(label(after), "200 MISS/DATABASE", "the new generation is in force");
  });
});
