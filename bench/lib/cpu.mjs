// What each request costs workerd in CPU: the CPU time of the workerd processes this process
// started (Miniflare's; every thread), read from /proc before and after a wrk run and divided by
// its requests. It counts all workerd does for a request: the worker, the runtime, and Miniflare's
// emulated KV alike, which is why two workers' numbers compare while neither is the worker alone.
// Saturated, workerd's one request thread is busy all the time, so the loaded number follows
// req/s; on one connection ("alone") it is each request's cost without the queue, and less noisy.
import { readdirSync, readFileSync } from "node:fs";

/** Clock ticks per second in /proc/<pid>/stat (USER_HZ, 100 on Linux). */
const TICKS_PER_SECOND = 100;

/** pid → its parent and name and the CPU ticks it used (user + system), of every process. */
function processes() {
  const table = new Map();
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const close = stat.lastIndexOf(")");
      const fields = stat.slice(close + 2).split(" ");
      table.set(pid, { parent: fields[1], name: stat.slice(stat.indexOf("(") + 1, close), ticks: Number(fields[11]) + Number(fields[12]) });
    } catch {
      // The process ended while the table was read.
    }
  }
  return table;
}

/** Microseconds of CPU the workerd processes below this one have used; null without /proc or
 * without such a process. */
export function workerdCpuMicros() {
  let table;
  try {
    table = processes();
  } catch {
    return null;
  }
  const me = String(process.pid);
  const below = (pid) => {
    for (let at = table.get(pid)?.parent, depth = 0; at !== undefined && depth < 32; at = table.get(at)?.parent, depth++) {
      if (at === me) return true;
    }
    return false;
  };
  const ticks = [...table].filter(([pid, p]) => p.name === "workerd" && below(pid)).map(([, p]) => p.ticks);
  return ticks.length === 0 ? null : (ticks.reduce((a, b) => a + b, 0) * 1e6) / TICKS_PER_SECOND;
}

/** Runs `run` (a wrk run) and adds `cpuUsPerRequest`: workerd's CPU during it ÷ its requests
 * (null when it cannot be read). */
export async function withWorkerdCpu(run) {
  const before = workerdCpuMicros();
  const result = await run();
  const after = workerdCpuMicros();
  const measured = before !== null && after !== null && result.requests > 0;
  return { ...result, cpuUsPerRequest: measured ? (after - before) / result.requests : null };
}
