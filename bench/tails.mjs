// Where the KV hit's latency tail comes from (issue 29): side-by-side experiments on one bench
// stack. Each wrk setting (connections × threads) in turn runs each scenario for --duration after
// a 1 s warm-up, and the settings take turns --pairs times (A, B, C, A, B, C, …), so what drifts
// on the shared machine falls on all of them. Per run: req/s, mean, p50, p99, max (the latencies
// wrk measured, its coordinated-omission samples out: bench/lib/wrk.mjs), Little's law, how many
// requests took 100 ms or more and 500 ms or more, what wrk would have reported as p99, and the
// CPU wrk itself used (its share of the 2 cores the stack shares with it).
// Writes <date>-tails.md and .json; docs/benchmarks.md, "Tails", says what they showed.
//
//   node bench/tails.mjs [--settings 32x2,32x1,8x1] [--only floor,floor-kv,kv,kv-js,kv-l0]
//                        [--duration 4s] [--pairs 2] [--name <date>-tails] [--note "..."] [--out bench/results]
import { readFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { ROOT } from "../scripts/stack.mjs";
import { localDate, positive, seconds as duration } from "./lib/args.mjs";
import { machine } from "./lib/machine.mjs";
import { tokensFor } from "./lib/mix.mjs";
import { SCENARIOS, scenarioPlan, startBenchStack, until } from "./lib/plan.mjs";
import { fmt, markdownTable } from "./lib/report.mjs";
import { prepare } from "./lib/run.mjs";
import { littlesLaw, runWrk } from "./lib/wrk.mjs";

const { values } = parseArgs({
  options: {
    settings: { type: "string", default: "32x2,32x1,8x1" },
    only: { type: "string", default: "floor,floor-kv,kv,kv-js,kv-l0" },
    duration: { type: "string", default: "4s" },
    pairs: { type: "string", default: "2" },
    name: { type: "string" },
    note: { type: "string" },
    out: { type: "string", default: "bench/results" },
  },
});
const settings = values.settings.split(",").map((s) => {
  const [c, t] = s.split("x").map((n) => Math.round(positive(n, "settings")));
  return { connections: c, threads: Math.min(t ?? 1, c), name: `${c} conn × ${t ?? 1} thr` };
});
const only = values.only.split(",").map((s) => s.trim());
const seconds = duration(values.duration, "duration");
const pairs = Math.round(positive(values.pairs, "pairs"));
const log = (msg) => process.stderr.write(`[tails] ${msg}\n`);

/** CPU seconds of this process's reaped children (wrk, once it has exited): /proc/self/stat's
 * cutime + cstime. */
function childCpuSeconds() {
  const stat = readFileSync("/proc/self/stat", "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[13]) + Number(fields[14])) / 100;
}

const over = (histogram, ms) => histogram.filter(([us]) => us >= ms * 1000).reduce((a, [, c]) => a + c, 0);

const startedAt = new Date();
const stack = await startBenchStack(100_000);
const runs = [];
try {
  const plan = scenarioPlan(stack, tokensFor(stack.secrets.SUPABASE_JWT_SECRET));
  const ready = [];
  for (const id of only) ready.push({ id, p: plan.scenarios[id], ...(await prepare(stack, id, plan.scenarios[id])) });
  for (let pair = 1; pair <= pairs; pair++) {
    for (const setting of settings) {
      for (const { id, p, file, request } of ready) {
        await p.before?.();
        await until(p.url, request, p.expect);
        const wrk = { url: p.url, file, connections: setting.connections, threads: setting.threads };
        await runWrk({ ...wrk, seconds: 1 });
        const cpuBefore = childCpuSeconds();
        const r = await runWrk({ ...wrk, seconds });
        const wrkCpu = (childCpuSeconds() - cpuBefore) / r.seconds;
        const run = {
          pair, setting: setting.name, id, label: SCENARIOS[id], rps: r.rps, latencyMs: r.latencyMs, littlesLaw: littlesLaw(r),
          over100: over(r.histogram, 100), over500: over(r.histogram, 500), requests: r.requests, errors: r.errors, wrkP99: r.wrkCorrectedMs.p99, wrkCpu,
        };
        runs.push(run);
        log(`pair ${pair}, ${setting.name}, ${run.label}: ${fmt.int(run.rps)} req/s, mean ${fmt.ms(run.latencyMs.mean)}, p99 ${fmt.ms(run.latencyMs.p99)}, max ${fmt.ms(run.latencyMs.max)} ms, `
          + `Little ${run.littlesLaw.ratio.toFixed(2)}, ≥100 ms ${run.over100}, ≥500 ms ${run.over500}, wrk's p99 ${fmt.ms(run.wrkP99)} ms, wrk CPU ${fmt.pct(wrkCpu)}`);
      }
    }
  }
} finally {
  await stack.stop();
}

const date = localDate(startedAt);
const name = values.name ?? `${date}-tails`;
const m = machine();
const header = ["pair", "wrk", "scenario", "req/s", "mean ms", "p50 ms", "p99 ms", "max ms", "mean ÷ (conn ÷ req/s)", "≥ 100 ms", "≥ 500 ms", "wrk's own p99 ms", "wrk CPU (of one core)"];
const rows = runs.map((r) => [r.pair, r.setting, r.label, fmt.int(r.rps), fmt.ms(r.latencyMs.mean), fmt.ms(r.latencyMs.p50), fmt.ms(r.latencyMs.p99), fmt.ms(r.latencyMs.max),
  `${r.littlesLaw.ratio.toFixed(2)}${r.littlesLaw.ok ? "" : " **BROKEN**"}`, r.over100, r.over500, fmt.ms(r.wrkP99), fmt.pct(r.wrkCpu)]);
const md = [
  `# Tails ${date}`, "",
  `Measured on ${m.cores} cores (${m.cpu}), ${m.memoryGiB} GiB memory, ${m.os}; everything on loopback${values.note ? `; ${values.note}` : ""}. `
    + `\`node bench/tails.mjs --settings ${values.settings} --only ${values.only} --duration ${values.duration} --pairs ${pairs}\`: each wrk setting in turn ran each scenario for ${seconds} s after a 1 s warm-up; the settings took turns ${pairs} times. `
    + `Latencies are those wrk measured, without its coordinated-omission samples ("wrk's own p99" has them). Run started ${startedAt.toISOString()}.`, "",
  markdownTable(header, rows, [0, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]), "",
].join("\n");
const outDir = resolve(ROOT, values.out);
mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, `${name}.md`), md);
writeFileSync(join(outDir, `${name}.json`), `${JSON.stringify({ startedAt, machine: m, settings, only, seconds, pairs, note: values.note, runs }, null, 2)}\n`);
console.log(md);
