// The benchmark's runs: one scenario's (warm-up, measurement, the request alone) and the
// worker's start-up, each turned into the numbers the report shows; the database's query counts.
// The realistic mix runs in bench/lib/run-mix.mjs.
import { join } from "node:path";
import { newStack, psql } from "../../scripts/stack.mjs";
import { withWorkerdCpu } from "./cpu.mjs";
import { costPerMillion, counters, perRead } from "./cost.mjs";
import { SCENARIOS, until } from "./plan.mjs";
import { fmt } from "./report.mjs";
import { latencyFigures, littlesLaw, mergeHistograms, runWrk, share, writeRequests } from "./wrk.mjs";

const log = (msg) => process.stderr.write(`[bench] ${msg}\n`);

/** How long each scenario's request is also measured alone, on one connection (at most its
 * `--duration`), unless the settings say (`aloneSeconds`, the scale run's `--alone`). */
const ALONE_SECONDS = 2;

/** The pause before a run alone, so that what the loaded run left in flight (its last requests,
 * work after their responses) is done and not counted in the run's CPU per request. */
const SETTLE_MS = 1000;
const settle = () => new Promise((resolve) => setTimeout(resolve, SETTLE_MS));

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
export async function contactQueries(pgPort) {
  return Number((await psql(pgPort, { command: "select coalesce(sum(calls), 0) from pg_stat_statements where query ilike '%contacts%' and userid <> 'bench_prober'::regrole" })).trim());
}

/** Those calls by the role that made them (PostgREST's `authenticated`, the backend's
 * `postgres`), and the `n` most called statements, their text shortened. */
export async function contactQueriesByRole(pgPort, n = 6) {
  const mine = "from pg_stat_statements s join pg_roles r on r.oid = s.userid where s.query ilike '%contacts%' and s.userid <> 'bench_prober'::regrole";
  const command = `select json_build_object('byRole', (select coalesce(json_object_agg(role, calls), '{}') from (select r.rolname as role, sum(s.calls) as calls ${mine} group by r.rolname) g), `
    + `'top', (select coalesce(json_agg(t), '[]') from (select s.calls, r.rolname as role, left(regexp_replace(s.query, '\\s+', ' ', 'g'), 160) as query ${mine} order by s.calls desc limit ${n}) t))`;
  return JSON.parse((await psql(pgPort, { command })).trim());
}

export async function resetQueryCounts(pgPort) {
  await psql(pgPort, { command: "select pg_stat_statements_reset()" });
}

/** The "served as" column: the answers (one, or a list) every request must get, without the status. */
const servedAs = (p) => p.shown ?? [p.expect].flat().map((e) => e.split(" ")[1]).join(" or ");

/** Writes the request of scenario `id` to its file and asks until it is answered as expected. */
export async function prepare(stack, id, p) {
  const file = join(stack.dir, `${id}.tsv`);
  const request = typeof p.request === "function" ? await p.request() : p.request;
  writeRequests(file, [request]);
  await p.before?.();
  await until(p.url, request, p.expect);
  return { file, request };
}

/**
 * One of scenarios 1-6 (or a scale run's page and path, labelled by `p.label`): asked until it answers as expected, warmed up, measured at the set
 * concurrency, then measured alone on one connection (where scenario 4 also counts its queries).
 */
export async function runScenario(stack, id, p, settings, wrkOptions) {
  const label = p.label ?? SCENARIOS[id];
  log(`${label}: ${settings.warmupSeconds} s warm-up, ${settings.durationSeconds} s measured`);
  const { file, request } = await prepare(stack, id, p);
  if (settings.warmupSeconds > 0) await runWrk({ ...wrkOptions, url: p.url, file, seconds: settings.warmupSeconds });
  const before = p.countCost === false ? null : await counters(stack, p.url, request.headers.Host);
  const result = await withWorkerdCpu(() => runWrk({ ...wrkOptions, url: p.url, file, seconds: settings.durationSeconds }));
  const cost = before && costOf(before, await counters(stack, p.url, request.headers.Host), result.requests);
  // Counted on one connection, the queries per request have nothing in flight to blur them.
  if (p.countQueries) {
    await new Promise((r) => setTimeout(r, 1000)); // what wrk left in flight finishes
    await resetQueryCounts(stack.ports.postgres);
  }
  const aloneSeconds = settings.aloneSeconds ?? Math.min(ALONE_SECONDS, settings.durationSeconds);
  if (!p.countQueries) await settle();
  const alone = await withWorkerdCpu(() => runWrk({ url: p.url, file, seconds: aloneSeconds, connections: 1, threads: 1 }));
  const queriesPerRequest = p.countQueries ? (await contactQueries(stack.ports.postgres)) / alone.requests : undefined;
  const shown = servedAs(p);
  const { histogram, wrkHistogram, ...measured } = result;
  const scenario = { id, label, ...measured, littlesLaw: littlesLaw(result), cost, aloneMs: alone.latencyMs, aloneRequests: alone.requests, aloneCpuUsPerRequest: alone.cpuUsPerRequest, servedAs: shown, servedShare: share(result.tallies, (k) => [p.expect].flat().includes(k)), queriesPerRequest };
  log(`  ${fmt.int(result.rps)} req/s, p50 ${fmt.ms(result.latencyMs.p50)} ms, p99 ${fmt.ms(result.latencyMs.p99)} ms, ${result.errors} errors, `
    + `${shown} ${fmt.pct(scenario.servedShare)}; alone p50 ${fmt.ms(alone.latencyMs.p50)} ms`
    + (queriesPerRequest === undefined ? "" : `; ${queriesPerRequest.toFixed(3)} queries on contacts per request`));
  return scenario;
}

/** The operations per request over rounds, each read before and after its measured run: the
 * counters' differences summed as if one reading. */
function roundsCost(runs) {
  const sum = (pick) => runs.reduce((a, run) => (a === null || pick(run.after) === null || pick(run.before) === null ? null : a + pick(run.after) - pick(run.before)), 0);
  const worker = (k) => (r) => r.worker?.[k] ?? null;
  const zero = { worker: { requests: 0, kvReads: 0, kvWrites: 0, homeCalls: 0 }, cpuUs: 0, redis: 0, database: 0 };
  const total = (k) => sum(worker(k));
  const after = {
    worker: runs.every((r) => r.before.worker && r.after.worker) ? { requests: total("requests") - (runs.length - 1), kvReads: total("kvReads"), kvWrites: total("kvWrites"), homeCalls: total("homeCalls") } : null,
    cpuUs: sum((r) => r.cpuUs),
    redis: sum((r) => r.redis) === null ? null : sum((r) => r.redis) - (runs.length - 1),
    database: sum((r) => r.database),
  };
  return costOf(zero, after, runs.reduce((a, run) => a + run.requests, 0));
}

/** The operations per request between two readings of the counters and their price. */
function costOf(before, after, requests) {
  const operations = perRead(before, after, requests);
  return { operations, perMillionReads: costPerMillion(operations) };
}

const median = (xs) => {
  const sorted = [...xs].sort((x, y) => x - y);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

/**
 * Scenarios measured side by side (`entries`: [id, plan] in the order they take turns): each is
 * asked until it answers as expected, then `settings.rounds` rounds run each in turn (every other
 * round in reverse order), a warm-up and its share of `--duration` (duration ÷ rounds), so what
 * drifts on the machine meanwhile falls on all of them alike; last, each is measured alone on one
 * connection. A scenario's figures are its rounds taken together, as one run: req/s is all its
 * requests over all its measured seconds, the mean, percentiles and max come from its rounds'
 * latency histograms merged, so they and the req/s describe the same requests (Little's law holds
 * between them); requests, errors and answers are the sums. Each round's own are kept in `rounds`.
 */
export async function runRounds(stack, entries, settings, wrkOptions) {
  const { rounds } = settings;
  const seconds = settings.durationSeconds / rounds;
  log(`side by side: ${entries.map(([id]) => id).join(", ")}; ${rounds} rounds of ${settings.warmupSeconds} s warm-up and ${seconds.toFixed(1)} s measured each`);
  const ready = [];
  for (const [id, p] of entries) ready.push({ id, p, label: SCENARIOS[id], runs: [], ...(await prepare(stack, id, p)) });
  for (let round = 1; round <= rounds; round++) {
    // Odd rounds in the given order, even rounds in reverse: a drift during a round falls on
    // the first and the last alike.
    for (const r of round % 2 ? ready : [...ready].reverse()) {
      if (round > 1) {
        await r.p.before?.();
        await until(r.p.url, r.request, r.p.expect);
      }
      if (settings.warmupSeconds > 0) await runWrk({ ...wrkOptions, url: r.p.url, file: r.file, seconds: settings.warmupSeconds });
      const before = await counters(stack, r.p.url, r.request.headers.Host);
      const result = await withWorkerdCpu(() => runWrk({ ...wrkOptions, url: r.p.url, file: r.file, seconds }));
      r.runs.push({ ...result, before, after: await counters(stack, r.p.url, r.request.headers.Host) });
      log(`  round ${round} ${r.label}: ${fmt.int(result.rps)} req/s, p50 ${fmt.ms(result.latencyMs.p50)} ms, p99 ${fmt.ms(result.latencyMs.p99)} ms, ${result.errors} errors`);
    }
  }
  const aloneSeconds = Math.min(ALONE_SECONDS, settings.durationSeconds);
  const scenarios = [];
  for (const { id, p, label, file, runs } of ready) {
    await settle();
    const alone = await withWorkerdCpu(() => runWrk({ url: p.url, file, seconds: aloneSeconds, connections: 1, threads: 1 }));
    const tallies = {};
    for (const run of runs) for (const [k, n] of Object.entries(run.tallies)) tallies[k] = (tallies[k] ?? 0) + n;
    const errorKinds = {};
    for (const run of runs) for (const [k, n] of Object.entries(run.errorKinds)) errorKinds[k] = (errorKinds[k] ?? 0) + n;
    const shown = servedAs(p);
    const requests = runs.reduce((a, run) => a + run.requests, 0);
    const measuredSeconds = runs.reduce((a, run) => a + run.seconds, 0);
    const together = {
      connections: wrkOptions.connections,
      rps: requests / measuredSeconds,
      latencyMs: latencyFigures(mergeHistograms(runs.map((run) => run.histogram))),
      wrkCorrectedMs: latencyFigures(mergeHistograms(runs.map((run) => run.wrkHistogram))),
    };
    const scenario = {
      id,
      label,
      requests,
      seconds: measuredSeconds,
      ...together,
      littlesLaw: littlesLaw(together),
      cost: roundsCost(runs),
      cpuUsPerRequest: runs.some((run) => run.cpuUsPerRequest === null) ? null : median(runs.map((run) => run.cpuUsPerRequest)),
      errors: runs.reduce((a, run) => a + run.errors, 0),
      errorKinds,
      tallies,
      rounds: runs.map(({ rps, requests, seconds, latencyMs, errors, cpuUsPerRequest, connections }) => ({ rps, requests, seconds, latencyMs, errors, cpuUsPerRequest, littlesLaw: littlesLaw({ connections, rps, latencyMs }) })),
      aloneMs: alone.latencyMs,
      aloneRequests: alone.requests,
      aloneCpuUsPerRequest: alone.cpuUsPerRequest,
      servedAs: shown,
      servedShare: share(tallies, (k) => [p.expect].flat().includes(k)),
    };
    log(`${label}: ${fmt.int(scenario.rps)} req/s (rounds ${runs.map((run) => fmt.int(run.rps)).join(", ")}), mean ${fmt.ms(scenario.latencyMs.mean)} ms (Little: ${fmt.ms(scenario.littlesLaw.expectedMs)}), p50 ${fmt.ms(scenario.latencyMs.p50)} ms, p99 ${fmt.ms(scenario.latencyMs.p99)} ms, `
      + `${scenario.errors} errors, ${shown} ${fmt.pct(scenario.servedShare)}; alone p50 ${fmt.ms(alone.latencyMs.p50)} ms`
      + (Object.keys(tallies).length > 1 ? `; answers ${Object.entries(tallies).map(([k, n]) => `${k} ${fmt.int(n)}`).join(", ")}` : ""));
    scenarios.push(scenario);
  }
  return scenarios;
}
