// The backend's container image, run as it declares itself, against the stack. `podman run` is
// refused on these machines (its runtime may not set rlimits), so the test does what a runtime
// does: it exports the image's filesystem to a directory, reads the image's config (Entrypoint,
// Cmd, Env, User, WorkingDir, ExposedPorts, Healthcheck) and execs the entrypoint in that root,
// with exactly that argv and that environment plus the stack's settings, as the declared user.
//
// `chroot --userspec=uid:gid <root> <entrypoint>` does it: chroot changes root and user, then
// execs the image's own binary, which from then on sees nothing but the image's files. That is
// stricter than a container (which adds /proc, /dev, /etc/hosts and /etc/resolv.conf), so a
// missing file, a dynamic library, or a need for root fails here. The network is the host's
// loopback, as with `--network host`. chroot and extracting files owned by root take root: the
// test is root here, and on CI runners it goes through passwordless sudo (see asRoot).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { connect } from "node:net";
import { join, relative } from "node:path";
import { after, before, describe, test } from "node:test";
import { ROOT, backendEnv, freePort, newStack, psql, psqlArgs, run, waitFor } from "../../scripts/stack.mjs";
import { expectedPage, seed, stack, tokenFor } from "./harness.mjs";

const CHROOT = "/usr/sbin/chroot";
const IS_ROOT = process.getuid() === 0;
const WS = seed.workspace(1);
const ME = seed.user(1);
const BOARD = seed.board(1, 1);
const pieces = newStack();
after(() => pieces.stop());

/** What the image declares, and its filesystem unpacked in a directory. */
const image = {};

before(async () => {
  // The first build compiles the release binary for musl (minutes on 2 cores); the test command
  // builds it before the suite, so this is cargo and podman finding everything up to date.
  image.ref = (await run("bash", [join(ROOT, "scripts", "build-image.sh")])).trim().split("\n").at(-1);
  const [inspected] = JSON.parse(await run("podman", ["image", "inspect", image.ref]));
  image.config = inspected.Config;
  image.healthcheck = inspected.Healthcheck ?? inspected.Config.Healthcheck;
  image.root = await unpack(image.ref);
});

/**
 * `[cmd, args, env]` to spawn `cmd args` as root with exactly the environment `env` (when given):
 * directly when this process is root, else through passwordless sudo (GitHub's runners have it),
 * with `env -i` so that sudo adds nothing to the environment.
 */
function asRoot(cmd, args, env) {
  if (IS_ROOT) return [cmd, args, env];
  const exact = env ? ["/usr/bin/env", "-i", ...Object.entries(env).map(([name, value]) => `${name}=${value}`)] : [];
  return ["sudo", ["-n", "--", ...exact, cmd, ...args], undefined];
}

/** Exports the filesystem of a container created (never started) from `ref` into a directory. */
async function unpack(ref) {
  const tar = join(pieces.dir, "image.tar");
  const root = join(pieces.dir, "rootfs");
  const id = (await run("podman", ["create", "--no-healthcheck", ref])).trim();
  try {
    await run("podman", ["export", "--output", tar, id]);
  } finally {
    await run("podman", ["rm", "--force", id]).catch(() => {});
  }
  await mkdir(root, { mode: 0o755 });
  const [cmd, args] = asRoot("tar", ["--extract", "--same-owner", "--same-permissions", "--file", tar, "--directory", root]);
  await run(cmd, args);
  // Its files are root's: removed as root, before the stack removes its directory.
  pieces.onStop(() => run(...asRoot("rm", ["-rf", root]).slice(0, 2)));
  return root;
}

/** The pid of the image's binary started by `child` (itself when root; under sudo, a descendant). */
function binaryPid(child) {
  if (IS_ROOT) return child.pid;
  const parents = new Map();
  for (const pid of readdirSync("/proc").filter((name) => /^\d+$/.test(name))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      parents.set(Number(pid), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
    } catch {} // gone meanwhile
  }
  const descends = (pid) => pid === child.pid || (parents.has(pid) && pid > 1 && descends(parents.get(pid)));
  const binary = [...parents.keys()].find((pid) => pid !== child.pid && descends(pid) && readFileSync(`/proc/${pid}/comm`, "utf8").startsWith("contact-list"));
  assert.ok(binary, "the image's binary runs under sudo");
  return binary;
}

/** Where `/proc/<pid>/<link>` points (reading it for another user's process takes root). */
const procLink = async (pid, link) => (await run(...asRoot("readlink", [`/proc/${pid}/${link}`]).slice(0, 2))).trim();

/** The declared user as numbers: scratch has no /etc/passwd to resolve a name with. */
function declaredUser() {
  const match = /^(\d+)(?::(\d+))?$/.exec(image.config.User ?? "");
  assert.ok(match, `the image declares a numeric user, not ${JSON.stringify(image.config.User)}`);
  return { uid: Number(match[1]), gid: Number(match[2] ?? 0) };
}

const declaredEnv = () => Object.fromEntries(image.config.Env.map((entry) => [entry.slice(0, entry.indexOf("=")), entry.slice(entry.indexOf("=") + 1)]));

/** chroot's arguments to exec `argv` in the image's root as its declared user. */
function inImage(argv) {
  const { uid, gid } = declaredUser();
  return ["--userspec", `${uid}:${gid}`, image.root, ...argv];
}

/** The entrypoint started as declared (argv = Entrypoint + Cmd) with the declared Env, the
 * stack's settings for a backend on a free loopback port, and `env`. */
async function startImage(env = {}) {
  const port = await freePort();
  const argv = [...image.config.Entrypoint, ...(image.config.Cmd ?? [])];
  const fullEnv = { ...declaredEnv(), ...backendEnv({ ...stack.backendOptions, port, env }) };
  const [cmd, args, exactEnv] = asRoot(CHROOT, inImage(argv), fullEnv);
  const child = pieces.spawnService(`image-${port}`, cmd, args, exactEnv ?? {}, { inheritEnv: exactEnv === undefined });
  const exit = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal, at: Date.now() })));
  const url = `http://127.0.0.1:${port}`;
  const ready = waitFor("the image's backend", async () => (await fetch(`${url}/health`)).ok).then(() => null);
  ready.catch(() => {}); // the race below reports it
  const failure = await Promise.race([ready, exit.then(({ code, signal }) => `exited (${code ?? signal})`)]);
  assert.equal(failure, null, `the image's backend ${failure}:\n${child.output()}`);
  return { url, port, env: fullEnv, child, exit };
}

/** Runs the declared HEALTHCHECK (`CMD` form: no shell in the image) in the image as declared,
 * with `env`, killed after its declared timeout; resolves to its exit code and output. */
function runHealthcheck(env) {
  const [form, ...argv] = image.healthcheck.Test;
  assert.equal(form, "CMD", "the image has no shell, so its health check is an exec (CMD) form");
  const timeoutMs = image.healthcheck.Timeout / 1e6;
  return new Promise((resolve, reject) => {
    const [cmd, args, exactEnv] = asRoot(CHROOT, inImage(argv), env);
    const child = spawn(cmd, args, { env: exactEnv, stdio: ["ignore", "pipe", "pipe"], timeout: timeoutMs });
    let output = "";
    child.stdout.on("data", (data) => (output += data));
    child.stderr.on("data", (data) => (output += data));
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code, signal, output }));
  });
}

const headers = () => ({ "X-Internal-Auth": stack.secrets.INTERNAL_AUTH_KEY, "X-Workspace-ID": WS, "X-User-ID": ME, Authorization: `Bearer ${tokenFor(ME)}` });

/** Holds an ACCESS EXCLUSIVE lock on `contacts` in a psql session of its own until `release()`,
 * so a backend's read of the table waits in PostgreSQL: a request that stays in flight. */
async function lockContacts() {
  const session = spawn("psql", psqlArgs(stack.ports.postgres, {}), { stdio: ["pipe", "ignore", "pipe"] });
  const closed = new Promise((resolve) => session.once("close", resolve));
  session.stdin.write("begin;\nlock table contacts in access exclusive mode;\n");
  const granted = "select count(*) from pg_locks where relation = 'contacts'::regclass and mode = 'AccessExclusiveLock' and granted";
  await waitFor("the lock on contacts", async () => (await psql(stack.ports.postgres, { command: granted })).trim() === "1");
  return async () => {
    session.stdin.end("commit;\n");
    await closed;
  };
}

/** Resolves once a query on `contacts` waits for a lock: the request reached PostgreSQL. */
const aReadWaitsOnTheLock = () =>
  waitFor("a read waiting on the lock", async () => {
    const waiting = "select count(*) from pg_stat_activity where wait_event_type = 'Lock' and query ilike '%contacts%'";
    return Number(await psql(stack.ports.postgres, { command: waiting })) >= 1;
  });

/** Whether a new TCP connection to `port` on loopback is refused. */
const refuses = (port) =>
  new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(false);
    });
    socket.once("error", (err) => resolve(err.code === "ECONNREFUSED"));
  });

describe("the backend image", () => {
  test("declares a non-root numeric user, its entrypoint, port, defaults and an exec health check", () => {
    const { uid, gid } = declaredUser();
    assert.ok(uid !== 0 && gid !== 0, `user ${image.config.User} is not root`);
    assert.deepEqual(image.config.Entrypoint, ["/contact-list-cache-backend"]);
    assert.ok(["", "/", undefined].includes(image.config.WorkingDir), `the entrypoint runs from /, not ${image.config.WorkingDir}`);
    const env = declaredEnv();
    assert.equal(env.HOST, "0.0.0.0");
    assert.deepEqual(Object.keys(image.config.ExposedPorts ?? {}), [`${env.PORT}/tcp`], "it exposes the port it listens on");
    assert.deepEqual(image.healthcheck.Test, ["CMD", "/contact-list-cache-backend", "healthcheck"]);
    assert.ok(image.healthcheck.Timeout > 0 && image.healthcheck.Interval > 0);
  });

  test("holds only the static binary and the CA bundle", () => {
    const files = [];
    const walk = (dir) => {
      for (const name of readdirSync(dir)) {
        const path = join(dir, name);
        if (statSync(path).isDirectory()) walk(path);
        else files.push(relative(image.root, path));
      }
    };
    walk(image.root);
    assert.deepEqual(files.sort(), ["contact-list-cache-backend", "etc/ssl/certs/ca-certificates.crt"]);
    assert.equal(statSync(join(image.root, "contact-list-cache-backend")).mode & 0o555, 0o555, "readable and executable by anyone");
  });

  test("serves the stack as declared: health, a read-through then a Redis hit, a store; its health check passes, then fails once stopped", async () => {
    const backend = await startImage();
    // The process chroot exec'd into: the image's binary, in the image's root, as its user.
    const { uid, gid } = declaredUser();
    const pid = binaryPid(backend.child);
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    assert.match(status, new RegExp(`^Uid:\\t${uid}\\t${uid}\\t${uid}\\t${uid}$`, "m"));
    assert.match(status, new RegExp(`^Gid:\\t${gid}\\t`, "m"));
    assert.equal(await procLink(pid, "root"), image.root);
    assert.equal(await procLink(pid, "exe"), join(image.root, "contact-list-cache-backend"));
    const health = await (await fetch(`${backend.url}/health`)).json();
    assert.equal(health.status, "healthy", JSON.stringify(health));
    assert.equal(health.redis.status, "up");
    assert.equal(health.database.status, "up");

    // A query no other test asks for, so the marker stored below is nobody else's page.
    const path = `/api/boards/${BOARD}/contacts?filter=low_priority&sortBy=name&sortOrder=asc&page=2&pageSize=13`;
    const first = await fetch(`${backend.url}${path}`, { headers: headers() });
    assert.equal(first.status, 200, await first.clone().text());
    assert.equal(first.headers.get("x-cache-layer"), "DATABASE");
    const page = await first.json();
    const expected = expectedPage({ workspace: WS, board: BOARD, me: ME, filter: "low_priority", sortBy: "name", sortOrder: "asc", page: 2, pageSize: 13 });
    assert.deepEqual(page.data.contacts.map((c) => c.id), expected.ids);
    await waitFor("the write-back to Redis", async () => (await fetch(`${backend.url}${path}`, { headers: headers() })).headers.get("x-cache-layer") === "REDIS", 5000);
    const key = first.headers.get("x-cache-key");
    try {
      const marker = { success: true, marker: `image-${backend.port}` };
      const stored = await fetch(`${backend.url}/api/cache/store`, {
        method: "POST",
        headers: { ...headers(), "Content-Type": "application/json" },
        body: JSON.stringify({ key, data: marker, ttl: 60 }),
      });
      assert.equal(stored.status, 200, await stored.text());
      const cached = await fetch(`${backend.url}${path.replace("/contacts?", "/contacts/cache?")}`, { headers: { ...headers(), "X-Cache-Only": "true" } });
      assert.equal(cached.headers.get("x-cache-status"), "HIT");
      assert.deepEqual(await cached.json(), marker);
    } finally {
      await run("redis-cli", ["-p", String(stack.ports.redis), "del", key]);
    }

    const check = await runHealthcheck(backend.env);
    assert.equal(check.code, 0, check.output);
    assert.match(check.output, /healthy/);

    backend.child.kill("SIGTERM");
    assert.deepEqual(await backend.exit.then(({ code, signal }) => ({ code, signal })), { code: 0, signal: null }, backend.child.output());
    const stopped = await runHealthcheck(backend.env);
    assert.equal(stopped.code, 1, `the health check fails when nothing answers: ${stopped.output}`);
  });

  test("on SIGTERM it stops accepting, lets an in-flight request finish, then exits 0", async () => {
    const backend = await startImage({ DATABASE_TIMEOUT_MS: "30000" });
    const release = await lockContacts();
    let response;
    try {
      response = fetch(`${backend.url}/api/boards/${BOARD}/contacts?filter=open&pageSize=5`, { headers: { ...headers(), "Cache-Control": "no-cache" } });
      await aReadWaitsOnTheLock();
      backend.child.kill("SIGTERM");
      await waitFor("new connections refused", () => refuses(backend.port), 5000);
      assert.equal(backend.child.exitCode, null, "it waits for the request in flight");
    } finally {
      await release();
    }
    const res = await response;
    assert.equal(res.status, 200);
    const expected = expectedPage({ workspace: WS, board: BOARD, me: ME, filter: "open", pageSize: 5 });
    assert.deepEqual((await res.json()).data.contacts.map((c) => c.id), expected.ids);
    const { code, signal } = await backend.exit;
    assert.deepEqual({ code, signal }, { code: 0, signal: null }, backend.child.output());
    assert.match(backend.child.output(), /draining in-flight requests/);
  });

  test("a request still running after SHUTDOWN_TIMEOUT_SECS is dropped and the exit code says so", async () => {
    const backend = await startImage({ DATABASE_TIMEOUT_MS: "30000", SHUTDOWN_TIMEOUT_SECS: "1" });
    const release = await lockContacts();
    try {
      const response = fetch(`${backend.url}/api/boards/${BOARD}/contacts?filter=closed&pageSize=5`, { headers: { ...headers(), "Cache-Control": "no-cache" } })
        .then((res) => `answered ${res.status}`, (err) => err);
      await aReadWaitsOnTheLock();
      const signalled = Date.now();
      backend.child.kill("SIGTERM");
      const { code, at } = await backend.exit;
      assert.equal(code, 1, backend.child.output());
      assert.ok(at - signalled >= 900 && at - signalled < 5000, `exited ${at - signalled} ms after SIGTERM`);
      assert.match(backend.child.output(), /still in flight 1s after the shutdown signal/);
      const outcome = await response;
      assert.ok(outcome instanceof Error, `the request was cut, not ${outcome}`);
    } finally {
      await release();
    }
  });
});
