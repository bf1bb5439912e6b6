// The backend over TLS: a TLS-only Redis, a TLS-only Redis Cluster and a PostgreSQL serving TLS,
// all with certificates of a throwaway CA (scripts/stack/tls.mjs). Verified connections work and
// really are TLS; a CA or host name that does not match fails with an error naming the setting,
// at startup in the log and in /health; sslmode=require encrypts without a CA; a plain redis://
// URL to a TLS-only port says to use rediss://.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { newStack, psql, waitFor } from "../../scripts/stack.mjs";
import { enablePostgresTls, makeCertificates, redisCliTls, startTlsRedis, startTlsRedisCluster } from "../../scripts/stack/tls.mjs";
import { ownBackend, seed, stack, tokenFor } from "./harness.mjs";

const WS = seed.workspace(1);
const ME = seed.user(1); // a member of workspace 1
const BOARD = seed.board(1, 1);
const listHeaders = { "X-Workspace-ID": WS, "X-User-ID": ME, Authorization: `Bearer ${tokenFor(ME)}` };
const listKey = (filter) => `contacts:{${WS}}:${filter}:board:${BOARD}:page:1:limit:50:sort:created_at-desc:gen:0`;

let pieces, certs, otherCa, redis, cluster, pg;

before(async () => {
  pieces = newStack();
  const dir = join(pieces.dir, "tls");
  // The single node and PostgreSQL are for "localhost" only; cluster nodes announce 127.0.0.1.
  const servers = { redis: ["DNS:localhost"], cluster: ["IP:127.0.0.1"], postgres: ["DNS:localhost"] };
  [certs, { ca: otherCa }, pg] = await Promise.all([
    makeCertificates(dir, { name: "test-ca", servers }),
    makeCertificates(dir, { name: "other-ca" }),
    pieces.startDatabase(300),
  ]);
  await enablePostgresTls(pg, certs.servers.postgres);
  [redis, cluster] = await Promise.all([
    startTlsRedis(pieces, { ca: certs.ca, server: certs.servers.redis }),
    startTlsRedisCluster(pieces, { ca: certs.ca, server: certs.servers.cluster }),
  ]);
});

after(() => pieces?.stop());

/** `postgres://` to this test's PostgreSQL at `host` with `params`. */
const databaseUrl = (host, params) => `postgres://postgres@${host}:${pg.port}/postgres?${params}`;

/** A backend of the test's own on `redisUrl` and `dbUrl` with `env`; resolves to a client. */
async function backend({ redisUrl, dbUrl, env = {} }) {
  const started = await ownBackend(pieces, { redisUrl, databaseUrl: dbUrl, env });
  const call = async (path, { method = "GET", body, headers = {} } = {}) => {
    const res = await fetch(`${started.url}${path}`, {
      method,
      headers: { "X-Internal-Auth": stack.secrets.INTERNAL_AUTH_KEY, ...(body && { "Content-Type": "application/json" }), ...headers },
      body: body && JSON.stringify(body),
    });
    return { status: res.status, headers: res.headers, json: await res.json() };
  };
  return { call, health: async () => (await call("/health")).json, log: () => started.child.output() };
}

/** Stores a page in Redis through the backend and reads it back from the cache-only endpoint. */
async function storeAndRead(call, marker) {
  const data = { success: true, marker };
  const stored = await call("/api/cache/store", { method: "POST", body: { key: listKey("closed"), data, ttl: 60 } });
  assert.equal(stored.status, 200, JSON.stringify(stored.json));
  const read = await call(`/api/boards/${BOARD}/contacts/cache?filter=closed`, { headers: { ...listHeaders, "X-Cache-Only": "true" } });
  assert.equal(read.status, 200, JSON.stringify(read.json));
  assert.equal(read.headers.get("x-cache-layer"), "REDIS");
  assert.deepEqual(read.json, data);
}

/** Whether every connection of a backend's pool to this test's PostgreSQL as `user` is TLS (and
 * there is one). */
async function poolIsTls(user = "postgres") {
  const rows = await psql(pg.port, {
    command: `select count(*), count(*) filter (where s.ssl) from pg_stat_activity a join pg_stat_ssl s using (pid) where a.application_name = 'contact-list-cache-backend' and a.usename = '${user}'`,
  });
  const [all, tls] = rows.trim().split("|").map(Number);
  return all > 0 && all === tls;
}

describe("verified TLS", () => {
  test("a single Redis and PostgreSQL with verify-full and the CA: healthy, Redis store+read, database read, all over TLS", async () => {
    const { call, health, log } = await backend({
      redisUrl: redis.url,
      dbUrl: databaseUrl("localhost", `sslmode=verify-full&sslrootcert=${encodeURIComponent(certs.ca)}`),
      env: { REDIS_CA_CERT: certs.ca },
    });
    const report = await health();
    assert.equal(report.status, "healthy", JSON.stringify(report));
    assert.equal(report.redis.status, "up");
    assert.equal(report.database.status, "up");
    await storeAndRead(call, "single-tls");
    const page = await call(`/api/boards/${BOARD}/contacts?filter=open&pageSize=5`, { headers: { ...listHeaders, "Cache-Control": "no-cache" } });
    assert.equal(page.status, 200, JSON.stringify(page.json));
    assert.equal(page.headers.get("x-cache-layer"), "DATABASE");
    assert.ok(page.json.data.contacts.length > 0, "the seeded board has open contacts");
    assert.ok(await poolIsTls(), "pg_stat_ssl shows the backend's connections as TLS");
    // The node accepts nothing but TLS (--port 0), and it saw the backend's commands.
    const clients = await redisCliTls(certs.ca, redis.port, "client", "list");
    assert.match(clients, /cmd=(set|get|ping|client)/i);
    await waitFor("the startup check's log line", async () => /redis: TLS connection established/.test(log()) && /database: TLS connection established/.test(log()), 5000);
  });

  test("a Redis Cluster over TLS with the CA: healthy in cluster mode, store+read", async () => {
    const { call, health } = await backend({ redisUrl: cluster.url, dbUrl: pg.url, env: { REDIS_CA_CERT: certs.ca, REDIS_CLUSTER_ENABLED: "true" } });
    const report = await health();
    assert.equal(report.redis.status, "up", JSON.stringify(report));
    assert.equal(report.redis.mode, "cluster");
    await storeAndRead(call, "cluster-tls");
    const held = await Promise.all(cluster.nodes.map((n) => redisCliTls(certs.ca, n.port, "--scan", "--pattern", listKey("closed"))));
    assert.deepEqual(held.map((keys) => keys.trim()).sort(), ["", "", listKey("closed")], "the page is on exactly one node");
  });

  test("change capture consumes over verified TLS and forwards a change", async () => {
    const posts = [];
    const receiver = createServer((req, res) => {
      let body = "";
      req.on("data", (chunk) => (body += chunk));
      req.on("end", () => {
        posts.push(body);
        res.writeHead(200, { "Content-Type": "application/json" }).end("{\"success\":true}");
      });
    });
    await new Promise((res) => receiver.listen(0, "127.0.0.1", res));
    try {
      const { log } = await backend({
        redisUrl: stack.backendOptions.redisUrl,
        dbUrl: databaseUrl("localhost", `sslmode=verify-full&sslrootcert=${certs.ca}`),
        env: { WORKER_WEBHOOK_URL: `http://127.0.0.1:${receiver.address().port}/api/cache/webhook`, WEBHOOK_SECRET: "tls-test-secret" },
      });
      await waitFor("change capture to consume", async () => log().includes("change capture: consuming the outbox"), 10_000);
      // The consuming connection is the one holding the outbox's advisory lock.
      const consuming = await psql(pg.port, { command: "select s.ssl from pg_locks l join pg_stat_ssl s using (pid) where l.locktype = 'advisory' and l.granted" });
      assert.equal(consuming.trim(), "t", "change capture's connection is TLS");
      await psql(pg.port, { command: `update boards set name = name || ' (tls)' where id = '${BOARD}'` });
      await waitFor("the change to be forwarded", async () => posts.some((body) => body.includes(BOARD)), 10_000);
    } finally {
      receiver.close();
    }
  });

  test("sslmode=require encrypts without a CA and without checking the host name", async () => {
    // As a role no other backend here uses, so pg_stat_ssl shows this one's connections.
    const dbUrl = `postgres://authenticator@127.0.0.1:${pg.port}/postgres?sslmode=require`;
    const { health } = await backend({ redisUrl: stack.backendOptions.redisUrl, dbUrl });
    const report = await health();
    assert.equal(report.database.status, "up", JSON.stringify(report));
    assert.ok(await poolIsTls("authenticator"), "pg_stat_ssl shows the backend's connections as TLS");
  });
});

describe("TLS that cannot be verified fails naming the setting", () => {
  test("a CA that did not sign the certificates: REDIS_CA_CERT and sslrootcert named in /health and the log", async () => {
    const { health, log } = await backend({
      redisUrl: redis.url,
      dbUrl: databaseUrl("localhost", `sslmode=verify-full&sslrootcert=${otherCa}`),
      env: { REDIS_CA_CERT: otherCa },
    });
    const report = await health();
    assert.equal(report.status, "degraded");
    assert.equal(report.redis.status, "down");
    assert.equal(report.redis.error, `REDIS_PUBLIC_URL: TLS certificate not trusted (trusting only REDIS_CA_CERT=${otherCa})`);
    assert.equal(report.database.status, "down");
    assert.equal(report.database.error, `DATABASE_URL: TLS certificate not trusted (sslmode=verify-full trusts only sslrootcert=${otherCa})`);
    await waitFor("the startup errors in the log", async () => log().includes("REDIS_PUBLIC_URL: TLS certificate not trusted") && log().includes("DATABASE_URL: TLS certificate not trusted"), 5000);
  });

  test("a Redis Cluster with a CA that did not sign its certificates", async () => {
    const { health } = await backend({ redisUrl: cluster.url, dbUrl: pg.url, env: { REDIS_CA_CERT: otherCa, REDIS_CLUSTER_ENABLED: "true" } });
    const report = await health();
    assert.equal(report.redis.status, "down");
    assert.equal(report.redis.error, `REDIS_PUBLIC_URL: TLS certificate not trusted (trusting only REDIS_CA_CERT=${otherCa})`, JSON.stringify(report));
  });

  test("the built-in roots do not trust a private CA: the message says to set REDIS_CA_CERT or sslrootcert", async () => {
    const { health } = await backend({ redisUrl: redis.url, dbUrl: databaseUrl("localhost", "sslmode=verify-full") });
    const report = await health();
    assert.match(report.redis.error, /^REDIS_PUBLIC_URL: TLS certificate not trusted \(.*set REDIS_CA_CERT/);
    assert.match(report.database.error, /^DATABASE_URL: TLS certificate not trusted \(.*set sslrootcert/);
  });

  test("a host name the certificate is not for", async () => {
    const { health } = await backend({
      redisUrl: `rediss://127.0.0.1:${redis.port}`,
      dbUrl: databaseUrl("127.0.0.1", `sslmode=verify-full&sslrootcert=${certs.ca}`),
      env: { REDIS_CA_CERT: certs.ca },
    });
    const report = await health();
    const mismatch = 'certificate not valid for name "127.0.0.1"; certificate is only valid for DnsName("localhost")';
    assert.equal(report.redis.error, `REDIS_PUBLIC_URL: TLS certificate does not match the host name (${mismatch})`);
    assert.equal(report.database.error, `DATABASE_URL: TLS certificate does not match the host name (${mismatch})`);
  });

  test("a plain redis:// URL to a TLS-only port says to use rediss://", async () => {
    const { health } = await backend({ redisUrl: `redis://localhost:${redis.port}`, dbUrl: pg.url });
    const report = await health();
    assert.equal(report.redis.status, "down");
    assert.match(report.redis.error ?? "", /^REDIS_PUBLIC_URL: .*use a rediss:\/\/ URL/, JSON.stringify(report));
  });
});
