// The deploy steps (scripts/deploy/), each run as the pipeline runs it, against the local stack:
// the migrations with the pinned Supabase CLI on a fresh database as hosted Supabase's
// non-superuser `postgres`; the smoke test against the stack's worker and backend; and a deploy
// of both workers whose smoke test fails, rolled back by rollback.sh to the versions before it,
// which then answer again. Cloudflare's side of `wrangler deploy`, `deployments status` and
// `rollback` is tests/e2e/local-wrangler.mjs (versions on disk, each served by Miniflare with its
// own code and bindings); the scripts run unchanged.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, describe, test } from "node:test";
import { observability, placeholderNamespaces } from "../../scripts/check-wrangler.mjs";
import { ROOT, freePort, newStack, psql, waitFor } from "../../scripts/stack.mjs";
import { liveWorker } from "../../scripts/stack/services.mjs";
import { seed, sqlOn, stack } from "./harness.mjs";
import { deployedVersion, workerName } from "./local-wrangler.mjs";

/** Runs a deploy script (bash for .sh, node for .mjs) with `env` over a clean environment. */
function step(script, args = [], env = {}) {
  const [cmd, argv] = script.endsWith(".mjs") ? [process.execPath, [script, ...args]] : ["bash", [script, ...args]];
  const { PATH, HOME } = process.env;
  const res = spawnSync(cmd, argv, { cwd: ROOT, encoding: "utf8", env: { PATH, HOME, ...env }, timeout: 120_000 });
  return { code: res.status, out: `${res.stdout}${res.stderr}` };
}

const smokeEnv = (worker, extra = {}) => ({
  WORKER_URL: worker,
  SMOKE_WORKSPACE_ID: seed.workspace(1),
  SMOKE_BOARD_ID: seed.board(1, 1),
  SMOKE_USER_ID: seed.user(1),
  SUPABASE_JWT_SECRET: stack.secrets.SUPABASE_JWT_SECRET,
  ...extra,
});

describe("migrations (scripts/deploy/migrations.sh)", () => {
  const pieces = newStack();
  const reference = newStack();
  after(() => Promise.all([pieces.stop(), reference.stop()]));

  test("apply every migration to a fresh database as the hosted `postgres`, record them as the Supabase CLI does, and apply none the second time", async () => {
    const pg = await pieces.startPostgres(); // the platform only (supabase-platform.sql), no migration
    const env = { SUPABASE_DB_URL: `postgres://postgres@127.0.0.1:${pg.port}/postgres?sslmode=disable`, DEPLOY_STATE: mkdtempSync(join(tmpdir(), "deploy-")) };
    const first = step("scripts/deploy/migrations.sh", [], env);
    assert.equal(first.code, 0, first.out);
    const files = readdirSync(join(ROOT, "supabase", "migrations")).filter((f) => f.endsWith(".sql")).sort();
    const query = sqlOn(pg.port, "postgres");
    const recorded = query("select version || '_' || name || '.sql' from supabase_migrations.schema_migrations order by version").map((r) => r[0]);
    assert.deepEqual(recorded, files);
    // The same schema as a database migrated by psql file by file, as the stack migrates its own.
    const other = await reference.startPostgres();
    for (const file of files) await psql(other.port, { file: join(ROOT, "supabase", "migrations", file) });
    const shape = "select (select string_agg(relname || ':' || relkind::text, ',' order by relname) from pg_class where relnamespace = 'public'::regnamespace), (select string_agg(proname, ',' order by proname) from pg_proc where pronamespace = 'public'::regnamespace), (select count(*) from pg_policy), (select count(*) from pg_trigger where not tgisinternal)";
    assert.deepEqual(query(shape), sqlOn(other.port, "postgres")(shape));
    assert.deepEqual(query("select distinct pg_get_userbyid(relowner) from pg_class where relnamespace = 'public'::regnamespace"), [["postgres"]]);
    const second = step("scripts/deploy/migrations.sh", [], env);
    assert.equal(second.code, 0, second.out);
    assert.match(second.out, /up to date/i);
    assert.doesNotMatch(second.out, /Applying migration/);
  });

  test("a transaction-pooler URL is refused, naming the variable, before anything runs", () => {
    const res = step("scripts/deploy/migrations.sh", [], { SUPABASE_DB_URL: "postgres://postgres.ref:pa$$word@aws-0-eu-west-1.pooler.supabase.com:6543/postgres" });
    assert.equal(res.code, 1);
    assert.match(res.out, /SUPABASE_DB_URL points at port 6543, Supabase's transaction pooler/);
    assert.doesNotMatch(res.out, /pa\$\$word/);
  });

  test("from GitHub's runners, the IPv6-only direct host is refused for the session pooler", () => {
    const res = step("scripts/deploy/migrations.sh", [], { GITHUB_ACTIONS: "true", SUPABASE_DB_URL: "postgresql://postgres:secret@db.abcdefghij.supabase.co:5432/postgres" });
    assert.equal(res.code, 1);
    assert.match(res.out, /SUPABASE_DB_URL is the direct connection .* IPv6 only/);
  });
});

describe("the smoke test (scripts/deploy/smoke.mjs)", () => {
  test("passes against the stack's worker and backend: health, an authorized read, an invalidation and the read after it", () => {
    const res = step("scripts/deploy/smoke.mjs", [], smokeEnv(stack.urls.worker, { BACKEND_URL: stack.urls.backend }));
    assert.equal(res.code, 0, res.out);
    assert.match(res.out, /ok: an invalidation of that list answers 200/);
    assert.match(res.out, /ok: the list's cache key names a new generation/);
    assert.match(res.out, /\[smoke\] passed/);
  });

  test("fails naming the read when the smoke user may not read the board", () => {
    const res = step("scripts/deploy/smoke.mjs", [], smokeEnv(stack.urls.worker, { SMOKE_USER_ID: seed.user(3) }));
    assert.equal(res.code, 1);
    assert.match(res.out, /FAILED: an authorized list read answers 200 with a page: status 403/);
  });

  test("fails naming the worker when nothing answers at its URL", async () => {
    const res = step("scripts/deploy/smoke.mjs", [], smokeEnv(`http://127.0.0.1:${await freePort()}`));
    assert.equal(res.code, 1);
    assert.match(res.out, /FAILED: worker health: http:\/\/127\.0\.0\.1:\d+\/health did not answer/);
  });
});

describe("a worker deploy rolled back (scripts/deploy/worker.sh, rollback.sh)", () => {
  // Under the repository (target/, git-ignored): workerd resolves a worker's modules from its root
  // and refuses paths that climb out of the directory it started in.
  mkdirSync(join(ROOT, "target"), { recursive: true });
  const store = mkdtempSync(join(ROOT, "target", "local-cloudflare-"));
  const work = mkdtempSync(join(tmpdir(), "deploy-run-"));
  let serving = null;
  after(async () => {
    await serving?.stop();
    rmSync(store, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  });
  const main = workerName(join(ROOT, "wrangler.toml"), "staging");
  const live = workerName(join(ROOT, "live", "wrangler.toml"), "staging");

  /** Serves the deployed versions (the worker bound to the live channel's) as Cloudflare would. */
  async function serve() {
    await serving?.stop();
    serving = newStack();
    const [mainVersion, liveVersion] = [deployedVersion(store, main), deployedVersion(store, live)];
    const url = await serving.startMiniflare({
      bindings: mainVersion.bindings,
      app: { rootPath: dirname(mainVersion.build), scriptPath: join(mainVersion.build, "index.js"), serviceBindings: { LIVE: "contact-list-cache-live" } },
      extraWorkers: [{ ...liveWorker(), rootPath: dirname(liveVersion.build), scriptPath: join(liveVersion.build, "index.js"), bindings: liveVersion.bindings }],
    });
    return url;
  }

  /** One pipeline run's worker steps: the live channel, then the worker, with these bindings. */
  function deployBoth(run, bindings) {
    const file = join(work, `${run}.json`);
    writeFileSync(file, JSON.stringify(bindings));
    const env = { TARGET: "staging", DEPLOY_STATE: join(work, run), WRANGLER: join(ROOT, "tests", "e2e", "local-wrangler.mjs"), LOCAL_WRANGLER_STORE: store, LOCAL_WRANGLER_BINDINGS: file };
    for (const tier of ["live", "main"]) {
      const res = step("scripts/deploy/worker.sh", [tier], env);
      assert.equal(res.code, 0, res.out);
    }
    return env;
  }

  test("a release whose smoke test fails goes back to the version before it, which answers again", async () => {
    // Run 1: the first deploy; nothing to roll back to; the smoke test passes.
    const firstRun = deployBoth("run-1", stack.bindings);
    assert.equal(readFileSync(join(firstRun.DEPLOY_STATE, "main.previous"), "utf8").trim(), "");
    const good = { main: deployedVersion(store, main).id, live: deployedVersion(store, live).id };
    assert.equal(step("scripts/deploy/smoke.mjs", [], smokeEnv(await serve())).code, 0);

    // Run 2: a release with a broken setting (SUPABASE_URL not a URL): each tier records the
    // version it replaces, the smoke test fails, the rollback puts both back.
    const secondRun = deployBoth("run-2", { ...stack.bindings, SUPABASE_URL: "not a url" });
    assert.equal(readFileSync(join(secondRun.DEPLOY_STATE, "moved"), "utf8"), "live\nmain\n");
    assert.equal(readFileSync(join(secondRun.DEPLOY_STATE, "main.previous"), "utf8").trim(), good.main);
    assert.notEqual(deployedVersion(store, main).id, good.main);
    const broken = step("scripts/deploy/smoke.mjs", [], smokeEnv(await serve()));
    assert.equal(broken.code, 1, broken.out);
    assert.match(broken.out, /FAILED: worker \/health is healthy/);

    const rollback = step("scripts/deploy/rollback.sh", [], secondRun);
    assert.equal(rollback.code, 0, rollback.out);
    assert.match(rollback.out, /rolled back: main live/);
    assert.deepEqual({ main: deployedVersion(store, main).id, live: deployedVersion(store, live).id }, good);
    const status = JSON.parse(step(secondRun.WRANGLER, ["deployments", "status", "--config", "wrangler.toml", "--env", "staging", "--json"], secondRun).out);
    assert.equal(status.annotations["workers/triggered_by"], "rollback");
    const again = step("scripts/deploy/smoke.mjs", [], smokeEnv(await serve()));
    assert.equal(again.code, 0, again.out);
  });

  test("a worker whose current version cannot be read is not deployed", () => {
    const env = { TARGET: "staging", DEPLOY_STATE: join(work, "run-refused"), WRANGLER: join(ROOT, "tests", "e2e", "local-wrangler.mjs"), LOCAL_WRANGLER_STORE: store, LOCAL_WRANGLER_FAIL: "auth" };
    const before = deployedVersion(store, main).id;
    const res = step("scripts/deploy/worker.sh", ["main"], env);
    assert.equal(res.code, 1);
    assert.match(res.out, /Authentication error \[code: 10000\][\s\S]*FAILED: wrangler deployments status failed for wrangler.toml --env staging: nothing deployed/);
    assert.equal(deployedVersion(store, main).id, before);
    assert.equal(step("scripts/deploy/rollback.sh", [], env).out.includes("moved no tier"), true);
  });

  test("a run that moved nothing rolls nothing back", () => {
    const res = step("scripts/deploy/rollback.sh", [], { TARGET: "staging", DEPLOY_STATE: join(work, "run-empty") });
    assert.equal(res.code, 0, res.out);
    assert.match(res.out, /moved no tier/);
  });
});

describe("the deploy's configuration checks (scripts/check-wrangler.mjs)", () => {
  test("a placeholder KV namespace id fails the deploy's first step (scripts/deploy/check.sh), naming it", () => {
    const res = step("scripts/deploy/check.sh", [], { TARGET: "production" });
    assert.equal(res.code, 1);
    assert.match(res.out, /\[env\.production\] KV namespace CONTACT_CACHE has the placeholder id "00000000000000000000000000000002"/);
    assert.deepEqual(placeholderNamespaces('[[env.staging.kv_namespaces]]\nbinding = "CONTACT_CACHE"\nid = "3f1c0b8e2a4d4c6f9e7b5a3d1c0b8e2a"\n', "staging"), []);
    assert.equal(step("scripts/check-wrangler.mjs").code, 0);
  });

  test("the two workers' [observability] must be on and identical", () => {
    const on = "[observability]\nenabled = true\nhead_sampling_rate = 1\n";
    assert.deepEqual(observability({ a: on, b: on }), []);
    assert.match(observability({ a: on, b: "[observability]\nenabled = true\nhead_sampling_rate = 0.1\n" }).join(), /\[observability\] in b .* differs from a's/);
    assert.match(observability({ a: on, b: 'name = "x"\n' }).join(), /b has no \[observability\] block/);
    assert.match(observability({ a: `${on}[env.production.observability]\nenabled = false\n` }).join(), /\[env\.production\.observability\] differs/);
  });
});

describe("the dashboard and the alert rules (docs/operations/)", () => {
  test("name only metrics that the stack's worker and backend expose", async () => {
    const exposed = new Set();
    const scrape = async (url, token) => {
      const res = await fetch(url, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
      assert.equal(res.status, 200, url);
      for (const m of (await res.text()).matchAll(/^# TYPE (\S+) /gm)) exposed.add(m[1]);
    };
    // Change capture's gauges appear once the backend has measured its backlog (about 1 s).
    await waitFor("the backend's change capture gauges", async () => {
      await scrape(`${stack.urls.backend}/metrics`, stack.secrets.BACKEND_METRICS_TOKEN);
      return exposed.has("contact_cache_backend_change_capture_lag_milliseconds");
    });
    await scrape(`${stack.urls.worker}/metrics?format=prometheus`);
    const dir = join(ROOT, "docs", "operations");
    const named = new Set();
    for (const file of ["grafana-dashboard.json", "alerts.yml"]) {
      for (const m of readFileSync(join(dir, file), "utf8").matchAll(/\b(contact_cache_[a-z_]+)\b/g)) named.add(m[1]);
    }
    assert.ok(named.size > 20, `${named.size} metrics named`);
    assert.deepEqual([...named].filter((name) => !exposed.has(name)), []);
  });
});

describe("after a restore: the applied marks purged (scripts/deploy/purge-kv.sh)", () => {
  const persist = mkdtempSync(join(ROOT, "target", "wrangler-state-"));
  const pieces = newStack();
  after(async () => {
    await pieces.stop();
    rmSync(persist, { recursive: true, force: true });
  });

  test("a change numbered below a workspace's mark is skipped until the marks are purged, then applied", async () => {
    // The worker on the KV namespace that `wrangler --env production --local --persist-to` reads.
    // With the live worker, whose Durable Object is the state home the webhook writes to.
    const serve = () => pieces.startMiniflare({
      bindings: stack.bindings,
      kvPersist: join(persist, "v3", "kv"),
      extraWorkers: [liveWorker()],
      app: { kvNamespaces: { CONTACT_CACHE: "00000000000000000000000000000002" }, serviceBindings: { LIVE: liveWorker().name } },
    });
    const [[id, workspace, board]] = sqlOn(stack.ports.postgres, "postgres")("select id, workspace_id, board_id from contacts order by id limit 1");
    const post = async (url, seq) => {
      const change = { type: "UPDATE", table: "contacts", schema: "public", record: { id, workspace_id: workspace, board_id: board, name: `restored ${seq}` }, old_record: null, outbox_seq: seq };
      const res = await fetch(`${url}/api/cache/webhook`, { method: "POST", headers: { "Content-Type": "application/json", "X-Webhook-Secret": stack.secrets.WEBHOOK_SECRET }, body: JSON.stringify([change]) });
      assert.equal(res.status, 200);
      return (await res.json()).data;
    };
    let url = await serve();
    assert.equal((await post(url, 5000)).ignored, undefined);
    // The restored outbox numbers its changes from lower down: skipped as applied before.
    assert.equal((await post(url, 12)).ignored, "change 12 was applied before");
    await pieces.miniflare.dispose();

    const res = step("scripts/deploy/purge-kv.sh", [], { TARGET: "production", KV_PERSIST_TO: persist });
    assert.equal(res.code, 0, res.out);
    assert.match(res.out, /deleted 1 applied: keys from CONTACT_CACHE \(production\)/);

    url = await serve();
    assert.equal((await post(url, 13)).ignored, undefined);
    await pieces.miniflare.dispose();
    // PREFIX= empties the namespace: here the new mark (scope states live in the state home).
    const everything = step("scripts/deploy/purge-kv.sh", [], { TARGET: "production", KV_PERSIST_TO: persist, PREFIX: "" });
    assert.equal(everything.code, 0, everything.out);
    const deleted = Number(everything.out.match(/deleted (\d+) keys? from CONTACT_CACHE/)?.[1]);
    assert.ok(deleted >= 1, everything.out);
    const none = step("scripts/deploy/purge-kv.sh", [], { TARGET: "production", KV_PERSIST_TO: persist, PREFIX: "" });
    assert.match(none.out, /no keys in CONTACT_CACHE \(production\)/);
  });
});
