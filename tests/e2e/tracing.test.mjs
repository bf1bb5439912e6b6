// One request, followed end to end (docs/observability.md, "Following one request"): the X-Request-ID a browser sends
// is in the worker's log line for the request, in the backend's log line for the call the worker
// made, and in PostgreSQL's own log of the statements run for it, by PostgREST (its
// db-pre-request function) and by the backend (its transaction's application_name). The worker
// and backend are this file's own (their logs are read here); PostgREST and PostgreSQL are the
// stack's, PostgreSQL logging every statement with application_name for this test only.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { SUPERUSER, newStack, psql, waitFor } from "../../scripts/stack.mjs";
import { ownBackend, ownWorker, seed, stack, tokenFor } from "./harness.mjs";

const WS = seed.workspace(1);
const BOARD = seed.board(1, 2);
const USER = seed.user(1);

describe("request tracing", { timeout: 120_000 }, () => {
  const pieces = newStack();
  let worker;
  let backend;
  const pgLog = join(stack.dir, "postgres.log");
  // What the cluster's operator does (server settings are not the project's to change).
  const superuser = (command) => psql(stack.ports.postgres, { user: SUPERUSER, command });

  before(async () => {
    await superuser("alter system set log_statement = 'all'");
    await superuser("alter system set log_line_prefix = '%m [%p] app=%a '");
    await superuser("select pg_reload_conf()");
    backend = await ownBackend(pieces);
    worker = await ownWorker(pieces, { BACKEND_URL: backend.url });
  });
  after(async () => {
    await superuser("alter system reset log_statement").catch(() => {});
    await superuser("alter system reset log_line_prefix").catch(() => {});
    await superuser("select pg_reload_conf()").catch(() => {});
    await pieces.stop();
  });

  test("one X-Request-ID is in the worker's log line, the backend's and PostgreSQL's record of the queries", async () => {
    const id = `trace-${randomBytes(6).toString("hex")}`;
    // A query no cache holds (its own search term): the worker asks the backend's Redis (which
    // checks membership in PostgreSQL first), then PostgREST, and stores the page.
    const res = await fetch(`${worker}/api/boards/${BOARD}/contacts?pageSize=5&search=${id}`, {
      headers: {
        Origin: "https://app.example.test",
        Authorization: `Bearer ${tokenFor(USER)}`,
        "X-Workspace-ID": WS,
        "X-Request-ID": id,
      },
    });
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal(res.headers.get("x-request-id"), id);
    await res.text();

    const workerLines = () => readdirSync(pieces.dir)
      .filter((f) => /^worker-.*\.log$/.test(f))
      .flatMap((f) => readFileSync(join(pieces.dir, f), "utf8").split("\n"))
      .filter((line) => line.includes(id));
    const line = await waitFor("the worker's log line", async () => workerLines().find((l) => l.includes("requestId")), 10_000);
    assert.equal(JSON.parse(line.slice(line.indexOf("{"))).requestId, id, line);

    const backendLines = () => backend.child.output().split("\n").filter((l) => l.includes(id));
    const logged = await waitFor("the backend's log line", async () => backendLines()[0], 10_000);
    const entry = JSON.parse(logged);
    assert.equal(entry.level, "INFO", logged);
    assert.equal(entry.fields.request_id, id, logged);
    assert.match(entry.fields.path, /^\/api\//, logged);

    const pgLines = () => readFileSync(pgLog, "utf8").split("\n").filter((l) => l.includes(id));
    await waitFor("PostgREST's statement in PostgreSQL's log", async () => pgLines().some((l) => l.includes(`app=postgrest ${id} `)), 10_000);
    const postgrest = pgLines().filter((l) => l.includes(`app=postgrest ${id} `));
    assert.ok(postgrest.some((l) => /LOG:\s+(statement|execute)/.test(l) && l.includes("contacts")), `PostgREST's query of contacts under the id:\n${postgrest.join("\n")}`);
    const fromBackend = pgLines().filter((l) => l.includes(`app=clc-backend ${id} `));
    assert.ok(fromBackend.some((l) => /LOG:\s+(statement|execute)/.test(l)), `the backend's query under the id:\n${pgLines().join("\n")}`);
  });
});
