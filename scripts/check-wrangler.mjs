// Checks that wrangler.toml declares everything the worker reads: every var (in [vars] and in
// each [env.*]'s vars, so a deployed environment never silently falls back to a default the file
// does not show), every secret (named in the file's header), every binding (in the top level and
// in each environment; the Rate Limiting bindings with the period the worker assumes), and that
// both workers' [observability] blocks (wrangler.toml, live/wrangler.toml) are there, enabled and
// identical. Run by scripts/test.sh; exits 1 naming what is missing.
//
// `--deploy <env>` (scripts/deploy/worker.sh, before each deploy) also fails naming every KV
// namespace id of that environment that is still a placeholder (not 32 hex digits, or the
// repository's 000...0001 / 000...0002 stand-ins), which a dry run cannot catch.
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

/** Each table's `key = value` lines, by table name (`observability`, `env.staging.observability`, ...). */
function tables(toml) {
  const out = {};
  let current = "";
  for (const raw of toml.split("\n")) {
    const line = raw.replace(/#.*$/, "").trim();
    const header = line.match(/^\[\[?([^\]]+)\]\]?$/);
    if (header) current = header[1].trim();
    else if (line.includes("=")) {
      const [key, ...value] = line.split("=");
      (out[current] ??= {})[key.trim()] = value.join("=").trim();
    }
  }
  return out;
}

/** Problems with the two workers' [observability] blocks: missing, off, or not the same. */
export function observability(files) {
  const out = [];
  const blocks = Object.entries(files).map(([file, toml]) => {
    const all = tables(toml);
    const top = all.observability;
    if (!top) out.push(`${file} has no [observability] block`);
    else if (top.enabled !== "true") out.push(`${file}: [observability] enabled is ${top.enabled ?? "unset"}, not true`);
    for (const [name, block] of Object.entries(all)) {
      const env = name.match(/^env\.([a-z]+)\.observability$/)?.[1];
      if (env && JSON.stringify(block) !== JSON.stringify(top)) out.push(`${file}: [env.${env}.observability] differs from its [observability]`);
    }
    return [file, JSON.stringify(top ?? {})];
  });
  const [first, ...rest] = blocks;
  for (const [file, block] of rest) {
    if (block !== first[1]) out.push(`[observability] in ${file} (${block}) differs from ${first[0]}'s (${first[1]})`);
  }
  return out;
}

/** The KV namespace ids of `env` in `toml` that are placeholders, as `binding id` pairs. */
export function placeholderNamespaces(toml, env) {
  const out = [];
  let inside = false;
  let binding = null;
  for (const raw of toml.split("\n")) {
    const line = raw.replace(/#.*$/, "").trim();
    if (/^\[/.test(line)) {
      inside = line === `[[env.${env}.kv_namespaces]]`;
      binding = null;
      continue;
    }
    if (!inside) continue;
    binding = line.match(/^binding\s*=\s*"([^"]+)"/)?.[1] ?? binding;
    const id = line.match(/^id\s*=\s*"([^"]*)"/)?.[1];
    if (id !== undefined && (!/^[0-9a-f]{32}$/i.test(id) || /^0{28}/.test(id))) out.push({ binding, id });
  }
  // An environment that lists its namespaces inline (kv_namespaces = [...]) is read too.
  const inline = toml.match(new RegExp(`\\[env\\.${env}\\][^\\[]*?kv_namespaces\\s*=\\s*\\[([^\\]]*)\\]`))?.[1] ?? "";
  for (const m of inline.matchAll(/binding\s*=\s*"([^"]+)"\s*,\s*id\s*=\s*"([^"]*)"/g)) {
    if (!/^[0-9a-f]{32}$/i.test(m[2]) || /^0{28}/.test(m[2])) out.push({ binding: m[1], id: m[2] });
  }
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const code = sources(join(ROOT, "src")).map((f) => readFileSync(f, "utf8")).join("\n");
  const main = readFileSync(join(ROOT, "wrangler.toml"), "utf8");
  const live = readFileSync(join(ROOT, "live", "wrangler.toml"), "utf8");
  const problems = [...missing(settingsRead(code), declared(main)), ...observability({ "wrangler.toml": main, "live/wrangler.toml": live })];
  const deployIndex = process.argv.indexOf("--deploy");
  const deployEnv = deployIndex > 0 ? process.argv[deployIndex + 1] : null;
  if (deployIndex > 0 && !/^[a-z]+$/.test(deployEnv ?? "")) problems.push("--deploy needs an environment name");
  if (deployEnv) {
    for (const [file, toml] of [["wrangler.toml", main], ["live/wrangler.toml", live]]) {
      for (const { binding, id } of placeholderNamespaces(toml, deployEnv)) {
        problems.push(`${file} [env.${deployEnv}] KV namespace ${binding} has the placeholder id "${id}": run \`wrangler kv namespace create ${binding} --env ${deployEnv}\` and put the id it prints there`);
      }
    }
  }
  if (problems.length > 0) {
    console.error(`[wrangler.toml] ${problems.length} problem(s):\n  ${problems.join("\n  ")}`);
    process.exit(1);
  }
  console.error(`[wrangler.toml] every var, secret and binding the worker reads is declared; [observability] is on and the same in both workers${deployEnv ? `; no placeholder KV namespace id in ${deployEnv}` : ""}`);
}
