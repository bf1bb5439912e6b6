#!/usr/bin/env node
// A local stand-in for the three wrangler commands the deploy scripts run against Cloudflare, so
// that the test command runs scripts/deploy/worker.sh and rollback.sh unchanged (WRANGLER points
// here) and proves a rollback brings the previous version back (tests/e2e/deploy.test.mjs):
//
//   deploy --config C --env E              uploads a new version: a copy of C's build/ and the
//                                          bindings in the JSON file LOCAL_WRANGLER_BINDINGS
//                                          (a Cloudflare version is its code and its bindings),
//                                          deployed at 100%; prints "Current Version ID: <id>"
//   deployments status --config C --env E --json
//                                          the current deployment, in Cloudflare's shape
//                                          ({id, versions: [{version_id, percentage}]}); exit 1
//                                          when the worker was never deployed
//                                          (LOCAL_WRANGLER_FAIL=auth: fails as a refused token does)
//   rollback <version-id> --config C --env E --message M --yes
//                                          deploys that earlier version at 100% again; exit 1
//                                          for a version never uploaded
//
// Versions live under LOCAL_WRANGLER_STORE/<worker name>/, the worker name being the config's
// `name` for that environment, as on Cloudflare. What serves them is the test's: it starts
// Miniflare on the deployed version's code and bindings (`deployedVersion` below), as
// Cloudflare's edge serves the deployment's version.
import { randomUUID } from "node:crypto";
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

/** The worker's name in `env` of the wrangler config at `config`. */
export function workerName(config, env) {
  const toml = readFileSync(config, "utf8");
  const section = toml.split(/^\[env\.([a-z]+)\]\s*$/m);
  for (let i = 1; i < section.length; i += 2) {
    if (section[i] === env) return section[i + 1].match(/^name\s*=\s*"([^"]+)"/m)?.[1];
  }
  return toml.match(/^name\s*=\s*"([^"]+)"/m)?.[1];
}

/** The deployed version of a worker in `store`: `{id, build, bindings}`, or null. */
export function deployedVersion(store, name) {
  const file = join(store, name, "deployment.json");
  if (!existsSync(file)) return null;
  const id = JSON.parse(readFileSync(file, "utf8")).versions[0].version_id;
  const dir = join(store, name, "versions", id);
  return { id, build: join(dir, "build"), bindings: JSON.parse(readFileSync(join(dir, "bindings.json"), "utf8")) };
}

function option(args, name) {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

function deploy(dir, versionId, annotations) {
  const deployment = { id: randomUUID(), source: "wrangler", strategy: "percentage", created_on: new Date().toISOString(), annotations, versions: [{ version_id: versionId, percentage: 100 }] };
  writeFileSync(join(dir, "deployment.json"), JSON.stringify(deployment, null, 2));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2);
  const store = process.env.LOCAL_WRANGLER_STORE;
  const config = resolve(option(args, "--config") ?? "wrangler.toml");
  const env = option(args, "--env");
  const fail = (message) => {
    console.error(`✘ [ERROR] ${message}`);
    process.exit(1);
  };
  if (!store) fail("LOCAL_WRANGLER_STORE is not set");
  const name = workerName(config, env);
  const dir = join(store, name);
  if (args[0] === "deploy") {
    const id = randomUUID();
    const version = join(dir, "versions", id);
    mkdirSync(version, { recursive: true });
    cpSync(join(dirname(config), "build"), join(version, "build"), { recursive: true });
    const bindings = process.env.LOCAL_WRANGLER_BINDINGS ? readFileSync(process.env.LOCAL_WRANGLER_BINDINGS, "utf8") : "{}";
    writeFileSync(join(version, "bindings.json"), bindings);
    deploy(dir, id, { "workers/triggered_by": "deployment" });
    console.log(`Uploaded ${name}\nDeployed ${name}\nCurrent Version ID: ${id}`);
  } else if (args[0] === "deployments" && args[1] === "status") {
    // LOCAL_WRANGLER_FAIL=auth: the API refuses the token, as Cloudflare's code 10000.
    if (process.env.LOCAL_WRANGLER_FAIL === "auth") fail("A request to the Cloudflare API failed. Authentication error [code: 10000]");
    if (!existsSync(join(dir, "deployment.json"))) fail(`This Worker does not exist on your account. [code: 10007] (${name})`);
    console.log(readFileSync(join(dir, "deployment.json"), "utf8"));
  } else if (args[0] === "rollback") {
    const id = args[1];
    if (!id || !existsSync(join(dir, "versions", id))) fail(`version ${id} of ${name} does not exist`);
    deploy(dir, id, { "workers/triggered_by": "rollback", "workers/rollback_from": deployedVersion(store, name)?.id, "workers/message": option(args, "--message") });
    console.log(`Worker Version ${id} has been deployed to 100% of traffic.\nCurrent Version ID: ${id}`);
  } else {
    fail(`local-wrangler does not do: ${args.join(" ")}`);
  }
}
