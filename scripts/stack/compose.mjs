// The whole local stack from options: PostgreSQL migrated and seeded, PostgREST behind the local
// Supabase gateway, Redis, the backend with change capture pointed at the worker, and the worker
// in Miniflare or under `wrangler dev` (or none), with fresh secrets. Used by the dev command,
// the tests and the benchmark; `newStack()` gives an empty stack to start pieces in.
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { anonKey, userToken } from "../jwt.mjs";
import { seed } from "../seed-ids.mjs";
import { freePort, log, track } from "./processes.mjs";
import { ROOT, SUPERUSER, Stack, liveWorker, psql } from "./services.mjs";

/** An ES256 (P-256) and an RS256 key pair, as a Supabase project with asymmetric keys has. */
function signingKeys() {
  const pair = (type, options, kid, alg) => {
    const { publicKey, privateKey } = generateKeyPairSync(type, options);
    return { kid, alg, pem: privateKey.export({ format: "pem", type: "pkcs8" }), jwk: { ...publicKey.export({ format: "jwk" }), kid, alg, use: "sig" } };
  };
  return { ec: pair("ec", { namedCurve: "P-256" }, "local-ec-1", "ES256"), rsa: pair("rsa", { modulusLength: 2048 }, "local-rsa-1", "RS256") };
}

/**
 * An empty stack to start pieces in (`startRedis`, `startBackend`, `startMiniflare`, ...);
 * stopped like a whole one, by `stop()` or at exit.
 */
export function newStack() {
  return track(new Stack());
}

/**
 * Starts the whole stack. Resolves to what its users need (URLs, ports, secrets, the worker's
 * bindings, the backend's options, a demo user's token, how long seeding and start-up took),
 * with `stop()` and the `stack` itself.
 * @param {object} options
 * @param {"miniflare"|"wrangler"|"none"} options.worker how to run the worker
 * @param {number} options.contacts how many contacts to seed (default 100000)
 * @param {number} options.workerPort fixed port for `wrangler dev` (default 8787)
 * @param {string} options.afterSeed SQL run as the cluster's superuser (SUPERUSER) once the seed is in
 * @param {object} options.backendEnv the backend's environment, over the stack's
 * @param {object} options.bindings the worker's bindings, over the stack's
 * @param {(bindings: object) => object[]} options.extraWorkers with `worker: "miniflare"`, the
 *   workers to run beside it in the same Miniflare (see builtWorker), given its bindings
 * @param {object} options.topology with `worker: "miniflare"`, the worker in Cloudflare's topology
 *   instead (scripts/stack/topology.mjs: `{ locations, isolates, rttMs, cacheTtlSeconds }`);
 *   `urls.worker` is then location 1's and `topology.locations` has every location's and isolate's
 */
export async function startStack({
  worker = "miniflare",
  contacts = 100_000,
  workerPort = 8787,
  afterSeed,
  backendEnv = {},
  bindings: overrides = {},
  extraWorkers = () => [],
  topology,
} = {}) {
  const stack = newStack();
  const started = Date.now();
  try {
    const jwtSecret = randomBytes(32).toString("hex");
    const signing = signingKeys();
    const internalAuthKey = randomBytes(24).toString("hex");
    const webhookSecret = randomBytes(24).toString("hex");
    const backendMetricsToken = randomBytes(24).toString("hex");
    const encryptionKey = `local1:${randomBytes(32).toString("base64")}`;
    // The worker's port is chosen first so the backend's change capture knows where to post.
    const port = worker === "wrangler" ? workerPort : await freePort();
    log(`temp dir ${stack.dir}`);
    const pg = await stack.startDatabase(contacts);
    const seedSeconds = (Date.now() - started) / 1000;
    if (afterSeed) await psql(pg.port, { command: afterSeed, user: SUPERUSER });
    const [supabase, redis] = await Promise.all([stack.startSupabase({ jwtSecret, signing }), stack.startRedis()]);
    const backendOptions = { redisUrl: redis.url, internalAuthKey, databaseUrl: pg.url, encryptionKey, supabaseUrl: supabase.url, jwtSecret, metricsToken: backendMetricsToken };
    const { url: backend } = await stack.startBackend({
      ...backendOptions,
      env: { WORKER_WEBHOOK_URL: `http://127.0.0.1:${port}/api/cache/webhook`, WEBHOOK_SECRET: webhookSecret, ...backendEnv },
    });
    const secrets = {
      SUPABASE_URL: supabase.url,
      SUPABASE_ANON_KEY: anonKey(jwtSecret),
      SUPABASE_JWT_SECRET: jwtSecret,
      BACKEND_URL: backend,
      INTERNAL_AUTH_KEY: internalAuthKey,
      WEBHOOK_SECRET: webhookSecret,
      CACHE_ENCRYPTION_KEY: encryptionKey,
      BACKEND_METRICS_TOKEN: backendMetricsToken,
    };
    const bindings = { ENVIRONMENT: "test", REDIS_ENABLED: "true", CORS_ALLOWED_ORIGINS: "*", ...secrets, ...overrides };
    let workerUrl = null;
    let topologyInfo = null;
    if (worker === "miniflare" && topology) {
      const started = await stack.startTopology({ bindings, port, topology });
      workerUrl = started.url;
      topologyInfo = { ...started.settings, locations: started.locations };
    } else if (worker === "miniflare") {
      // The live channel's worker beside it, bound as LIVE.
      workerUrl = await stack.startMiniflare({
        bindings,
        port,
        app: { serviceBindings: { LIVE: liveWorker().name } },
        extraWorkers: [liveWorker(), ...extraWorkers(bindings)],
      });
    } else if (worker === "wrangler") {
      // wrangler.toml has the other variables.
      const devVars = Object.entries({ ...secrets, ...overrides }).map(([k, v]) => `${k}=${v}`).join("\n");
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
      bindings,
      backendOptions,
      demoUser,
      tokens: { demo: userToken(jwtSecret, { sub: demoUser.id, email: demoUser.email, ttlSeconds: 86_400 }) },
      timings: { seedSeconds, readySeconds: (Date.now() - started) / 1000 },
      ...(topologyInfo ? { topology: topologyInfo } : {}),
    };
    return Object.assign(info, { stop: () => stack.stop(), stack });
  } catch (err) {
    await stack.stop();
    throw err;
  }
}
