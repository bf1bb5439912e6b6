// End-to-end runner: starts one real stack (worker in Miniflare), runs every tests/e2e/*.test.mjs
// with node's test runner against it, and always stops the stack.
import { spawn } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { ROOT, startStack } from "../scripts/stack.mjs";

// `node tests/run.mjs [name ...]` runs only the files whose names contain one of the names.
const only = process.argv.slice(2);
const files = readdirSync(join(ROOT, "tests", "e2e"))
  .filter((f) => f.endsWith(".test.mjs") && (only.length === 0 || only.some((name) => f.includes(name))))
  .sort()
  .map((f) => join("tests", "e2e", f));

// L0 (the isolate's memory of pages) off, so each test sees its layers; tests/e2e/l0.test.mjs
// turns it on in workers of its own.
const stack = await startStack({ worker: "miniflare", contacts: Number(process.env.SEED_CONTACTS ?? 100_000), bindings: { L0_CACHE_MB: "0" } });
const { stop, stack: _internal, ...shared } = stack;

// Every answer a test receives from a worker is checked against docs/openapi.yaml
// (tests/openapi/preload.mjs, loaded into each test process).
const runner = spawn(process.execPath, ["--import", "./tests/openapi/preload.mjs", "--test", "--test-concurrency=1", ...files], {
  cwd: ROOT,
  stdio: "inherit",
  env: { ...process.env, CONTACT_LIST_CACHE_STACK: JSON.stringify(shared) },
});
const code = await new Promise((res) => runner.on("exit", (c, signal) => res(c ?? (signal ? 1 : 0))));
await stop();
process.exit(code);
