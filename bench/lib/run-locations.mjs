// The benchmark across Cloudflare's topology (`npm run bench -- --locations 3 --isolates 2`): the
// stack with the worker in L locations × I isolates (scripts/stack/topology.mjs), the mix replayed
// in every location at once (wrk per location; its router spreads the requests over the
// location's isolates) and, under that load, the write-visibility scenario
// (bench/lib/locations-prober.mjs): `writes` psql renames, each followed in every location until
// served, every answer judged against the prober's history of its writes. Writes
// <name>.md and <name>.json (name: <date>-locations unless --name says).
import { randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { Worker } from "node:worker_threads";
import { ROOT, startStack } from "../../scripts/stack.mjs";
import { machine, versions, wasmSize } from "./machine.mjs";
import { EXPONENTS, MIX_REQUESTS, mixFiles, tokensFor } from "./mix.mjs";
import { spread } from "./history.mjs";
import { fmt } from "./report.mjs";
import { contactQueries, contactQueriesByRole, resetQueryCounts } from "./run.mjs";
import { runWrk, writeRequests } from "./wrk.mjs";

const log = (msg) => process.stderr.write(`[bench] ${msg}\n`);
/** Connections per location asking for every page once before the measurement. */
const FILL_CONNECTIONS = 16;
/** Database queries per list request without the cache: the committed runs measured 1.003
 * (the database scenario); one is counted here, which this run does not measure. */
const QUERIES_PER_REQUEST = 1;
/** Durable Objects' list prices (https://developers.cloudflare.com/durable-objects/platform/pricing/):
 * requests beyond the included ones, per million. */
const DO_REQUEST_PRICE_PER_MILLION_USD = 0.15;

/** The state-home calls every isolate's /metrics counts (`state_home: { reads, writes,
 * conflicts }`, since the isolate started; a conflict is a refused write, counted in writes too);
 * null when the worker counts none. */
async function stateHomeCalls(stack) {
  const total = { reads: 0, writes: 0, conflicts: 0 };
  let found = false;
  for (const loc of stack.topology.locations) {
    for (const iso of loc.isolates) {
      const res = await fetch(`${iso.url}/metrics`, { headers: stack.secrets.METRICS_TOKEN ? { Authorization: `Bearer ${stack.secrets.METRICS_TOKEN}` } : {} }).catch(() => null);
      const calls = res?.ok ? (await res.json().catch(() => null))?.state_home : null;
      if (!calls) continue;
      found = true;
      for (const k of Object.keys(total)) total[k] += Number(calls[k] ?? 0);
    }
  }
  return found ? total : null;
}

export async function runLocations(settings) {
  const startedAt = new Date();
  const { locations, isolates, rttMs, cacheTtlSeconds } = settings.topology;
  const stack = await startStack({
    contacts: settings.contacts,
    afterSeed: "create extension if not exists pg_stat_statements; create role bench_prober login superuser",
    backendEnv: { RUST_LOG: process.env.RUST_LOG ?? "warn" },
    topology: { locations, isolates, rttMs, cacheTtlSeconds },
  });
  try {
    log(`stack ready after ${stack.timings.readySeconds.toFixed(0)} s: ${locations} locations × ${isolates} isolates, ${rttMs} ms to the origin from the remote ones, KV cacheTtl ${cacheTtlSeconds} s`);
    const boundMs = Number(stack.bindings.STALENESS_BOUND_MS ?? 1000);
    const tokens = tokensFor(stack.secrets.SUPABASE_JWT_SECRET);
    const { file, pagesFile, pages } = mixFiles(stack.dir, tokens, writeRequests);
    const perLocation = Math.max(1, Math.round(settings.mixConnections / locations));
    const wrkAt = (url, more) => runWrk({ url, file, connections: perLocation, threads: 1, ...more });

    // Every page asked for once in every location, all at once (pages written back to KV expire,
    // so one location's fill must not age another's): the shared KV and Redis hold them, and each
    // location's KV cache has read them. More connections than the mix's: a remote location's
    // first reads each wait a round trip.
    const fill = await Promise.all(stack.topology.locations.map(async (loc) => {
      const t = Date.now();
      const run = await runWrk({ url: loc.url, file: pagesFile, seconds: 300, once: true, connections: FILL_CONNECTIONS, threads: 1 });
      const done = { location: loc.location, seconds: (Date.now() - t) / 1000, answers: run.requests, tallies: run.tallies };
      log(`location ${loc.location}: each of ${fmt.int(pages)} pages once in ${done.seconds.toFixed(0)} s`);
      return done;
    }));
    log(`mix in every location: ${settings.mixWarmupSeconds} s warm-up`);
    if (settings.mixWarmupSeconds > 0) await Promise.all(stack.topology.locations.map((loc) => wrkAt(loc.url, { seconds: settings.mixWarmupSeconds })));

    const homeBefore = await stateHomeCalls(stack);
    await resetQueryCounts(stack.ports.postgres);
    const writesSeconds = settings.writes / settings.writeRate;
    log(`mix in every location with ${settings.writes} writes at ${fmt.rate(settings.writeRate)} (about ${fmt.int(writesSeconds)} s), each followed in every location for at most ${settings.followMs / 1000} s`);
    const measured = Date.now();
    const prober = new Worker(new URL("./locations-prober.mjs", import.meta.url), {
      workerData: {
        pgPort: stack.ports.postgres,
        locations: stack.topology.locations.map(({ location, url, rttMs: rtt }) => ({ location, url, rttMs: rtt })),
        tokens: Object.fromEntries(tokens),
        writeRate: settings.writeRate,
        writes: settings.writes,
        boundMs,
        checksPerWrite: settings.checksPerWrite,
        followMs: settings.followMs,
        runId: randomBytes(3).toString("hex"),
        seedOffset: 0,
      },
    });
    const probed = new Promise((res, rej) => {
      prober.once("message", res);
      prober.once("error", rej);
      prober.once("exit", (code) => code !== 0 && rej(new Error(`the locations prober exited with ${code}`)));
    });
    let probe;
    let runs;
    try {
      [runs, probe] = await Promise.all([
        Promise.all(stack.topology.locations.map((loc) => wrkAt(loc.url, { seconds: Math.ceil(writesSeconds + settings.followMs / 1000 + 60), until: probed }))),
        probed,
      ]);
    } finally {
      await prober.terminate();
    }
    const seconds = (Date.now() - measured) / 1000;
    const queries = await contactQueries(stack.ports.postgres);
    const topQueries = await contactQueriesByRole(stack.ports.postgres);
    const homeAfter = await stateHomeCalls(stack);

    const results = locationResults({ settings, stack, runs, probe, queries, topQueries, seconds, boundMs, fill, pages, homeBefore, homeAfter, startedAt });
    const outDir = resolve(ROOT, settings.out);
    mkdirSync(outDir, { recursive: true });
    const base = join(outDir, settings.name ?? `${results.date}-locations`);
    writeFileSync(`${base}.md`, locationsMarkdown(results));
    writeFileSync(`${base}.json`, `${JSON.stringify(results, null, 2)}\n`);
    console.log(`\n${locationsMarkdown(results)}`);
    const shown = relative(ROOT, base).startsWith("..") ? base : relative(ROOT, base);
    log(`wrote ${shown}.md and .json in ${fmt.int(results.totalSeconds)} s`);
  } finally {
    await stack.stop();
  }
}

function locationResults({ settings, stack, runs, probe, queries, topQueries, seconds, boundMs, fill, pages, homeBefore, homeAfter, startedAt }) {
  const tallies = {};
  for (const run of runs) for (const [k, n] of Object.entries(run.tallies)) tallies[k] = (tallies[k] ?? 0) + n;
  const total = Object.values(tallies).reduce((a, n) => a + n, 0);
  const answered = (pred) => Object.entries(tallies).filter(([k]) => pred(k)).reduce((a, [, n]) => a + n, 0);
  const labelled = (label) => answered((k) => /^2\d\d /.test(k) && k.endsWith(` ${label}`));
  const fromCache = ["HIT/L0", "HIT/KV", "STALE/KV", "HIT/REDIS", "STALE/REDIS"].reduce((a, l) => a + labelled(l), 0);
  const proberReads = probe.locations.reduce((a, l) => a + l.answers, 0);
  const listRequests = total + proberReads;
  const home = homeBefore === null || homeAfter === null ? null
    : Object.fromEntries(Object.keys(homeAfter).map((k) => [k, homeAfter[k] - homeBefore[k]]));
  const homeRequests = home === null ? null : home.reads + home.writes;
  const date = startedAt.toISOString().slice(0, 10);
  return {
    date,
    startedAt: startedAt.toISOString(),
    totalSeconds: (Date.now() - startedAt.getTime()) / 1000,
    command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).map((a) => (/[\s']/.test(a) ? JSON.stringify(a) : a)).join(" ")}` : ""}`,
    note: settings.note ?? null,
    machine: machine(),
    versions: versions(),
    wasm: { worker: wasmSize("build/index_bg.wasm") },
    settings: { ...settings, boundMs },
    topology: stack.topology,
    mix: {
      description: `${fmt.int(MIX_REQUESTS)} requests drawn from Zipf distributions over the seed (exponents ${Object.entries(EXPONENTS).map(([k, v]) => `${k} ${v}`).join(", ")}; bench/lib/mix.mjs), ${fmt.int(pages)} distinct pages, replayed by one wrk per location (${Math.max(1, Math.round(settings.mixConnections / settings.topology.locations))} connections each) at its router, which spreads them over its isolates.`,
      fill,
      seconds,
      requests: total,
      rps: total / seconds,
      perLocation: runs.map((run, i) => ({ location: i + 1, requests: run.requests, rps: run.rps, latencyMs: run.latencyMs, errors: run.errors, tallies: run.tallies })),
      tallies,
      cacheServed: total > 0 ? fromCache / total : 0,
      layers: Object.fromEntries(["HIT/L0", "HIT/KV", "STALE/KV", "HIT/REDIS", "STALE/REDIS"].map((l) => [l, total > 0 ? labelled(l) / total : 0])),
      dbQueries: { total: queries, listRequests, queriesPerRequest: QUERIES_PER_REQUEST, reduction: 1 - queries / (listRequests * QUERIES_PER_REQUEST), ...topQueries },
    },
    writes: {
      count: probe.writes,
      writesEndedMs: probe.writesEndedMs,
      perLocation: probe.locations.map((l) => ({
        location: l.location,
        rttMs: l.rttMs,
        delayMs: spread(l.delays),
        unseen: l.unseen,
      })),
    },
    freshness: probe.locations.map((l) => ({
      location: l.location,
      allowanceMs: l.allowanceMs,
      answers: l.answers,
      pollReads: l.pollReads,
      checkReads: l.checkReads,
      judged: l.judged,
      olderThanBound: l.older,
      olderPolls: l.olderPolls,
      olderChecks: l.older - l.olderPolls,
      givenUp: l.givenUp,
      withGeneration: l.withGeneration,
      details: l.olderDetails,
    })),
    stateHome: home === null
      ? { requests: null, per1000Reads: null, note: "n/a: the worker's /metrics counts no state-home requests" }
      : { requests: homeRequests, ...home, per1000Reads: (homeRequests / listRequests) * 1000, costPerMillionReadsUsd: (homeRequests / listRequests) * DO_REQUEST_PRICE_PER_MILLION_USD },
  };
}

/** Issue 26's targets across locations, against this run. */
export function locationTargets(r) {
  const targets = r.writes.perLocation.map((l) => {
    const limit = r.settings.boundMs + l.rttMs;
    const p99 = l.delayMs?.p99 ?? null;
    return { target: `location ${l.location}: a psql write served within ${fmt.int(limit)} ms (bound + round trip), p99`, measured: `${p99 === null ? "—" : `${fmt.int(p99)} ms`}${l.unseen ? `, ${l.unseen} not seen within the follow` : ""}`, met: p99 !== null && p99 <= limit && l.unseen === 0 };
  });
  const older = r.freshness.reduce((a, f) => a + f.olderThanBound, 0);
  targets.push({ target: "0 answers older than the bound in any location, during the writes", measured: r.freshness.map((f) => `location ${f.location}: ${fmt.int(f.olderThanBound)} of ${fmt.int(f.judged)} judged`).join("; "), met: older === 0 });
  targets.push({ target: "the mix across locations: ≥ 97 % served by the cache", measured: fmt.pct(r.mix.cacheServed, 2), met: r.mix.cacheServed >= 0.97 });
  targets.push({ target: "the mix across locations: ≥ 95 % fewer database queries", measured: fmt.pct(r.mix.dbQueries.reduction, 1), met: r.mix.dbQueries.reduction >= 0.95 });
  return targets;
}

const ms = (v) => (v === null || v === undefined ? "—" : fmt.int(v));

export function locationsMarkdown(r) {
  const m = r.machine;
  const t = r.topology;
  const lines = [];
  lines.push(`# Benchmark across locations ${r.date}`, "");
  lines.push(`Measured on ${m.cores} cores (${m.cpu}), ${m.memoryGiB} GiB memory, ${m.os}; everything on loopback on this one machine${r.note ? `, ${r.note}` : ""}. Run started ${r.startedAt}, took ${fmt.int(r.totalSeconds)} s in all. Command: \`${r.command}\`.`, "");
  lines.push(`Topology (scripts/stack/topology.mjs, docs/benchmarks.md): ${t.locations.length} locations × ${t.isolates} isolates of the worker in one Miniflare; each location's KV behind its model of KV's cache (results, "not found" included, kept cacheTtl = ${t.cacheTtlSeconds} s; a location sees its own writes at once); location 1 beside the origin, the others ${t.rttMs} ms (a round trip) from the backend, Supabase and the live worker. Staleness bound ${r.settings.boundMs} ms. Worker wasm ${fmt.int(r.wasm.worker.gzipped)} B gzipped.`, "");
  lines.push("## Targets (issue 26)", "", "Reported, not enforced: no test fails on them.", "");
  lines.push("| target | measured | met |", "| --- | --- | --- |");
  for (const t of locationTargets(r)) lines.push(`| ${t.target} | ${t.measured} | ${t.met ? "yes" : "**no**"} |`);
  lines.push("", "## Write visibility under the mix", "");
  lines.push(`${r.writes.count} psql renames at ${r.settings.writeRate} a second while the mix ran in every location; each followed in every location (polling the written page at the location's URL, every 20 ms for 2 s, then every 250 ms to 10 s, then every second) until it showed the new name, for at most ${fmt.int(r.settings.followMs / 1000)} s. Delay: from the commit (PostgreSQL's clock) to the end of the first answer showing it.`, "");
  lines.push("| location | round trip ms | writes seen | p50 ms | p95 ms | p99 ms | max ms | not seen within the follow |", "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
  for (const l of r.writes.perLocation) lines.push(`| ${l.location} | ${l.rttMs} | ${l.delayMs?.count ?? 0} | ${ms(l.delayMs?.p50)} | ${ms(l.delayMs?.p95)} | ${ms(l.delayMs?.p99)} | ${ms(l.delayMs?.max)} | ${l.unseen} |`);
  lines.push("", "## Answers older than the bound, during the writes", "");
  lines.push("Every answer the prober got (its polls of written pages and, per write, " + `${r.settings.checksPerWrite}` + " mix pages per location) judged against its history of its own writes: older than the bound when it shows a contact under a name a later write had replaced more than the bound plus the location's round trip before the request was sent (bench/lib/history.mjs). Given up (not judged): answers that were not 200 with a list, answers showing no contact the prober wrote (nothing to judge them by), answers showing a name the prober never gave.", "");
  lines.push("| location | allowance ms | answers | judged | older than the bound (polls + checks) | given up: failed | given up: no written contact | given up: unknown name | with X-Cache-Generation |", "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
  for (const f of r.freshness) lines.push(`| ${f.location} | ${f.allowanceMs} | ${fmt.int(f.answers)} | ${fmt.int(f.judged)} | ${fmt.int(f.olderThanBound)} (${fmt.int(f.olderPolls)} + ${fmt.int(f.olderChecks)}) | ${fmt.int(f.givenUp.failed)} | ${fmt.int(f.givenUp.noWrittenContact)} | ${fmt.int(f.givenUp.unknownName)} | ${fmt.int(f.withGeneration)} |`);
  const examples = r.freshness.flatMap((f) => f.details.slice(0, 2).map((d) => ({ location: f.location, ...d })));
  if (examples.length) {
    lines.push("", "Examples of answers older than the bound:", "");
    for (const e of examples) lines.push(`- location ${e.location}, ${e.kind} of \`${e.path}\`, answered ${e.layer}${e.generation ? ` (generation ${e.generation})` : ""}: ${e.late.map((l) => `"${l.shown}", replaced ${fmt.int(l.replacedAgoMs)} ms before the request`).join("; ")}`);
  }
  const x = r.mix;
  lines.push("", "## The mix across locations", "", x.description, "");
  lines.push(`Measured ${fmt.int(x.seconds)} s (the writes and their follow): ${fmt.int(x.requests)} requests, ${fmt.int(x.rps)} req/s in all; served by the cache (HIT or STALE, L0, KV or Redis) ${fmt.pct(x.cacheServed, 2)}; `
    + `database queries ${fmt.int(x.dbQueries.total)} for ${fmt.int(x.dbQueries.listRequests)} list requests (wrk's and the prober's), ${fmt.pct(x.dbQueries.reduction, 1)} fewer than ${x.dbQueries.queriesPerRequest} a request.`, "");
  lines.push("| location | requests | req/s | p50 ms | p99 ms | errors | answers |", "| ---: | ---: | ---: | ---: | ---: | ---: | --- |");
  for (const l of x.perLocation) lines.push(`| ${l.location} | ${fmt.int(l.requests)} | ${fmt.int(l.rps)} | ${fmt.ms(l.latencyMs.p50)} | ${fmt.ms(l.latencyMs.p99)} | ${l.errors} | ${Object.entries(l.tallies).sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${fmt.int(n)}`).join(", ")} |`);
  lines.push("", `Before the measurement, every page once in each location (all locations at once, ${FILL_CONNECTIONS} connections each): ${x.fill.map((f) => `location ${f.location} ${f.seconds.toFixed(0)} s`).join(", ")}; then ${r.settings.mixWarmupSeconds} s of the mix in every location.`);
  const s = r.stateHome;
  lines.push("", "## The state home", "", s.requests === null ? `Requests per 1,000 reads: ${s.note}.` : `${fmt.int(s.requests)} requests (${fmt.int(s.reads)} reads, ${fmt.int(s.writes)} writes of which ${fmt.int(s.conflicts)} refused for a stale version; all locations, during the measurement, invalidations included) for ${fmt.int(x.dbQueries.listRequests)} list reads: ${s.per1000Reads.toFixed(2)} per 1,000 reads, $${s.costPerMillionReadsUsd.toFixed(4)} per million reads at Durable Objects' list price ($${DO_REQUEST_PRICE_PER_MILLION_USD} per million requests).`);
  lines.push("", "## Versions", "", Object.entries(r.versions).map(([k, v]) => `- ${k}: ${v}`).join("\n"), "");
  return lines.join("\n");
}
