// What a list read costs: the billable operations the stack's own counters saw during a measured
// run, per request, and their price at Cloudflare's list prices. The counters: the worker's
// `/metrics` `totals` (requests it served, its state home calls, every KV read and write it
// issued; since the isolate started, so two readings subtract), workerd's CPU time (/proc, every
// workerd process of the stack: an upper bound on the CPU Cloudflare would bill, since it also
// holds Miniflare's emulated KV and the state home), Redis's INFO commandstats and PostgreSQL's
// pg_stat_statements (the benchmark's own SQL, run as `bench_prober`, and the counting left out).
import { get as httpGet } from "node:http";
import { connect } from "node:net";
import { psql } from "../../scripts/stack.mjs";
import { workerdCpuMicros } from "./cpu.mjs";

/**
 * Cloudflare's list prices (USD), read 2026-12-06 from the stored copies of Cloudflare's pricing
 * pages: Workers https://developers.cloudflare.com/workers/platform/pricing/ (Standard: 10 M
 * requests and 30 M CPU ms included a month, then $0.30 per million requests and $0.02 per
 * million CPU ms), KV https://developers.cloudflare.com/kv/platform/pricing/ (10 M reads and 1 M
 * writes included, then $0.50 per million reads, $5.00 per million writes), Durable Objects
 * https://developers.cloudflare.com/durable-objects/platform/pricing/ (1 M requests included,
 * then $0.15 per million, plus $12.50 per million GB-s of duration, not counted here). Prices
 * beyond the included amounts: what the millionth-and-after read costs. Redis and the database
 * are priced per month in the spec (Railway Redis $20, database $50), not per operation: their
 * operations are counted, not priced.
 */
export const PRICES = {
  readOn: "2026-12-06",
  perMillion: { workerRequests: 0.3, cpuMs: 0.02, kvReads: 0.5, kvWrites: 5.0, durableObjectRequests: 0.15 },
  sources: {
    workers: "https://developers.cloudflare.com/workers/platform/pricing/",
    kv: "https://developers.cloudflare.com/kv/platform/pricing/",
    durableObjects: "https://developers.cloudflare.com/durable-objects/platform/pricing/",
  },
};

/** The spec's cost table (SPEC.md, "Cost Analysis"), shown beside ours. */
export const SPEC_COSTS = [
  ["Cloudflare KV", "$0.50 per 1 M requests"],
  ["Redis (Railway)", "$20/month"],
  ["Database queries", "$50/month"],
];

/** One GET of `path` on the worker behind `url` (by `host`, the bench's routing): its JSON, or
 * null when it has no such route (the floors, the JavaScript hit). */
function getJson(url, path, host) {
  return new Promise((resolve) => {
    const req = httpGet(`${url}${path}`, { headers: host ? { Host: host } : {} }, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => {
        try {
          resolve(res.statusCode === 200 ? JSON.parse(body) : null);
        } catch {
          resolve(null);
        }
      });
    });
    req.on("error", () => resolve(null));
  });
}

/** Redis's commands since it started (INFO commandstats, every command's calls summed). */
function redisCommands(port) {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    let text = "";
    socket.on("data", (d) => {
      text += d;
      const header = text.match(/^\$(\d+)\r\n/);
      if (header && Buffer.byteLength(text) >= header[0].length + Number(header[1])) {
        socket.end();
        resolve([...text.matchAll(/^cmdstat_([a-z|_-]+):calls=(\d+)/gm)].reduce((a, [, , n]) => a + Number(n), 0));
      }
    });
    socket.on("error", () => resolve(null));
    socket.write("*2\r\n$4\r\nINFO\r\n$12\r\ncommandstats\r\n");
  });
}

/** Statements PostgreSQL ran since pg_stat_statements was last reset, the benchmark's own and
 * these counting queries left out. */
async function databaseStatements(pgPort) {
  const sql = "select coalesce(sum(calls), 0) from pg_stat_statements where userid <> 'bench_prober'::regrole and query not ilike '%pg_stat_statements%'";
  return Number((await psql(pgPort, { command: sql })).trim());
}

/** The counters now; `host`: which of the bench's workers (its Host header), none for the entry. */
export async function counters(stack, url, host) {
  const [metrics, redis, database] = await Promise.all([getJson(url, "/metrics", host), redisCommands(stack.ports.redis), databaseStatements(stack.ports.postgres)]);
  const t = metrics?.totals;
  return {
    worker: t ? { requests: t.requests, kvReads: t.kv_reads, kvWrites: t.kv_writes, homeCalls: t.state_home.reads + t.state_home.writes } : null,
    cpuUs: workerdCpuMicros(),
    redis,
    database,
  };
}

/**
 * The operations between two readings, per list read (`reads`): Worker requests (the `/metrics`
 * call of the second reading left out), workerd CPU ms, KV reads and writes, Durable Object
 * requests (the state home's reads and writes), Redis commands (the INFO of the first reading
 * left out), database statements. A counter that could not be read is null.
 */
export function perRead(before, after, reads) {
  const per = (a, b, extra = 0) => (a === null || b === null || a === undefined || b === undefined ? null : (b - a - extra) / reads);
  const w = before.worker && after.worker;
  return {
    reads,
    workerRequests: w ? per(before.worker.requests, after.worker.requests, 1) : null,
    cpuMs: per(before.cpuUs, after.cpuUs) === null ? null : per(before.cpuUs, after.cpuUs) / 1000,
    kvReads: w ? per(before.worker.kvReads, after.worker.kvReads) : null,
    kvWrites: w ? per(before.worker.kvWrites, after.worker.kvWrites) : null,
    durableObjectRequests: w ? per(before.worker.homeCalls, after.worker.homeCalls) : null,
    redisCommands: per(before.redis, after.redis, 1),
    databaseStatements: per(before.database, after.database),
  };
}

/** A million list reads at the list prices, by item and in all (items not counted left out). */
export function costPerMillion(ops) {
  const items = Object.fromEntries(Object.entries(PRICES.perMillion).map(([k, price]) => [k, ops[k] === null ? null : ops[k] * price]));
  return { items, total: Object.values(items).reduce((a, v) => a + (v ?? 0), 0) };
}
