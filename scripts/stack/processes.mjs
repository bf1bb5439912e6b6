// The stack's process keeping: free ports, waiting, commands run to completion, long-running
// children with their output kept in a temp dir, and stopping all of it on stop(), on process
// exit, on SIGINT/SIGTERM/SIGHUP and on an uncaught error.
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const log = (msg) => process.stderr.write(`[stack] ${msg}\n`);

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

/**
 * A TCP port on 127.0.0.1 held by a listening socket of this process until `release()`: for a
 * server that must be named before it can start (the worker, whose URL the backend's change
 * capture needs), so that no other process takes the port meanwhile. A connection made to it
 * while held is reset at once, as a closed port would refuse it.
 */
export function holdPort() {
  return new Promise((res, rej) => {
    const server = createServer((socket) => socket.destroy());
    server.unref();
    server.on("error", rej);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      res({ port, release: () => new Promise((done) => server.close(() => done())) });
    });
  });
}

/** Whether `port` on 127.0.0.1 can be listened on right now. */
export function portIsFree(port) {
  return new Promise((res) => {
    const server = createServer();
    server.once("error", () => res(false));
    server.listen(port, "127.0.0.1", () => server.close(() => res(true)));
  });
}

/** Polls `check` until it resolves truthy (and returns that value), or fails after `timeoutMs` naming `what`. */
export async function waitFor(what, check, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  let lastError;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value) return value;
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not become ready in ${timeoutMs} ms${lastError ? `: ${lastError.message}` : ""}`);
}

function failed(cmd, args, { status, stdout, stderr }) {
  return new Error(`${cmd} ${args.join(" ")} failed (${status}):\n${stdout}\n${stderr}`);
}

/**
 * Runs `cmd args` to completion without blocking the event loop (Miniflare serves from this
 * process); resolves to its stdout, and rejects naming the command when it fails.
 */
export function run(cmd, args, { env } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: env && { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    const out = { stdout: "", stderr: "" };
    child.stdout.on("data", (data) => (out.stdout += data));
    child.stderr.on("data", (data) => (out.stderr += data));
    child.on("error", reject);
    child.on("close", (status) => (status === 0 ? resolve(out.stdout) : reject(failed(cmd, args, { status, ...out }))));
  });
}

/** `run`, blocking: for tests' synchronous helpers and for process exit, never in the builder. */
export function runSync(cmd, args) {
  const result = spawnSync(cmd, args, { encoding: "utf8" });
  if (result.status !== 0) throw failed(cmd, args, result);
  return result.stdout;
}

/** Resolves when `child` has exited, killing its process group after `timeoutMs`. */
function exited(child, timeoutMs) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((res) => {
    const timer = setTimeout(() => {
      killGroup(child, "SIGKILL");
      res();
    }, timeoutMs);
    child.once("exit", () => {
      clearTimeout(timer);
      res();
    });
  });
}

function killGroup(child, signal) {
  try {
    process.kill(-child.pid, signal);
  } catch {}
}

/**
 * What a stack started, to stop: its children (each in its own process group, with its output),
 * the cleanups of what is not a child (PostgreSQL under pg_ctl, Miniflare), and a temp dir.
 */
export class Processes {
  constructor() {
    this.children = [];
    this.cleanups = [];
    this.stopped = false;
    this.dir = mkdtempSync(join(tmpdir(), "contact-list-cache-"));
    chmodSync(this.dir, 0o755);
  }

  /** Spawns a long-running child whose output goes to a log file in the stack dir; its
   * environment is this process's with `env` over it, or `env` alone with `inheritEnv: false`. */
  spawnService(name, cmd, args, env = {}, { inheritEnv = true } = {}) {
    const logFile = join(this.dir, `${name}.log`);
    const child = spawn(cmd, args, {
      env: inheritEnv ? { ...process.env, ...env } : env,
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

  /** Stops one service started by spawnService at once and waits for it to exit. */
  async stopService(child) {
    killGroup(child, "SIGKILL");
    await exited(child, 5000);
  }

  /**
   * Registers what stop() undoes for something that is not a child, last registered first:
   * `stop` (may be async) and `now`, synchronous, for process exit (`stop` when not given).
   */
  onStop(stop, now = stop) {
    this.cleanups.push({ stop, now });
  }

  async stop() {
    if (this.stopped) return;
    this.stopped = true;
    for (const { child } of [...this.children].reverse()) {
      if (child.exitCode === null && child.signalCode === null) killGroup(child, "SIGTERM");
    }
    await Promise.all(this.children.map(({ child }) => exited(child, 5000)));
    for (const { stop } of [...this.cleanups].reverse()) {
      try {
        await stop();
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
    for (const { child } of this.children) killGroup(child, "SIGKILL");
    if (!this.stopped) {
      for (const { now } of [...this.cleanups].reverse()) {
        try {
          now()?.catch?.(() => {});
        } catch {}
      }
      rmSync(this.dir, { recursive: true, force: true });
    }
    this.stopped = true;
  }
}

const live = new Set();
let handlersInstalled = false;

/** Stops `processes` (a `Processes`) with the others at exit, on a signal or an uncaught error,
 * until its own stop(). Returns it. */
export function track(processes) {
  installExitHandlers();
  live.add(processes);
  const stop = processes.stop.bind(processes);
  processes.stop = async () => {
    await stop();
    live.delete(processes);
  };
  return processes;
}

function installExitHandlers() {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on("exit", () => live.forEach((p) => p.killNow()));
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
    process.on(signal, async () => {
      log(`${signal}: stopping`);
      await Promise.all([...live].map((p) => p.stop()));
      process.exit(130);
    });
  }
  process.on("uncaughtException", (err) => {
    log(`uncaught: ${err.stack ?? err}`);
    live.forEach((p) => p.killNow());
    process.exit(1);
  });
}

/**
 * Miniflare answers SIGINT and SIGTERM by exiting the process at once, before the stack has
 * stopped PostgreSQL and removed its temp dir. Leave those signals to the stack, which disposes
 * of Miniflare as well. (Miniflare adds its listeners again with each instance.)
 */
export function leaveSignalsToTheStack() {
  for (const [signal, name] of [["SIGINT", "onSignalInt"], ["SIGTERM", "onSignalTerm"]]) {
    for (const listener of process.listeners(signal)) if (listener.name === name) process.removeListener(signal, listener);
  }
}
