// The benchmark's outputs: the table printed to the terminal, bench/results/<date>.md and the
// SVG chart beside it.

const fmt = {
  int: (n) => Math.round(n).toLocaleString("en-US"),
  ms: (n) => (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2)),
  pct: (x, digits = 1) => `${(x * 100).toFixed(digits)} %`,
  bytes: (n) => `${n.toLocaleString("en-US")} B (${(n / 1000).toFixed(0)} KB)`,
};
export { fmt };

/** The scenario table's rows: scenario, req/s, p50, p95, p99, errors, p50 alone, served as. */
export function scenarioRows(scenarios) {
  return scenarios.map((s) => [
    s.label,
    fmt.int(s.rps),
    fmt.ms(s.latencyMs.p50),
    fmt.ms(s.latencyMs.p95),
    fmt.ms(s.latencyMs.p99),
    fmt.int(s.errors),
    s.aloneMs ? fmt.ms(s.aloneMs.p50) : "—",
    s.servedAs ? `${s.servedAs} ${fmt.pct(s.servedShare)}` : "—",
  ]);
}

const SCENARIO_HEADER = ["scenario", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors", "alone p50 ms", "served as"];
const TARGET_HEADER = ["target", "measured", "ratio to target", "met"];

/** Target rows: what, measured, ratio, met. */
export function targetRows(targets) {
  return targets.map((t) => [t.name, t.measured, t.ratio, t.met === null ? "—" : t.met ? "yes" : "no"]);
}

function markdownTable(header, rows, rightAligned = []) {
  const align = header.map((_, i) => (rightAligned.includes(i) ? "---:" : "---"));
  return [header, align, ...rows].map((r) => `| ${r.join(" | ")} |`).join("\n");
}

function textTable(header, rows) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (r) => r.map((c, i) => (i === 0 || i === r.length - 1 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join("  ");
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

/** What is printed at the end of a run. */
export function consoleReport(r) {
  const parts = [textTable(SCENARIO_HEADER, scenarioRows(r.scenarios))];
  if (r.mix) parts.push(textTable(["mix", "value"], mixRows(r.mix)));
  parts.push(textTable(TARGET_HEADER, targetRows(r.targets)));
  return parts.join("\n\n");
}

function mixRows(mix) {
  const d = mix.writes.delayMs;
  return [
    ["list requests (wrk)", `${fmt.int(mix.requests)} at ${fmt.int(mix.rps)} req/s, p50 ${fmt.ms(mix.latencyMs.p50)} ms, p99 ${fmt.ms(mix.latencyMs.p99)} ms, ${fmt.int(mix.errors)} errors`],
    ["combined hit rate (KV or Redis)", fmt.pct(mix.hitRate, 2)],
    ["KV hit rate (of all lists)", fmt.pct(mix.kvHitRate, 2)],
    ["Redis hit rate (of KV misses)", fmt.pct(mix.redisHitRate, 2)],
    ["answered by the database", fmt.pct(mix.databaseShare, 2)],
    ["contact writes", `${mix.writes.count} (${mix.writes.perMinute.toFixed(1)}/min), ${mix.writes.measured} of them measured`],
    ["database answers per measured write", mix.writes.missesPerWrite === null ? "—" : fmt.int(mix.writes.missesPerWrite)],
    ["write → edge serves it, under the mix", d ? `p50 ${fmt.ms(d.p50)} ms, p95 ${fmt.ms(d.p95)} ms, max ${fmt.ms(d.max)} ms${mix.writes.unseen ? `, ${mix.writes.unseen} not seen within 10 s` : ""}` : "no writes"],
    ["the same, without load", mix.writes.unloadedDelayMs.map((v) => (v === null ? "not seen" : `${fmt.ms(v)} ms`)).join(", ") || "—"],
    ["first fresh answer from", Object.entries(mix.writes.firstFreshFrom).map(([k, v]) => `${k} ${v}`).join(", ") || "—"],
    ["database queries/min, with the cache", fmt.int(mix.dbQueries.perMinute)],
    ["database queries/min, same traffic without", fmt.int(mix.dbQueries.baselinePerMinute)],
    ["database queries reduced by", fmt.pct(mix.dbQueries.reduction, 2)],
    [`stale reads (once captured, ≥ ${mix.stale.boundMs} ms after)`, `${mix.stale.stale} of ${mix.stale.checks} checked`
      + [[mix.stale.failed, "not answered 200"], [mix.stale.void, "void (a write came in meanwhile)"], [mix.stale.abandoned, "given up (workspace never quiet)"]]
        .filter(([n]) => n > 0).map(([n, what]) => `; ${n} ${what}`).join("")],
  ];
}

/** bench/results/<date>.md */
export function markdownReport(r, chartFile) {
  const m = r.machine;
  const s = r.settings;
  const out = [];
  out.push(`# Benchmark ${r.date}`, "");
  out.push(`Measured on ${m.cores} cores (${m.cpu}), ${m.memoryGiB} GiB memory, ${m.os}; everything on loopback on this one machine: `
    + `wrk, workerd (Miniflare), the backend (release build), Redis, PostgREST behind the local Supabase gateway, and PostgreSQL with ${fmt.int(s.contacts)} seeded contacts. `
    + `Each scenario: ${s.connections} connections on ${s.threads} wrk threads for ${s.durationSeconds} s after a ${s.warmupSeconds} s warm-up, then the same request on one connection for up to 2 s ("alone"); `
    + `the mix for ${s.mixSeconds} s after a ${s.mixWarmupSeconds} s warm-up, with up to ${s.writeRate} contact writes/s. `
    + `Run started ${r.startedAt}, took ${fmt.int(r.totalSeconds)} s in all.`, "");
  out.push("## Scenarios", "", markdownTable(SCENARIO_HEADER, scenarioRows(r.scenarios), [1, 2, 3, 4, 5, 6]), "");
  out.push(`![requests per second and latency per scenario](${chartFile})`, "");
  out.push("## Targets", "", "Reported, not enforced: no test fails on them.", "", markdownTable(TARGET_HEADER, targetRows(r.targets)), "");
  if (r.mix) {
    out.push("## The realistic mix", "", r.mix.description, "", markdownTable(["measure", "value"], mixRows(r.mix)), "");
    out.push("Answers by layer: " + Object.entries(r.mix.tallies).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${fmt.int(v)}`).join(", ") + ".", "");
    if (r.mix.stale.details.length) {
      const when = (d) => (d.afterWriteMs === null ? "no write to its workspace before" : `${d.afterWriteMs} ms after the last write to its workspace`);
      out.push("Stale reads:", "", ...r.mix.stale.details.map((d) => `- \`${d.path}\` (user ${d.user}) ${d.layer}, ${when(d)}`), "");
    }
  }
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

const escapeXml = (s) => String(s).replace(/[<>&"]/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;" })[c]);

/**
 * A two-panel horizontal bar chart: requests per second (linear), and p50/p95/p99 latency
 * (logarithmic, since the layers differ by orders of magnitude).
 */
export function svgChart(r) {
  const rows = r.scenarios;
  const left = 210;
  const barArea = 520;
  const width = left + barArea + 110;
  const rowHeight = 34;
  const panel1Top = 56;
  const panel1Height = rows.length * rowHeight;
  const panel2Top = panel1Top + panel1Height + 70;
  const panel2Height = rows.length * rowHeight;
  const height = panel2Top + panel2Height + 50;
  const maxRps = Math.max(...rows.map((s) => s.rps), 1);
  const colors = { rps: "#2f6fb0", p50: "#3a9a5b", p95: "#e0a030", p99: "#c0443a" };
  const out = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="12">`);
  out.push(`<rect width="100%" height="100%" fill="#fff"/>`);
  out.push(`<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="600">contact-list-cache benchmark ${escapeXml(r.date)}: ${r.settings.connections} connections, ${escapeXml(`${r.machine.cores} cores`)}</text>`);

  out.push(`<text x="${left}" y="${panel1Top - 12}" font-weight="600">Requests per second</text>`);
  rows.forEach((s, i) => {
    const y = panel1Top + i * rowHeight;
    const w = (s.rps / maxRps) * barArea;
    out.push(`<text x="${left - 8}" y="${y + 20}" text-anchor="end">${escapeXml(s.label)}</text>`);
    out.push(`<rect x="${left}" y="${y + 6}" width="${w.toFixed(1)}" height="${rowHeight - 12}" fill="${colors.rps}"/>`);
    out.push(`<text x="${left + w + 6}" y="${y + 20}">${fmt.int(s.rps)}</text>`);
  });

  const latencies = rows.flatMap((s) => [s.latencyMs.p50, s.latencyMs.p99, s.aloneMs?.p50]).filter((v) => v > 0);
  const lo = 10 ** Math.floor(Math.log10(Math.min(...latencies, 1)));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...latencies, 10)));
  const x = (ms) => left + ((Math.log10(Math.max(ms, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * barArea;
  out.push(`<text x="${left}" y="${panel2Top - 26}" font-weight="600">Latency, ms (log scale)</text>`);
  ["p50", "p95", "p99"].forEach((p, i) => {
    out.push(`<rect x="${left + 190 + i * 70}" y="${panel2Top - 36}" width="12" height="12" fill="${colors[p]}"/><text x="${left + 206 + i * 70}" y="${panel2Top - 26}">${p}</text>`);
  });
  out.push(`<rect x="${left + 400}" y="${panel2Top - 38}" width="3" height="16" fill="#000"/><text x="${left + 409}" y="${panel2Top - 26}">p50 alone</text>`);
  for (let e = Math.log10(lo); e <= Math.log10(hi); e++) {
    const t = Number((10 ** e).toPrecision(1));
    out.push(`<line x1="${x(t).toFixed(1)}" y1="${panel2Top - 4}" x2="${x(t).toFixed(1)}" y2="${panel2Top + panel2Height}" stroke="#ddd"/>`);
    out.push(`<text x="${x(t).toFixed(1)}" y="${panel2Top + panel2Height + 16}" text-anchor="middle" fill="#555">${t}</text>`);
  }
  rows.forEach((s, i) => {
    const y = panel2Top + i * rowHeight;
    out.push(`<text x="${left - 8}" y="${y + 20}" text-anchor="end">${escapeXml(s.label)}</text>`);
    ["p50", "p95", "p99"].forEach((p, j) => {
      const w = x(s.latencyMs[p]) - left;
      out.push(`<rect x="${left}" y="${y + 5 + j * 8}" width="${Math.max(w, 1).toFixed(1)}" height="7" fill="${colors[p]}"/>`);
    });
    if (s.aloneMs) out.push(`<rect x="${(x(s.aloneMs.p50) - 1).toFixed(1)}" y="${y + 2}" width="3" height="28" fill="#000"/>`);
    out.push(`<text x="${x(s.latencyMs.p99) + 6}" y="${y + 21}" fill="#333">${fmt.ms(s.latencyMs.p50)} / ${fmt.ms(s.latencyMs.p95)} / ${fmt.ms(s.latencyMs.p99)}</text>`);
  });
  out.push("</svg>");
  return out.join("\n");
}
