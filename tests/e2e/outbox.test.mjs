// Durable change capture (docs/change-capture.md): the triggers write each change to the outbox
// in its transaction and the backend forwards it at least once. This file runs its own
// PostgreSQL, backend and worker so it can SIGKILL the backend, restart PostgreSQL, and make the
// webhook refuse: the backend posts through a pass-through proxy in this process that forwards
// to the real worker (or answers 503 while `refusing`) and records every change the worker
// acknowledged. Each write renames one contact with a marker; SQL's committed markers are the
// ground truth every phase checks against what the worker acknowledged.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { newStack, psqlArgs, waitFor } from "../../scripts/stack.mjs";
import { ownBackend, ownWorker, seed, stack, webhookProxy } from "./harness.mjs";

const WORKSPACES = [seed.workspace(1), seed.workspace(2)];

/** Runs `query` with psql without blocking this process; resolves to its rows (arrays of
 * strings), rejects when psql fails. `script` instead runs a script from stdin, each statement
 * in a transaction of its own (a `-c` command is one transaction). */
function psqlAsync(port, query, { script } = {}) {
  return new Promise((resolve, reject) => {
    const args = script ? [...psqlArgs(port, { file: "-" }), "-At"] : psqlArgs(port, { command: query });
    const child = spawn("psql", args, { stdio: [script ? "pipe" : "ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    child.on("exit", (code) => (code === 0 ? resolve(out.split("\n").filter(Boolean).map((line) => line.split("|"))) : reject(new Error(`psql: ${err}`))));
    if (script) child.stdin.end(script);
  });
}

/** What the proxy in front of the worker's webhook saw: each change's acknowledgements by outbox
 * sequence, the names the worker took; `refusing` makes it answer every batch 503. */
const delivered = { refusing: false, acked: new Map(), names: new Set() };

function acknowledge(changes) {
  for (const change of changes) {
    delivered.acked.set(change.outbox_seq, (delivered.acked.get(change.outbox_seq) ?? 0) + 1);
    if (change.record?.name) delivered.names.add(change.record.name);
  }
}

describe("durable change capture", { timeout: 300_000 }, () => {
  const pieces = newStack();
  let pg;
  let proxy;
  let backend;
  let backendOptions;
  let kv;
  let contacts;

  before(async () => {
    pg = await pieces.startDatabase(400);
    await psqlAsync(pg.port, "create table written (name text primary key)");
    contacts = (await psqlAsync(pg.port, `select id, workspace_id from public.contacts where workspace_id in ('${WORKSPACES.join("','")}') order by id`))
      .map(([id, workspace]) => ({ id, workspace }));
    assert.ok(contacts.length >= 200, `the seed has ${contacts.length} contacts in the two workspaces`);
    const worker = await ownWorker(pieces);
    kv = await pieces.miniflare.getKVNamespace("CONTACT_CACHE");
    proxy = await webhookProxy(worker, { refuse: () => delivered.refusing, accepted: acknowledge });
    backendOptions = {
      databaseUrl: pg.url,
      env: {
        WORKER_WEBHOOK_URL: `${proxy.url}/api/cache/webhook`,
        WEBHOOK_SECRET: stack.secrets.WEBHOOK_SECRET,
        CHANGE_CAPTURE_POLL_MS: "200",
        CHANGE_CAPTURE_PRUNE_MS: "1500",
        CHANGE_CAPTURE_LAG_DEGRADED_MS: "1500",
        CHANGE_CAPTURE_RETRY_MAX_MS: "400",
      },
    };
    backend = await ownBackend(pieces, backendOptions);
  });
  after(async () => {
    await proxy?.stop();
    await pieces.stop();
  });

  /** `n` writes, one transaction each, renaming contacts `marker:i` and logging the name in
   * `written` (the ground truth: what committed); a little apart so that something can happen
   * in between. */
  function burst(marker, n, pauseSeconds = 0.004) {
    const statements = Array.from({ length: n }, (_, i) => {
      const { id } = contacts[i % contacts.length];
      return `begin; update public.contacts set name = '${marker}:${i}' where id = '${id}'; insert into written values ('${marker}:${i}'); commit; select pg_sleep(${pauseSeconds});`;
    });
    return psqlAsync(pg.port, null, { script: statements.join("\n") });
  }

  const outboxRows = async () => Number((await psqlAsync(pg.port, "select count(*) from public.contact_list_cache_outbox"))[0][0]);
  const committed = async (marker) => (await psqlAsync(pg.port, `select name from written where name like '${marker}:%'`)).map(([name]) => name);
  const health = async () => (await fetch(`${backend.url}/health`)).json();

  /** Waits until every committed write of `marker` was acknowledged by the worker, nothing is
   * left undelivered and the cursor stands at the last change; answers the committed names. */
  async function allDelivered(marker) {
    const names = await committed(marker);
    assert.ok(names.length > 0, `some ${marker} writes committed`);
    await waitFor(`every ${marker} change acknowledged`, async () => names.every((name) => delivered.names.has(name)), 60_000);
    const last = Number((await psqlAsync(pg.port, "select coalesce(max(seq), 0) from public.contact_list_cache_outbox"))[0][0]);
    await waitFor("the cursor at the last change and no backlog", async () => {
      const [[cursor]] = await psqlAsync(pg.port, "select seq from public.contact_list_cache_cursor where consumer = 'backend'");
      const capture = (await health()).change_capture;
      return Number(cursor) >= last && capture.undelivered === 0;
    }, 30_000);
    // Per workspace, the worker's applied mark is the highest sequence delivered for it.
    for (const workspace of WORKSPACES) {
      const [[highest]] = await psqlAsync(pg.port, `select coalesce(max(seq), 0) from public.contact_list_cache_outbox where payload->'record'->>'workspace_id' = '${workspace}'`);
      if (Number(highest) > 0) assert.ok(Number(await kv.get(`applied:${workspace}`)) >= Number(highest), `the applied mark of ${workspace}`);
    }
    return names;
  }

  test("a backend killed (SIGKILL) mid-burst of 200 writes delivers every change after its restart", async () => {
    const writes = burst("kill", 200, 0.008);
    await waitFor("the burst under way", async () => delivered.names.size >= 20, 30_000);
    await pieces.stopService(backend.child);
    const atKill = (await committed("kill")).length;
    assert.ok(atKill < 200, `the burst was still running when the backend died (${atKill} written)`);
    await new Promise((resolve) => setTimeout(resolve, 300));
    backend = await ownBackend(pieces, { ...backendOptions, port: backend.port });
    await writes;
    const names = await allDelivered("kill");
    assert.equal(names.length, 200);
  });

  test("a webhook outage loses nothing, and the lag shows in /health and /metrics", async () => {
    delivered.refusing = true;
    await burst("outage", 40, 0);
    await waitFor("the webhook refused", async () => proxy.refused >= 3, 20_000);
    await waitFor("/health degraded by the lag", async () => {
      const body = await health();
      return body.status === "degraded" && body.change_capture.status === "lagging";
    }, 20_000);
    const lagging = (await health()).change_capture;
    assert.ok(lagging.undelivered >= 40, `undelivered ${lagging.undelivered}`);
    assert.ok(lagging.lag_ms > 1500, `lag ${lagging.lag_ms} ms`);
    const metricsAuth = { Authorization: `Bearer ${stack.backendOptions.metricsToken}` };
    const stats = await (await fetch(`${backend.url}/api/cache/stats`, { headers: metricsAuth })).json();
    assert.ok(stats.data.change_capture.webhook_failures >= 3, JSON.stringify(stats.data.change_capture));
    // The same backlog for a Prometheus scraper (the metrics token required).
    assert.equal((await fetch(`${backend.url}/metrics`)).status, 401);
    const scraped = await (await fetch(`${backend.url}/metrics`, { headers: metricsAuth })).text();
    const sample = (name) => Number(scraped.match(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "m"))?.[1]);
    assert.match(scraped, /^contact_cache_backend_change_capture_info\{status="lagging"\} 1$/m);
    assert.ok(sample("contact_cache_backend_change_capture_lag_milliseconds") > 1500, scraped);
    assert.ok(sample("contact_cache_backend_change_capture_undelivered") >= 40, scraped);
    assert.ok(sample("contact_cache_backend_change_capture_webhook_failures_total") >= 3, scraped);
    delivered.refusing = false;
    await allDelivered("outage");
    await waitFor("/health healthy again", async () => (await health()).status === "healthy", 20_000);
  });

  test("a PostgreSQL crash and restart mid-burst loses no committed change", async () => {
    const writes = burst("crash", 200, 0.02).catch(() => "interrupted");
    await waitFor("the burst under way", async () => [...delivered.names].filter((n) => n.startsWith("crash:")).length >= 10, 30_000);
    await pieces.haltPostgres();
    assert.equal(await writes, "interrupted", "psql lost its server mid-burst");
    await pieces.resumePostgres();
    await burst("crash-after", 20, 0);
    const before = (await committed("crash")).length;
    assert.ok(before >= 10 && before < 200, `${before} crash writes committed`);
    await allDelivered("crash");
    await allDelivered("crash-after");
  });

  test("a change committed after later ones is held for, not skipped, and a rolled-back one does not stall", async () => {
    const { id } = contacts[contacts.length - 1];
    // Takes its sequence now and commits in 2.5 s, after the burst's later sequences.
    const slow = psqlAsync(pg.port, null, { script: `begin; update public.contacts set name = 'gap:slow' where id = '${id}'; insert into written values ('gap:slow'); select pg_sleep(2.5); commit;` });
    await waitFor("the slow transaction's change written", async () => (await psqlAsync(pg.port, "select count(*) from pg_stat_activity where query like '%pg_sleep(2.5)%' and state = 'active' and pid <> pg_backend_pid()"))[0][0] === "1", 10_000);
    await psqlAsync(pg.port, null, { script: `begin; update public.contacts set name = 'gap:rolled-back' where id = '${contacts[1].id}'; rollback;` });
    await burst("gap", 5, 0);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const early = [...delivered.names].filter((name) => name.startsWith("gap:"));
    assert.deepEqual(early, [], "nothing after the open transaction's sequence is delivered before it commits");
    await slow;
    const names = await allDelivered("gap");
    assert.equal(names.length, 6);
    assert.ok(!delivered.names.has("gap:rolled-back"));
  });

  test("delivered rows are pruned from the outbox", async () => {
    await burst("prune", 30, 0);
    await allDelivered("prune");
    await waitFor("the outbox emptied", async () => (await outboxRows()) === 0, 20_000);
    const stats = await (await fetch(`${backend.url}/api/cache/stats`, { headers: { Authorization: `Bearer ${stack.backendOptions.metricsToken}` } })).json();
    assert.ok(stats.data.change_capture.pruned >= 30, JSON.stringify(stats.data.change_capture));
  });

  test("a second backend on the same cursor stands by, healthy, and takes over when the first dies", async () => {
    const second = await ownBackend(pieces, backendOptions);
    await waitFor("the second backend standing by", async () => (await (await fetch(`${second.url}/health`)).json()).change_capture.status === "standby", 20_000);
    assert.equal((await (await fetch(`${second.url}/health`)).json()).status, "healthy");
    await pieces.stopService(backend.child);
    backend = second;
    await burst("takeover", 10, 0);
    await allDelivered("takeover");
    assert.equal((await health()).change_capture.status, "up");
  });

  test("a redelivered batch is skipped by the worker", async () => {
    const [[seq]] = await psqlAsync(pg.port, "select coalesce(max(seq), 0) from public.contact_list_cache_cursor");
    assert.ok(Number(seq) > 0);
    const change = { type: "UPDATE", table: "contacts", schema: "public", record: { id: contacts[0].id, workspace_id: contacts[0].workspace, name: "again" }, old_record: null, outbox_seq: 1 };
    const res = await fetch(`${proxy.url}/api/cache/webhook`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Webhook-Secret": stack.secrets.WEBHOOK_SECRET },
      body: JSON.stringify([change]),
    });
    const body = await res.json();
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.deepEqual(body.data, { scopes: [], ignored: "change 1 was applied before" });
  });
});
