// A member removed from a workspace reads nothing of it after the membership window (60 s, an
// isolate's cache of membership answers), whether or not their token still names the workspace
// in `app_metadata.workspace_ids`: such a claim was true when the token was issued and stays in
// it for the token's whole life, so it is never taken as proof.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { seed, sql, stack, tokenFor } from "./harness.mjs";

const WS = seed.workspace(1);
const BOARD = seed.board(1, 1);
const WINDOW_MS = 60_000;

const list = (token) =>
  fetch(`${stack.urls.worker}/api/boards/${BOARD}/contacts?filter=open`, { headers: { Authorization: `Bearer ${token}`, "X-Workspace-ID": WS } });
const counts = (token) => fetch(`${stack.urls.worker}/api/workspaces/${WS}/counts`, { headers: { Authorization: `Bearer ${token}` } });

describe("a member removed from a workspace", () => {
  const user = randomUUID();
  const plain = tokenFor(user);
  const claiming = tokenFor(user, { app_metadata: { workspace_ids: [WS] } });
  after(() => sql(`delete from auth.users where id = '${user}'`));

  test("reads nothing of it once the membership window has passed, with or without the workspace claim", async () => {
    sql(`insert into auth.users (id, email) values ('${user}', '${user}@example.test')`);
    sql(`insert into public.workspace_members (workspace_id, user_id, role) values ('${WS}', '${user}', 'member')`);
    for (const token of [plain, claiming]) {
      assert.equal((await list(token)).status, 200, "a member reads the list");
      assert.equal((await counts(token)).status, 200, "a member reads the counts");
    }

    sql(`delete from public.workspace_members where workspace_id = '${WS}' and user_id = '${user}'`);
    const removedAt = Date.now();
    const refusedAt = {};
    while (Object.keys(refusedAt).length < 2 && Date.now() - removedAt < WINDOW_MS + 15_000) {
      for (const [name, token] of Object.entries({ plain, claiming })) {
        if (refusedAt[name]) continue;
        const res = await list(token);
        if (res.status === 403) refusedAt[name] = Date.now() - removedAt;
        else assert.equal(res.status, 200, `${name}: ${res.status}`);
      }
      await sleep(1000);
    }
    for (const name of ["plain", "claiming"]) {
      assert.ok(refusedAt[name] !== undefined, `the ${name} token still reads ${Math.round((Date.now() - removedAt) / 1000)} s after the removal`);
      // The window, plus the second between two probes.
      assert.ok(refusedAt[name] <= WINDOW_MS + 1_500, `the ${name} token was refused only after ${refusedAt[name]} ms`);
    }
    // And from then on, on every route.
    for (const token of [plain, claiming]) {
      const res = await list(token);
      assert.equal(res.status, 403);
      assert.equal((await res.json()).success, false);
      assert.equal((await counts(token)).status, 403);
    }
  });
});
