// The benchmark's outputs: the tables printed to the terminal and bench/results/<date>.md (the
// charts beside it are bench/lib/chart.mjs's).
import { LITTLE_TOLERANCE } from "./wrk.mjs";
import { PRICES, SPEC_COSTS } from "./cost.mjs";

const fmt = {
  int: (n) => Math.round(n).toLocaleString("en-US"),
  ms: (n) => (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2)),
  pct: (x, digits = 1) => `${(x * 100).toFixed(digits)} %`,
  bytes: (n) => `${n.toLocaleString("en-US")} B (${(n / 1000).toFixed(0)} KB)`,
  rate: (n) => `${n} write${n === 1 ? "" : "s"}/s`,
  /** Microseconds, or a dash when not measured. */
  micros: (us) => (us === null || us === undefined ? "—" : Math.round(us).toLocaleString("en-US")),
};
export { fmt };

/** Little's law's column: connections ÷ req/s (the mean it implies), the measured mean's ratio
 * to it, and a flag when that is off by more than the tolerance. */
const little = (l) => (l ? `${fmt.ms(l.expectedMs)} (${l.ratio.toFixed(2)})${l.ok ? "" : " **BROKEN**"}` : "—");

/** The scenario table's rows: scenario, req/s, mean, p50, p95, p99, max (all from the same
 * requests), Little's law, errors, p50 alone, workerd CPU per request loaded and alone, served as. */
export function scenarioRows(scenarios) {
  return scenarios.map((s) => [
    s.label,
    fmt.int(s.rps),
    fmt.ms(s.latencyMs.mean),
    fmt.ms(s.latencyMs.p50),
    fmt.ms(s.latencyMs.p95),
    fmt.ms(s.latencyMs.p99),
    fmt.ms(s.latencyMs.max),
    little(s.littlesLaw),
    fmt.int(s.errors),
    s.aloneMs ? fmt.ms(s.aloneMs.p50) : "—",
    fmt.micros(s.cpuUsPerRequest),
    fmt.micros(s.aloneCpuUsPerRequest),
    s.servedAs ? `${s.servedAs} ${fmt.pct(s.servedShare)}` : "—",
  ]);
}

const SCENARIO_HEADER = ["scenario", "req/s", "mean ms", "p50 ms", "p95 ms", "p99 ms", "max ms", "connections ÷ req/s ms (mean ÷ it)", "errors", "alone p50 ms", "workerd CPU µs/req", "alone CPU µs/req", "served as"];
const TARGET_HEADER = ["target", "measured", "ratio to target", "met"];

/** What the Scenarios section says of Little's law: the rows that break it, or that none does. */
function brokenLittle(scenarios) {
  const broken = scenarios.filter((x) => x.littlesLaw && !x.littlesLaw.ok);
  return broken.length ? `: ${broken.map((x) => x.label).join(", ")}` : " (none here)";
}

/** Target rows: what, measured, ratio, met. */
export function targetRows(targets) {
  return targets.map((t) => [t.name, t.measured, t.ratio, t.met === null ? "—" : t.met ? "yes" : "no"]);
}

/** A Markdown table; the columns at `rightAligned` aligned right. */
export function markdownTable(header, rows, rightAligned = []) {
  const align = header.map((_, i) => (rightAligned.includes(i) ? "---:" : "---"));
  return [header, align, ...rows].map((r) => `| ${r.join(" | ")} |`).join("\n");
}

/** A plain-text table: the first `leftColumns` columns and the last aligned left, the others right. */
function textTable(header, rows, leftColumns = 1) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (r) => r.map((c, i) => (i < leftColumns || i === r.length - 1 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join("  ");
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

/** What is printed at the end of a run. */
export function consoleReport(r) {
  const parts = [textTable(SCENARIO_HEADER, scenarioRows(r.scenarios))];
  if (r.mix) {
    parts.push(textTable(ANSWERS_HEADER, answerRows(r.mix.rates)), textTable(FRESHNESS_HEADER, freshnessRows(r.mix.rates)));
    const stale = staleReadLines(r.mix.rates);
    if (stale.length) parts.push(["Stale reads:", ...stale].join("\n"));
  }
  parts.push(textTable(TARGET_HEADER, targetRows(r.targets)));
  return parts.join("\n\n");
}

const ANSWERS_HEADER = ["writes/s", "req/s", "p50 ms", "cache-served", "HIT", "HIT/L0", "HIT/KV", "STALE/KV", "HIT/REDIS", "STALE/REDIS", "database", "queries/min", "without cache", "reduced"];
const FRESHNESS_HEADER = ["writes/s", "writes (measured)", "db answers/write", "write → edge loaded p50/p95/p99 ms", "unloaded p50/p95/p99 ms", "checked", "matched", "labelled STALE", "stale reads", "void", "given up"];

/** Per write rate: how the mix's list answers were served, and the database queries. */
function answerRows(rates) {
  return rates.map((x) => [
    x.writeRate, fmt.int(x.rps), fmt.ms(x.latencyMs.p50), fmt.pct(x.cacheServed, 2), fmt.pct(x.hitOnly, 2),
    ...["HIT/L0", "HIT/KV", "STALE/KV", "HIT/REDIS", "STALE/REDIS", "database"].map((k) => fmt.pct(x.layers[k], 2)),
    fmt.int(x.dbQueries.perMinute), fmt.int(x.dbQueries.baselinePerMinute), fmt.pct(x.dbQueries.reduction, 2),
  ]);
}

const spread = (d) => (d ? `${fmt.int(d.p50)} / ${fmt.int(d.p95)} / ${fmt.int(d.p99)}` : "—");

/** Per write rate: the writes, their delay to the edge, and the prober's checks against SQL. */
function freshnessRows(rates) {
  return rates.map((x) => {
    const w = x.writes;
    const f = x.freshness;
    const unseen = (n) => (n ? ` (${n} not seen in 10 s)` : "");
    return [
      x.writeRate, `${w.count} (${w.measured})`, w.databaseAnswersPerWrite === null ? "—" : w.databaseAnswersPerWrite.toFixed(1),
      spread(w.delayMs) + unseen(w.unseen), spread(w.unloadedDelayMs.count ? w.unloadedDelayMs : null) + unseen(w.unloadedDelayMs.samples.filter((v) => v === null).length),
      f.checked, f.matched, f.labelledStale, f.staleReads + (f.failed ? ` (+${f.failed} not 200)` : ""), f.void, f.abandoned,
    ];
  });
}

/** One line per stale read: which page, how it was labelled, how long after the last write to its workspace. */
function staleReadLines(rates) {
  const when = (d) => (d.afterWriteMs === null ? "no write to its workspace before"
    : `${fmt.int(d.afterWriteMs)} ms after the last write to its workspace committed${d.afterServedMs === null ? "" : `, ${fmt.int(d.afterServedMs)} ms after the worker first served the last write it served`}`
      + (d.neverServedWrites ? `; ${d.neverServedWrites} writes to that workspace were never served within 10 s` : ""));
  return rates.flatMap((x) => x.freshness.details.map((d) => `- at ${fmt.rate(x.writeRate)}: \`${d.path}\` (user ${d.user}) ${d.layer}, ${when(d)}`));
}

/** bench/results/<date>.md */
export function markdownReport(r, chartFile, ratesChartFile) {
  const m = r.machine;
  const s = r.settings;
  const out = [];
  out.push(`# Benchmark ${r.date}`, "");
  out.push(`Measured on ${m.cores} cores (${m.cpu}), ${m.memoryGiB} GiB memory, ${m.os}; everything on loopback on this one machine: `
    + `wrk, workerd (Miniflare), the backend (release build), Redis, PostgREST behind the local Supabase gateway, and PostgreSQL with ${fmt.int(s.contacts)} seeded contacts${s.note ? ` (${s.note})` : ""}. `
    + `Each scenario: ${s.connections} connections on ${s.threads} wrk threads for ${s.durationSeconds} s after a ${s.warmupSeconds} s warm-up, then the same request on one connection for up to 2 s ("alone"); `
    + (r.scenarios.some((x) => x.rounds) ? `${r.scenarios.filter((x) => x.rounds).map((x) => x.label).join(", ")} were measured side by side instead, in ${s.rounds} rounds, each round running each of them in turn for ${+(s.durationSeconds / s.rounds).toFixed(2)} s after a ${s.warmupSeconds} s warm-up (then alone); their figures are their rounds taken together (all requests over all measured seconds; mean, percentiles and max from the rounds' latencies merged); ` : "")
    + `the mix on ${s.mixConnections ?? s.connections} connections for ${s.mixSeconds} s after a ${s.mixWarmupSeconds} s warm-up at each of ${s.writeRates.join(", ")} contact writes/s. `
    + `Run started ${r.startedAt}, took ${fmt.int(r.totalSeconds)} s in all.`, "");
  out.push("## Scenarios", "", markdownTable(SCENARIO_HEADER, scenarioRows(r.scenarios), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]), "");
  out.push(`Each row's req/s, mean, percentiles and max describe the same requests: the latencies wrk measured, without the samples wrk 4 adds for coordinated omission (bench/lib/wrk.mjs). Little's law: with every connection one request in flight, the mean is connections ÷ req/s; a row whose mean is more than ${LITTLE_TOLERANCE * 100} % away from it is flagged **BROKEN**${brokenLittle(r.scenarios)}. What wrk itself would have reported (its made-up samples in), p99: ${r.scenarios.filter((x) => x.wrkCorrectedMs).map((x) => `${x.label} ${fmt.ms(x.wrkCorrectedMs.p99)} ms`).join(", ")}.`, "");
  out.push(`![requests per second and latency per scenario](${chartFile})`, "");
  out.push("## Targets", "", "Reported, not enforced: no test fails on them.", "", markdownTable(TARGET_HEADER, targetRows(r.targets)), "");
  if (r.mix) {
    out.push("## The realistic mix at each write rate", "", r.mix.description, "");
    out.push(`![hit rates, database queries saved and write → edge delay against the write rate](${ratesChartFile})`, "");
    out.push("How the list answers were served (shares of the measured wrk answers) and the database queries against the same traffic without the cache:", "");
    out.push(markdownTable(ANSWERS_HEADER, answerRows(r.mix.rates), ANSWERS_HEADER.map((_, i) => i)), "");
    out.push(`The writes (all, and those made while measuring), the database answers per measured write, the delay from a write's commit to the first answer that shows it, and the prober's checks against the database (a page is checked once every write to its workspace is served and the last one is at least ${r.mix.rates[0]?.freshness.boundMs} ms old):`, "");
    out.push(markdownTable(FRESHNESS_HEADER, freshnessRows(r.mix.rates), FRESHNESS_HEADER.map((_, i) => i)), "");
    for (const x of r.mix.rates) {
      const from = Object.entries(x.writes.firstFreshFrom).map(([k, v]) => `${k} ${v}`).join(", ");
      out.push(`- At ${fmt.rate(x.writeRate)}: asking for each page once before it took ${x.start.fillSeconds.toFixed(0)} s, ${fmt.int(x.start.notHit)} of ${fmt.int(x.start.answers)} answers not a HIT; measured answers ${Object.entries(x.tallies).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${fmt.int(v)}`).join(", ")}; `
        + `${fmt.int(x.errors)} errors; Redis answered ${fmt.pct(x.redisOfKvMisses, 1)} of KV misses; `
        + `database queries by role ${Object.entries(x.dbQueries.byRole ?? {}).map(([k, v]) => `${k} ${fmt.int(v)}`).join(", ") || "none"}`
        + (from ? `; first fresh answer to a write from ${from}; ${fmt.int(x.writes.staleBeforeFresh)} answers labelled STALE to the written pages' polling before that` : "")
        + [["under the mix", x.writes.firstStaleMs], ["without load", x.writes.unloadedFirstStaleMs]].filter(([, d]) => d)
          .map(([when, d]) => `; ${when}, the first STALE answer to the polling came p50 ${fmt.int(d.p50)} ms, p95 ${fmt.int(d.p95)} ms after the commit (${d.count} writes)`).join("") + ".");
    }
    const during = r.mix.rates.filter((x) => x.freshness.duringWrites && x.writeRate > 0).map((x) => {
      const d = x.freshness.duringWrites;
      return `- At ${fmt.rate(x.writeRate)}, during the writes (no quiet needed; bench/lib/history.mjs): ${fmt.int(d.answers)} answers, ${fmt.int(d.judged)} judged, **${fmt.int(d.older)} older than the bound**; given up: ${fmt.int(d.givenUp.failed)} not a 200 list, ${fmt.int(d.givenUp.noWrittenContact)} with no contact the prober wrote, ${fmt.int(d.givenUp.unknownName)} with a name it never gave.`;
    });
    if (during.length) out.push("", "Every answer the prober got during the writes (its polls and checks), judged against its history of its own writes: older than the bound when it shows a contact under a name a later write had replaced more than the bound before the request was sent:", "", ...during);
    out.push("");
    const stale = staleReadLines(r.mix.rates);
    if (stale.length) out.push("Stale reads:", "", ...stale, "");
    const failed = r.mix.rates.flatMap((x) => x.freshness.failures.map((d) => `- at ${fmt.rate(x.writeRate)}: \`${d.path}\` (user ${d.user}) answered ${d.status} ${d.layer}`));
    if (failed.length) out.push("Checks not answered 200:", "", ...failed, "");
  }
  out.push(...costSection(r));
  out.push("## Size and start-up", "");
  out.push(`- Worker wasm (\`${r.wasm.worker.file}\`, release, after wasm-opt): ${fmt.bytes(r.wasm.worker.raw)} raw, **${fmt.bytes(r.wasm.worker.gzipped)} gzipped** (gzip -9).`);
  if (r.wasm.floor) out.push(`- Floor worker wasm: ${fmt.bytes(r.wasm.floor.raw)} raw, ${fmt.bytes(r.wasm.floor.gzipped)} gzipped.`);
  if (r.startup) {
    const st = r.startup;
    out.push(`- Worker start to first response: **${fmt.int(st.medianMs)} ms** (median of ${st.samples.length}: ${st.samples.map((x) => fmt.int(x.firstMs)).join(", ")} ms), `
      + `of which workerd ready after ${fmt.int(st.medianReadyMs)} ms; answered as ${[...new Set(st.samples.map((x) => x.servedAs))].join(", ")}.`);
  }
  out.push(`- Stack start-up: PostgreSQL, migrations and the ${fmt.int(s.contacts)}-contact seed ${fmt.int(r.stack.seedSeconds)} s; every service ready after ${fmt.int(r.stack.readySeconds)} s.`, "");
  out.push("## Versions", "", ...Object.entries(r.versions).map(([k, v]) => `- ${k}: ${v}`), "");
  out.push("## How each number is measured", "", "See `bench/README.md`. Command: `" + r.command + "`.", "");
  return out.join("\n");
}

// The scale run's outputs (bench/lib/scale.mjs): bench/results/<date>-scale.md and the console.

const SCALE_HEADER = ["contacts", "page", "read", "alone p50 ms", "alone p95 ms", "alone p99 ms", "loaded p50 ms", "loaded p95 ms", "loaded p99 ms", "loaded req/s", "errors", "served as"];

/** One row per size, page and path: the percentiles alone and under load, the throughput. */
function scaleRows(sizes, paths) {
  return sizes.flatMap((size) => size.runs.map((r) => [
    fmt.int(size.contacts), `\`${r.query}\``, paths[r.path],
    ...["p50", "p95", "p99"].map((p) => fmt.ms(r.aloneMs[p])), ...["p50", "p95", "p99"].map((p) => fmt.ms(r.latencyMs[p])),
    fmt.int(r.rps), fmt.int(r.errors), `${r.servedAs} ${fmt.pct(r.servedShare)}`,
  ]));
}

/** Per page and path: the p50 alone, the p50 under load and req/s at each size, and the growth of the p50 alone from the smallest size to the largest. */
function growthTable(sizes, pages, paths) {
  const at = (label) => sizes.map((s) => `${label} at ${fmt.int(s.contacts)}`);
  const header = ["page", "read", ...at("alone p50 ms"), "alone p50 growth", ...at("loaded p50 ms"), ...at("req/s")];
  const rows = [];
  for (const page of pages) {
    for (const path of Object.keys(paths)) {
      const runs = sizes.map((s) => s.runs.find((r) => r.page === page.id && r.path === path));
      if (runs.every((r) => !r)) continue;
      const [first, last] = [runs[0], runs[runs.length - 1]];
      const growth = sizes.length > 1 && first && last ? `×${(last.aloneMs.p50 / first.aloneMs.p50).toFixed(2)}` : "—";
      const cell = (f) => runs.map((r) => (r ? f(r) : "—"));
      rows.push([`\`${page.query}\``, paths[path], ...cell((r) => fmt.ms(r.aloneMs.p50)), growth, ...cell((r) => fmt.ms(r.latencyMs.p50)), ...cell((r) => fmt.int(r.rps))]);
    }
  }
  return { header, rows };
}

/** What the scale run prints at its end. */
export function scaleConsoleReport(r, pages, paths) {
  const growth = growthTable(r.sizes, pages, paths);
  const plain = (rows) => rows.map((row) => row.map((c) => String(c).replaceAll("`", "")));
  const tables = [[SCALE_HEADER, plain(scaleRows(r.sizes, paths)), 3], [growth.header, plain(growth.rows), 2], [TARGET_HEADER, plain(targetRows(r.targets)), 2]];
  return tables.filter(([, rows]) => rows.length).map(([header, rows, right]) => textTable(header, rows, right)).join("\n\n");
}

/** bench/results/<date>-scale.md */
export function scaleMarkdownReport(r, chartFile, pages, paths) {
  const m = r.machine;
  const s = r.settings;
  const growth = growthTable(r.sizes, pages, paths);
  const out = [`# Scale benchmark ${r.date}`, ""];
  out.push(`Measured on ${m.cores} cores (${m.cpu}), ${m.memoryGiB} GiB memory, ${m.os}; everything on loopback on this one machine. `
    + (r.sizes.some((size) => size.runs.length)
      ? `For each seed size, a stack of its own; for each page of board 1 of workspace 1, as user 1, each read: ${s.connections} connections on ${s.threads} wrk threads for ${s.durationSeconds} s after a ${s.warmupSeconds} s warm-up ("loaded"), then one connection for ${s.aloneSeconds} s ("alone"). `
      : "For each seed size, a stack of its own, on which only the matrix ran (below). ")
    + `Run started ${r.startedAt}, took ${fmt.int(r.totalSeconds)} s in all.`, "");
  out.push("| contacts seeded | board 1's contacts | its lists' totals (counters) | seed | stack ready |", "| ---: | ---: | --- | ---: | ---: |");
  for (const size of r.sizes) {
    const lists = Object.entries(size.board.lists ?? {}).map(([k, v]) => `${k.replace(/^(assigned):.*/, "$1:user 1")} ${fmt.int(v)}`).join(", ");
    out.push(`| ${fmt.int(size.contacts)} | ${fmt.int(size.board.contacts)} | ${lists} | ${fmt.int(size.stack.seedSeconds)} s | ${fmt.int(size.stack.readySeconds)} s |`);
  }
  out.push("");
  // A run of the matrix alone (`--only matrix`) has no reads: their sections are left out.
  const reads = Object.entries(paths).filter(([id]) => s.only.includes(id));
  if (reads.length) out.push("Reads: " + reads.map(([id, label]) => `**${label}** (\`${id}\`)`).join(", ") + ". See `bench/README.md`, \"The scale run\".", "");
  if (r.targets.length) out.push("## Targets (issue 14)", "", "Reported, not enforced: no test fails on them.", "", markdownTable(TARGET_HEADER, targetRows(r.targets)), "");
  if (growth.rows.length) {
    out.push("## Miss latency against board size", "", `![miss latency against board size, per page](${chartFile})`, "");
    out.push(markdownTable(growth.header, growth.rows, growth.header.map((_, i) => i).slice(2)), "");
  }
  const every = scaleRows(r.sizes, paths);
  if (every.length) out.push("## Every measurement", "", markdownTable(SCALE_HEADER, every, [0, 3, 4, 5, 6, 7, 8, 9, 10]), "");
  out.push("## Versions", "", ...Object.entries(r.versions).map(([k, v]) => `- ${k}: ${v}`), "");
  out.push("## How each number is measured", "", "See `bench/README.md`. Command: `" + r.command + "`.", "");
  return out.join("\n");
}

const COST_HEADER = ["run", "reads", "Worker requests", "workerd CPU ms", "KV reads", "KV writes", "Durable Object requests", "Redis commands", "database statements", "$ per 1 M reads"];

/** Operations per read and the price of a million reads, as a table row. */
function costRow(label, cost) {
  const o = cost.operations;
  const n = (v, digits = 3) => (v === null ? "—" : v.toFixed(digits));
  return [label, fmt.int(o.reads), n(o.workerRequests), n(o.cpuMs, 2), n(o.kvReads), n(o.kvWrites), n(o.durableObjectRequests), n(o.redisCommands), n(o.databaseStatements), o.workerRequests === null ? "— (no `/metrics`)" : `$${cost.perMillionReads.total.toFixed(2)}`];
}

/** The cost of a million list reads at each write rate of the mix (for README): "$x at 0 writes/s, …". */
export function mixCostLine(rates) {
  return rates.filter((x) => x.cost).map((x) => `$${x.cost.perMillionReads.total.toFixed(2)} at ${fmt.rate(x.writeRate)}`).join(", ");
}

/** The "Cost per million list reads" section: per scenario and per write rate of the mix. */
function costSection(r) {
  const rows = [...r.scenarios.filter((x) => x.cost && x.id !== "mix").map((x) => costRow(x.label, x.cost)), ...(r.mix?.rates ?? []).filter((x) => x.cost).map((x) => costRow(x.label, x.cost))];
  if (!rows.length) return [];
  const p = PRICES.perMillion;
  const mix = r.mix ? mixCostLine(r.mix.rates) : "";
  return [
    "## Cost per million list reads", "",
    ...(mix ? [`**The mix: ${mix}** (Cloudflare's items only; workerd's CPU is an upper bound, see below).`, ""] : []),
    `Billable operations per request counted by the stack's own counters during each measured run (bench/lib/cost.mjs): the worker's \`/metrics\` \`totals\` (requests it served, every KV read and write it issued, its calls to the state home, the Durable Object), workerd's CPU time, Redis's INFO commandstats and pg_stat_statements (the benchmark's own SQL left out). For the mix, per list read answered (wrk's and the prober's); its Worker requests also hold the backend's webhook calls and the `+
      `prober's polls. Priced at Cloudflare's list prices beyond the included amounts, read ${PRICES.readOn}: Worker requests $${p.workerRequests}/M and CPU $${p.cpuMs}/M ms (${PRICES.sources.workers}), KV reads $${p.kvReads.toFixed(2)}/M and writes $${p.kvWrites.toFixed(2)}/M (${PRICES.sources.kv}), Durable Object requests $${p.durableObjectRequests}/M (${PRICES.sources.durableObjects}; its duration, $12.50/M GB-s, not counted). `
      + "workerd's CPU is that of the whole local runtime (Miniflare's emulated KV, the state home and the worker together), so it overstates what Cloudflare bills the worker; the JavaScript hit and the floors have no `/metrics`, so their KV and Durable Object columns are empty. Redis and the database are billed by the month, not per operation: counted, not priced.", "",
    markdownTable(COST_HEADER, rows, [1, 2, 3, 4, 5, 6, 7, 8, 9]), "",
    "The spec's cost table, beside it (SPEC.md, \"Cost Analysis\"):", "",
    markdownTable(["layer", "cost"], SPEC_COSTS), "",
  ];
}
