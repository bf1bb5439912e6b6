// Cloudflare's topology on this machine: L locations × I isolates of the built worker in one
// Miniflare, over the one shared KV namespace, each location with its own model of KV's cache
// and a round trip to whatever is central (the backend, Supabase/PostgREST, the live worker whose
// Durable Object is the workspace's state home). Used by startStack({ topology }) and by tests
// that start their own (tests/e2e/locations.test.mjs). docs/benchmarks.md ("Across locations") says what it
// models and why.
//
// What Cloudflare documents, and how each piece models it:
// - KV "stores data in a small number of centralized data centers, then caches that data in
//   Cloudflare's data centers after access"; "when you write to KV, your data is written to central
//   data stores. Your data is not sent automatically to every location's cache"; "initial reads
//   from a location do not have a cached value" and go to the central stores, which "can
//   experience higher latencies" (https://developers.cloudflare.com/kv/concepts/how-kv-works/).
//   `cacheTtl` "defines the length of time in seconds that a KV result is cached in the global
//   network location it is accessed from" (https://developers.cloudflare.com/kv/glossary/,
//   https://developers.cloudflare.com/kv/api/read-key-value-pairs/): 60 s unless the caller
//   passes one, at least 30 s (the page said 60 s until 2025). A result is a result: a "not found"
//   is kept like a value. Changes "are usually immediately visible in the location at which they
//   are made" and may take 60 s or more to be visible elsewhere (same pages).
//   -> `kv-cache-<l>`: one worker per location (one isolate, so one memory shared by the
//   location's isolates) keeping every read result, "not found" included, for cacheTtl from the
//   read; a put or delete made in the location replaces its copy at once; a location's read that
//   misses its copy (and its put or delete) goes to the shared namespace after the location's
//   round trip. KV "operates diligently to update the cached values by refreshing from upper tier
//   caches and central data stores before cache expires in the background" (how-kv-works): a copy
//   read in its last quarter is refreshed in the background, so a hot key never waits a round
//   trip, and is still up to cacheTtl old. Each isolate's CONTACT_CACHE is a wrapped binding (`kv-wrap-<l>`) that looks
//   like a KV namespace and calls the location's cache worker by RPC.
// - Workers run in many isolates per location; a request lands on any of them.
//   -> `loc<l>-iso<i>`: I workers of the same build per location (separate memory: L0, scope
//   states), behind `loc<l>`, a router spreading requests over them round robin.
// - A location far from the origin pays the round trip on every call to it.
//   -> `outbound-<l>`: the isolates' outboundService (every fetch: backend, Supabase) waits half
//   the round trip before and half after the call; `live-via-<l>`: the LIVE service binding goes
//   through a worker that does the same before the live worker (the state home). Location 1 is
//   beside the origin (0 ms); the others `rttMs` (80 ms by default) away.
import { builtWorker, liveWorker } from "./services.mjs";

/** Cloudflare's default cacheTtl, and the least a caller may ask for (seconds). */
export const KV_CACHE_TTL_DEFAULT_S = 60;
export const KV_CACHE_TTL_MIN_S = 30;
/** The round trip from a remote location to the origin, by default (ms). */
export const REMOTE_RTT_MS = 80;

/** The location's model of KV's cache, over the shared namespace REAL: one worker, one memory. */
const KV_CACHE = `
import { WorkerEntrypoint } from "cloudflare:workers";
const copies = new Map(); // key -> { value: ArrayBuffer|null, metadata, until: ms }
const writes = new Map(); // key -> how many puts and deletes this location made
const stats = { hits: 0, misses: 0, puts: 0, deletes: 0 };
const sleep = (ms) => (ms > 0 ? new Promise((r) => setTimeout(r, ms)) : null);
export default class extends WorkerEntrypoint {
  get rtt() { return Number(this.env.RTT_MS); }
  ttlMs(asked) {
    // A caller's cacheTtl is honoured (at least Cloudflare's minimum); else the model's default.
    const seconds = asked === undefined || asked === null ? Number(this.env.CACHE_TTL_S) : Math.max(Number(this.env.MIN_CACHE_TTL_S), Number(asked));
    return seconds * 1000;
  }
  async read(key, cacheTtl) {
    const now = Date.now();
    const copy = copies.get(key);
    if (copy && copy.until > now) {
      stats.hits++;
      // A copy read again in its last quarter is refreshed from the central store in the
      // background, as KV does for hot keys; it is what the location serves until then.
      if (copy.until - now < copy.ttl / 4 && !copy.refreshing) {
        copy.refreshing = true;
        this.ctx.waitUntil(this.fill(key, copy.ttl, writes.get(key) ?? 0));
      }
      return { value: copy.value, metadata: copy.metadata, cached: true };
    }
    stats.misses++;
    const { value, metadata } = await this.fill(key, this.ttlMs(cacheTtl), writes.get(key) ?? 0);
    return { value, metadata, cached: false };
  }
  /** Reads the central store (a round trip away) and keeps the result for ttl ms, unless this
   * location wrote the key meanwhile (its own write is what it sees). */
  async fill(key, ttl, writesBefore) {
    await sleep(this.rtt);
    const { value, metadata } = await this.env.REAL.getWithMetadata(key, "arrayBuffer");
    if ((writes.get(key) ?? 0) === writesBefore) copies.set(key, { value, metadata: metadata ?? null, ttl, until: Date.now() + ttl });
    return { value, metadata: metadata ?? null };
  }
  async write(key, value, options) {
    stats.puts++;
    await sleep(this.rtt / 2);
    writes.set(key, (writes.get(key) ?? 0) + 1);
    await this.env.REAL.put(key, value, options ?? {});
    await sleep(this.rtt / 2);
    copies.set(key, { value, metadata: options?.metadata ?? null, ttl: this.ttlMs(), until: Date.now() + this.ttlMs() });
  }
  async remove(key) {
    stats.deletes++;
    await sleep(this.rtt / 2);
    writes.set(key, (writes.get(key) ?? 0) + 1);
    await this.env.REAL.delete(key);
    await sleep(this.rtt / 2);
    copies.set(key, { value: null, metadata: null, ttl: this.ttlMs(), until: Date.now() + this.ttlMs() });
  }
  async list(options) {
    await sleep(this.rtt);
    return this.env.REAL.list(options);
  }
  async fetch() {
    return Response.json({ ...stats, copies: copies.size });
  }
}`;

/** What an isolate's CONTACT_CACHE is: a KV namespace's methods over its location's cache. */
const KV_WRAP = `
const decode = (buffer) => new TextDecoder().decode(buffer);
function typeOf(options) {
  return typeof options === "string" ? options : options?.type ?? "text";
}
function as(value, type) {
  if (value === null || value === undefined) return null;
  switch (type) {
    case "text": return decode(value);
    case "json": return JSON.parse(decode(value));
    case "arrayBuffer": return value;
    case "stream": return new Response(value).body;
    default: throw new TypeError("KV get: unknown type " + type);
  }
}
async function bytes(value) {
  if (typeof value === "string") return new TextEncoder().encode(value).buffer;
  if (value instanceof ArrayBuffer) return value;
  if (ArrayBuffer.isView(value)) return value.buffer.slice(value.byteOffset, value.byteOffset + value.byteLength);
  return new Response(value).arrayBuffer(); // a ReadableStream
}
export default function (env) {
  const cacheTtl = (options) => (typeof options === "object" && options !== null ? options.cacheTtl : undefined);
  return {
    async get(key, options) {
      const { value } = await env.CACHE.read(key, cacheTtl(options));
      return as(value, typeOf(options));
    },
    async getWithMetadata(key, options) {
      const { value, metadata, cached } = await env.CACHE.read(key, cacheTtl(options));
      return { value: as(value, typeOf(options)), metadata, cacheStatus: cached ? "HIT" : "MISS" };
    },
    async put(key, value, options) {
      await env.CACHE.write(key, await bytes(value), options);
    },
    delete: (key) => env.CACHE.remove(key),
    list: (options) => env.CACHE.list(options),
  };
}`;

/** A round trip's wait in front of a service: half before the call, half after. */
const DELAY = (call) => `
const sleep = (ms) => (ms > 0 ? new Promise((r) => setTimeout(r, ms)) : null);
export default {
  async fetch(request, env) {
    const rtt = Number(env.RTT_MS);
    await sleep(rtt / 2);
    const response = await ${call};
    await sleep(rtt / 2);
    return response;
  },
};`;

/** Round robin over the location's isolates (ISO1..ISOn). */
const ROUTER = `
let next = 0;
export default {
  fetch(request, env) {
    const n = Number(env.ISOLATES);
    const i = next++ % n;
    return env["ISO" + (i + 1)].fetch(request);
  },
};`;

/** The topology's options with their defaults, checked. */
export function topologyOptions({ locations = 3, isolates = 2, rttMs = REMOTE_RTT_MS, cacheTtlSeconds = KV_CACHE_TTL_DEFAULT_S, minCacheTtlSeconds = KV_CACHE_TTL_MIN_S } = {}) {
  for (const [name, n] of Object.entries({ locations, isolates })) {
    if (!Number.isInteger(n) || n < 1) throw new Error(`topology.${name}: expected a whole number of at least 1, got ${n}`);
  }
  for (const [name, n] of Object.entries({ rttMs, cacheTtlSeconds, minCacheTtlSeconds })) {
    if (!Number.isFinite(n) || n < 0) throw new Error(`topology.${name}: expected 0 or more, got ${n}`);
  }
  return { locations, isolates, rttMs, cacheTtlSeconds, minCacheTtlSeconds };
}

/** The round trip from location `l` (1-based) to the origin. */
export const rttOf = (l, rttMs) => (l === 1 ? 0 : rttMs);

const routerName = (l) => `loc${l}`;
export const isolateName = (l, i) => `loc${l}-iso${i}`;
const direct = [{ host: "127.0.0.1", port: 0 }];

/**
 * Miniflare's workers for the topology (see the top of this file), the first being location 1's
 * router (the Miniflare's entry, so the stack's port and change capture's webhook land at the
 * location beside the origin), with the worker's `bindings` (and `worker`'s other options over
 * builtWorker's) in every isolate and the live worker once.
 */
export function topologyWorkers({ bindings, worker = {}, ...options }) {
  const { locations, isolates, rttMs, cacheTtlSeconds, minCacheTtlSeconds } = topologyOptions(options);
  const live = liveWorker();
  const workers = [];
  for (let l = 1; l <= locations; l++) {
    const rtt = String(rttOf(l, rttMs));
    const routes = Object.fromEntries(Array.from({ length: isolates }, (_, k) => [`ISO${k + 1}`, isolateName(l, k + 1)]));
    workers.push({ name: routerName(l), modules: true, script: ROUTER, bindings: { ISOLATES: String(isolates) }, serviceBindings: routes, unsafeDirectSockets: direct });
    workers.push({
      name: `kv-cache-${l}`, modules: true, script: KV_CACHE, compatibilityDate: "2026-04-01",
      kvNamespaces: { REAL: "contact-cache" },
      bindings: { RTT_MS: rtt, CACHE_TTL_S: String(cacheTtlSeconds), MIN_CACHE_TTL_S: String(minCacheTtlSeconds) },
    });
    // A wrapped binding takes its compatibility date from the worker using it.
    workers.push({ name: `kv-wrap-${l}`, modules: true, script: KV_WRAP, serviceBindings: { CACHE: `kv-cache-${l}` } });
    workers.push({ name: `live-via-${l}`, modules: true, script: DELAY("env.LIVE.fetch(request)"), bindings: { RTT_MS: rtt }, serviceBindings: { LIVE: live.name } });
    if (rtt !== "0") workers.push({ name: `outbound-${l}`, modules: true, script: DELAY("fetch(request)"), bindings: { RTT_MS: rtt } });
    for (let i = 1; i <= isolates; i++) {
      workers.push(builtWorker({
        name: isolateName(l, i),
        bindings,
        kvNamespaces: {},
        wrappedBindings: { CONTACT_CACHE: { scriptName: `kv-wrap-${l}` } },
        serviceBindings: { LIVE: `live-via-${l}` },
        ...(rtt !== "0" ? { outboundService: `outbound-${l}` } : {}),
        unsafeDirectSockets: direct,
        ...worker,
      }));
    }
  }
  workers.push(live);
  return { workers, settings: { locations, isolates, rttMs, cacheTtlSeconds, minCacheTtlSeconds } };
}

/**
 * Each location's URL (its router) and its isolates' URLs, once `mf` (a Miniflare started with
 * topologyWorkers' workers) is ready: `[{ location, rttMs, url, isolates: [{ name, url }] }]`.
 */
export async function topologyUrls(mf, { locations, isolates, rttMs }) {
  const origin = async (name) => (await mf.unsafeGetDirectURL(name)).origin;
  const out = [];
  for (let l = 1; l <= locations; l++) {
    const list = [];
    for (let i = 1; i <= isolates; i++) list.push({ name: isolateName(l, i), url: await origin(isolateName(l, i)) });
    out.push({ location: l, rttMs: rttOf(l, rttMs), url: await origin(routerName(l)), isolates: list });
  }
  return out;
}
