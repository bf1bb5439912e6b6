// The local stack: PostgreSQL, PostgREST behind the local Supabase gateway, Redis, the backend
// and the worker, as real processes on loopback, free ports and a temp dir. Used by the dev
// command, the tests and the benchmark; this is what they import.
//
//   const stack = await startStack({ worker: "miniflare" });
//   ... stack.urls.worker, stack.tokens.demo ...
//   await stack.stop();
//
// Everything started is stopped and the temp dir removed on stop(), on process exit, on
// SIGINT/SIGTERM/SIGHUP and on an uncaught error. The pieces live in scripts/stack/:
// processes.mjs (spawning, stopping, ports, waiting), services.mjs (each service),
// gateway.mjs (the Supabase gateway's own process) and compose.mjs (the whole stack).
export { freePort, run, runSync, waitFor } from "./stack/processes.mjs";
export { POSTGREST_SCHEMAS, ROOT, SUPERUSER, backendEnv, builtWorker, psql, psqlArgs } from "./stack/services.mjs";
export { newStack, startStack } from "./stack/compose.mjs";
