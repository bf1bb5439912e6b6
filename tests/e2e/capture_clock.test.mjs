// Change capture's clock (docs/invalidation-and-freshness.md): the worker trusts the scope states
// it reads only until change capture's clock plus the staleness bound, so a database write is
// never served older than the bound, however long change capture is held up; only the workspaces
// whose changes are held lose their cache meanwhile. Held up here the way production holds it:
// an open transaction that wrote a contact draws an outbox sequence and does not commit, a gap
// change capture may not pass; a change committed after it waits.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { after, describe, test } from "node:test";
import { psqlArgs, waitFor } from "../../scripts/stack.mjs";
import { contactRenames, seed, sql, stack, tokenFor } from "./harness.mjs";

const BOUND_MS = Number(stack.bindings.STALENESS_BOUND_MS ?? 1000);
/** The workspace whose change waits behind the gap, one that changes nothing, and the open
 * transaction's. User n is a member of workspace (n - 1) % 5 + 1. */
const HELD = { workspace: seed.workspace(3), board: seed.board(3, 1), user: seed.user(3) };
const QUIET = { workspace: seed.workspace(4), board: seed.board(4, 1), user: seed.user(4) };
const GAP_WORKSPACE = seed.workspace(5);

async function firstPage({ workspace, board, user }) {
  const res = await fetch(`${stack.urls.worker}/api/boards/${board}/contacts?filter=all&page=1`, {
    headers: { Authorization: `Bearer ${tokenFor(user)}`, "X-Workspace-ID": workspace },
  });
  assert.equal(res.status, 200);
  const body = await res.json();
  return { label: `${res.headers.get("x-cache-status")}/${res.headers.get("x-cache-layer")}`, contacts: body.data.contacts };
}

/** A transaction that renamed one of GAP_WORKSPACE's contacts and stays open until `end()`
 * rolls it back. */
async function openTransaction() {
  const child = spawn("psql", [...psqlArgs(stack.ports.postgres, {}), "-At"], { stdio: ["pipe", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.stdin.write(`begin; update contacts set name = 'Held ' || name where id = (select id from contacts where workspace_id = '${GAP_WORKSPACE}' order by id limit 1); select 'open';\n`);
  await waitFor("the transaction open", async () => out.includes("open"), 10_000);
  return {
    end: () => new Promise((resolve) => {
      child.on("exit", resolve);
      child.stdin.end("rollback;\n");
    }),
  };
}

describe("change capture's clock", () => {
  const renames = contactRenames();
  let transaction;
  after(async () => {
    await transaction?.end();
    await renames.restore();
  });

  test("a change held behind an open transaction is served from the database within the bound; other workspaces keep their cache", async () => {
    await waitFor("the held workspace's page in KV", async () => (await firstPage(HELD)).label === "HIT/KV", 10_000);
    await waitFor("the quiet workspace's page in KV", async () => (await firstPage(QUIET)).label === "HIT/KV", 10_000);
    transaction = await openTransaction();
    const [[id]] = sql(`select id from contacts where board_id = '${HELD.board}' and not archived order by created_at desc, id desc limit 1`);
    const name = `Clock ${Date.now()}`;
    await renames.rename(id, name);
    const committedAt = Date.now();

    // Change capture cannot deliver the rename (the gap), yet the page shows it within the
    // bound, from the database: the held workspace's states are past trust.
    let seen;
    await waitFor("the rename served", async () => {
      seen = await firstPage(HELD);
      return seen.contacts.some((c) => c.id === id && c.name === name);
    }, BOUND_MS * 4);
    const servedAfter = Date.now() - committedAt;
    assert.equal(seen.label, "MISS/DATABASE", "past the clock the page comes from the database, no cache");
    assert.ok(servedAfter <= BOUND_MS * 3, `served ${servedAfter} ms after the commit`);
    // Still held, past the bound: never the old page from a cache.
    for (let i = 0; i < 5; i++) {
      const again = await firstPage(HELD);
      assert.equal(again.label, "MISS/DATABASE");
      assert.ok(again.contacts.some((c) => c.id === id && c.name === name), "the rename, every time");
    }
    // A workspace with nothing held is served from its cache all along.
    assert.equal((await firstPage(QUIET)).label, "HIT/KV", "the other workspaces' clock goes on");

    // The transaction ends: change capture delivers the rename, and the page is cached again.
    await transaction.end();
    transaction = null;
    await waitFor("the held workspace cached again", async () => {
      const page = await firstPage(HELD);
      return page.label === "HIT/KV" && page.contacts.some((c) => c.id === id && c.name === name);
    }, 15_000);
  });
});
