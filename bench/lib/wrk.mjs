// Runs wrk with bench/wrk/requests.lua and returns its results: requests, req/s, latency
// percentiles (ms), errors and answers tallied by status and X-Cache-Status/X-Cache-Layer.
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
      resolve({
        requests: raw.requests,
        seconds,
        rps: raw.requests / seconds,
        latencyMs: Object.fromEntries(Object.entries(raw.latency_us).map(([k, v]) => [k, v / 1000])),
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
