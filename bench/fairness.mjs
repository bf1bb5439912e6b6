// How long a request that is not part of the load waits in a saturated workerd: wrk replays KV
// hits on N connections while a side client sends one request every 100 ms (a 404 route: no
// work in the worker) on its own keep-alive connection. That side request stands for what the
// backend's webhook goes through under the mix. Writes <date>-fairness.md and .json.
//
//   node bench/fairness.mjs [--connections 2,8,32] [--duration 20s] [--out bench/results]
import http from "node:http";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { seed } from "../scripts/seed-ids.mjs";
import { ROOT, startStack } from "../scripts/stack.mjs";
import { localDate, positive, seconds as duration } from "./lib/args.mjs";
import { tokensFor } from "./lib/mix.mjs";
import { machine } from "./lib/machine.mjs";
import { fmt, markdownTable } from "./lib/report.mjs";
import { runWrk, writeRequests } from "./lib/wrk.mjs";

const { values } = parseArgs({
  options: {
    connections: { type: "string", default: "2,8,32" },
    duration: { type: "string", default: "20s" },
    out: { type: "string", default: "bench/results" },
  },
});
const connectionCounts = values.connections.split(",").map((n) => Math.round(positive(n, "connections")));
const seconds = Math.round(duration(values.duration, "duration"));
if (seconds < 5) throw new Error(`--duration: at least 5s (the side requests start 2 s in and stop 2 s before the end), got ${values.duration}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];

/** One GET of a path no route serves, on `agent`'s connection: milliseconds to the whole answer. */
function sideRequest(url, agent) {
  return new Promise((done, fail) => {
    const started = performance.now();
    http.get(`${url}/no-such-route`, { agent }, (res) => {
      res.resume();
      res.on("end", () => done(performance.now() - started));
    }).on("error", fail);
  });
}

const startedAt = new Date();
const stack = await startStack({ contacts: 2000, backendEnv: { RUST_LOG: "warn" } });
const rows = [];
try {
  const dir = mkdtempSync(join(tmpdir(), "fairness-"));
  const token = tokensFor(stack.secrets.SUPABASE_JWT_SECRET).get(seed.user(1));
  const requests = [];
  for (const board of [1, 2, 3]) {
    for (const filter of ["all", "open", "closed"]) {
      for (const page of [1, 2]) {
        requests.push({ path: `/api/boards/${seed.board(1, board)}/contacts?filter=${filter}&page=${page}`, headers: { Authorization: `Bearer ${token}`, "X-Workspace-ID": seed.workspace(1) } });
      }
    }
  }
  const file = join(dir, "load.tsv");
  writeRequests(file, requests);
  await runWrk({ url: stack.urls.worker, file, seconds: 3, connections: 2, threads: 1 }); // every page cached
  for (const connections of connectionCounts) {
    const load = runWrk({ url: stack.urls.worker, file, seconds, connections, threads: Math.min(2, connections) });
    await sleep(2000);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const waits = [];
    const until = Date.now() + (seconds - 4) * 1000;
    while (Date.now() < until) {
      waits.push(await sideRequest(stack.urls.worker, agent));
      await sleep(100);
    }
    agent.destroy();
    const wrk = await load;
    waits.sort((a, b) => a - b);
    const row = {
      connections,
      rps: wrk.rps,
      wrkLatencyMs: { p50: wrk.latencyMs.p50, p99: wrk.latencyMs.p99 },
      side: { count: waits.length, p50: percentile(waits, 0.5), p90: percentile(waits, 0.9), p99: percentile(waits, 0.99), max: waits.at(-1), over500: waits.filter((w) => w > 500).length },
    };
    rows.push(row);
    console.log(`[fairness] ${connections} connections: ${fmt.int(row.rps)} req/s; side request p50 ${row.side.p50.toFixed(0)} ms, p90 ${row.side.p90.toFixed(0)} ms, max ${row.side.max.toFixed(0)} ms (${row.side.count} sent)`);
  }
} finally {
  await stack.stop();
}

const date = localDate(startedAt);
const m = machine();
const outDir = resolve(ROOT, values.out);
mkdirSync(outDir, { recursive: true });
const table = markdownTable(
  ["wrk connections", "req/s", "wrk p50 ms", "wrk p99 ms", "side requests", "side p50 ms", "side p90 ms", "side p99 ms", "side max ms", "side > 500 ms"],
  rows.map((r) => [r.connections, fmt.int(r.rps), r.wrkLatencyMs.p50.toFixed(1), r.wrkLatencyMs.p99.toFixed(1), r.side.count,
    r.side.p50.toFixed(0), r.side.p90.toFixed(0), r.side.p99.toFixed(0), r.side.max.toFixed(0), r.side.over500]),
  [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
);
writeFileSync(join(outDir, `${date}-fairness.md`), [
  `# workerd under saturating load: a request outside the load ${date}`,
  "",
  `Measured on ${m.cores} cores (${m.cpu}), ${m.memoryGiB} GiB memory, ${m.os}; everything on loopback. `
    + `wrk replays 18 cached list pages (KV hits) on the given connections for ${seconds} s; from 2 s in, a side client sends `
    + "`GET /no-such-route` (a 404: no I/O in the worker) every 100 ms on its own keep-alive connection and times each answer. "
    + "The side request stands for the backend's webhook during the benchmark's mix. `node bench/fairness.mjs`.",
  "",
  table,
  "",
].join("\n"));
writeFileSync(join(outDir, `${date}-fairness.json`), `${JSON.stringify({ date, startedAt: startedAt.toISOString(), machine: m, seconds, rows }, null, 2)}\n`);
console.log(`[fairness] wrote ${join(outDir, `${date}-fairness.md`)}`);
