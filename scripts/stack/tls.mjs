// TLS pieces for the tests: a throwaway CA and server certificates made with openssl, and Redis
// (a single node, a Redis Cluster) and PostgreSQL serving TLS with them, in a stack's temp dir.
// Nothing here blocks the event loop.
import { mkdirSync, writeFileSync } from "node:fs";
import { chmod, chown } from "node:fs/promises";
import { join } from "node:path";
import { freePort, portIsFree, run, waitFor } from "./processes.mjs";
import { SUPERUSER, psql } from "./services.mjs";

const EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

/**
 * A CA named `name` and, for each entry of `servers` (a name and its subjectAltName list such as
 * `["DNS:localhost", "IP:127.0.0.1"]`), a certificate and key it signed, written under `dir`.
 * Resolves to `{ ca, caKey, servers: { name: { cert, key } } }` (file paths).
 */
export async function makeCertificates(dir, { name = "test-ca", servers = {} } = {}) {
  mkdirSync(dir, { recursive: true });
  const file = (base) => join(dir, base);
  writeFileSync(file(`${name}.cnf`), [
    "[req]", "distinguished_name = dn", "prompt = no", "[dn]", `CN = ${name}`,
    "[ext]", "basicConstraints = critical, CA:TRUE", "keyUsage = critical, keyCertSign, cRLSign", "subjectKeyIdentifier = hash",
  ].join("\n"));
  const ca = file(`${name}.pem`);
  const caKey = file(`${name}.key`);
  await run("openssl", ["req", "-x509", "-new", ...EC_KEY, "-keyout", caKey, "-out", ca, "-days", "2", "-config", file(`${name}.cnf`), "-extensions", "ext"]);
  const made = {};
  for (const [server, altNames] of Object.entries(servers)) {
    const [key, csr, cert, ext] = ["key", "csr", "pem", "ext"].map((suffix) => file(`${server}.${suffix}`));
    writeFileSync(ext, [
      "basicConstraints = critical, CA:FALSE", "keyUsage = critical, digitalSignature", "extendedKeyUsage = serverAuth, clientAuth",
      `subjectAltName = ${altNames.join(", ")}`, "authorityKeyIdentifier = keyid",
    ].join("\n"));
    await run("openssl", ["req", "-new", ...EC_KEY, "-keyout", key, "-out", csr, "-subj", `/CN=${server}`]);
    await run("openssl", ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", caKey, "-set_serial", String(Date.now()), "-days", "2", "-out", cert, "-extfile", ext]);
    made[server] = { cert, key };
  }
  return { ca, caKey, servers: made };
}

/** redis-server's arguments to serve TLS only, on `port`, with `server`'s certificate. */
const tlsArgs = (port, ca, server) => [
  "--port", "0", "--tls-port", String(port), "--tls-cert-file", server.cert, "--tls-key-file", server.key,
  "--tls-ca-cert-file", ca, "--tls-auth-clients", "no",
];

/** `redis-cli` over TLS (trusting `ca`) to the node on `port`; resolves to its output. */
export const redisCliTls = (ca, port, ...args) => run("redis-cli", ["--tls", "--cacert", ca, "-h", "127.0.0.1", "-p", String(port), ...args]);

/**
 * A Redis in `stack` that accepts only TLS, with `server`'s certificate (signed by `ca`). Its URL
 * names `host` (which the certificate must be for to be verified).
 */
export async function startTlsRedis(stack, { ca, server, host = "localhost", name = "redis-tls", extraArgs = [], port }) {
  port ??= await freePort();
  const dir = join(stack.dir, `redis-tls-${port}`);
  mkdirSync(dir, { recursive: true });
  const child = stack.spawnService(name, "redis-server", [
    ...tlsArgs(port, ca, server), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no", ...extraArgs,
  ]);
  await waitFor(`TLS Redis on ${port}`, async () => (await redisCliTls(ca, port, "ping")).trim() === "PONG");
  return { port, url: `rediss://${host}:${port}`, child };
}

/** A Redis Cluster of `masters` TLS-only primaries (`--tls-cluster yes`), ready when every slot
 * is served. The nodes announce 127.0.0.1, so `server`'s certificate must be for that address. */
export async function startTlsRedisCluster(stack, { ca, server, masters = 3 }) {
  const nodes = [];
  for (let i = 0; i < masters; i++) {
    let port;
    do port = await freePort();
    while (port + 10000 > 65535 || !(await portIsFree(port + 10000)));
    nodes.push(await startTlsRedis(stack, {
      ca, server, port, host: "127.0.0.1", name: `redis-tls-cluster-${i}`,
      extraArgs: ["--tls-cluster", "yes", "--cluster-enabled", "yes", "--cluster-config-file", `nodes-${port}.conf`, "--cluster-node-timeout", "2000"],
    }));
  }
  await run("redis-cli", ["--tls", "--cacert", ca, "--cluster", "create", ...nodes.map((n) => `127.0.0.1:${n.port}`), "--cluster-replicas", "0", "--cluster-yes"]);
  await waitFor("the TLS Redis Cluster", async () => {
    const infos = await Promise.all(nodes.map((n) => redisCliTls(ca, n.port, "cluster", "info")));
    return infos.every((info) => info.includes("cluster_state:ok"));
  });
  return { nodes, url: nodes[0].url };
}

/**
 * Turns TLS on in a running PostgreSQL of the test's own (`pg`, from a stack's startPostgres or
 * startDatabase) with `server`'s certificate: the SSL settings are reloaded without a restart.
 * Plain connections are still accepted (initdb's pg_hba `host` lines allow both).
 */
export async function enablePostgresTls(pg, server) {
  if (process.getuid?.() === 0) {
    // PostgreSQL runs as `postgres` and refuses a key others can read.
    const uid = Number((await run("id", ["-u", "postgres"])).trim());
    await chown(server.key, uid, 0);
    await chown(server.cert, uid, 0);
  }
  await chmod(server.key, 0o600);
  for (const command of [
    `alter system set ssl_cert_file = '${server.cert}'`,
    `alter system set ssl_key_file = '${server.key}'`,
    "alter system set ssl = on",
    "select pg_reload_conf()",
  ]) {
    await psql(pg.port, { command, user: SUPERUSER });
  }
  await waitFor("PostgreSQL to serve TLS", async () => (await psql(pg.port, { command: "show ssl" })).trim() === "on");
}
