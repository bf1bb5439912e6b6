// Freshness at the edge: a KV copy just past its TTL is served and refreshed in the background;
// an older one is served, labelled STALE with its Age, only when no source of fresh data answers;
// without one, the answer is a 503 JSON error, never an empty list.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { newStack, waitFor } from "../../scripts/stack.mjs";
import { markedPage, ownBackend, ownSupabase, ownWorker, seal, seed, stack, storedAgo, tokenFor } from "./harness.mjs";

const WS = seed.workspace(5);
const BOARD = seed.board(5, 1);
const ME = seed.user(5); // member of workspace 5 only

describe("stale-while-revalidate and stale-if-error", () => {
  const pieces = newStack();
  let worker;
  let kv;
  let postgrest;
  let backend;
  before(async () => {
    const supabase = await ownSupabase(pieces);
    postgrest = supabase.postgrest;
    const own = await ownBackend(pieces);
    backend = own.child;
    worker = await ownWorker(pieces, { SUPABASE_URL: supabase.url, BACKEND_URL: own.url, REDIS_ENABLED: "false" });
    kv = await pieces.miniflare.getKVNamespace("CONTACT_CACHE");
  });
  after(() => pieces.stop());

  const list = (query) =>
    fetch(`${worker}/api/boards/${BOARD}/contacts?${query}`, { headers: { Authorization: `Bearer ${tokenFor(ME)}`, "X-Workspace-ID": WS } });
  const layer = (res) => `${res.headers.get("x-cache-status")}/${res.headers.get("x-cache-layer")}`;
  /** Plants a sealed page read from its source `secondsAgo` ago under the key `query` uses. */
  async function plant(query, secondsAgo, marker) {
    const key = (await list(`${query}&pageSize=1`)).headers.get("x-cache-key").replace("pageSize=1", "pageSize=50");
    const page = markedPage(marker, { page: Number(new URLSearchParams(query).get("page") ?? 1), cachedAt: new Date(Date.now() - secondsAgo * 1000).toISOString().replace(/\.\d+Z$/, "Z") });
    await kv.put(key, seal(stack.secrets.CACHE_ENCRYPTION_KEY, key, JSON.stringify(page)), storedAgo(secondsAgo));
    return { key, page };
  }

  test("a copy just past its TTL is served with its Age and refreshed in the background", async () => {
    const { key, page } = await plant("filter=open&page=2", 195, "revalidating");
    const res = await list("filter=open&page=2");
    assert.equal(layer(res), "HIT/KV");
    assert.ok(Number(res.headers.get("age")) >= 195);
    assert.deepEqual(await res.json(), page);
    await waitFor("the background refresh", async () => {
      const { value, metadata } = await kv.getWithMetadata(key);
      return value !== null && metadata && Date.now() - metadata.t < 10_000;
    }, 5000);
    const fresh = await list("filter=open&page=2");
    assert.equal(layer(fresh), "HIT/KV");
    assert.equal(fresh.headers.get("age"), null);
    assert.equal((await fresh.json()).data.pagination.page, 2);
  });

  test("an older copy is not served while a source answers", async () => {
    await plant("filter=closed&page=2", 300, "too-old-to-serve-normally");
    const res = await list("filter=closed&page=2");
    assert.equal(layer(res), "MISS/DATABASE");
    assert.equal((await res.json()).data.pagination.page, 2);
  });

  test("with PostgREST and the backend down: a stale copy is served labelled STALE, without one a 503", async () => {
    const { page } = await plant("filter=archived&page=1", 400, "stale-but-labelled");
    await plant("filter=low_priority&page=1", 2000, "beyond-the-grace-period");
    await pieces.stopService(postgrest.child);
    await pieces.stopService(backend);

    const stale = await list("filter=archived&page=1");
    assert.equal(stale.status, 200);
    assert.equal(layer(stale), "STALE/KV");
    assert.ok(Number(stale.headers.get("age")) >= 400);
    assert.deepEqual(await stale.json(), page);

    for (const query of ["filter=high_priority&page=9", "filter=low_priority&page=1"]) {
      const res = await list(query);
      assert.equal(res.status, 503, query);
      const body = await res.json();
      assert.deepEqual(body, { success: false, error: { code: "unavailable", message: "the contact list is temporarily unavailable; retry shortly" } });
    }
  });
});
