// Issue 26, fresh in every location: the worker in Cloudflare's topology (scripts/stack/topology.mjs:
// 3 locations × 2 isolates, each location's KV behind its model of KV's cache with Cloudflare's
// default cacheTtl of 60 s, 80 ms from the two remote locations to the origin and the live
// worker, the state home), L0 on. After a psql write every location serves it within the bound
// and a round trip; a refetch after a live push, with the pushed generation as minGeneration, is
// at least that new from any location and isolate; the caller of POST /api/cache/invalidate reads
// the new data next, from another isolate; two invalidations of one scope racing in two
// locations lose neither. Change capture reaches this topology through a backend of the test's
// own (its own outbox cursor), whose webhook lands at location 1, beside the origin.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import WebSocket from "ws";
import { newStack, psql } from "../../scripts/stack.mjs";
import { REMOTE_RTT_MS } from "../../scripts/stack/topology.mjs";
import { expectedPage, ownBackend, seed, sqlLiteral, stack, tokenFor } from "./harness.mjs";

const WS = seed.workspace(4);
const BOARD = seed.board(4, 2);
const ME = seed.user(4); // member of workspace 4
const TOKEN = tokenFor(ME, { app_metadata: { workspace_ids: [WS] } });
const headers = { Authorization: `Bearer ${TOKEN}`, "X-Workspace-ID": WS };
const BOUND_MS = 1000; // the worker's staleness bound (STALENESS_BOUND_MS, its default)
/** What the issue holds every location to: the bound and one round trip, with a margin of 3. */
const DEADLINE_MS = 3 * (BOUND_MS + REMOTE_RTT_MS);
const CONSUMER = "locations_test";

/** A worker standing in for ours in the topology's isolates, to watch the model itself: its KV
 * binding, its round trips and its isolate. */
const PROBE = `
let isolate; // random values are not to be had at start-up
export default {
  async fetch(request, env) {
    isolate ??= crypto.randomUUID();
    const url = new URL(request.url);
    const key = url.searchParams.get("key");
    const started = Date.now();
    let value = null;
    if (url.pathname === "/put") await env.CONTACT_CACHE.put(key, url.searchParams.get("value"), { metadata: { t: 1 } });
    if (url.pathname === "/get") value = await env.CONTACT_CACHE.get(key, url.searchParams.has("ttl") ? { type: "text", cacheTtl: Number(url.searchParams.get("ttl")) } : "text");
    if (url.pathname === "/meta") value = await env.CONTACT_CACHE.getWithMetadata(key, "text");
    if (url.pathname === "/delete") await env.CONTACT_CACHE.delete(key);
    if (url.pathname === "/origin") value = (await fetch(url.searchParams.get("url"))).status;
    if (url.pathname === "/live") value = (await env.LIVE.fetch("http://live/")).status;
    return Response.json({ value, ms: Date.now() - started, isolate });
  },
};`;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const sqlAsync = async (command) => (await psql(stack.ports.postgres, { command })).trim();

/** Generations as the contract orders them: `<millis hex>-<random hex>` ("0" first), the
 * millisecond part numerically, then the rest. */
export function compareGenerations(a, b) {
  const [ma, ...ra] = a.split("-");
  const [mb, ...rb] = b.split("-");
  const byMillis = BigInt(`0x${ma}`) - BigInt(`0x${mb}`);
  if (byMillis !== 0n) return byMillis < 0n ? -1 : 1;
  const [x, y] = [ra.join("-"), rb.join("-")];
  return x === y ? 0 : x < y ? -1 : 1;
}

/** A list answer from `url`: status, labels, generation and body. */
async function list(url, query, extra = {}) {
  const res = await fetch(`${url}/api/boards/${BOARD}/contacts?${query}`, { headers: { ...headers, ...extra } });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {}
  return {
    status: res.status,
    label: `${res.headers.get("x-cache-status")}/${res.headers.get("x-cache-layer")}`,
    generation: res.headers.get("x-cache-generation"),
    json,
    text,
  };
}

/** An answer's body, cut short for a message. */
const brief = (text) => (text.length > 300 ? `${text.slice(0, 300)}…` : text);

const shows = (answer, id, name) => answer.status === 200 && answer.json?.data?.contacts?.some((c) => c.id === id && c.name === name);

describe("the topology's model (a stand-in worker, cacheTtl 3 s)", () => {
  const pieces = newStack();
  let topology;
  before(async () => {
    topology = await pieces.startTopology({
      bindings: {},
      topology: { locations: 3, isolates: 2, cacheTtlSeconds: 3 },
      worker: { script: PROBE, scriptPath: undefined, rootPath: undefined, modulesRules: undefined, ratelimits: undefined },
    });
  });
  after(() => pieces.stop());
  const at = async (l, path) => (await fetch(`${topology.locations[l - 1].url}${path}`)).json();

  test("a location sees its own write at once, another once its cached copy (a \"not found\" too) expires", async () => {
    const key = `model-${Date.now()}`;
    assert.equal((await at(2, `/get?key=${key}`)).value, null);
    await at(1, `/put?key=${key}&value=v1`);
    assert.equal((await at(1, `/get?key=${key}`)).value, "v1", "the writing location");
    assert.equal((await at(2, `/get?key=${key}`)).value, null, "another location keeps its \"not found\"");
    assert.equal((await at(3, `/get?key=${key}`)).value, "v1", "a location that had no copy reads the central store");
    await sleep(3200);
    assert.equal((await at(2, `/get?key=${key}`)).value, "v1", "its copy expired");
    assert.deepEqual((await at(2, `/meta?key=${key}`)).value, { value: "v1", metadata: { t: 1 }, cacheStatus: "HIT" });
    assert.equal((await at(1, `/get?key=${key}`)).value, "v1"); // a fresh copy in location 1
    await at(2, `/delete?key=${key}`);
    assert.equal((await at(2, `/get?key=${key}`)).value, null, "a delete is seen at once where it was made");
    assert.equal((await at(1, `/get?key=${key}`)).value, "v1", "and not elsewhere before the copy expires");
  });

  test("a caller's cacheTtl is honoured, raised to Cloudflare's minimum of 30 s", async () => {
    const key = `model-ttl-${Date.now()}`;
    await at(1, `/put?key=${key}&value=v1`);
    assert.equal((await at(3, `/get?key=${key}&ttl=5`)).value, "v1"); // kept 30 s, not 5 or 3
    await at(1, `/put?key=${key}&value=v2`);
    await sleep(5500);
    assert.equal((await at(3, `/get?key=${key}`)).value, "v1", "still the copy read with cacheTtl 5 (30 s)");
    assert.equal((await at(2, `/get?key=${key}`)).value, "v2");
  });

  test("a remote location waits a round trip for the central store, the origin and the live worker; location 1 does not", async () => {
    const key = `model-rtt-${Date.now()}`;
    const backend = encodeURIComponent(`${stack.urls.backend}/health`);
    for (const path of [`/get?key=${key}`, `/origin?url=${backend}`, "/live"]) {
      const remote = await at(2, path);
      assert.ok(remote.ms >= REMOTE_RTT_MS, `${path} from location 2 took ${remote.ms} ms`);
    }
    const near = await at(1, `/origin?url=${backend}`);
    assert.ok(near.ms < REMOTE_RTT_MS, `location 1 to the origin took ${near.ms} ms`);
    assert.ok((await at(2, `/get?key=${key}`)).ms < REMOTE_RTT_MS, "a cached copy waits no round trip");
  });

  test("each location spreads requests over its isolates, which have separate memory", async () => {
    const seen = new Set();
    for (let i = 0; i < 4; i++) seen.add((await at(1, "/live")).isolate);
    assert.equal(seen.size, 2);
    const direct = await Promise.all(topology.locations[0].isolates.map(async (iso) => (await (await fetch(`${iso.url}/live`)).json()).isolate));
    assert.deepEqual(new Set(direct), seen);
  });
});

describe("fresh in every location (3 locations × 2 isolates, 80 ms, L0 on)", () => {
  const pieces = newStack();
  let topology; // { url, locations: [{ location, rttMs, url, isolates: [{ name, url }] }] }
  const isolates = () => topology.locations.flatMap((loc) => loc.isolates.map((iso) => ({ ...iso, location: loc.location })));
  const renamed = [];

  /** Renames `id`, remembering its name to put back; resolves to the commit's time (ms). */
  async function rename(id, name) {
    renamed.push([id, await sqlAsync(`select name from contacts where id = '${id}'`)]);
    return Number(await sqlAsync(`update contacts set name = ${sqlLiteral(name)} where id = '${id}' returning (extract(epoch from clock_timestamp()) * 1000)::bigint`));
  }

  /** A contact on page 1 of the board's `filter` list (newest first), at `offset`. */
  async function contactOn(filter, offset) {
    const page = expectedPage({ workspace: WS, board: BOARD, me: ME, filter, page: 1 });
    return page.ids[offset];
  }

  /** Every isolate of every location reads `query` until it answers from its cache (KV or L0),
   * so each location's KV copy and each isolate's L0 hold the current page. */
  async function warm(query) {
    for (const iso of isolates()) {
      const deadline = Date.now() + 10_000;
      for (;;) {
        const answer = await list(iso.url, query);
        assert.equal(answer.status, 200, brief(answer.text));
        if (answer.label.startsWith("HIT/")) break;
        assert.ok(Date.now() < deadline, `${iso.name}: ${query} never answered from its cache (last ${answer.label})`);
        await sleep(100);
      }
    }
  }

  before(async () => {
    topology = await pieces.startTopology({
      bindings: { ...stack.bindings, L0_CACHE_MB: "32" },
      topology: { locations: 3, isolates: 2, rttMs: REMOTE_RTT_MS },
    });
    // Change capture for this topology: a backend of its own on its own outbox cursor, its webhook
    // at location 1 (the stack's backend keeps posting to the stack's worker).
    await ownBackend(pieces, { env: { WORKER_WEBHOOK_URL: `${topology.url}/api/cache/webhook`, WEBHOOK_SECRET: stack.secrets.WEBHOOK_SECRET, CHANGE_CAPTURE_CONSUMER: CONSUMER, RUST_LOG: "warn" } });
  });
  after(async () => {
    for (const [id, name] of renamed.reverse()) await sqlAsync(`update contacts set name = ${sqlLiteral(name)} where id = '${id}'`);
    await pieces.stop();
    // Its cursor would hold the outbox's pruning back once it is gone.
    await sqlAsync(`delete from public.contact_list_cache_cursor where consumer = '${CONSUMER}'`);
  });

  test("the topology models Cloudflare: each location its own KV cache, each isolate its own URL", () => {
    assert.equal(topology.locations.length, 3);
    assert.deepEqual(topology.locations.map((l) => l.rttMs), [0, REMOTE_RTT_MS, REMOTE_RTT_MS]);
    assert.equal(topology.settings.cacheTtlSeconds, 60, "Cloudflare's default cacheTtl");
    assert.equal(new Set(isolates().map((i) => i.url)).size, 6);
  });

  test("after a psql write, every isolate of every location serves it within the bound and a round trip", async () => {
    const query = "filter=all&page=1";
    const id = await contactOn("all", 3);
    await warm(query);
    const name = `Located ${Date.now()}`;
    const committedAt = await rename(id, name);
    const seen = await Promise.all(isolates().map(async (iso) => {
      let last;
      while (Date.now() - committedAt < DEADLINE_MS) {
        last = await list(iso.url, query);
        if (shows(last, id, name)) return { ...iso, afterMs: Date.now() - committedAt };
        await sleep(20);
      }
      return { ...iso, afterMs: null, last: `${last.status} ${last.label}` };
    }));
    const late = seen.filter((s) => s.afterMs === null).map((s) => `location ${s.location} (${s.name}) still answered the old name ${DEADLINE_MS} ms after the commit, ${s.last}`);
    assert.deepEqual(late, [], `served after: ${seen.map((s) => `${s.name} ${s.afterMs ?? "never"} ms`).join(", ")}`);
  });

  test("after a live push, a refetch with its generation is at least that new from any location and isolate", async () => {
    const query = "filter=all&page=1";
    const id = await contactOn("all", 5);
    await warm(query);
    // The socket of a browser served by location 2.
    const socket = new WebSocket(`${topology.locations[1].url.replace(/^http/, "ws")}/api/workspaces/${WS}/live`, ["contact-list-cache.v1", `bearer.${TOKEN}`]);
    const pushes = [];
    socket.on("message", (data) => pushes.push(JSON.parse(String(data))));
    await new Promise((resolve, reject) => {
      socket.once("open", resolve);
      socket.once("error", reject);
    });
    try {
      const name = `Pushed ${Date.now()}`;
      await rename(id, name);
      const deadline = Date.now() + 5000;
      let push;
      while (!(push = pushes.find((m) => m.type === "invalidated" && m.boards?.includes(BOARD) && m.scopes?.includes("all"))) && Date.now() < deadline) await sleep(10);
      assert.ok(push, `no push for the rename within 5 s: ${JSON.stringify(pushes)}`);
      assert.equal(typeof push.generation, "string");
      // The refetch the client's live hook makes, from every isolate of every location at once.
      const answers = await Promise.all(isolates().map(async (iso) => ({ iso, answer: await list(iso.url, `${query}&minGeneration=${encodeURIComponent(push.generation)}`) })));
      for (const { iso, answer } of answers) {
        const where = `location ${iso.location} (${iso.name}), ${answer.status} ${answer.label}`;
        assert.equal(answer.status, 200, `${where}: ${brief(answer.text)}`);
        assert.ok(shows(answer, id, name), `${where}: the old name after the push of ${push.generation}`);
        assert.ok(answer.generation, `${where}: no X-Cache-Generation`);
        assert.ok(compareGenerations(answer.generation, push.generation) >= 0, `${where}: X-Cache-Generation ${answer.generation} older than the pushed ${push.generation}`);
      }
    } finally {
      socket.close();
    }
  });

  test("after POST /api/cache/invalidate, its caller's next read from another isolate is the new data", async () => {
    const query = "filter=open&page=1";
    const id = await contactOn("open", 2);
    await warm(query);
    const [caller, reader] = topology.locations[1].isolates; // location 2, two isolates
    const name = `Invalidated ${Date.now()}`;
    await rename(id, name);
    // The frontend's own change, then its invalidation (the default: hard), then its read.
    const res = await fetch(`${caller.url}/api/cache/invalidate`, {
      method: "POST",
      headers: { ...headers, "Content-Type": "application/json" },
      body: JSON.stringify({ workspace_id: WS, board_id: BOARD, filter: "open" }),
    });
    const body = await res.json();
    assert.equal(res.status, 200, JSON.stringify(body));
    const generation = body.data.generation;
    assert.equal(typeof generation, "string");
    const answer = await list(reader.url, `${query}&minGeneration=${encodeURIComponent(generation)}`);
    assert.equal(answer.status, 200, brief(answer.text));
    assert.ok(shows(answer, id, name), `the next read (${reader.name}, ${answer.label}) is the old page`);
    assert.notEqual(answer.label.split("/")[0], "STALE", "a hard invalidation keeps no superseded page");
    assert.ok(answer.generation && compareGenerations(answer.generation, generation) >= 0, `X-Cache-Generation ${answer.generation} older than the invalidation's ${generation}`);
  });

  test("two invalidations of one scope racing (the API in location 2, change capture's webhook in location 3) lose neither", async () => {
    const query = "filter=open&page=1";
    await warm(query);
    // What change capture posts for a contact of the board closed in the database.
    const row = (status) => ({ workspace_id: WS, board_id: BOARD, board_column_id: null, conversation_status: status, priority: null, assigned_user_id: null, archived: false });
    const payload = { type: "UPDATE", table: "contacts", schema: "public", record: row("Closed"), old_record: row("Open") };
    const generationsIn = (value, out = []) => {
      if (value && typeof value === "object") for (const [k, v] of Object.entries(value)) k === "generation" && typeof v === "string" ? out.push(v) : generationsIn(v, out);
      return out;
    };
    for (let round = 0; round < 5; round++) {
      const [api, hook] = await Promise.all([
        fetch(`${topology.locations[1].url}/api/cache/invalidate`, { method: "POST", headers: { ...headers, "Content-Type": "application/json" }, body: JSON.stringify({ workspace_id: WS, board_id: BOARD, filter: "open" }) }),
        fetch(`${topology.locations[2].url}/api/cache/webhook`, { method: "POST", headers: { Authorization: `Bearer ${stack.secrets.WEBHOOK_SECRET}`, "Content-Type": "application/json" }, body: JSON.stringify(payload) }),
      ]);
      const [a, h] = [await api.json(), await hook.json()];
      assert.equal(api.status, 200, JSON.stringify(a));
      assert.equal(hook.status, 200, JSON.stringify(h));
      const generations = [a.data.generation, ...generationsIn(h.data)];
      assert.equal(generations.length, 2, `each invalidation answers its generation: ${JSON.stringify({ api: a.data, hook: h.data })}`);
      const newest = generations.reduce((x, y) => (compareGenerations(x, y) >= 0 ? x : y));
      const expected = expectedPage({ workspace: WS, board: BOARD, me: ME, filter: "open", page: 1 });
      for (const iso of isolates()) {
        const answer = await list(iso.url, `${query}&minGeneration=${encodeURIComponent(newest)}`);
        const where = `round ${round}, location ${iso.location} (${iso.name}), ${answer.status} ${answer.label}`;
        assert.equal(answer.status, 200, `${where}: ${brief(answer.text)}`);
        assert.ok(answer.generation, `${where}: no X-Cache-Generation`);
        assert.ok(compareGenerations(answer.generation, newest) >= 0, `${where}: X-Cache-Generation ${answer.generation} older than the newer of the two invalidations (${generations.join(", ")}): one was lost`);
        assert.deepEqual(answer.json.data.contacts.map((c) => c.id), expected.ids, where);
      }
    }
  });

  test("minGeneration is validated like any generation: 400 naming the field", async () => {
    for (const bad of ["1".repeat(41), "ABC", "1_2", "a b"]) {
      const answer = await list(topology.url, `filter=all&page=1&minGeneration=${encodeURIComponent(bad)}`);
      assert.equal(answer.status, 400, `minGeneration=${bad}: ${answer.status} ${brief(answer.text)}`);
      assert.equal(answer.json?.error?.field, "minGeneration", brief(answer.text));
    }
  });
});
