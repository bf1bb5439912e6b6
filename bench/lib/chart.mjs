// The benchmark's charts: bench/results/<date>.svg (each scenario's throughput and latency) and
// <date>-rates.svg (the mix's hit rates, database queries saved and write → edge delay against
// the write rate).
import { fmt } from "./report.mjs";

const escapeXml = (s) => String(s).replace(/[<>&"]/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;" })[c]);

/**
 * A two-panel horizontal bar chart: requests per second (linear), and p50/p95/p99 latency
 * (logarithmic, since the layers differ by orders of magnitude).
 */
export function scenarioChart(r) {
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

/**
 * The mix against the write rate, one column per rate (evenly spaced: the rates span orders of
 * magnitude and include 0): the shares of answers served by the cache (HIT or STALE) and by HIT
 * alone and the database queries saved, with the issue's targets marked; below, the write →
 * edge delay under the mix's load (p50, p95, p99) and without load (p50); under each column, the
 * staleness checks.
 */
export function ratesChart(r) {
  const rates = r.mix.rates;
  const left = 80;
  const plotWidth = 560;
  const width = left + plotWidth + 230;
  const top1 = 84;
  const height1 = 240;
  const top2 = top1 + height1 + 90;
  const height2 = 200;
  const height = top2 + height2 + 70;
  const col = (i) => left + ((i + 0.5) * plotWidth) / rates.length;
  const out = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="12">`);
  out.push(`<rect width="100%" height="100%" fill="#fff"/>`);
  out.push(`<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="600">contact-list-cache mix against write rate ${escapeXml(r.date)}: ${r.settings.mixConnections ?? r.settings.connections} connections, ${escapeXml(`${r.machine.cores} cores`)}</text>`);

  // Panel 1: shares, from the lowest value (rounded down to 10 %) to 100 %.
  const shares = [
    { name: "cache-served (HIT + STALE)", color: "#2f6fb0", value: (x) => x.cacheServed, dy: -8 },
    { name: "HIT alone", color: "#8fb3dc", value: (x) => x.hitOnly, dy: 14 },
    { name: "database queries reduced", color: "#3a9a5b", value: (x) => x.dbQueries.reduction, dy: -8, leftOf: true },
  ];
  const lowest = Math.min(0.9, ...rates.flatMap((x) => shares.map((s) => s.value(x))).filter(Number.isFinite));
  const lo = Math.max(0, Math.floor(lowest * 10 - 0.5) / 10);
  const y1 = (v) => top1 + height1 - ((Math.max(v, lo) - lo) / (1 - lo)) * height1;
  out.push(`<text x="${left}" y="${top1 - 30}" font-weight="600">Share of list answers served by the cache, and database queries saved</text>`);
  const step = 1 - lo > 0.35 ? 0.1 : 0.05;
  for (let v = lo; v <= 1.0001; v += step) {
    out.push(`<line x1="${left}" y1="${y1(v).toFixed(1)}" x2="${left + plotWidth}" y2="${y1(v).toFixed(1)}" stroke="#ddd"/>`);
    out.push(`<text x="${left - 6}" y="${(y1(v) + 4).toFixed(1)}" text-anchor="end" fill="#555">${Math.round(v * 100)} %</text>`);
  }
  // The issue's targets, where they apply: ≥ 97 % combined and ≥ 90 % fewer queries at 1 write/s, ≥ 90 % combined at 5.
  const marks = [[1, 0.97, "#2f6fb0"], [1, 0.9, "#3a9a5b"], [5, 0.9, "#2f6fb0"]];
  for (const [rate, v, color] of marks) {
    const i = rates.findIndex((x) => x.writeRate === rate);
    if (i >= 0 && v >= lo) target(out, col(i), y1(v), color);
  }
  shares.forEach((s) => line(out, rates.map((x, i) => [col(i), s.value(x)]), y1, s.color, (v) => fmt.pct(v, 1), s.dy, { leftOf: s.leftOf }));
  legend(out, left + plotWidth + 20, top1, shares.map((s) => [s.name, s.color]));
  legendTarget(out, left + plotWidth + 20, top1 + shares.length * 18, "target, where issue 13 sets one");

  // Panel 2: write → edge delay, from 0 to the largest value (at least 1 s), rounded up.
  const delays = [
    { name: "under the mix, p50", color: "#3a9a5b", value: (x) => x.writes.delayMs?.p50, dy: -8, leftOf: true },
    { name: "under the mix, p95", color: "#e0a030", value: (x) => x.writes.delayMs?.p95, unlabelled: true },
    { name: "under the mix, p99", color: "#c0443a", value: (x) => x.writes.delayMs?.p99, dy: -8 },
    { name: "without load, p50", color: "#888", value: (x) => x.writes.unloadedDelayMs?.p50, dy: 14, dashed: true },
  ];
  const biggest = Math.max(1000, ...rates.flatMap((x) => delays.map((d) => d.value(x))).filter(Number.isFinite));
  const magnitude = 10 ** Math.floor(Math.log10(biggest));
  const unit = [0.1, 0.2, 0.5, 1].map((k) => k * magnitude).find((u) => Math.ceil(biggest / u) <= 6) ?? magnitude;
  const hi = Math.ceil(biggest / unit) * unit;
  const y2 = (v) => top2 + height2 - (v / hi) * height2;
  out.push(`<text x="${left}" y="${top2 - 30}" font-weight="600">Write → edge serves it, ms (from the commit to the first fresh answer)</text>`);
  for (let v = 0; v <= hi; v += unit) {
    out.push(`<line x1="${left}" y1="${y2(v).toFixed(1)}" x2="${left + plotWidth}" y2="${y2(v).toFixed(1)}" stroke="#ddd"/>`);
    out.push(`<text x="${left - 6}" y="${(y2(v) + 4).toFixed(1)}" text-anchor="end" fill="#555">${fmt.int(v)}</text>`);
  }
  const one = rates.findIndex((x) => x.writeRate === 1);
  if (one >= 0) target(out, col(one), y2(1000), "#c0443a");
  delays.forEach((d) => line(out, rates.map((x, i) => [col(i), d.value(x)]), y2, d.color, (v) => fmt.int(v), d.dy, d));
  legend(out, left + plotWidth + 20, top2, delays.map((d) => [d.name, d.color]));
  legendTarget(out, left + plotWidth + 20, top2 + delays.length * 18, "target: p99 ≤ 1 s at 1 write/s");

  // The columns: the rate, and the staleness checks.
  rates.forEach((x, i) => {
    out.push(`<text x="${col(i)}" y="${top2 + height2 + 20}" text-anchor="middle" font-weight="600">${fmt.rate(x.writeRate)}</text>`);
    const f = x.freshness;
    out.push(`<text x="${col(i)}" y="${top2 + height2 + 36}" text-anchor="middle" fill="${f.staleReads ? "#c0443a" : "#333"}">${f.staleReads} stale of ${f.checked} checked</text>`);
    out.push(`<text x="${col(i)}" y="${top2 + height2 + 50}" text-anchor="middle" fill="#555">(${f.labelledStale} labelled STALE)</text>`);
  });
  out.push("</svg>");
  return out.join("\n");
}

/** A polyline through the points whose value is a number, each point marked and, unless
 * `unlabelled`, labelled (`labelDy` below it, on its right or, with `leftOf`, its left). */
function line(out, points, y, color, label, labelDy, { dashed = false, leftOf = false, unlabelled = false } = {}) {
  const shown = points.filter(([, v]) => Number.isFinite(v));
  if (shown.length > 1) {
    out.push(`<polyline fill="none" stroke="${color}" stroke-width="2"${dashed ? ' stroke-dasharray="5 4"' : ""} points="${shown.map(([x, v]) => `${x.toFixed(1)},${y(v).toFixed(1)}`).join(" ")}"/>`);
  }
  for (const [x, v] of shown) {
    out.push(`<circle cx="${x.toFixed(1)}" cy="${y(v).toFixed(1)}" r="3.5" fill="${color}"/>`);
    if (!unlabelled) out.push(`<text x="${(leftOf ? x - 6 : x + 6).toFixed(1)}" y="${(y(v) + labelDy).toFixed(1)}"${leftOf ? ' text-anchor="end"' : ""} font-size="10" fill="${color}">${label(v)}</text>`);
  }
}

/** A target: a dashed segment across a column at `y`. */
function target(out, x, y, color) {
  out.push(`<line x1="${x - 34}" y1="${y.toFixed(1)}" x2="${x + 34}" y2="${y.toFixed(1)}" stroke="${color}" stroke-width="2" stroke-dasharray="4 3"/>`);
}

function legendTarget(out, x, top, text) {
  out.push(`<line x1="${x}" y1="${top + 6}" x2="${x + 12}" y2="${top + 6}" stroke="#555" stroke-width="2" stroke-dasharray="4 3"/><text x="${x + 18}" y="${top + 10}">${escapeXml(text)}</text>`);
}

function legend(out, x, top, entries) {
  entries.forEach(([name, color], i) => {
    out.push(`<rect x="${x}" y="${top + i * 18}" width="12" height="12" fill="${color}"/><text x="${x + 18}" y="${top + i * 18 + 10}">${escapeXml(name)}</text>`);
  });
}

/**
 * The scale run's chart, bench/results/<date>-scale.svg: one panel per page, each read's latency
 * (p50 alone, p50 and p99 under load) against board 1's size, both axes logarithmic and the same
 * in every panel, the issue's ceiling on the database path's p50 alone marked; the database path's
 * points are labelled.
 */
export function scaleChart(r, pages, paths, ceilingMs) {
  const sizes = r.sizes;
  const [panelW, panelH, left, gapX, top, gapY] = [360, 250, 70, 80, 70, 90];
  const columns = 2;
  const rowsOfPanels = Math.ceil(pages.length / columns);
  const legendX = left + columns * (panelW + gapX);
  const width = legendX + 400;
  const height = top + rowsOfPanels * (panelH + gapY) - 30;
  const colors = { database: "#2f6fb0", postgrest: "#3a9a5b", counter: "#8a5cc2", "postgrest-count": "#c0443a" };
  const measures = [
    { name: "p50 alone", value: (run) => run.aloneMs.p50, dash: null, mark: "circle" },
    { name: "p50 under load", value: (run) => run.latencyMs.p50, dash: "7 4", mark: "square" },
    { name: "p99 under load", value: (run) => run.latencyMs.p99, dash: "2 3", mark: "diamond" },
  ];
  const boards = sizes.map((s) => s.board.contacts);
  const values = sizes.flatMap((s) => s.runs.flatMap((run) => measures.map((m) => m.value(run)))).filter((v) => v > 0);
  const lo = 10 ** Math.floor(Math.log10(Math.min(ceilingMs, ...values)));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(ceilingMs, ...values)));
  const [bmin, bmax] = [Math.min(...boards), Math.max(...boards)];
  const out = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="12">`);
  out.push(`<rect width="100%" height="100%" fill="#fff"/>`);
  out.push(`<text x="${width / 2}" y="24" text-anchor="middle" font-size="15" font-weight="600">contact-list-cache miss latency against board size ${escapeXml(r.date)}: ${r.settings.connections} connections under load, ${escapeXml(`${r.machine.cores} cores`)}</text>`);
  pages.forEach((page, i) => {
    const px = left + (i % columns) * (panelW + gapX);
    const py = top + Math.floor(i / columns) * (panelH + gapY);
    const x = (b) => (bmax === bmin ? px + panelW / 2 : px + 40 + ((Math.log10(b) - Math.log10(bmin)) / (Math.log10(bmax) - Math.log10(bmin))) * (panelW - 80));
    const y = (ms) => py + panelH - ((Math.log10(Math.max(ms, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * panelH;
    out.push(`<text x="${px}" y="${py - 10}" font-weight="600">${escapeXml(page.query)}</text>`);
    out.push(`<rect x="${px}" y="${py}" width="${panelW}" height="${panelH}" fill="none" stroke="#bbb"/>`);
    for (let e = Math.log10(lo); e <= Math.log10(hi); e++) {
      for (const k of [1, 2, 5]) {
        const v = k * 10 ** e;
        if (v > hi) continue;
        out.push(`<line x1="${px}" y1="${y(v).toFixed(1)}" x2="${px + panelW}" y2="${y(v).toFixed(1)}" stroke="${k === 1 ? "#ccc" : "#eee"}"/>`);
        out.push(`<text x="${px - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end" fill="#555" font-size="10">${Number(v.toPrecision(1))}</text>`);
      }
    }
    out.push(`<line x1="${px}" y1="${y(ceilingMs).toFixed(1)}" x2="${px + panelW}" y2="${y(ceilingMs).toFixed(1)}" stroke="#555" stroke-width="1.5" stroke-dasharray="8 3 2 3"/>`);
    sizes.forEach((s) => {
      out.push(`<text x="${x(s.board.contacts).toFixed(1)}" y="${py + panelH + 16}" text-anchor="middle" fill="#333">${fmt.int(s.board.contacts)}</text>`);
      out.push(`<text x="${x(s.board.contacts).toFixed(1)}" y="${py + panelH + 30}" text-anchor="middle" fill="#777" font-size="10">(${fmt.int(s.contacts)} seeded)</text>`);
    });
    for (const path of Object.keys(paths)) {
      for (const m of measures) {
        const points = sizes.map((s) => [s.board.contacts, s.runs.find((run) => run.page === page.id && run.path === path)]).filter(([, run]) => run).map(([b, run]) => [x(b), m.value(run)]);
        if (points.length > 1) out.push(`<polyline fill="none" stroke="${colors[path]}" stroke-width="2"${m.dash ? ` stroke-dasharray="${m.dash}"` : ""} points="${points.map(([px2, v]) => `${px2.toFixed(1)},${y(v).toFixed(1)}`).join(" ")}"/>`);
        points.forEach(([px2, v], j) => {
          out.push(marker(m.mark, px2, y(v), colors[path]));
          // The first of several points is labelled on its left, clear of the line.
          const leftOf = j === 0 && points.length > 1;
          if (path === "database") out.push(`<text x="${(px2 + (leftOf ? -7 : 7)).toFixed(1)}" y="${(y(v) + 4).toFixed(1)}"${leftOf ? ' text-anchor="end"' : ""} font-size="10" fill="${colors[path]}">${fmt.ms(v)}</text>`);
        });
      }
    }
  });
  out.push(`<text x="${legendX}" y="${top + 4}" font-weight="600">Read</text>`);
  legend(out, legendX, top + 14, Object.entries(paths).map(([id, label]) => [label, colors[id]]));
  const styles = top + 30 + Object.keys(paths).length * 18;
  out.push(`<text x="${legendX}" y="${styles}" font-weight="600">Latency, ms (log scale)</text>`);
  measures.forEach((m, i) => {
    const ly = styles + 16 + i * 18;
    out.push(`<line x1="${legendX}" y1="${ly}" x2="${legendX + 28}" y2="${ly}" stroke="#333" stroke-width="2"${m.dash ? ` stroke-dasharray="${m.dash}"` : ""}/>${marker(m.mark, legendX + 14, ly, "#333")}<text x="${legendX + 36}" y="${ly + 4}">${m.name}</text>`);
  });
  const ceilingY = styles + 16 + measures.length * 18;
  out.push(`<line x1="${legendX}" y1="${ceilingY}" x2="${legendX + 28}" y2="${ceilingY}" stroke="#555" stroke-width="1.5" stroke-dasharray="8 3 2 3"/><text x="${legendX + 36}" y="${ceilingY + 4}">target: database path p50 alone ≤ ${ceilingMs} ms</text>`);
  out.push(`<text x="${legendX}" y="${ceilingY + 28}" fill="#555">x: board 1's contacts (log scale)</text>`);
  out.push("</svg>");
  return out.join("\n");
}

/** A point's mark: a filled circle, a square or a diamond centred on (x, y). */
function marker(shape, x, y, color) {
  const [cx, cy] = [x.toFixed(1), y.toFixed(1)];
  if (shape === "square") return `<rect x="${(x - 3).toFixed(1)}" y="${(y - 3).toFixed(1)}" width="6" height="6" fill="${color}"/>`;
  if (shape === "diamond") return `<path d="M${cx} ${(y - 4.5).toFixed(1)} L${(x + 4.5).toFixed(1)} ${cy} L${cx} ${(y + 4.5).toFixed(1)} L${(x - 4.5).toFixed(1)} ${cy} Z" fill="${color}"/>`;
  return `<circle cx="${cx}" cy="${cy}" r="3.5" fill="${color}"/>`;
}
