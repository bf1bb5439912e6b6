// The benchmark's plan: the stack it runs on (the local stack with the floors, more copies of the
// worker and the JavaScript KV hit beside it), the request of each scenario and the answer every
// request must get, which scenarios are measured side by side, and the targets the results are
// held against.
import { get as httpGet } from "node:http";
import { join } from "node:path";
import { seed } from "../../scripts/seed-ids.mjs";
import { ROOT, builtWorker, freePort, startStack } from "../../scripts/stack.mjs";
import { liveWorker } from "../../scripts/stack/services.mjs";
import { fmt } from "./report.mjs";

export const SCENARIOS = {
  floor: "1. Floor (constant JSON)",
  "floor-js": "1j. Floor in JavaScript",
  "floor-kv": "1b. Floor + the 2 KV reads",
  kv: "2. KV hit (L0 off)",
  "kv-js": "2j. KV hit in JavaScript",
  "kv-l0": "2l. KV hit, L0 on",
  redis: "3. Redis hit (KV off)",
  database: "4. Database path",
  postgrest: "5. Direct PostgREST",
  fallback: "6. Backend fallback",
  mix: "7. Realistic mix",
};

/**
 * Scenarios measured side by side, in rounds (bench/lib/run.mjs runRounds): ours and the same
 * work in JavaScript, the floor and the JavaScript floor, the KV hit with and without the L0.
 */
export const SIDE_BY_SIDE = ["floor", "floor-js", "kv", "kv-js", "kv-l0"];

/** The host names by which the entry of the one Miniflare routes to each extra worker. */
const HOSTS = {
  floor: "floor.bench",
  redisOnly: "redis-only.bench",
  fallback: "fallback.bench",
  l0Off: "l0-off.bench",
  l0On: "l0-on.bench",
  jsFloor: "js-floor.bench",
  jsHit: "js-hit.bench",
};

/** The worker's in-isolate L0 cache off and on (`L0_CACHE_MB`: its memory; 0 = off). */
const L0 = { off: { L0_CACHE_MB: "0" }, on: { L0_CACHE_MB: "32" } };

/** A plain ES module worker of the benchmark's (no build step). */
const jsWorker = (name, options) => ({ name, modules: true, scriptPath: join(ROOT, "bench", name, "worker.mjs"), ...options });

/**
 * The local stack (scripts/stack.mjs) with what the benchmark adds: pg_stat_statements and the
 * role `bench_prober` (the benchmark's own SQL runs as it, so the query counts can leave it out),
 * the backend logging warnings only, and, in the same workerd as the worker, the floor worker,
 * four more copies of the worker with other bindings (KV pages and L0 off, for Redis hits; Supabase
 * unreachable, for the backend fallback; the in-isolate L0 cache off and on, for the KV hits), and
 * the JavaScript floor and KV hit (bench/js-floor, bench/js-hit) with the worker's bindings. The
 * entry routes to them by Host header; all share the worker's KV namespace.
 */
/** The state home every copy of the worker (and the JavaScript KV hit) reads scope states from:
 * the stack's live worker, bound as LIVE as the stack binds it to the worker. */
const HOME = { serviceBindings: { LIVE: liveWorker().name } };

export async function startBenchStack(contacts) {
  const closedPort = await freePort(); // nothing listens there: Supabase is unreachable
  return startStack({
    contacts,
    afterSeed: "create extension if not exists pg_stat_statements; create role bench_prober login superuser",
    backendEnv: { RUST_LOG: process.env.RUST_LOG ?? "warn" },
    extraWorkers: (bindings) => [
      builtWorker({ name: "floor", root: join(ROOT, "bench", "floor"), routes: [`${HOSTS.floor}/*`] }),
      builtWorker({ name: "redis-only", bindings: { ...bindings, KV_CACHE_ENABLED: "false", ...L0.off }, routes: [`${HOSTS.redisOnly}/*`], ...HOME }),
      builtWorker({ name: "fallback", bindings: { ...bindings, SUPABASE_URL: `http://127.0.0.1:${closedPort}` }, routes: [`${HOSTS.fallback}/*`], ...HOME }),
      builtWorker({ name: "l0-off", bindings: { ...bindings, ...L0.off }, routes: [`${HOSTS.l0Off}/*`], ...HOME }),
      builtWorker({ name: "l0-on", bindings: { ...bindings, ...L0.on }, routes: [`${HOSTS.l0On}/*`], ...HOME }),
      jsWorker("js-floor", { routes: [`${HOSTS.jsFloor}/*`] }),
      jsWorker("js-hit", { bindings, routes: [`${HOSTS.jsHit}/*`], ...HOME }),
    ],
  });
}

/** One GET with node:http (fetch would drop the Host header the routing needs). */
function answerTo(url, request) {
  return new Promise((resolve, reject) => {
    const req = httpGet(`${url}${request.path}`, { headers: request.headers }, (res) => {
      res.resume();
      res.on("end", () => resolve({ headers: res.headers, tally: `${res.statusCode} ${res.headers["x-cache-status"] ?? "-"}/${res.headers["x-cache-layer"] ?? "-"}` }));
    });
    req.on("error", reject);
  });
}

/** Sends `request` until it is answered as `expected` ("200 HIT/KV", as wrk's tallies say, or a
 * list of such answers, any of which will do). */
export async function until(url, request, expected, timeoutMs = 15_000) {
  const accepted = [expected].flat();
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = (await answerTo(url, request)).tally;
    if (accepted.includes(last)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${request.path} was not answered as ${expected} within ${timeoutMs} ms (last: ${last})`);
}

/** The columns a listed contact has (crates/core postgrest.rs: CONTACT_COLUMNS). */
const CONTACT_COLUMNS = "id,name,email,phone,conversation_status,priority,last_message_time,assigned_user_id,board_column_id,created_at";

/**
 * A page of board 1 of workspace 1 as the worker's database layer asks PostgREST for it
 * (crates/core postgrest.rs, src/layers/supabase.rs): the same `select`, `order`, filters
 * (`where`: the filter's conditions after the workspace and the board, as `column=op.value`) and
 * `Range`, with `authorization` and the anon key, to the Supabase gateway; with `count`, also
 * `Prefer: count=exact` (which the worker sends only for a narrowed list's first read).
 */
export function directPage(stack, authorization, { where, order, offset, count }) {
  const filters = [`workspace_id=eq.${seed.workspace(1)}`, `board_id=eq.${seed.board(1, 1)}`, ...where];
  return {
    path: `/rest/v1/contacts?select=${CONTACT_COLUMNS}&order=${order}&${filters.join("&")}`,
    headers: { apikey: stack.bindings.SUPABASE_ANON_KEY, Authorization: authorization, ...(count ? { Prefer: "count=exact" } : {}), "Range-Unit": "items", Range: `${offset}-${offset + 49}` },
  };
}

/** The read of a list's total from its counter, as the worker sends it beside a page's rows. */
export function directCounter(stack, authorization, counter) {
  return {
    path: `/rest/v1/contact_list_counts?select=total&workspace_id=eq.${seed.workspace(1)}&board_id=eq.${seed.board(1, 1)}&list=eq.${encodeURIComponent(counter)}`,
    headers: { apikey: stack.bindings.SUPABASE_ANON_KEY, Authorization: authorization },
  };
}

/** The request of each of scenarios 1-6 on `stack` (startBenchStack's), where it goes and how
 * every answer must come. */
export function scenarioPlan(stack, tokens) {
  const url = stack.urls.worker;
  const ws = seed.workspace(1);
  const board = seed.board(1, 1);
  const list = { path: `/api/boards/${board}/contacts?filter=open&page=1`, headers: { Authorization: `Bearer ${tokens.get(seed.user(1))}`, "X-Workspace-ID": ws } };
  const routed = (host, request) => ({ path: request.path, headers: { ...request.headers, Host: host } });
  const noCache = (request) => ({ path: request.path, headers: { ...request.headers, "Cache-Control": "no-cache" } });
  const direct = directPage(stack, list.headers.Authorization, { where: ["archived=is.false", "conversation_status=eq.Open"], order: "created_at.desc,id.desc", offset: 0, count: false });
  return {
    list,
    scenarios: {
      floor: { url, request: routed(HOSTS.floor, { path: "/", headers: {} }), expect: "200 -/-", shown: "200" },
      "floor-kv": {
        url,
        // The floor reading what a KV hit reads: the generation of the board's `open` lists
        // (crates/core generation.rs), then the page.
        request: async () => {
          await until(url, list, "200 HIT/KV");
          const { headers } = await answerTo(url, list);
          const keys = [`gen:${ws}:${board}:open`, headers["x-cache-key"]];
          return routed(HOSTS.floor, { path: `/kv?${keys.map((k) => `key=${encodeURIComponent(k)}`).join("&")}`, headers: {} });
        },
        expect: "200 -/-",
        shown: "200",
      },
      "floor-js": { url, request: routed(HOSTS.jsFloor, { path: "/", headers: {} }), expect: "200 -/-", shown: "200" },
      kv: { url, request: routed(HOSTS.l0Off, list), expect: "200 HIT/KV" },
      // The JavaScript worker only reads KV: the page is put there by ours (the same key), and
      // again before each round in case its copy has passed the TTL since.
      "kv-js": { url, request: routed(HOSTS.jsHit, list), expect: "200 HIT/KV", before: () => until(url, routed(HOSTS.l0Off, list), "200 HIT/KV") },
      // With the L0 on, the page is answered from the isolate, and from KV once its copy there
      // is older than the bound.
      "kv-l0": { url, request: routed(HOSTS.l0On, list), expect: ["200 HIT/L0", "200 HIT/KV"] },
      redis: { url, request: routed(HOSTS.redisOnly, list), expect: "200 HIT/REDIS" },
      database: { url, request: noCache(list), expect: "200 BYPASS/DATABASE", countQueries: true },
      postgrest: { url: new URL(stack.bindings.SUPABASE_URL).origin, request: direct, expect: "200 -/-", shown: "200" },
      fallback: { url, request: routed(HOSTS.fallback, noCache(list)), expect: "200 BYPASS/BACKEND-FALLBACK" },
    },
  };
}

/** The targets, each with what was measured, its ratio and whether it is met. */
export function targets(byId, mix, wasm) {
  const out = [];
  const { floor, kv, database, postgrest } = byId;
  if (floor && kv) {
    const ratio = kv.rps / floor.rps;
    const withKv = byId["floor-kv"] ? ` (${fmt.pct(kv.rps / byId["floor-kv"].rps)} of the floor with the 2 KV reads)` : "";
    out.push({ name: "KV-hit throughput ≥ 80 % of the floor", measured: `${fmt.pct(ratio)} of the floor${withKv}`, ratio: (ratio / 0.8).toFixed(2), met: ratio >= 0.8 });
  }
  // Issue 15: ours against the same work in JavaScript, measured in the same rounds.
  const versus = (ours, js, name, least) => {
    if (!byId[ours] || !byId[js]) return;
    const [a, b] = [byId[ours], byId[js]];
    const ratio = a.rps / b.rps;
    const byRound = a.rounds && b.rounds ? ` (by round: ${a.rounds.map((r, i) => (r.rps / b.rounds[i].rps).toFixed(2)).join(", ")})` : "";
    const perRequest = a.aloneCpuUsPerRequest && b.aloneCpuUsPerRequest
      ? `; workerd CPU per request alone ${fmt.micros(a.aloneCpuUsPerRequest)} against ${fmt.micros(b.aloneCpuUsPerRequest)} µs (${(b.aloneCpuUsPerRequest / a.aloneCpuUsPerRequest).toFixed(2)}), loaded ${fmt.micros(a.cpuUsPerRequest)} against ${fmt.micros(b.cpuUsPerRequest)} µs`
      : "";
    const measured = `${fmt.int(a.rps)} ÷ ${fmt.int(b.rps)} req/s = ${ratio.toFixed(2)}${byRound}${perRequest}`;
    out.push(least === null
      ? { name, measured, ratio: ratio.toFixed(2), met: null }
      : { name, measured, ratio: (ratio / least).toFixed(2), met: ratio >= least });
  };
  versus("kv", "kv-js", "KV hit: ours ÷ JavaScript, L0 off ≥ 1", 1);
  versus("kv-l0", "kv-js", "KV hit with the L0 on ÷ JavaScript ≥ 2", 2);
  versus("floor", "floor-js", "floor: ours ÷ the JavaScript floor (reported)", null);
  if (database && postgrest) {
    const signed = (ms) => `${ms >= 0 ? "+" : ""}${ms.toFixed(2)} ms`;
    const diff = database.latencyMs.p50 - postgrest.latencyMs.p50;
    const alone = database.aloneMs.p50 - postgrest.aloneMs.p50;
    out.push({ name: "database-path p50 ≤ direct PostgREST p50 + 2 ms", measured: `${signed(diff)} (alone: ${signed(alone)})`, ratio: `${(diff / 2).toFixed(2)} of the 2 ms (alone: ${(alone / 2).toFixed(2)})`, met: diff <= 2 });
  }
  for (const rate of mix?.rates ?? []) {
    const at = `mix at ${fmt.rate(rate.writeRate)}`;
    const pct = (x) => fmt.pct(x, 2);
    const minHit = { 1: 0.97, 5: 0.9 }[rate.writeRate];
    if (minHit) out.push({ name: `${at}: combined hit rate (HIT + STALE) ≥ ${minHit * 100} %`, measured: `${pct(rate.cacheServed)} (HIT alone ${pct(rate.hitOnly)})`, ratio: (rate.cacheServed / minHit).toFixed(3), met: rate.cacheServed >= minHit });
    if (rate.writeRate === 1) {
      const reduction = rate.dbQueries.reduction;
      out.push({ name: `${at}: database queries reduced ≥ 90 % (aim 95 %)`, measured: pct(reduction), ratio: `${(reduction / 0.9).toFixed(3)} (of the aim ${(reduction / 0.95).toFixed(3)})`, met: reduction >= 0.9 });
      const p99 = rate.writes.delayMs?.p99;
      out.push({ name: `${at}: write → edge p99 ≤ 1 s under the mix's load`, measured: p99 === undefined ? "no write seen" : `${fmt.int(p99)} ms${rate.writes.unseen ? ` (${rate.writes.unseen} not seen within 10 s)` : ""}`, ratio: p99 === undefined ? "—" : (p99 / 1000).toFixed(2), met: p99 !== undefined && p99 <= 1000 && rate.writes.unseen === 0 });
    }
    const f = rate.freshness;
    out.push({ name: `${at}: 0 answers older than the bound (${f.boundMs} ms)`, measured: `${f.staleReads} of ${f.checked} checked`, ratio: "—", met: f.checked > 0 ? f.staleReads === 0 : null });
  }
  out.push({ name: "gzipped wasm ≤ 500 KB (500,000 B)", measured: fmt.bytes(wasm.worker.gzipped), ratio: (wasm.worker.gzipped / 500_000).toFixed(2), met: wasm.worker.gzipped <= 500_000 });
  return out;
}
