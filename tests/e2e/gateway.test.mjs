// The local Supabase gateway runs in a process of its own: while the process that started it
// (and runs the worker's Miniflare) blocks its event loop in a synchronous curl, the worker still
// checks memberships and reads pages through it, well within the 5 s PostgREST budget.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { newStack } from "../../scripts/stack.mjs";
import { ownSupabase, ownWorker, seed, tokenFor } from "./harness.mjs";

const WS = seed.workspace(3);
const BOARD = seed.board(3, 1);
const ME = seed.user(3); // member of workspace 3; its token names no workspace, so membership is looked up

describe("the Supabase gateway in a process of its own", () => {
  const pieces = newStack();
  let worker;
  before(async () => {
    // Started from this process, as the dev command and the benchmark start theirs.
    const supabase = await ownSupabase(pieces);
    worker = await ownWorker(pieces, { SUPABASE_URL: supabase.url });
  });
  after(() => pieces.stop());

  test("a synchronous curl from the process that started it is answered from the database in under 3 s", () => {
    const started = Date.now();
    const curl = spawnSync("curl", [
      "-s", "-o", "/dev/null", "-w", "%{http_code} %header{x-cache-status}/%header{x-cache-layer}",
      "-H", `Authorization: Bearer ${tokenFor(ME)}`, "-H", `X-Workspace-ID: ${WS}`, "-H", "Cache-Control: no-cache",
      `${worker}/api/boards/${BOARD}/contacts?filter=open`,
    ], { encoding: "utf8", timeout: 15_000 });
    const elapsed = Date.now() - started;
    assert.equal(curl.stdout, "200 BYPASS/DATABASE", "membership and page both read through the gateway, no fallback");
    assert.ok(elapsed < 3000, `answered in ${elapsed} ms`);
  });
});
