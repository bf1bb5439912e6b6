// The benchmark's JavaScript KV hit (bench/js-hit/worker.mjs) does what ours does: beside our
// worker in one Miniflare, on the same KV, it answers a page ours has cached with the same bytes
// and the same headers, and a bad request with the same error. So the benchmark's ours/JS ratio
// compares the same work.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { ROOT, newStack, waitFor } from "../../scripts/stack.mjs";
import { fetchOnce, markedPage, ownWorker, seal, seed, stack, storedAgo, tokenFor } from "./harness.mjs";

const WS = seed.workspace(1);
const BOARD = seed.board(1, 1);
const ME = seed.user(1);
const JS_HOST = "js-hit.test";

/** Headers that differ between any two answers (the time taken, the date) or by transport. */
const UNCOMPARED = new Set(["x-response-time", "date", "connection", "keep-alive", "transfer-encoding"]);

describe("the benchmark's JavaScript KV hit", () => {
  const pieces = newStack();
  let url;
  before(async () => {
    url = await ownWorker(pieces, {}, {
      extraWorkers: [{ name: "js-hit", modules: true, scriptPath: join(ROOT, "bench", "js-hit", "worker.mjs"), bindings: stack.bindings, routes: [`${JS_HOST}/*`], serviceBindings: { LIVE: "contact-list-cache-live" } }],
    });
  });
  after(() => pieces.stop());

  const headersOf = (extra = {}) => ({ Authorization: `Bearer ${tokenFor(ME)}`, "X-Workspace-ID": WS, "X-Request-ID": "same-id-for-both", Origin: "https://app.example.test", ...extra });
  const ours = (query, headers = headersOf()) => fetchOnce(`${url}/api/boards/${BOARD}/contacts?${query}`, { headers });
  const js = (query, headers = headersOf()) => fetchOnce(`${url}/api/boards/${BOARD}/contacts?${query}`, { headers: { ...headers, Host: JS_HOST } });
  const served = (res) => `${res.status} ${res.headers.get("x-cache-status")}/${res.headers.get("x-cache-layer")}`;

  /** Status, body bytes and every header but UNCOMPARED; the response time is only shaped alike. */
  async function answer(res) {
    const headers = Object.fromEntries([...res.headers].filter(([name]) => !UNCOMPARED.has(name)));
    if (res.headers.has("x-response-time")) assert.match(res.headers.get("x-response-time"), /^\d+ms$/);
    return { status: res.status, headers, body: Buffer.from(await res.arrayBuffer()) };
  }

  async function sameAnswers(query, headers) {
    const [a, b] = [await answer(await ours(query, headers)), await answer(await js(query, headers))];
    assert.deepEqual(b.headers, a.headers, `${query}: the same headers`);
    assert.equal(b.status, a.status, `${query}: the same status`);
    assert.ok(b.body.equals(a.body), `${query}: the same body bytes (ours ${a.body.length} B, JS ${b.body.length} B)`);
    return a;
  }

  const PAGES = [
    "filter=open&page=1", // the benchmark's page
    "filter=assigned_to_me&sortBy=name&sortOrder=asc", // a per-user key
    "search=a&pageSize=20&page=2", // a hashed search term
    `filter=favorites&search=%20ann%20&assignedTo=${ME.toUpperCase()}&columnId=${seed.column(1, 1, 1)}`, // a key hashed whole (over 160 characters)
  ];

  for (const query of PAGES) {
    test(`a page our worker cached is answered alike: ${query}`, async () => {
      await waitFor(`${query} cached`, async () => served(await ours(query)) === "200 HIT/KV", 10_000);
      const a = await sameAnswers(query);
      assert.equal(served({ status: a.status, headers: new Headers(a.headers) }), "200 HIT/KV");
      assert.equal(a.headers["x-request-id"], "same-id-for-both");
      assert.ok(a.headers["access-control-allow-origin"] && a.headers["x-worker-location"] && a.headers["vary"]);
      assert.ok(a.body.length > 100);
    });
  }

  test("the longest of those pages is keyed by a hash of its parameters", async () => {
    const key = (await js(PAGES[3])).headers.get("x-cache-key");
    assert.match(key, new RegExp(`^contacts:${WS}:${BOARD}:[0-9a-f]{32}$`));
  });

  test("a page past its TTL, within stale-while-revalidate, is answered alike with its Age", async () => {
    const query = "filter=closed&page=2";
    await waitFor("cached", async () => served(await ours(query)) === "200 HIT/KV", 10_000);
    const key = (await ours(query)).headers.get("x-cache-key");
    const kv = await pieces.miniflare.getKVNamespace("CONTACT_CACHE");
    const body = JSON.stringify(markedPage("aged"));
    await kv.put(key, seal(stack.secrets.CACHE_ENCRYPTION_KEY, key, body), storedAgo(190));
    const b = await answer(await js(query));
    const a = await answer(await ours(query)); // ours then refreshes the page after answering
    assert.equal(b.body.toString(), body);
    assert.ok(a.body.equals(b.body));
    assert.ok(Math.abs(Number(a.headers.age) - Number(b.headers.age)) <= 1 && Number(b.headers.age) >= 190, `Age ${a.headers.age} and ${b.headers.age}`);
    delete a.headers.age;
    delete b.headers.age;
    assert.deepEqual(b.headers, a.headers);
  });

  test("bad parameters, tokens and non-members are refused alike", async () => {
    const bad = ["pageSize=0", "pageSize=101", "page=abc", "page=1&page=2", "filter=bogus", "sortBy=email", "sortOrder=up", "assignedTo=nope", "columnId=1", `search=${"x".repeat(101)}`, "search=a%07b"];
    for (const query of bad) assert.equal((await sameAnswers(query)).status, 400, query);
    const now = Math.floor(Date.now() / 1000);
    const refused = [
      [{ "X-Workspace-ID": "not-a-uuid" }, 400],
      [{ Authorization: "" }, 401],
      [{ Authorization: "Basic abc" }, 401],
      [{ Authorization: "Bearer not.a.token" }, 401],
      [{ Authorization: `Bearer ${tokenFor(ME)}x` }, 401],
      [{ Authorization: `Bearer ${tokenFor(ME, { exp: now - 120 })}` }, 401],
      [{ Authorization: `Bearer ${tokenFor(ME, { nbf: now + 120 })}` }, 401],
      [{ Authorization: `Bearer ${tokenFor(ME, { role: "anon" })}` }, 401],
      [{ Authorization: `Bearer ${tokenFor(ME, { aud: "other" })}` }, 401],
      [{ Authorization: `Bearer ${tokenFor("not-a-uuid")}` }, 401],
      [{ "X-Workspace-ID": seed.workspace(2) }, 403],
    ];
    for (const [extra, status] of refused) {
      const headers = headersOf(extra);
      if (extra.Authorization === "") delete headers.Authorization;
      assert.equal((await sameAnswers("filter=open", headers)).status, status, JSON.stringify(extra));
    }
  });
});
