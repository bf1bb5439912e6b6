// Runs wrk with bench/wrk/requests.lua and returns its results: requests, req/s, the latencies
// it measured (mean, percentiles and max, ms, from one histogram), errors and answers tallied by
// status and X-Cache-Status/X-Cache-Layer.
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "../../scripts/stack.mjs";

const SCRIPT = join(ROOT, "bench", "wrk", "requests.lua");

// A wrk still running when this process ends (an error, Ctrl-C) is stopped with it.
const running = new Set();
process.on("exit", () => running.forEach((child) => child.kill("SIGKILL")));

/** Writes `requests` ({path, headers}) as the tab-separated file the Lua script replays. */
export function writeRequests(file, requests) {
  const lines = requests.map(({ path, headers = {} }) => [path, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)].join("\t"));
  writeFileSync(file, `${lines.join("\n")}\n`);
}

/**
 * Replays the requests in `file` against `url` for `seconds` with `connections` connections on
 * `threads` threads; with `once`, sends each request once and ends when all are answered
 * (`seconds` is then the most it may take); with `until` (a promise), ends when it settles
 * (`seconds` is then the most it may take). Runs asynchronously: this process keeps serving the
 * local Supabase gateway.
 */
export function runWrk({ url, file, seconds, connections, threads, once = false, timeoutSeconds = 10, until }) {
  const args = ["-c", String(connections), "-t", String(threads), "-d", `${seconds}s`, "--timeout", `${timeoutSeconds}s`, "-s", SCRIPT, url, "--", file, String(threads), ...(once ? ["once"] : [])];
  return new Promise((resolve, reject) => {
    const child = spawn("wrk", args, { stdio: ["ignore", "pipe", "pipe"] });
    running.add(child);
    const stop = () => running.has(child) && child.kill("SIGINT");
    until?.then(stop, stop);
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => {
      out += d;
      // Every thread has had all its answers: wrk prints its results on SIGINT.
      if (once && out.split("BENCH_THREAD_DONE").length - 1 === threads) child.kill("SIGINT");
    });
    child.stderr.on("data", (d) => (err += d));
    child.on("error", reject);
    child.on("exit", (code) => {
      running.delete(child);
      const line = out.split("\n").find((l) => l.startsWith("BENCH_RESULT "));
      if (code !== 0 || !line) {
        reject(new Error(`wrk ${args.join(" ")} failed (${code}):\n${out}\n${err}`));
        return;
      }
      const raw = JSON.parse(line.slice("BENCH_RESULT ".length));
      const seconds = raw.duration_us / 1e6;
      const e = raw.errors;
      const histogram = uncorrected(raw.histogram, raw.duration_us, raw.requests, connections);
      resolve({
        requests: raw.requests,
        seconds,
        rps: raw.requests / seconds,
        connections,
        histogram,
        latencyMs: latencyFigures(histogram),
        // What wrk itself would report (its coordinated-omission samples in): kept to show the gap.
        wrkCorrectedMs: latencyFigures(raw.histogram),
        wrkHistogram: raw.histogram,
        errors: e.connect + e.read + e.write + e.status + e.timeout,
        errorKinds: e,
        tallies: raw.tallies,
      });
    });
  });
}

/** The share of answers in `tallies` whose key ("200 HIT/KV") satisfies `matches`. */
export function share(tallies, matches) {
  const total = Object.values(tallies).reduce((a, b) => a + b, 0);
  const hits = Object.entries(tallies).filter(([key]) => matches(key)).reduce((a, [, n]) => a + n, 0);
  return total === 0 ? 0 : hits / total;
}

/**
 * The latencies wrk measured, from the histogram its done() sees. wrk 4 (main.c, after the run)
 * "corrects" its histogram for coordinated omission before any script sees it: with
 * `expected = runtime_us / (requests / connections)` (integer divisions), every sample n ≥ 2 ×
 * expected adds one made-up sample at each n − k × expected above expected (stats_correct in
 * stats.c). A 2 s stall at 25 ms per request thus adds ~80 samples per stalled request: the
 * mean, p95 and p99 it reports are not the requests' and break Little's law (32 connections at
 * 1,255 req/s, a mean of 111 ms). This takes the made-up samples out again, from the top value
 * down (a sample only adds below itself, so the highest value holds only real samples).
 * `histogram`: [[µs, count]] ascending, as requests.lua prints it.
 */
export function uncorrected(histogram, runtimeUs, requests, connections) {
  const perConnection = Math.floor(requests / connections);
  if (perConnection === 0) return histogram;
  const expected = Math.floor(runtimeUs / perConnection);
  const counts = new Map(histogram);
  const values = histogram.map(([v]) => v);
  for (let i = values.length - 1; i >= 0; i--) {
    const n = values[i];
    const real = counts.get(n);
    if (real <= 0 || n < 2 * expected) continue;
    for (let m = n - expected; m > expected; m -= expected) {
      if (counts.has(m)) counts.set(m, counts.get(m) - real);
    }
  }
  return values.map((v) => [v, counts.get(v)]).filter(([, c]) => c > 0);
}

/** Several runs' histograms ([[µs, count]] ascending) as one. */
export function mergeHistograms(histograms) {
  const counts = new Map();
  for (const h of histograms) for (const [v, c] of h) counts.set(v, (counts.get(v) ?? 0) + c);
  return [...counts].sort((a, b) => a[0] - b[0]);
}

/** Mean, p50, p95, p99 and max (ms) of a histogram ([[µs, count]] ascending), and its count. */
export function latencyFigures(histogram) {
  const count = histogram.reduce((a, [, c]) => a + c, 0);
  if (count === 0) return { count: 0, mean: 0, p50: 0, p95: 0, p99: 0, max: 0 };
  const at = (p) => {
    const rank = Math.max(1, Math.ceil((p / 100) * count));
    let seen = 0;
    for (const [v, c] of histogram) if ((seen += c) >= rank) return v / 1000;
    return histogram.at(-1)[0] / 1000;
  };
  const sum = histogram.reduce((a, [v, c]) => a + v * c, 0);
  return { count, mean: sum / count / 1000, p50: at(50), p95: at(95), p99: at(99), max: histogram.at(-1)[0] / 1000 };
}

/** How far a run is from Little's law: on a closed loop of `connections` connections each with
 * one request in flight, the mean latency is connections ÷ req/s. `{ expectedMs, meanMs, ratio,
 * ok }`: ok when the measured mean is within `tolerance` of it. */
export function littlesLaw({ connections, rps, latencyMs }, tolerance = LITTLE_TOLERANCE) {
  const expectedMs = (connections / rps) * 1000;
  const ratio = latencyMs.mean / expectedMs;
  return { expectedMs, meanMs: latencyMs.mean, ratio, ok: Math.abs(ratio - 1) <= tolerance };
}

/** Little's law's check passes within 15 %. */
export const LITTLE_TOLERANCE = 0.15;
