// The benchmark's runs: one scenario's (warm-up, measurement, the request alone), the realistic
// mix's (wrk replaying the drawn requests while the prober writes and checks) and the worker's
// start-up, each turned into the numbers the report shows.
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { newStack, psql } from "../../scripts/stack.mjs";
import { EXPONENTS, listPath, mixDrawer, pageKey } from "./mix.mjs";
import { SCENARIOS, until } from "./plan.mjs";
import { fmt } from "./report.mjs";
import { runWrk, share, writeRequests } from "./wrk.mjs";

const log = (msg) => process.stderr.write(`[bench] ${msg}\n`);

/** The mix: how many requests wrk replays in a loop; the longest asking for each page once may take. */
const MIX_REQUESTS = 20_000;
const MIX_MAX_FILL_SECONDS = 120;

/** How long each scenario's request is also measured alone, on one connection. */
const ALONE_SECONDS = 2;

/** The worker alone in a fresh Miniflare, 3 times: the times to workerd ready and to its first
 * answer to `request`, each sample and their medians. */
export async function measureStartup(bindings, request) {
  log("start-up: the worker alone in a fresh Miniflare, 3 times");
  const samples = [];
  for (let i = 0; i < 3; i++) samples.push(await startupOnce(bindings, request));
  const median = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
  return { samples, medianMs: median(samples.map((s) => s.firstMs)), medianReadyMs: median(samples.map((s) => s.readyMs)) };
}

async function startupOnce(bindings, request) {
  const probe = newStack();
  try {
    const t0 = performance.now();
    const url = await probe.startMiniflare({ bindings });
    const readyMs = performance.now() - t0;
    const res = await fetch(`${url}${request.path}`, { headers: request.headers });
    await res.arrayBuffer();
    const firstMs = performance.now() - t0;
    return { readyMs, firstMs, servedAs: `${res.status} ${res.headers.get("x-cache-status")}/${res.headers.get("x-cache-layer")}` };
  } finally {
    await probe.stop();
  }
}

/** Calls of statements touching `contacts` since the last reset, the benchmark's own left out. */
async function contactQueries(pgPort) {
  return Number((await psql(pgPort, { command: "select coalesce(sum(calls), 0) from pg_stat_statements where query ilike '%contacts%' and userid <> 'bench_prober'::regrole" })).trim());
}

async function resetQueryCounts(pgPort) {
  await psql(pgPort, { command: "select pg_stat_statements_reset()" });
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
export async function runMix(stack, settings, wrkOptions, tokens, queriesPerRequest) {
  const url = stack.urls.worker;
  const draws = Array.from({ length: MIX_REQUESTS }, mixDrawer(42));
  const requests = draws.map((d) => ({ path: listPath(d), headers: { Authorization: `Bearer ${tokens.get(d.user)}`, "X-Workspace-ID": d.workspace } }));
  const file = join(stack.dir, "mix.tsv");
  writeRequests(file, requests);
  const pages = new Map();
  draws.forEach((d, i) => pages.has(pageKey(d)) || pages.set(pageKey(d), requests[i]));
  const pagesFile = join(stack.dir, "mix-pages.tsv");
  writeRequests(pagesFile, [...pages.values()]);

  log(`mix: ${fmt.int(MIX_REQUESTS)} requests over ${fmt.int(pages.size)} distinct pages; asking for each page once`);
  const filled = Date.now();
  await runWrk({ ...wrkOptions, url, file: pagesFile, seconds: MIX_MAX_FILL_SECONDS, once: true });
  const fillSeconds = (Date.now() - filled) / 1000;

  const prober = new Worker(new URL("./prober.mjs", import.meta.url), {
    workerData: {
      pgPort: stack.ports.postgres,
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
    await resetQueryCounts(stack.ports.postgres);
    prober.postMessage("measure");
    const result = await runWrk({ ...wrkOptions, url, file, seconds: settings.mixSeconds });
    const queries = await contactQueries(stack.ports.postgres);
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

/**
 * One of scenarios 1-6: asked until it answers as expected, warmed up, measured at the set
 * concurrency, then measured alone on one connection (where scenario 4 also counts its queries).
 */
export async function runScenario(stack, id, p, settings, wrkOptions) {
  log(`${SCENARIOS[id]}: ${settings.warmupSeconds} s warm-up, ${settings.durationSeconds} s measured`);
  const file = join(stack.dir, `${id}.tsv`);
  const request = typeof p.request === "function" ? await p.request() : p.request;
  writeRequests(file, [request]);
  await until(p.url, request, p.expect);
  if (settings.warmupSeconds > 0) await runWrk({ ...wrkOptions, url: p.url, file, seconds: settings.warmupSeconds });
  const result = await runWrk({ ...wrkOptions, url: p.url, file, seconds: settings.durationSeconds });
  // Counted on one connection, the queries per request have nothing in flight to blur them.
  if (p.countQueries) {
    await new Promise((r) => setTimeout(r, 1000)); // what wrk left in flight finishes
    await resetQueryCounts(stack.ports.postgres);
  }
  const alone = await runWrk({ url: p.url, file, seconds: Math.min(ALONE_SECONDS, settings.durationSeconds), connections: 1, threads: 1 });
  const queriesPerRequest = p.countQueries ? (await contactQueries(stack.ports.postgres)) / alone.requests : undefined;
  const shown = p.shown ?? p.expect.split(" ")[1];
  const scenario = { id, label: SCENARIOS[id], ...result, aloneMs: alone.latencyMs, servedAs: shown, servedShare: share(result.tallies, (k) => k === p.expect), queriesPerRequest };
  log(`  ${fmt.int(result.rps)} req/s, p50 ${fmt.ms(result.latencyMs.p50)} ms, p99 ${fmt.ms(result.latencyMs.p99)} ms, ${result.errors} errors, `
    + `${shown} ${fmt.pct(scenario.servedShare)}; alone p50 ${fmt.ms(alone.latencyMs.p50)} ms`
    + (queriesPerRequest === undefined ? "" : `; ${queriesPerRequest.toFixed(3)} queries on contacts per request`));
  return scenario;
}

