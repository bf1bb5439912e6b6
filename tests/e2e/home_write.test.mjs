// The generation write gives up: an invalidation reads the workspace's state home and writes the
// new generation on the condition that nothing was written in between (src/invalidation.rs),
// reading again after each refusal (409) up to 8 times; a workspace whose home refuses every
// write gets the 503 JSON after exactly those 8 attempts, its states untouched, while another
// workspace's invalidation goes through. The worker's LIVE binding here is the real live worker
// behind a small worker of this test's (Miniflare wiring, nothing in the production code) that
// answers every write of one workspace's states as the home answers a lost race, 409, and
// counts them.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { newStack } from "../../scripts/stack.mjs";
import { ownWorker, seed, stateHome, tokenFor } from "./harness.mjs";

const CONTESTED = seed.workspace(5);
const CONTESTED_ME = seed.user(5); // member of workspace 5
const CALM = seed.workspace(1);
const CALM_ME = seed.user(1); // member of workspace 1
/** HOME_WRITE_ATTEMPTS in src/invalidation.rs. */
const ATTEMPTS = 8;

/** The live worker (the state home) behind a worker that refuses every write to CONTESTED's home
 * with 409, as the home refuses a write whose version another write overtook. */
const CONFLICTING_HOME = `
  let reads = 0;
  let refused = 0;
  export default {
    async fetch(request, env) {
      const path = new URL(request.url).pathname;
      if (path === "/counted") return Response.json({ reads, refused });
      const body = await request.text();
      if (path === "/state/${CONTESTED}/read") reads += 1;
      if (path === "/state/${CONTESTED}/write") {
        refused += 1;
        return new Response("the version moved on", { status: 409 });
      }
      return env.REAL.fetch(request.url, { method: request.method, headers: request.headers, body });
    },
  };`;

describe("the generation write gives up", () => {
  const pieces = newStack();
  let worker;
  let home;
  before(async () => {
    worker = await ownWorker(pieces, {}, {
      extraWorkers: [{ name: "conflicting-home", script: CONFLICTING_HOME, serviceBindings: { REAL: "contact-list-cache-live" } }],
      app: { serviceBindings: { LIVE: "conflicting-home" } },
    });
    home = await pieces.miniflare.getWorker("conflicting-home");
  });
  after(() => pieces.stop());

  const counted = async () => (await home.fetch("http://home/counted")).json();
  const invalidate = async (workspace, user) => {
    const res = await fetch(`${worker}/api/cache/invalidate`, {
      method: "POST",
      headers: { Authorization: `Bearer ${tokenFor(user)}`, "Content-Type": "application/json", "X-Workspace-ID": workspace },
      body: JSON.stringify({ workspace_id: workspace, filter: "open" }),
    });
    return { status: res.status, json: await res.json() };
  };

  test("a home that refuses every write: 503 JSON after exactly 8 attempts, nothing written", async () => {
    const live = await pieces.miniflare.getWorker("contact-list-cache-live");
    const read = async () => (await (await live.fetch(`http://live/state/${CONTESTED}/read`, { method: "POST", body: JSON.stringify({ keys: [], prefix: "gen:" }) })).json());
    const before = await read();
    const start = await counted();
    const res = await invalidate(CONTESTED, CONTESTED_ME);
    assert.equal(res.status, 503, JSON.stringify(res.json));
    assert.equal(res.json.success, false);
    assert.equal(res.json.error.code, "unavailable");
    const end = await counted();
    assert.equal(end.refused - start.refused, ATTEMPTS, "one conditional write per attempt");
    assert.equal(end.reads - start.reads, ATTEMPTS, "read again before each attempt");
    assert.deepEqual(await read(), before, "the home's states and version are untouched");
  });

  test("another workspace's invalidation writes its home as usual", async () => {
    const start = await counted();
    const res = await invalidate(CALM, CALM_ME);
    assert.equal(res.status, 200, JSON.stringify(res.json));
    const { operations } = res.json.data;
    assert.deepEqual([operations.state_home_reads, operations.state_home_writes, operations.state_home_conflicts], [1, 1, 0]);
    // Change capture's clock is read first only when this isolate's reading is too old.
    assert.ok([0, 1].includes(operations.clock_reads), `clock_reads ${operations.clock_reads}`);
    assert.equal((await counted()).refused, start.refused);
    const { newest } = await stateHome(pieces.miniflare, CALM).read([]);
    assert.equal(newest, res.json.data.generation, "the new generation is the home's newest");
  });
});
