// `npm run bench` (through scripts/bench.sh, which installs wrk and builds what is missing):
// starts the local stack with the seeded contacts, runs each scenario with wrk on loopback and
// writes bench/results/<date>.md, .svg and .json. bench/README.md says what each number means.
//
//   node bench/run.mjs [--duration 15s] [--warmup 2s] [--connections 32] [--threads 2]
//                      [--mix-warmup 10s] [--mix-duration 30s] [--write-rate 1] [--stale-bound 500ms]
//                      [--contacts 100000] [--only floor,kv,...] [--out bench/results]
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { get as httpGet } from "node:http";
import { join, relative } from "node:path";
import { parseArgs } from "node:util";
import { Worker } from "node:worker_threads";
import { anonKey } from "../scripts/jwt.mjs";
import { seed } from "../scripts/seed-ids.mjs";
import { ROOT, freePort, newStack, psql, signingKeys } from "../scripts/stack.mjs";
import { machine, versions, wasmSize } from "./lib/machine.mjs";
import { EXPONENTS, listPath, mixDrawer, pageKey, tokensFor } from "./lib/mix.mjs";
import { consoleReport, fmt, markdownReport, svgChart } from "./lib/report.mjs";
import { runWrk, share, writeRequests } from "./lib/wrk.mjs";

const SCENARIOS = {
  floor: "1. Floor (constant JSON)",
  "floor-kv": "1b. Floor + the 2 KV reads",
  kv: "2. KV hit",
  redis: "3. Redis hit (KV off)",
  database: "4. Database path",
  postgrest: "5. Direct PostgREST",
  fallback: "6. Backend fallback",
  mix: "7. Realistic mix",
};

const USAGE = `usage: npm run bench -- [options]
  --duration 15s        measured time of each of scenarios 1-6
  --warmup 2s           unmeasured run before each of scenarios 1-6
  --connections 32      concurrent connections (wrk -c)
  --threads 2           wrk threads (wrk -t)
  --mix-warmup 10s      unmeasured replay of the mix, writes included, before its measurement
  --mix-duration 30s    measured time of the mix
  --write-rate 1        contact writes per second during the mix
  --stale-bound 500ms   least time after a write (once the worker serves it) before its workspace's pages are checked
  --checks-per-write 2  mix pages compared with the database for each write, besides the written one
  --contacts 100000     contacts seeded
  --only a,b            scenarios to run: ${Object.keys(SCENARIOS).join(",")}
  --out bench/results   where the results go`;

const log = (msg) => process.stderr.write(`[bench] ${msg}\n`);

function seconds(text, name) {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(String(text).trim());
  if (!m) throw new Error(`--${name}: expected a duration like 15s, 500ms or 1m, got ${text}`);
  return Number(m[1]) * { ms: 0.001, s: 1, m: 60 }[m[2] ?? "s"];
}

function positive(text, name) {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name}: expected a positive number, got ${text}`);
  return n;
}

function options(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: "string", default: "15s" },
      warmup: { type: "string", default: "2s" },
      connections: { type: "string", default: "32" },
      threads: { type: "string", default: "2" },
      "mix-warmup": { type: "string", default: "10s" },
      "mix-duration": { type: "string", default: "30s" },
      "write-rate": { type: "string", default: "1" },
      "stale-bound": { type: "string", default: "500ms" },
      "checks-per-write": { type: "string", default: "2" },
      contacts: { type: "string", default: "100000" },
      only: { type: "string", default: Object.keys(SCENARIOS).join(",") },
      out: { type: "string", default: "bench/results" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const only = values.only.split(",").map((s) => s.trim()).filter(Boolean);
  const unknown = only.filter((s) => !(s in SCENARIOS));
  if (unknown.length) throw new Error(`--only: unknown scenario ${unknown.join(", ")}; known: ${Object.keys(SCENARIOS).join(", ")}`);
  const connections = Math.round(positive(values.connections, "connections"));
  const threads = Math.min(Math.round(positive(values.threads, "threads")), connections);
  return {
    durationSeconds: seconds(values.duration, "duration"),
    warmupSeconds: seconds(values.warmup, "warmup"),
    mixWarmupSeconds: seconds(values["mix-warmup"], "mix-warmup"),
    mixSeconds: seconds(values["mix-duration"], "mix-duration"),
    connections,
    threads,
    writeRate: positive(values["write-rate"], "write-rate"),
    staleBoundMs: Math.round(seconds(values["stale-bound"], "stale-bound") * 1000),
    checksPerWrite: Math.max(0, Math.round(Number(values["checks-per-write"]))),
    contacts: Math.round(positive(values.contacts, "contacts")),
    only,
    out: values.out,
  };
}

/** The mix: how many requests wrk replays in a loop; the longest asking for each page once may take. */
const MIX_REQUESTS = 20_000;
const MIX_MAX_FILL_SECONDS = 120;

const WASM_RULES = [{ type: "CompiledWasm", include: ["**/*.wasm"], fallthrough: true }];

/** How long each scenario's request is also measured alone, on one connection. */
const ALONE_SECONDS = 2;

/** The host names by which the entry of the one Miniflare routes to each extra worker. */
const HOSTS = { floor: "floor.bench", redisOnly: "redis-only.bench", fallback: "fallback.bench" };

/**
 * The local stack as scripts/stack.mjs's startStack builds it, except that the Miniflare running
 * the worker also runs, in the same workerd, the floor worker and two more copies of the worker
 * with other bindings: one with KV pages off (Redis hits) and one whose Supabase is unreachable
 * (backend fallback). The entry routes to them by Host header.
 */
async function startBenchStack(settings) {
  const stack = newStack();
  const started = Date.now();
  const jwtSecret = randomBytes(32).toString("hex");
  const signing = signingKeys();
  const internalAuthKey = randomBytes(24).toString("hex");
  const webhookSecret = randomBytes(24).toString("hex");
  const encryptionKey = `bench1:${randomBytes(32).toString("base64")}`;
  const workerPort = await freePort();

  const pg = await stack.startPostgres();
  stack.migrate();
  log(`PostgreSQL on ${pg.port}; seeding ${settings.contacts} contacts`);
  stack.seed(settings.contacts);
  const seedSeconds = (Date.now() - started) / 1000;
  // pg_stat_statements counts the queries reaching the database; the benchmark's own SQL runs
  // as bench_prober so the counts can leave it out.
  psql(pg, { command: "create extension if not exists pg_stat_statements; create role bench_prober login superuser" });

  const [supabase, redis] = await Promise.all([stack.startSupabase(jwtSecret, signing), stack.startRedis()]);
  const backend = await stack.startBackend({
    redisUrl: redis.url,
    internalAuthKey,
    databaseUrl: pg.url,
    encryptionKey,
    env: { WORKER_WEBHOOK_URL: `http://127.0.0.1:${workerPort}/api/cache/webhook`, WEBHOOK_SECRET: webhookSecret, RUST_LOG: process.env.RUST_LOG ?? "warn" },
  });
  const bindings = {
    ENVIRONMENT: "development",
    REDIS_ENABLED: "true",
    CORS_ALLOWED_ORIGINS: "*",
    SUPABASE_URL: supabase.url,
    SUPABASE_ANON_KEY: anonKey(jwtSecret),
    SUPABASE_JWT_SECRET: jwtSecret,
    BACKEND_URL: backend.url,
    INTERNAL_AUTH_KEY: internalAuthKey,
    WEBHOOK_SECRET: webhookSecret,
    CACHE_ENCRYPTION_KEY: encryptionKey,
  };
  return { stack, pg, supabase, redis, backend, bindings, jwtSecret, workerPort, seedSeconds, started };
}

/** The worker alone in a fresh Miniflare: time to workerd ready and to its first list answer. */
async function measureStartup(bindings, request) {
  const probe = newStack();
  try {
    const t0 = performance.now();
    const url = await probe.startMiniflare(bindings);
    const readyMs = performance.now() - t0;
    const res = await fetch(`${url}${request.path}`, { headers: request.headers });
    await res.arrayBuffer();
    const firstMs = performance.now() - t0;
    return { readyMs, firstMs, servedAs: `${res.status} ${res.headers.get("x-cache-status")}/${res.headers.get("x-cache-layer")}` };
  } finally {
    await probe.stop();
  }
}

async function startWorkers(b) {
  const copy = (name, host, extra) => ({ name, rootPath: ROOT, scriptPath: join(ROOT, "build", "index.js"), modulesRules: WASM_RULES, bindings: { ...b.bindings, ...extra }, routes: [`${host}/*`] });
  const closedPort = await freePort(); // nothing listens there: Supabase is unreachable
  const extra = [
    { name: "floor", rootPath: join(ROOT, "bench", "floor"), scriptPath: join(ROOT, "bench", "floor", "build", "index.js"), modulesRules: WASM_RULES, routes: [`${HOSTS.floor}/*`] },
    copy("redis-only", HOSTS.redisOnly, { KV_CACHE_ENABLED: "false" }),
    copy("fallback", HOSTS.fallback, { SUPABASE_URL: `http://127.0.0.1:${closedPort}` }),
  ];
  return b.stack.startMiniflare(b.bindings, b.workerPort, extra);
}

/** One GET with node:http (fetch would drop the Host header the routing needs). */
function answerTo(url, request) {
  return new Promise((resolve, reject) => {
    const req = httpGet(`${url}${request.path}`, { headers: request.headers }, (res) => {
      res.resume();
      res.on("end", () => resolve({ headers: res.headers, tally: `${res.statusCode} ${res.headers["x-cache-status"] ?? "-"}/${res.headers["x-cache-layer"] ?? "-"}` }));
    });
    req.on("error", reject);
  });
}

/** Sends `request` until it is answered as `expected` ("200 HIT/KV", as wrk's tallies say). */
async function until(url, request, expected, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = (await answerTo(url, request)).tally;
    if (last === expected) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${request.path} was not answered as ${expected} within ${timeoutMs} ms (last: ${last})`);
}

/** Calls of statements touching `contacts` since the last reset, the benchmark's own left out. */
function contactQueries(pg) {
  return Number(psql(pg, { command: "select coalesce(sum(calls), 0) from pg_stat_statements where query ilike '%contacts%' and userid <> 'bench_prober'::regrole" }).trim());
}

function resetQueryCounts(pg) {
  psql(pg, { command: "select pg_stat_statements_reset()" });
}

function percentile(values, p) {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/**
 * Runs the mix: wrk replays a list of Zipf-drawn requests in a loop while the prober writes
 * beside it. Every page of the list is asked for once first, so the cache starts as one that has
 * served this traffic before; then the list is replayed with the writes for the mix's warm-up,
 * and then measured.
 */
async function runMix(b, url, settings, wrkOptions, tokens, queriesPerRequest) {
  const draws = Array.from({ length: MIX_REQUESTS }, mixDrawer(42));
  const requests = draws.map((d) => ({ path: listPath(d), headers: { Authorization: `Bearer ${tokens.get(d.user)}`, "X-Workspace-ID": d.workspace } }));
  const file = join(b.stack.dir, "mix.tsv");
  writeRequests(file, requests);
  const pages = new Map();
  draws.forEach((d, i) => pages.has(pageKey(d)) || pages.set(pageKey(d), requests[i]));
  const pagesFile = join(b.stack.dir, "mix-pages.tsv");
  writeRequests(pagesFile, [...pages.values()]);

  log(`mix: ${fmt.int(MIX_REQUESTS)} requests over ${fmt.int(pages.size)} distinct pages; asking for each page once`);
  const filled = Date.now();
  await runWrk({ ...wrkOptions, url, file: pagesFile, seconds: MIX_MAX_FILL_SECONDS, once: true });
  const fillSeconds = (Date.now() - filled) / 1000;

  const prober = new Worker(new URL("./lib/prober.mjs", import.meta.url), {
    workerData: {
      pgPort: b.pg.port,
      workerUrl: url,
      tokens: Object.fromEntries(tokens),
      writeRate: settings.writeRate,
      boundMs: settings.staleBoundMs,
      checksPerWrite: settings.checksPerWrite,
      pollMs: 2,
      runId: randomBytes(3).toString("hex"),
    },
  });
  const probed = new Promise((resolve, reject) => {
    prober.once("message", resolve);
    prober.once("error", reject);
    prober.once("exit", (code) => code !== 0 && reject(new Error(`the mix prober exited with ${code}`)));
  });
  try {
    log(`mix: ${settings.mixWarmupSeconds} s warm-up and ${settings.mixSeconds} s measured, ${settings.writeRate} writes/s`);
    if (settings.mixWarmupSeconds > 0) await runWrk({ ...wrkOptions, url, file, seconds: settings.mixWarmupSeconds });
    resetQueryCounts(b.pg);
    prober.postMessage("measure");
    const result = await runWrk({ ...wrkOptions, url, file, seconds: settings.mixSeconds });
    const queries = contactQueries(b.pg);
    prober.postMessage("stop");
    const probe = await probed;
    return mixResults({ settings, result, queries, probe, distinct: pages.size, fillSeconds, queriesPerRequest });
  } finally {
    await prober.terminate();
  }
}

/** The mix's numbers from wrk's tallies, the query count and the prober's report. */
function mixResults({ settings, result, queries, probe, distinct, fillSeconds, queriesPerRequest }) {
  const t = result.tallies;
  const total = Object.values(t).reduce((a, n) => a + n, 0);
  const answered = (pred) => Object.entries(t).filter(([k]) => pred(k)).reduce((a, [, n]) => a + n, 0);
  const kv = answered((k) => k === "200 HIT/KV");
  const redis = answered((k) => k === "200 HIT/REDIS");
  const database = answered((k) => k.endsWith("/DATABASE") || k.endsWith("/BACKEND-FALLBACK"));
  const minutes = result.seconds / 60;
  const listRequests = result.requests + probe.measuredReads;
  const delays = probe.writes.map((w) => w.seenAfterMs).filter((v) => v !== null);
  const mixMinutes = probe.elapsedMs / 60_000;
  return {
    label: SCENARIOS.mix,
    description: `${fmt.int(MIX_REQUESTS)} requests drawn from Zipf distributions over the seed (exponents ${Object.entries(EXPONENTS).map(([k, v]) => `${k} ${v}`).join(", ")}; `
      + `bench/lib/mix.mjs), ${fmt.int(distinct)} distinct cached pages among them. Each page was asked for once first (${fillSeconds.toFixed(0)} s); `
      + `then wrk replayed the list in a loop, ${settings.mixWarmupSeconds} s of warm-up and ${settings.mixSeconds} s measured, `
      + `while ${settings.writeRate} contact writes/s changed PostgreSQL (names; every second write also a status or priority), each followed until the worker served it; `
      + `for each write, the written page and ${settings.checksPerWrite} mix pages were compared with the database once their workspace was quiet (every write to it served, the last one ${settings.staleBoundMs} ms old or more). `
      + `Hit rates and queries cover the measured ${settings.mixSeconds} s; writes, delays and stale reads the warm-up too.`,
    requests: result.requests,
    rps: result.rps,
    latencyMs: result.latencyMs,
    errors: result.errors,
    errorKinds: result.errorKinds,
    tallies: t,
    hitRate: (kv + redis) / total,
    kvHitRate: kv / total,
    redisHitRate: total - kv > 0 ? redis / (total - kv) : 0,
    databaseShare: database / total,
    writes: {
      count: probe.writes.length,
      perMinute: probe.writes.length / mixMinutes,
      unseen: probe.writes.length - delays.length,
      measured: probe.measuredWrites,
      // What one write costs the cache: the measured answers from the database per measured write.
      missesPerWrite: probe.measuredWrites > 0 ? database / probe.measuredWrites : null,
      firstFreshFrom: probe.writes.reduce((acc, w) => (w.servedBy ? { ...acc, [w.servedBy]: (acc[w.servedBy] ?? 0) + 1 } : acc), {}),
      delayMs: delays.length ? { p50: percentile(delays, 50), p95: percentile(delays, 95), max: Math.max(...delays) } : null,
      unloadedDelayMs: probe.unloaded.map((w) => w.seenAfterMs),
    },
    dbQueries: {
      total: queries,
      perMinute: queries / minutes,
      baselinePerMinute: (listRequests * queriesPerRequest) / minutes,
      queriesPerRequest,
      reduction: 1 - queries / (listRequests * queriesPerRequest),
    },
    stale: {
      boundMs: settings.staleBoundMs,
      checks: probe.checks,
      stale: probe.staleReads.length,
      failed: probe.failedChecks,
      void: probe.voidChecks,
      abandoned: probe.abandonedChecks,
      details: probe.staleReads.slice(0, 10),
    },
    // For the chart and the scenario table.
    servedAs: "HIT (KV or Redis)",
    servedShare: (kv + redis) / total,
  };
}

function targets(byId, mix, wasm) {
  const out = [];
  const { floor, kv, database, postgrest } = byId;
  if (floor && kv) {
    const ratio = kv.rps / floor.rps;
    const withKv = byId["floor-kv"] ? ` (${fmt.pct(kv.rps / byId["floor-kv"].rps)} of the floor with the 2 KV reads)` : "";
    out.push({ name: "KV-hit throughput ≥ 80 % of the floor", measured: `${fmt.pct(ratio)} of the floor${withKv}`, ratio: (ratio / 0.8).toFixed(2), met: ratio >= 0.8 });
  }
  if (database && postgrest) {
    const signed = (ms) => `${ms >= 0 ? "+" : ""}${ms.toFixed(2)} ms`;
    const diff = database.latencyMs.p50 - postgrest.latencyMs.p50;
    const alone = database.aloneMs.p50 - postgrest.aloneMs.p50;
    out.push({ name: "database-path p50 ≤ direct PostgREST p50 + 2 ms", measured: `${signed(diff)} (alone: ${signed(alone)})`, ratio: `${(diff / 2).toFixed(2)} of the 2 ms (alone: ${(alone / 2).toFixed(2)})`, met: diff <= 2 });
  }
  if (mix) {
    out.push({ name: "mix: combined hit rate ≥ 97 %", measured: fmt.pct(mix.hitRate, 2), ratio: (mix.hitRate / 0.97).toFixed(3), met: mix.hitRate >= 0.97 });
    out.push({ name: "mix: database queries reduced ≥ 95 %", measured: fmt.pct(mix.dbQueries.reduction, 2), ratio: (mix.dbQueries.reduction / 0.95).toFixed(3), met: mix.dbQueries.reduction >= 0.95 });
    out.push({ name: "mix: stale reads = 0", measured: `${mix.stale.stale} of ${mix.stale.checks} checked`, ratio: "—", met: mix.stale.stale === 0 });
  }
  out.push({ name: "gzipped wasm ≤ 500 KB (500,000 B)", measured: fmt.bytes(wasm.worker.gzipped), ratio: (wasm.worker.gzipped / 500_000).toFixed(2), met: wasm.worker.gzipped <= 500_000 });
  return out;
}

/** The request of each of scenarios 1-6, where it goes and how every answer must come. */
function scenarioPlan(b, url, tokens) {
  const ws = seed.workspace(1);
  const board = seed.board(1, 1);
  const list = { path: `/api/boards/${board}/contacts?filter=open&page=1`, headers: { Authorization: `Bearer ${tokens.get(seed.user(1))}`, "X-Workspace-ID": ws } };
  const routed = (host, request) => ({ path: request.path, headers: { ...request.headers, Host: host } });
  const noCache = (request) => ({ path: request.path, headers: { ...request.headers, "Cache-Control": "no-cache" } });
  const direct = {
    // What the worker's database layer asks PostgREST for this page (crates/core postgrest.rs).
    path: "/rest/v1/contacts?select=id,name,email,phone,conversation_status,priority,last_message_time,assigned_user_id,board_column_id,created_at"
      + `&order=created_at.desc,id.desc&workspace_id=eq.${ws}&board_id=eq.${board}&archived=is.false&conversation_status=eq.Open`,
    headers: { apikey: b.bindings.SUPABASE_ANON_KEY, Authorization: list.headers.Authorization, Prefer: "count=exact", "Range-Unit": "items", Range: "0-49" },
  };
  return {
    list,
    scenarios: {
      floor: { url, request: routed(HOSTS.floor, { path: "/", headers: {} }), expect: "200 -/-", shown: "200" },
      "floor-kv": {
        url,
        // The floor reading what a KV hit reads: the list's generation, then the page.
        request: async () => {
          await until(url, list, "200 HIT/KV");
          const { headers } = await answerTo(url, list);
          const keys = [`gen:${ws}:open`, headers["x-cache-key"]];
          return routed(HOSTS.floor, { path: `/kv?${keys.map((k) => `key=${encodeURIComponent(k)}`).join("&")}`, headers: {} });
        },
        expect: "200 -/-",
        shown: "200",
      },
      kv: { url, request: list, expect: "200 HIT/KV" },
      redis: { url, request: routed(HOSTS.redisOnly, list), expect: "200 HIT/REDIS" },
      database: { url, request: noCache(list), expect: "200 BYPASS/DATABASE", countQueries: true },
      postgrest: { url: new URL(b.bindings.SUPABASE_URL).origin, request: direct, expect: "206 -/-", shown: "206" },
      fallback: { url, request: routed(HOSTS.fallback, noCache(list)), expect: "200 BYPASS/BACKEND-FALLBACK" },
    },
  };
}

/**
 * One of scenarios 1-6: asked until it answers as expected, warmed up, measured at the set
 * concurrency, then measured alone on one connection (where scenario 4 also counts its queries).
 */
async function runScenario(b, id, p, settings, wrkOptions) {
  log(`${SCENARIOS[id]}: ${settings.warmupSeconds} s warm-up, ${settings.durationSeconds} s measured`);
  const file = join(b.stack.dir, `${id}.tsv`);
  const request = typeof p.request === "function" ? await p.request() : p.request;
  writeRequests(file, [request]);
  await until(p.url, request, p.expect);
  if (settings.warmupSeconds > 0) await runWrk({ ...wrkOptions, url: p.url, file, seconds: settings.warmupSeconds });
  const result = await runWrk({ ...wrkOptions, url: p.url, file, seconds: settings.durationSeconds });
  // Counted on one connection, the queries per request have nothing in flight to blur them.
  if (p.countQueries) {
    await new Promise((r) => setTimeout(r, 1000)); // what wrk left in flight finishes
    resetQueryCounts(b.pg);
  }
  const alone = await runWrk({ url: p.url, file, seconds: Math.min(ALONE_SECONDS, settings.durationSeconds), connections: 1, threads: 1 });
  const queriesPerRequest = p.countQueries ? contactQueries(b.pg) / alone.requests : undefined;
  const shown = p.shown ?? p.expect.split(" ")[1];
  const scenario = { id, label: SCENARIOS[id], ...result, aloneMs: alone.latencyMs, servedAs: shown, servedShare: share(result.tallies, (k) => k === p.expect), queriesPerRequest };
  log(`  ${fmt.int(result.rps)} req/s, p50 ${fmt.ms(result.latencyMs.p50)} ms, p99 ${fmt.ms(result.latencyMs.p99)} ms, ${result.errors} errors, `
    + `${shown} ${fmt.pct(scenario.servedShare)}; alone p50 ${fmt.ms(alone.latencyMs.p50)} ms`
    + (queriesPerRequest === undefined ? "" : `; ${queriesPerRequest.toFixed(3)} queries on contacts per request`));
  return scenario;
}

function localDate(d) {
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
}

async function main() {
  const settings = options(process.argv.slice(2));
  for (const file of ["build/index.js", "bench/floor/build/index.js", `target/${process.env.BACKEND_PROFILE ?? "debug"}/contact-list-cache-backend`]) {
    if (!existsSync(join(ROOT, file))) throw new Error(`${file} is missing: run the benchmark with \`npm run bench\`, which builds it`);
  }
  if (process.env.BACKEND_PROFILE !== "release") log("warning: BACKEND_PROFILE is not release; `npm run bench` runs the release backend");
  const startedAt = new Date();
  const wasm = { worker: wasmSize("build/index_bg.wasm"), floor: wasmSize("bench/floor/build/index_bg.wasm") };

  const b = await startBenchStack(settings);
  try {
    const url = await startWorkers(b);
    const readySeconds = (Date.now() - b.started) / 1000;
    log(`stack ready after ${readySeconds.toFixed(0)} s; worker on ${url}`);
    const tokens = tokensFor(b.jwtSecret);
    const plan = scenarioPlan(b, url, tokens);

    log("start-up: the worker alone in a fresh Miniflare, 3 times");
    const samples = [];
    for (let i = 0; i < 3; i++) samples.push(await measureStartup(b.bindings, plan.list));
    const median = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
    const startup = { samples, medianMs: median(samples.map((s) => s.firstMs)), medianReadyMs: median(samples.map((s) => s.readyMs)) };

    const wrkOptions = { connections: settings.connections, threads: settings.threads };
    const scenarios = [];
    const byId = {};
    for (const [id, p] of Object.entries(plan.scenarios)) {
      if (!settings.only.includes(id)) continue;
      byId[id] = await runScenario(b, id, p, settings, wrkOptions);
      scenarios.push(byId[id]);
    }

    let mix = null;
    if (settings.only.includes("mix")) {
      let queriesPerRequest = byId.database?.queriesPerRequest;
      if (queriesPerRequest === undefined) {
        log("mix: the database scenario did not run; counting one query per list request without the cache");
        queriesPerRequest = 1;
      }
      mix = await runMix(b, url, settings, wrkOptions, tokens, queriesPerRequest);
      const { label, requests, rps, latencyMs, errors, servedAs, servedShare } = mix;
      scenarios.push({ id: "mix", label, requests, rps, latencyMs, errors, servedAs, servedShare });
    }

    const date = localDate(startedAt);
    const results = {
      date,
      startedAt: startedAt.toISOString(),
      totalSeconds: (Date.now() - startedAt.getTime()) / 1000,
      command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(" ")}` : ""}`,
      machine: machine(),
      versions: versions(),
      settings,
      stack: { seedSeconds: b.seedSeconds, readySeconds },
      scenarios,
      mix,
      targets: targets(byId, mix, wasm),
      wasm,
      startup,
    };
    const outDir = join(ROOT, settings.out);
    mkdirSync(outDir, { recursive: true });
    const base = join(outDir, date);
    writeFileSync(`${base}.svg`, svgChart(results));
    writeFileSync(`${base}.md`, markdownReport(results, `${date}.svg`));
    writeFileSync(`${base}.json`, `${JSON.stringify(results, null, 2)}\n`);
    console.log(`\n${consoleReport(results)}\n`);
    log(`wrote ${relative(ROOT, base)}.md, .svg and .json in ${fmt.int(results.totalSeconds)} s`);
  } finally {
    if (!interrupted) await b.stack.stop();
  }
}

// On Ctrl-C (or SIGTERM, SIGHUP) scripts/stack.mjs stops every stack and exits; stopping here
// too would race it, and what fails meanwhile is only the interruption's echo.
let interrupted = false;
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.once(signal, () => (interrupted = true));

main().catch((err) => {
  if (interrupted) return;
  log(err.stack ?? String(err));
  process.exitCode = 1;
});
