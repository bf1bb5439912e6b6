// End-to-end runner: starts one real stack (worker in Miniflare), runs every tests/e2e/*.test.mjs
// with node's test runner against it, and always stops the stack.
//
//   node tests/run.mjs [name ...]                        the files whose names contain a name
//   node tests/run.mjs --production-defaults [name ...]  the same, the worker as production runs it
//   node tests/run.mjs --test-name-pattern=<re> [...]    only the tests whose names match
import { spawn } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { ROOT, startStack } from "../scripts/stack.mjs";

const args = process.argv.slice(2);
const productionDefaults = args.includes("--production-defaults");
const passed = args.filter((arg) => arg.startsWith("--test-name-pattern="));
const only = args.filter((arg) => !arg.startsWith("--"));
const files = readdirSync(join(ROOT, "tests", "e2e"))
  .filter((f) => f.endsWith(".test.mjs") && (only.length === 0 || only.some((name) => f.includes(name))))
  .sort()
  .map((f) => join("tests", "e2e", f));

/**
 * The worker's vars as `wrangler deploy --env production` sets them (wrangler.toml's
 * [env.production.vars]: L0 on, the default staleness bound, the budgets...), but ENVIRONMENT,
 * which stays `test`: production refuses to serve /metrics without METRICS_TOKEN, which tests of
 * other subjects read.
 */
function productionVars() {
  const toml = readFileSync(join(ROOT, "wrangler.toml"), "utf8");
  const section = toml.split(/^\[/m).find((part) => part.startsWith("env.production.vars]"));
  if (!section) throw new Error("wrangler.toml has no [env.production.vars]");
  const vars = Object.fromEntries([...section.matchAll(/^([A-Z0-9_]+)\s*=\s*"([^"]*)"/gm)].map((m) => [m[1], m[2]]));
  delete vars.ENVIRONMENT;
  return vars;
}

// The default pass: L0 (the isolate's memory of pages) off, so each test sees its layers;
// tests/e2e/l0.test.mjs turns it on in workers of its own. The production-defaults pass runs the
// worker with production's vars, L0 on, and the tests must hold there too.
const bindings = productionDefaults ? productionVars() : { L0_CACHE_MB: "0" };
if (productionDefaults) process.stderr.write(`[run] production defaults: ${JSON.stringify(bindings)}\n`);
const stack = await startStack({ worker: "miniflare", contacts: Number(process.env.SEED_CONTACTS ?? 100_000), bindings });
const { stop, stack: _internal, ...shared } = stack;

// Every answer a test receives from a worker is checked against docs/openapi.yaml
// (tests/openapi/preload.mjs, loaded into each test process).
const runner = spawn(process.execPath, ["--import", "./tests/openapi/preload.mjs", "--test", "--test-concurrency=1", ...passed, ...files], {
  cwd: ROOT,
  stdio: "inherit",
  env: { ...process.env, CONTACT_LIST_CACHE_STACK: JSON.stringify({ ...shared, productionDefaults }) },
});
const code = await new Promise((res) => runner.on("exit", (c, signal) => res(c ?? (signal ? 1 : 0))));
await stop();
process.exit(code);
