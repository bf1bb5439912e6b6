// Encryption at rest: pages in KV and Redis are AES-256-GCM sealed, bound to their cache key;
// tampered, moved or unknown-key entries are misses, never served; rotated keys still read.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { newStack, waitFor } from "../../scripts/stack.mjs";
import { expectedPage, ownWorker, redisCli, seal, seed, stack, storedAgo, tokenFor } from "./harness.mjs";

const WS = seed.workspace(4);
const BOARD = seed.board(4, 1);
const ME = seed.user(4);

describe("encryption at rest", () => {
  const pieces = newStack();
  const oldKey = stack.secrets.CACHE_ENCRYPTION_KEY; // "local1:<base64>"
  const newKey = `rotated:${randomBytes(32).toString("base64")}`;
  let worker;
  let kv;
  before(async () => {
    // The current key is new; entries sealed with the old one still open.
    worker = await ownWorker(pieces, { CACHE_ENCRYPTION_KEY: `${newKey},${oldKey}` });
    kv = await pieces.miniflare.getKVNamespace("CONTACT_CACHE");
  });
  after(() => pieces.stop());

  const list = (query) =>
    fetch(`${worker}/api/boards/${BOARD}/contacts?${query}`, { headers: { Authorization: `Bearer ${tokenFor(ME)}`, "X-Workspace-ID": WS } });
  const layer = (res) => `${res.headers.get("x-cache-status")}/${res.headers.get("x-cache-layer")}`;

  test("KV and Redis hold only sealed pages, with no contact data in the clear", async () => {
    const query = "filter=closed&page=3";
    const res = await list(query);
    const body = await res.json();
    const names = body.data.contacts.map((c) => c.name);
    assert.ok(names.length > 0);
    const kvKey = res.headers.get("x-cache-key");
    const gen = kvKey.split("&gen=")[1];
    const redisKey = `contacts:{${WS}}:closed:board:${BOARD}:page:3:limit:50:sort:created_at-desc:gen:${gen}`;
    await waitFor("write-back", async () => (await kv.get(kvKey)) !== null && redisCli(stack.ports.redis, "exists", redisKey) === "1", 5000);
    const rawKv = await kv.get(kvKey);
    const rawRedis = redisCli(stack.ports.redis, "get", redisKey);
    assert.match(rawKv, /^v1\.rotated\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+$/);
    assert.match(rawRedis, /^v1\.local1\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+$/);
    for (const raw of [rawKv, rawRedis]) {
      for (const name of names) assert.ok(!raw.includes(name), "no name in the clear");
      assert.ok(!raw.includes("conversation_status"));
    }
    assert.equal(layer(await list(query)), "HIT/KV", "and sealed pages are served");
  });

  test("a tampered KV entry is a miss, never served", async () => {
    const query = "filter=open&page=4";
    const first = await list(query);
    const kvKey = first.headers.get("x-cache-key");
    await waitFor("write-back", async () => (await kv.get(kvKey)) !== null, 5000);
    const raw = await kv.get(kvKey);
    const flipped = raw.slice(0, -3) + (raw.at(-3) === "A" ? "B" : "A") + raw.slice(-2);
    await kv.put(kvKey, flipped, storedAgo(0));
    const res = await list(query);
    assert.notEqual(layer(res), "HIT/KV");
    const expected = expectedPage({ workspace: WS, board: BOARD, me: ME, filter: "open", page: 4 });
    assert.deepEqual((await res.json()).data.contacts.map((c) => c.id), expected.ids);
  });

  test("an entry moved to another key, or sealed under an unknown key id, is a miss", async () => {
    const a = await list("filter=all&page=5");
    const b = await list("filter=all&page=6");
    const [keyA, keyB] = [a.headers.get("x-cache-key"), b.headers.get("x-cache-key")];
    await waitFor("write-back", async () => (await kv.get(keyA)) !== null && (await kv.get(keyB)) !== null, 5000);
    await kv.put(keyB, await kv.get(keyA), storedAgo(0));
    const moved = await list("filter=all&page=6");
    assert.notEqual(layer(moved), "HIT/KV");
    assert.equal((await moved.json()).data.pagination.page, 6);

    const forged = seal(`ghost:${randomBytes(32).toString("base64")}`, keyA, JSON.stringify({ success: true, data: { contacts: [{ id: "forged" }] } }));
    await kv.put(keyA, forged, storedAgo(0));
    const res = await list("filter=all&page=5");
    assert.notEqual(layer(res), "HIT/KV");
    assert.ok(!(await res.text()).includes("forged"));
  });

  test("an entry not in the sealed form (plain JSON, another version, a short nonce) is a miss", async () => {
    const query = "filter=all&page=7";
    const first = await list(query);
    const kvKey = first.headers.get("x-cache-key");
    await waitFor("write-back", async () => (await kv.get(kvKey)) !== null, 5000);
    const [, id, nonce, ciphertext] = (await kv.get(kvKey)).split(".");
    const plain = JSON.stringify({ success: true, data: { contacts: [{ id: "plain" }] } });
    const short = Buffer.from(nonce, "base64url").subarray(0, 8).toString("base64url");
    for (const bad of [plain, `v2.${id}.${nonce}.${ciphertext}`, `v1.${id}.${short}.${ciphertext}`, `v1.${id}.${nonce}`, `v1.${id}.${nonce}.${ciphertext}.x`]) {
      await kv.put(kvKey, bad, storedAgo(0));
      const res = await list(query);
      assert.notEqual(layer(res), "HIT/KV", bad.slice(0, 40));
      const body = await res.json();
      assert.equal(body.data.pagination.page, 7);
      assert.ok(!JSON.stringify(body).includes('"plain"'));
      // The page read instead is written back over the bad entry before the next one is put.
      await waitFor("write-back", async () => (await kv.get(kvKey)) !== bad, 5000);
    }
  });

  test("entries sealed with the previous key still open after rotation", async () => {
    const query = "filter=low_priority&page=2";
    const probe = await list(query);
    const kvKey = probe.headers.get("x-cache-key");
    const page = { success: true, data: { marker: "sealed-with-the-old-key" } };
    await kv.put(kvKey, seal(oldKey, kvKey, JSON.stringify(page)), storedAgo(0));
    const res = await list(query);
    assert.equal(layer(res), "HIT/KV");
    assert.deepEqual(await res.json(), page);
  });

  test("a tampered Redis entry is a miss for the backend too", async () => {
    const call = (path, headers = {}) =>
      fetch(`${stack.urls.backend}${path}`, { headers: { "X-Internal-Auth": stack.secrets.INTERNAL_AUTH_KEY, "X-Workspace-ID": WS, Authorization: `Bearer ${tokenFor(ME)}`, ...headers } });
    const stats = async () => (await (await fetch(`${stack.urls.backend}/api/cache/stats`, { headers: { Authorization: `Bearer ${stack.backendOptions.metricsToken}` } })).json()).data.service;
    const key = `contacts:{${WS}}:archived:board:${BOARD}:page:1:limit:50:sort:created_at-desc:gen:0`;
    redisCli(stack.ports.redis, "set", key, "v1.local1.AAAAAAAAAAAAAAAA.AAAA", "EX", "60");
    const before = (await stats()).refused_entries;
    const res = await call(`/api/boards/${BOARD}/contacts/cache?filter=archived`, { "X-Cache-Only": "true" });
    assert.equal(res.status, 404);
    const afterStats = (await stats()).refused_entries;
    assert.equal(afterStats, before + 1);
  });
});
