// Checks that wrangler.toml declares everything the worker reads: every var (in [vars] and in
// each [env.*]'s vars, so a deployed environment never silently falls back to a default the file
// does not show), every secret (named in the file's header), every binding (in the top level and
// in each environment; the Rate Limiting bindings with the period the worker assumes). Run by
// scripts/test.sh; exits 1 naming what is missing.
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./stack/services.mjs";

/** Every `.rs` file under `dir`. */
function sources(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sources(path) : path.endsWith(".rs") ? [path] : [];
  });
}

/** What the worker's code reads, by kind: the helpers of src/config.rs name each setting once. */
export function settingsRead(code) {
  const names = (pattern) => new Set([...code.matchAll(pattern)].map((m) => m[1]));
  const secrets = names(/\b(?:secret|url)\("([A-Z0-9_]+)"\)/g);
  const vars = names(/\b(?:var\(env, |flag\(|millis\(|seconds\(|parse_number\()"([A-Z0-9_]+)"/g);
  for (const secret of secrets) vars.delete(secret);
  // Optional secrets are read with var(): the file's header names them as secrets.
  const bindings = names(/_BINDING: &str = "([A-Z0-9_]+)"/g);
  // The Rate Limiting bindings (src/limits.rs) and the period each must have.
  for (const name of names(/"(LIMIT_[A-Z0-9_]+)"/g)) bindings.add(name);
  const period = code.match(/PERIOD_SECONDS: u64 = (\d+)/)?.[1];
  return { vars, secrets, bindings, period: period && Number(period) };
}

/** What wrangler.toml declares: the header's secrets, and per environment its vars and bindings. */
export function declared(toml) {
  const header = toml.split("\n").filter((l) => l.startsWith("#")).join("\n");
  const secrets = new Set([...header.matchAll(/\b([A-Z][A-Z0-9_]{3,})\b/g)].map((m) => m[1]));
  const sections = { top: "" };
  let current = "top";
  for (const line of toml.split("\n")) {
    const env = line.match(/^\[+env\.([a-z]+)/);
    if (env) current = env[1];
    else if (/^\[/.test(line) && current !== "top" && !line.startsWith("[env.")) current = "top";
    sections[current] = (sections[current] ?? "") + line + "\n";
  }
  const keys = (text) => new Set([...text.matchAll(/\b([A-Z][A-Z0-9_]{2,})\s*=/g)].map((m) => m[1]));
  // A binding's name is `binding = "..."`, a rate limit's `name = "..."` (upper case: not the worker's name).
  const bindingNames = (text) => new Set([...text.matchAll(/\b(?:binding|name)\s*=\s*"([A-Z0-9_]+)"/g)].map((m) => m[1]));
  const rateLimits = (text) => [...text.matchAll(/name\s*=\s*"(LIMIT_[A-Z0-9_]+)",\s*namespace_id\s*=\s*"(\d+)",\s*simple\s*=\s*\{\s*limit\s*=\s*(\d+),\s*period\s*=\s*(\d+)/g)]
    .map(([, name, namespace, limit, period]) => ({ name, namespace, limit: Number(limit), period: Number(period) }));
  return Object.fromEntries(Object.entries(sections).map(([env, text]) => [env, { vars: keys(text), bindings: bindingNames(text), rateLimits: rateLimits(text) }]).concat([["secrets", secrets]]));
}

/** What is missing, as lines. */
export function missing(read, files) {
  const out = [];
  const envs = Object.keys(files).filter((k) => k !== "secrets");
  for (const secret of read.secrets) if (!files.secrets.has(secret)) out.push(`secret ${secret} is not named in wrangler.toml's header`);
  for (const name of read.vars) {
    if (files.secrets.has(name)) continue;
    for (const env of envs) if (!files[env].vars.has(name)) out.push(`var ${name} is not declared in ${env === "top" ? "[vars]" : `[env.${env}] vars`}`);
  }
  // ANALYTICS is optional and documented as commented out.
  for (const binding of read.bindings) {
    if (binding === "ANALYTICS") continue;
    for (const env of envs) if (!files[env].bindings.has(binding)) out.push(`binding ${binding} is not declared in ${env === "top" ? "the top level" : `[env.${env}]`}`);
  }
  // Every rate limit has the period the worker's Retry-After assumes, and a namespace of its own.
  const namespaces = new Map();
  for (const env of envs) {
    for (const limit of files[env].rateLimits ?? []) {
      if (limit.period !== read.period) out.push(`rate limit ${limit.name} in ${env} has period ${limit.period}, the worker assumes ${read.period} (src/limits.rs)`);
      const other = namespaces.get(limit.namespace);
      if (other) out.push(`rate limit ${limit.name} in ${env} shares namespace_id ${limit.namespace} with ${other}`);
      namespaces.set(limit.namespace, `${limit.name} in ${env}`);
    }
  }
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const code = sources(join(ROOT, "src")).map((f) => readFileSync(f, "utf8")).join("\n");
  const problems = missing(settingsRead(code), declared(readFileSync(join(ROOT, "wrangler.toml"), "utf8")));
  if (problems.length > 0) {
    console.error(`[wrangler.toml] ${problems.length} missing:\n  ${problems.join("\n  ")}`);
    process.exit(1);
  }
  console.error("[wrangler.toml] every var, secret and binding the worker reads is declared");
}
