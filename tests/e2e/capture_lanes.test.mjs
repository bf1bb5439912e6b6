// Change capture that scales (docs/change-capture.md): a workspace whose webhooks the
// worker refuses holds only its own lane; a transaction naming 300 boards reaches the worker in
// calls that fit one Worker invocation's KV operations, and every board's lists are invalidated;
// a transaction-mode pooler URL is refused at start. This file runs its own PostgreSQL, backend
// and worker; the backend posts through a pass-through proxy in this process that forwards to the
// real worker, answers 503 for the workspaces in `refused`, and records each call the worker
// acknowledged (when, which changes, and the KV operations the worker reports it made).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { backendEnv, newStack, psqlArgs, ROOT, waitFor } from "../../scripts/stack.mjs";
import { ownBackend, ownWorker, seed, stack, stateHome, webhookProxy } from "./harness.mjs";
import { join } from "node:path";

const REFUSED = seed.workspace(2);
const OTHER = seed.workspace(3);
const WIDE = seed.workspace(4);
/** Cloudflare's KV operations per Worker invocation (https://developers.cloudflare.com/kv/platform/limits/). */
const KV_OPERATIONS_PER_INVOCATION = 1000;

function psqlAsync(port, query) {
  return new Promise((resolve, reject) => {
    const child = spawn("psql", psqlArgs(port, { command: query }), { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    child.on("exit", (code) => (code === 0 ? resolve(out.split("\n").filter(Boolean).map((line) => line.split("|"))) : reject(new Error(`psql: ${err}`))));
  });
}

/** What the proxy in front of the worker's webhook saw: each call the worker took (when, its
 * changes, boards and KV operations) and when each change was acknowledged, by outbox sequence;
 * a batch touching a workspace in `refused` is answered 503. */
const lanes = { refused: new Set(), calls: [], acked: new Map() };

function refuse(changes) {
  return changes.some((c) => lanes.refused.has((c.record ?? c.old_record)?.workspace_id));
}

function acknowledge(changes, answer) {
  const data = JSON.parse(answer).data;
  const applied = data.applied ?? (data.operations ? [data] : []);
  const kvOperations = applied.reduce((n, a) => n + a.operations.kv_reads + a.operations.kv_writes, 0);
  const at = Date.now();
  lanes.calls.push({ at, changes: changes.length, boards: new Set(applied.flatMap((a) => a.boards)).size, kvOperations });
  for (const change of changes) lanes.acked.set(change.outbox_seq, at);
}

describe("change capture that scales", { timeout: 300_000 }, () => {
  const pieces = newStack();
  let pg;
  let proxy;

  before(async () => {
    pg = await pieces.startDatabase(20_000);
    const worker = await ownWorker(pieces);
    proxy = await webhookProxy(worker, { refuse, accepted: acknowledge });
    await ownBackend(pieces, {
      databaseUrl: pg.url,
      env: {
        WORKER_WEBHOOK_URL: `${proxy.url}/api/cache/webhook`,
        WEBHOOK_SECRET: stack.secrets.WEBHOOK_SECRET,
        CHANGE_CAPTURE_RETRY_MAX_MS: "500",
      },
    });
  });
  after(async () => {
    await proxy?.stop();
    await pieces.stop();
  });

  /** Runs `statement` in one transaction; answers the outbox sequences it wrote and when it committed. */
  async function write(statement) {
    const [[before]] = await psqlAsync(pg.port, "select coalesce(max(seq), 0) from public.contact_list_cache_outbox");
    await psqlAsync(pg.port, statement);
    const committedAt = Date.now();
    const rows = await psqlAsync(pg.port, `select seq from public.contact_list_cache_outbox where seq > ${before} order by seq`);
    return { seqs: rows.map(([seq]) => Number(seq)), committedAt };
  }

  test("a workspace whose webhooks are refused for 10 s delays another workspace's change by at most 1 s", async () => {
    lanes.refused.add(REFUSED);
    const refusedFrom = Date.now();
    try {
      await refusedWorkspace(refusedFrom);
    } finally {
      lanes.refused.delete(REFUSED);
    }
  });

  async function refusedWorkspace(refusedFrom) {
    // More of its changes than the old global in-flight cap (2,000) held: all on its lane or parked.
    const burst = await write(`update public.contacts set name = name || '.' where id in (select id from public.contacts where workspace_id = '${REFUSED}' order by id limit 3000)`);
    assert.equal(burst.seqs.length, 3000);
    await waitFor("the worker refusing the workspace's batches", async () => proxy.refused >= 3, 10_000);
    await new Promise((r) => setTimeout(r, 1500)); // its lane full, its other changes read and parked
    const other = await write(`update public.contacts set name = name || '!' where id = (select id from public.contacts where workspace_id = '${OTHER}' order by id limit 1)`);
    assert.equal(other.seqs.length, 1);
    await waitFor("the other workspace's change acknowledged", async () => lanes.acked.has(other.seqs[0]), 15_000);
    const delay = lanes.acked.get(other.seqs[0]) - other.committedAt;
    assert.ok(Date.now() - refusedFrom < 10_000, "measured while the workspace was still refused");
    assert.ok(delay <= 1000, `the other workspace's change reached the worker ${delay} ms after its commit, while ${REFUSED} was refused`);
    assert.ok(!burst.seqs.some((seq) => lanes.acked.has(seq)), "nothing of the refused workspace got through");
    // After its 10 s, the refused workspace's changes all arrive, in order, and the cursor passes them.
    await new Promise((r) => setTimeout(r, Math.max(0, refusedFrom + 10_000 - Date.now())));
    lanes.refused.delete(REFUSED);
    await waitFor("every change of the refused workspace acknowledged", async () => burst.seqs.every((seq) => lanes.acked.has(seq)), 60_000);
    const times = burst.seqs.map((seq) => lanes.acked.get(seq));
    assert.deepEqual(times, [...times].sort((a, b) => a - b), "one workspace's changes are acknowledged in sequence order");
    await waitFor("the cursor past the burst", async () => {
      const [[cursor]] = await psqlAsync(pg.port, "select seq from public.contact_list_cache_cursor where consumer = 'backend'");
      return Number(cursor) >= burst.seqs.at(-1);
    }, 30_000);
  }

  test("a change batch naming 300 boards is applied in calls within a Worker invocation's KV operations", async () => {
    // 300 boards of one workspace with a contact each (a new board is no change for the cache).
    const made = await write(`with b as (
        insert into public.boards (workspace_id, name) select '${WIDE}', 'wide ' || i from generate_series(1, 300) as i returning id)
      insert into public.contacts (workspace_id, board_id, name) select '${WIDE}', id, 'wide contact' from b`);
    assert.equal(made.seqs.length, 300);
    await waitFor("the new contacts delivered", async () => made.seqs.every((seq) => lanes.acked.has(seq)), 60_000);
    const boards = (await psqlAsync(pg.port, `select id from public.boards where name like 'wide %' and workspace_id = '${WIDE}'`)).map(([id]) => id);
    assert.equal(boards.length, 300);
    // One transaction renaming a contact on each of the 300 boards: each board's `all` lists move
    // to a new generation in the workspace's state home.
    const home = stateHome(pieces.miniflare, WIDE);
    const keys = boards.map((board) => `gen:${WIDE}:${board}:all`);
    const before = (await home.read(keys)).values;
    const calls = lanes.calls.length;
    const renamed = await write(`update public.contacts set name = 'wide renamed' where workspace_id = '${WIDE}' and name = 'wide contact'`);
    assert.equal(renamed.seqs.length, 300);
    await waitFor("the 300-board batch delivered", async () => renamed.seqs.every((seq) => lanes.acked.has(seq)), 60_000);
    const after = (await home.read(keys)).values;
    for (const key of keys) {
      assert.ok(after[key] && after[key] !== before[key], `${key} moved to a new generation (before ${before[key]}, after ${after[key]})`);
    }
    const used = lanes.calls.slice(calls);
    const most = Math.max(...used.map((c) => c.kvOperations));
    assert.ok(most <= KV_OPERATIONS_PER_INVOCATION, `a webhook call made ${most} KV operations (calls: ${used.map((c) => `${c.changes} changes/${c.boards} boards/${c.kvOperations} ops`).join(", ")})`);
    assert.ok(used.every((c) => c.boards <= 10), "each call names at most 10 boards");
  });

  test("a transaction-mode pooler URL is refused at start, naming DATABASE_URL and what gave it away", async () => {
    const binary = join(ROOT, "target", process.env.BACKEND_PROFILE ?? "debug", "contact-list-cache-backend");
    for (const [url, named] of [
      [`postgres://postgres.project:secret@127.0.0.1:6543/postgres`, "port 6543"],
      [`${pg.url}?pgbouncer=true`, "pgbouncer=true"],
    ]) {
      const env = backendEnv({ ...stack.backendOptions, databaseUrl: url, port: 0 });
      const child = spawn(binary, [], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
      let output = "";
      child.stdout.on("data", (d) => (output += d));
      child.stderr.on("data", (d) => (output += d));
      const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      const code = await new Promise((resolve) => child.on("exit", (c) => resolve(c)));
      clearTimeout(timer);
      assert.notEqual(code, 0, `the backend started with ${url}:\n${output}`);
      assert.match(output, /DATABASE_URL/, output);
      assert.ok(output.includes(named) && output.includes("transaction-mode pooler"), output);
      assert.ok(!output.includes("secret"), "the password is not printed");
    }
  });
});
