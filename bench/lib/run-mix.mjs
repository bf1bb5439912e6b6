// The realistic mix at each write rate: wrk replays the drawn requests while the prober
// (bench/lib/prober.mjs) writes and checks beside it, one rate after another on the same stack,
// each turned into the numbers the report shows.
import { randomBytes } from "node:crypto";
import { Worker } from "node:worker_threads";
import { EXPONENTS, MIX_REQUESTS, mixFiles } from "./mix.mjs";
import { SCENARIOS } from "./plan.mjs";
import { fmt } from "./report.mjs";
import { contactQueries, resetQueryCounts, contactQueriesByRole } from "./run.mjs";
import { runWrk, writeRequests } from "./wrk.mjs";

const log = (msg) => process.stderr.write(`[bench] ${msg}\n`);

/** How many requests wrk replays in a loop; the longest asking for each page once may take. */
const MIX_MAX_FILL_SECONDS = 120;
/** Writes timed one at a time after each rate's mix, with nothing else running. */
const UNLOADED_WRITES = 10;

function percentile(values, p) {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** p50, p95, p99 and max of `values` (null when there are none). */
function spread(values) {
  return values.length ? { count: values.length, p50: percentile(values, 50), p95: percentile(values, 95), p99: percentile(values, 99), max: Math.max(...values) } : null;
}

/**
 * Runs the mix at each of `settings.writeRates`, in order. Per rate: every page of the list is
 * asked for once (so the cache starts as one that has served this traffic before, and every page
 * a previous rate's writes superseded is current again), the list is replayed with that rate's
 * writes for the mix's warm-up, the query counts are reset, the mix is measured, the prober
 * finishes (its last checks and the unloaded writes), and the system is left alone for the
 * staleness bound and a second more, so nothing of one rate's writes is in flight, or left for
 * the next rate's readers to miss, when the next rate starts.
 */
export async function runMix(stack, settings, wrkOptions, tokens, queriesPerRequest) {
  const url = stack.urls.worker;
  const { file, pagesFile, pages } = mixFiles(stack.dir, tokens, writeRequests);

  log(`mix: ${fmt.int(MIX_REQUESTS)} requests over ${fmt.int(pages)} distinct pages`);
  const settleMs = settings.staleBoundMs + 1000;
  const rates = [];
  for (const [index, writeRate] of settings.writeRates.entries()) {
    if (index > 0) await new Promise((r) => setTimeout(r, settleMs));
    const filled = Date.now();
    const fill = await runWrk({ ...wrkOptions, url, file: pagesFile, seconds: MIX_MAX_FILL_SECONDS, once: true });
    // The answers (about one per page) that were not HIT: the pages not current when the rate began.
    const start = { fillSeconds: (Date.now() - filled) / 1000, answers: fill.requests, notHit: fill.requests - ["200 HIT/L0", "200 HIT/KV", "200 HIT/REDIS"].reduce((n, k) => n + (fill.tallies[k] ?? 0), 0) };
    log(`mix at ${fmt.rate(writeRate)}: each page asked for once in ${start.fillSeconds.toFixed(0)} s, ${fmt.int(start.notHit)} of them not a HIT`);
    rates.push({ ...(await runRate({ stack, settings, wrkOptions, tokens, file, writeRate, index, queriesPerRequest })), start });
  }
  return {
    label: SCENARIOS.mix,
    description: `${fmt.int(MIX_REQUESTS)} requests drawn from Zipf distributions over the seed (exponents ${Object.entries(EXPONENTS).map(([k, v]) => `${k} ${v}`).join(", ")}; `
      + `bench/lib/mix.mjs), ${fmt.int(pages)} distinct cached pages among them. At each write rate in turn (${settings.writeRates.join(", ")} writes/s), `
      + `each page was asked for once (the first time ${rates[0]?.start.fillSeconds.toFixed(0)} s, then ${rates.slice(1).map((x) => `${x.start.fillSeconds.toFixed(0)} s`).join(", ") || "—"}), then wrk replayed the list in a loop, ${settings.mixWarmupSeconds} s of warm-up and ${settings.mixSeconds} s measured, `
      + `while the prober changed contacts in PostgreSQL at that rate (names; every second write also a status or priority), each followed until the worker served it; `
      + `for each write, the written page and ${settings.checksPerWrite} mix pages (at rate 0, one mix page a second) were compared with the database once their workspace was quiet `
      + `(every write to it served, the last one ${settings.staleBoundMs} ms old or more, the worker's staleness bound). `
      + `After each rate, ${UNLOADED_WRITES} writes were timed one at a time with nothing else running, and the system was left alone ${settleMs / 1000} s before the next rate. `
      + `Hit rates and queries cover the measured ${settings.mixSeconds} s; writes, delays and checks the warm-up too.`,
    requests: MIX_REQUESTS,
    distinct: pages,
    settleMs,
    unloadedWrites: UNLOADED_WRITES,
    rates,
  };
}

/** One write rate: the prober beside wrk's warm-up and measurement, then its report. */
async function runRate({ stack, settings, wrkOptions, tokens, file, writeRate, index, queriesPerRequest }) {
  const started = Date.now();
  const url = stack.urls.worker;
  const prober = new Worker(new URL("./prober.mjs", import.meta.url), {
    workerData: {
      pgPort: stack.ports.postgres,
      workerUrl: url,
      tokens: Object.fromEntries(tokens),
      writeRate,
      boundMs: settings.staleBoundMs,
      checksPerWrite: settings.checksPerWrite,
      pollMs: 2,
      unloadedWrites: UNLOADED_WRITES,
      runId: randomBytes(3).toString("hex"),
      seedOffset: index,
    },
  });
  const probed = new Promise((resolve, reject) => {
    prober.once("message", resolve);
    prober.once("error", reject);
    prober.once("exit", (code) => code !== 0 && reject(new Error(`the mix prober exited with ${code}`)));
  });
  try {
    log(`mix at ${fmt.rate(writeRate)}: ${settings.mixWarmupSeconds} s warm-up and ${settings.mixSeconds} s measured`);
    if (settings.mixWarmupSeconds > 0) await runWrk({ ...wrkOptions, url, file, seconds: settings.mixWarmupSeconds });
    await resetQueryCounts(stack.ports.postgres);
    prober.postMessage("measure");
    const result = await runWrk({ ...wrkOptions, url, file, seconds: settings.mixSeconds });
    const queries = await contactQueries(stack.ports.postgres);
    const topQueries = await contactQueriesByRole(stack.ports.postgres);
    prober.postMessage("stop");
    const probe = await probed;
    const rate = rateResults({ settings, writeRate, result, queries, topQueries, probe, queriesPerRequest, seconds: (Date.now() - started) / 1000 });
    const d = rate.writes.delayMs;
    log(`  ${fmt.int(rate.rps)} req/s; cache-served ${fmt.pct(rate.cacheServed, 2)} (HIT ${fmt.pct(rate.hitOnly, 2)}); database queries reduced ${fmt.pct(rate.dbQueries.reduction, 1)}; `
      + `write → edge ${d ? `p50 ${fmt.int(d.p50)} ms, p99 ${fmt.int(d.p99)} ms` : "no writes"}; ${rate.freshness.staleReads} stale of ${rate.freshness.checked} checked`);
    return rate;
  } finally {
    await prober.terminate();
  }
}

/** One rate's numbers from wrk's tallies, the query count and the prober's report. */
function rateResults({ settings, writeRate, result, queries, topQueries, probe, queriesPerRequest, seconds }) {
  const t = result.tallies;
  const total = Object.values(t).reduce((a, n) => a + n, 0);
  const answered = (pred) => Object.entries(t).filter(([k]) => pred(k)).reduce((a, [, n]) => a + n, 0);
  const labelled = (label) => answered((k) => /^2\d\d /.test(k) && k.endsWith(` ${label}`));
  const counts = {
    "HIT/L0": labelled("HIT/L0"),
    "HIT/KV": labelled("HIT/KV"),
    "STALE/KV": labelled("STALE/KV"),
    "HIT/REDIS": labelled("HIT/REDIS"),
    "STALE/REDIS": labelled("STALE/REDIS"),
    database: answered((k) => k.endsWith("/DATABASE") || k.endsWith("/BACKEND-FALLBACK")),
  };
  counts.other = total - Object.values(counts).reduce((a, n) => a + n, 0);
  const share = (n) => (total > 0 ? n / total : 0);
  // The edge: the isolate's L0 and KV.
  const fromKv = counts["HIT/L0"] + counts["HIT/KV"] + counts["STALE/KV"];
  const fromRedis = counts["HIT/REDIS"] + counts["STALE/REDIS"];
  const minutes = result.seconds / 60;
  const listRequests = result.requests + probe.measuredReads;
  const delays = probe.writes.map((w) => w.seenAfterMs).filter((v) => v !== null);
  const unloaded = probe.unloaded.map((w) => w.seenAfterMs);
  return {
    writeRate,
    label: `${SCENARIOS.mix}, ${fmt.rate(writeRate)}`,
    seconds,
    requests: result.requests,
    rps: result.rps,
    latencyMs: result.latencyMs,
    errors: result.errors,
    errorKinds: result.errorKinds,
    tallies: t,
    layers: Object.fromEntries(Object.entries(counts).map(([k, n]) => [k, share(n)])),
    cacheServed: share(fromKv + fromRedis),
    hitOnly: share(counts["HIT/L0"] + counts["HIT/KV"] + counts["HIT/REDIS"]),
    redisOfKvMisses: total - fromKv > 0 ? fromRedis / (total - fromKv) : 0,
    writes: {
      count: probe.writes.length,
      perMinute: probe.writes.length / (probe.elapsedMs / 60_000),
      unseen: probe.writes.length - delays.length,
      measured: probe.measuredWrites,
      // What one write costs the cache: the measured answers from the database per measured write.
      databaseAnswersPerWrite: probe.measuredWrites > 0 ? counts.database / probe.measuredWrites : null,
      firstFreshFrom: probe.writes.reduce((acc, w) => (w.servedBy ? { ...acc, [w.servedBy]: (acc[w.servedBy] ?? 0) + 1 } : acc), {}),
      staleBeforeFresh: probe.writes.reduce((a, w) => a + w.staleAnswers, 0),
      // From the commit to the end of the first answer labelled STALE to the written page's
      // polling (writes with one): by then the edge had the invalidation.
      firstStaleMs: spread(probe.writes.map((w) => w.firstStaleAfterMs).filter((v) => v !== null)),
      unloadedFirstStaleMs: spread(probe.unloaded.map((w) => w.firstStaleAfterMs).filter((v) => v !== null)),
      delayMs: spread(delays),
      unloadedDelayMs: { samples: unloaded, ...spread(unloaded.filter((v) => v !== null)) },
      // Each unloaded write: its delay, the answer that first showed it, the STALE answers before.
      unloaded: probe.unloaded,
    },
    dbQueries: {
      total: queries,
      perMinute: queries / minutes,
      baselinePerMinute: (listRequests * queriesPerRequest) / minutes,
      queriesPerRequest,
      reduction: 1 - queries / (listRequests * queriesPerRequest),
      // By role and the most called statements: PostgREST's (the worker's reads) from the backend's.
      ...topQueries,
    },
    freshness: {
      boundMs: settings.staleBoundMs,
      checked: probe.checked,
      matched: probe.matched,
      labelledStale: probe.labelledStale,
      staleReads: probe.staleReads.length,
      failed: probe.failed,
      void: probe.void,
      abandoned: probe.abandoned,
      details: probe.staleReads,
      failures: probe.failures,
      // Every answer during the writes, judged against the prober's history of its writes.
      duringWrites: probe.duringWrites,
    },
    // For the scenario table and its chart.
    servedAs: "cache (HIT or STALE)",
    servedShare: share(fromKv + fromRedis),
  };
}
