// `npm run bench` (through scripts/bench.sh, which installs wrk and builds what is missing):
// starts the local stack with the seeded contacts, runs each scenario with wrk on loopback (the
// mix at each write rate) and writes bench/results/<date>.md, .svg, -rates.svg and .json. With
// --scale, only the scale run: a stack per seed size, the database path and direct PostgREST for
// four pages (bench/lib/scale.mjs), written to <date>-scale.md, .svg and .json. With --locations,
// only the run across Cloudflare's topology (bench/lib/run-locations.mjs), written to
// <date>-locations.md and .json.
// bench/README.md says what each number means.
//
//   node bench/run.mjs [--duration 15s] [--warmup 2s] [--rounds 5] [--connections 32] [--threads 2]
//                      [--mix-warmup 10s] [--mix-duration 30s] [--mix-connections 8]
//                      [--write-rates 0,0.1,1,5 | --write-rate 1]
//                      [--stale-bound 1000ms] [--contacts 100000] [--only floor,kv,...] [--out bench/results]
//   node bench/run.mjs --writers [--clients 16] [--at tree,<git rev>] (bench/lib/writers.mjs: commits
//                      per second of concurrent writers with change capture on and off)
//   node bench/run.mjs --scale 100000,1000000 [--alone 5s] [--only database,postgrest,...]
//                      [--duration 15s] [--warmup 2s] [--connections 32] [--threads 2] [--out bench/results]
//   node bench/run.mjs --locations 3 --isolates 2 [--rtt 80ms] [--cache-ttl 60s] [--writes 100] [--write-rate 1]
//                      [--follow 90s] [--mix-warmup 10s] [--mix-connections 8] [--checks-per-write 2]
//                      [--contacts 100000] [--name <date>-locations] [--note "..."] [--out bench/results]
//
// This file is the command: its options and what it does with the results. bench/lib/plan.mjs
// has the stack, the scenarios and the targets; bench/lib/run.mjs and run-mix.mjs run them.
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { parseArgs } from "node:util";
import { ROOT } from "../scripts/stack.mjs";
import { localDate, positive, seconds } from "./lib/args.mjs";
import { machine, versions, wasmSize } from "./lib/machine.mjs";
import { tokensFor } from "./lib/mix.mjs";
import { SCENARIOS, SIDE_BY_SIDE, scenarioPlan, startBenchStack, targets } from "./lib/plan.mjs";
import { ratesChart, scaleChart, scenarioChart } from "./lib/chart.mjs";
import { consoleReport, fmt, markdownReport, scaleConsoleReport, scaleMarkdownReport } from "./lib/report.mjs";
import { runMix } from "./lib/run-mix.mjs";
import { measureStartup, runRounds, runScenario } from "./lib/run.mjs";
import { SCALE_CEILING_MS, SCALE_EXTRAS, SCALE_PAGES, SCALE_PATHS, runScale, scaleTargets } from "./lib/scale.mjs";
import { MATRIX_CEILING_MS, matrixMarkdown, matrixMisses } from "./lib/matrix.mjs";
import { runLocations } from "./lib/run-locations.mjs";

const USAGE = `usage: npm run bench -- [options]
  --duration 15s        measured time of each of scenarios 1-6
  --warmup 2s           unmeasured run before each of scenarios 1-6 (before each round of those measured side by side)
  --rounds 5            rounds of the scenarios measured side by side (${SIDE_BY_SIDE.join(", ")}): each round runs
                        each of them in turn (every other round in reverse) for --duration ÷ rounds; their numbers
                        are the medians of the rounds
  --connections 32      concurrent connections (wrk -c)
  --threads 2           wrk threads (wrk -t)
  --mix-warmup 10s      unmeasured replay of the mix, writes included, before its measurement at each write rate
  --mix-duration 30s    measured time of the mix at each write rate
  --mix-connections 8   concurrent connections of the mix's replay (wrk -c; its threads: --threads, at most these):
                        about as many requests per second as 32, without a queue that holds the writes' webhooks
                        for seconds (bench/README.md, "Why the mix runs on 8 connections")
  --write-rates 0,0.1,1,5  contact writes per second during the mix, one rate after another
  --write-rate 1        the mix at this one rate (--write-rates 1)
  --stale-bound 1000ms  least time after a write (once the worker serves it) before its workspace's pages are checked;
                        default: the worker's staleness bound (STALENESS_BOUND_MS)
  --checks-per-write 2  mix pages compared with the database for each write, besides the written one
  --contacts 100000     contacts seeded
  --only a,b            scenarios to run: ${Object.keys(SCENARIOS).join(",")}
  --out bench/results   where the results go (relative to the checkout, or absolute)
  --name NAME           the results' file name (default <date>)
  --note TEXT           said after the machine's description (e.g. that it was shared)

The scale run (only it runs when --scale is given; writes <date>-scale.md, .svg and .json):
  --scale 100000,1000000  seed sizes: a stack for each, one after the other; on each, four pages of board 1
                        (${SCALE_PAGES.map((p) => p.query).join(", ")}) through each read, then the matrix:
                        the database path for every filter × sort × order at pages 1, 100 and 1,000 by number
                        and by cursor, and searches with many, few and no matches (bench/lib/matrix.mjs)
  --alone 5s            time of each read alone, on one connection (after --warmup and --duration under load)
  --only a,b            reads to run: ${Object.keys({ ...SCALE_PATHS, ...SCALE_EXTRAS }).join(",")} (default all)
  --duration, --warmup, --connections, --threads, --out as above; --contacts and the mix's options do not apply

The run across Cloudflare's topology (only it runs when --locations is given; writes <date>-locations.md and .json;
docs/benchmarks.md, "Across locations"):
  --locations 3         locations, each with its own model of KV's cache over the one KV namespace
  --isolates 2          isolates (copies of the worker) per location, behind its round-robin router
  --rtt 80ms            round trip from locations 2.. to the origin (backend, Supabase, the live worker); location 1: 0
  --cache-ttl 60s       how long a location keeps a KV read result (Cloudflare's default: 60 s)
  --writes 100          psql renames under the mix, each followed in every location until served
  --write-rate 1        their rate (writes/s)
  --follow 90s          how long each write is followed in each location before it counts as not seen
  --name NAME           the results' file name (default <date>-locations)
  --note TEXT           said after the machine's description (e.g. that it was shared)
  --mix-warmup, --mix-connections (split over the locations), --checks-per-write, --contacts, --out as above`;

/** The worker's staleness bound when STALENESS_BOUND_MS is not set (src/config.rs). */
const WORKER_STALENESS_BOUND_MS = 1000;

const log = (msg) => process.stderr.write(`[bench] ${msg}\n`);

function rates(text, name) {
  const list = String(text).split(",").map((s) => s.trim()).filter(Boolean).map(Number);
  if (list.length === 0 || list.some((n) => !Number.isFinite(n) || n < 0)) throw new Error(`--${name}: expected writes per second (0 or more), comma-separated, got ${text}`);
  return list;
}

function options(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: "string", default: "15s" },
      warmup: { type: "string", default: "2s" },
      rounds: { type: "string", default: "5" },
      connections: { type: "string", default: "32" },
      threads: { type: "string", default: "2" },
      "mix-warmup": { type: "string", default: "10s" },
      "mix-duration": { type: "string", default: "30s" },
      "mix-connections": { type: "string", default: "8" },
      "write-rates": { type: "string" },
      "write-rate": { type: "string" },
      "stale-bound": { type: "string" },
      "checks-per-write": { type: "string", default: "2" },
      contacts: { type: "string" },
      only: { type: "string" },
      scale: { type: "string" },
      alone: { type: "string" },
      out: { type: "string", default: "bench/results" },
      locations: { type: "string" },
      isolates: { type: "string" },
      rtt: { type: "string" },
      "cache-ttl": { type: "string" },
      writes: { type: "string" },
      follow: { type: "string" },
      name: { type: "string" },
      note: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  if (values.locations !== undefined) return locationsOptions(values);
  for (const name of ["isolates", "rtt", "cache-ttl", "writes", "follow"]) {
    if (values[name] !== undefined) throw new Error(`--${name} is the run across locations': give it with --locations`);
  }
  const scale = values.scale === undefined ? null : values.scale.split(",").map((s) => Math.round(positive(s.trim(), "scale")));
  if (scale && values.contacts !== undefined) throw new Error("--contacts and --scale: the scale run seeds each of --scale's sizes; give one of them");
  if (!scale && values.alone !== undefined) throw new Error("--alone is the scale run's: give it with --scale");
  const known = scale ? { ...SCALE_PATHS, ...SCALE_EXTRAS } : SCENARIOS;
  const only = (values.only ?? Object.keys(known).join(",")).split(",").map((s) => s.trim()).filter(Boolean);
  const unknown = only.filter((s) => !(s in known));
  if (unknown.length) throw new Error(`--only: unknown ${scale ? "read" : "scenario"} ${unknown.join(", ")}; known: ${Object.keys(known).join(", ")}`);
  const connections = Math.round(positive(values.connections, "connections"));
  const threads = Math.min(Math.round(positive(values.threads, "threads")), connections);
  if (values["write-rates"] !== undefined && values["write-rate"] !== undefined) throw new Error("--write-rate is --write-rates with one rate: give one of them");
  return {
    durationSeconds: seconds(values.duration, "duration"),
    warmupSeconds: seconds(values.warmup, "warmup"),
    rounds: Math.round(positive(values.rounds, "rounds")),
    mixWarmupSeconds: seconds(values["mix-warmup"], "mix-warmup"),
    mixSeconds: seconds(values["mix-duration"], "mix-duration"),
    connections,
    threads,
    mixConnections: Math.round(positive(values["mix-connections"], "mix-connections")),
    writeRates: values["write-rate"] !== undefined ? rates(values["write-rate"], "write-rate").slice(0, 1) : rates(values["write-rates"] ?? "0,0.1,1,5", "write-rates"),
    // null: the worker's bound, read from the stack's bindings once it runs.
    staleBoundMs: values["stale-bound"] === undefined ? null : Math.round(seconds(values["stale-bound"], "stale-bound") * 1000),
    checksPerWrite: Math.max(0, Math.round(Number(values["checks-per-write"]))),
    contacts: Math.round(positive(values.contacts ?? "100000", "contacts")),
    only,
    out: values.out,
    name: values.name,
    note: values.note,
    ...(scale ? { scale, aloneSeconds: seconds(values.alone ?? "5s", "alone") } : {}),
  };
}

/** The options of the run across locations (--locations). */
function locationsOptions(values) {
  if (values.scale !== undefined) throw new Error("--locations and --scale are two runs: give one of them");
  const whole = (text, name) => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${name}: expected a whole number of at least 1, got ${text}`);
    return n;
  };
  const rttMs = Math.round(seconds(values.rtt ?? "80ms", "rtt") * 1000);
  const cacheTtlSeconds = seconds(values["cache-ttl"] ?? "60s", "cache-ttl");
  if (values["write-rates"] !== undefined) throw new Error("--write-rates: the run across locations writes at one rate; give --write-rate");
  return {
    locations: true,
    topology: { locations: whole(values.locations, "locations"), isolates: whole(values.isolates ?? "2", "isolates"), rttMs, cacheTtlSeconds },
    writes: whole(values.writes ?? "100", "writes"),
    writeRate: positive(values["write-rate"] ?? "1", "write-rate"),
    followMs: Math.round(seconds(values.follow ?? "90s", "follow") * 1000),
    mixWarmupSeconds: seconds(values["mix-warmup"], "mix-warmup"),
    mixConnections: Math.round(positive(values["mix-connections"], "mix-connections")),
    checksPerWrite: Math.max(0, Math.round(Number(values["checks-per-write"]))),
    contacts: Math.round(positive(values.contacts ?? "100000", "contacts")),
    name: values.name,
    note: values.note,
    out: values.out,
  };
}

async function main() {
  // The writers bench (bench/lib/writers.mjs) has options of its own and needs no built worker.
  if (process.argv.includes("--writers")) return (await import("./lib/writers.mjs")).runWriters(process.argv.slice(2));
  const settings = options(process.argv.slice(2));
  if (settings.locations) {
    for (const file of ["build/index.js", "live/build/index.js", `target/${process.env.BACKEND_PROFILE ?? "debug"}/contact-list-cache-backend`]) {
      if (!existsSync(join(ROOT, file))) throw new Error(`${file} is missing: run the benchmark with \`npm run bench\`, which builds it`);
    }
    return runLocations(settings);
  }
  for (const file of ["build/index.js", "bench/floor/build/index.js", `target/${process.env.BACKEND_PROFILE ?? "debug"}/contact-list-cache-backend`]) {
    if (!existsSync(join(ROOT, file))) throw new Error(`${file} is missing: run the benchmark with \`npm run bench\`, which builds it`);
  }
  if (process.env.BACKEND_PROFILE !== "release") log("warning: BACKEND_PROFILE is not release; `npm run bench` runs the release backend");
  const startedAt = new Date();
  if (settings.scale) return scaleRun(settings, startedAt);
  const wasm = { worker: wasmSize("build/index_bg.wasm"), floor: wasmSize("bench/floor/build/index_bg.wasm") };

  const stack = await startBenchStack(settings.contacts);
  try {
    log(`stack ready after ${stack.timings.readySeconds.toFixed(0)} s; worker on ${stack.urls.worker}`);
    const tokens = tokensFor(stack.secrets.SUPABASE_JWT_SECRET);
    const plan = scenarioPlan(stack, tokens);
    settings.staleBoundMs ??= Number(stack.bindings.STALENESS_BOUND_MS ?? WORKER_STALENESS_BOUND_MS);
    const startup = await measureStartup(stack.bindings, plan.list);

    const wrkOptions = { connections: settings.connections, threads: settings.threads };
    const byId = {};
    const sideBySide = Object.entries(plan.scenarios).filter(([id]) => SIDE_BY_SIDE.includes(id) && settings.only.includes(id));
    for (const [id, p] of Object.entries(plan.scenarios)) {
      if (!settings.only.includes(id) || id in byId) continue;
      if (!SIDE_BY_SIDE.includes(id)) byId[id] = await runScenario(stack, id, p, settings, wrkOptions);
      else for (const scenario of await runRounds(stack, sideBySide, settings, wrkOptions)) byId[scenario.id] = scenario;
    }
    const scenarios = Object.keys(SCENARIOS).filter((id) => id in byId).map((id) => byId[id]);

    let mix = null;
    if (settings.only.includes("mix")) {
      let queriesPerRequest = byId.database?.queriesPerRequest;
      if (queriesPerRequest === undefined) {
        log("mix: the database scenario did not run; counting one query per list request without the cache");
        queriesPerRequest = 1;
      }
      const mixWrk = { connections: settings.mixConnections, threads: Math.min(settings.threads, settings.mixConnections) };
      mix = await runMix(stack, settings, mixWrk, tokens, queriesPerRequest);
      for (const { label, requests, rps, connections, latencyMs, wrkCorrectedMs, littlesLaw, errors, servedAs, servedShare } of mix.rates) {
        scenarios.push({ id: "mix", label, requests, rps, connections, latencyMs, wrkCorrectedMs, littlesLaw, errors, servedAs, servedShare });
      }
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
      stack: stack.timings,
      scenarios,
      mix,
      targets: targets(byId, mix, wasm),
      wasm,
      startup,
    };
    const outDir = resolve(ROOT, settings.out); // relative to the checkout, or absolute
    mkdirSync(outDir, { recursive: true });
    const base = join(outDir, settings.name ?? date);
    writeFileSync(`${base}.svg`, scenarioChart(results));
    if (mix) writeFileSync(`${base}-rates.svg`, ratesChart(results));
    const name = settings.name ?? date;
    writeFileSync(`${base}.md`, markdownReport(results, `${name}.svg`, `${name}-rates.svg`));
    writeFileSync(`${base}.json`, `${JSON.stringify(results, null, 2)}\n`);
    console.log(`\n${consoleReport(results)}\n`);
    const shown = relative(ROOT, base).startsWith("..") ? base : relative(ROOT, base);
    log(`wrote ${shown}.md, .svg${mix ? ", -rates.svg" : ""} and .json in ${fmt.int(results.totalSeconds)} s`);
  } finally {
    if (!interrupted) await stack.stop();
  }
}

/** The scale run: each size's stack in turn, then <date>-scale.md, .svg and .json. */
async function scaleRun(settings, startedAt) {
  const { scale, durationSeconds, warmupSeconds, aloneSeconds, connections, threads, only, out } = settings;
  const wrkOptions = { connections, threads };
  const sizes = await runScale(settings, wrkOptions, () => interrupted);
  const date = localDate(startedAt);
  const results = {
    date,
    startedAt: startedAt.toISOString(),
    totalSeconds: (Date.now() - startedAt.getTime()) / 1000,
    command: `npm run bench -- ${process.argv.slice(2).join(" ")}`,
    machine: machine(),
    versions: versions(),
    settings: { scale, durationSeconds, warmupSeconds, aloneSeconds, connections, threads, only, out },
    pages: SCALE_PAGES.map(({ id, query }) => ({ id, query })),
    reads: Object.fromEntries(Object.entries(SCALE_PATHS).filter(([id]) => only.includes(id))),
    sizes,
    targets: scaleTargets(sizes),
  };
  const paths = results.reads;
  const base = join(resolve(ROOT, out), `${date}-scale`);
  mkdirSync(resolve(ROOT, out), { recursive: true });
  // The chart plots the reads; a run of the matrix alone has none, and no chart.
  const charted = sizes.some((size) => size.runs.length);
  if (charted) writeFileSync(`${base}.svg`, scaleChart(results, SCALE_PAGES, paths, SCALE_CEILING_MS));
  const matrices = sizes.filter((s) => s.matrix).map((s) => matrixMarkdown(s.contacts, s.matrix)).join("\n");
  writeFileSync(`${base}.md`, `${scaleMarkdownReport(results, `${date}-scale.svg`, SCALE_PAGES, paths)}\n${matrices}`);
  writeFileSync(`${base}.json`, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`\n${scaleConsoleReport(results, SCALE_PAGES, paths)}\n`);
  for (const size of sizes.filter((s) => s.matrix)) {
    const misses = matrixMisses(size.matrix);
    console.log(`matrix at ${fmt.int(size.contacts)}: ${misses.length ? `over ${MATRIX_CEILING_MS} ms: ${misses.join("; ")}` : "every cell held to the ceiling within it"}`);
  }
  const shown = relative(ROOT, base).startsWith("..") ? base : relative(ROOT, base);
  log(`wrote ${shown}.md${charted ? ", .svg" : ""} and .json in ${fmt.int(results.totalSeconds)} s`);
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
