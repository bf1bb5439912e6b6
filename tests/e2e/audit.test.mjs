// The audit log: every invalidation, warm and webhook call leaves one record (who, which
// workspace, what, which scopes, how it ended, under which request id), written after the
// response; a workspace's owners and admins read its records, nobody else; old records are pruned.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, describe, test } from "node:test";
import { freePort, newStack, waitFor } from "../../scripts/stack.mjs";
import { ownWorker, seed, sql, stack, tokenFor } from "./harness.mjs";

const WS = seed.workspace(1);
const BOARD = seed.board(1, 1);
const OTHER_WS = seed.workspace(2);
const OWNER = seed.user(1); // owner of workspace 1
const ADMIN = seed.user(6); // admin of workspace 1
const MEMBER = seed.user(16); // plain member of workspace 1
const OTHER_OWNER = seed.user(2); // owner of workspace 2 only
const RUN = randomBytes(4).toString("hex");
const rid = (n) => `audit-${RUN}-${n}`;

const post = (path, requestId, { token, headers = {}, body }) =>
  fetch(`${stack.urls.worker}${path}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Request-ID": requestId, ...(token ? { Authorization: `Bearer ${token}` } : {}), ...headers },
    body: JSON.stringify(body),
  });
const auditOf = (workspace, token, query = "") =>
  fetch(`${stack.urls.worker}/api/workspaces/${workspace}/audit${query}`, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
const pageOf = async (workspace, token, query) => {
  const res = await auditOf(workspace, token, query);
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()).data;
};

describe("the audit log", () => {
  const answers = {};
  const WEBHOOK_CHANGE = {
    type: "UPDATE",
    table: "contacts",
    schema: "public",
    record: { workspace_id: WS, board_id: BOARD, board_column_id: null, conversation_status: "Open", priority: null, assigned_user_id: null, archived: false },
    old_record: { workspace_id: WS, board_id: BOARD, board_column_id: null, conversation_status: "Closed", priority: null, assigned_user_id: null, archived: false },
  };

  test("an invalidation, a warm, a webhook and a refused invalidation are recorded in order", async () => {
    const steps = [
      [1, "/api/cache/invalidate", { token: tokenFor(OWNER), body: { workspace_id: WS, board_id: BOARD, filter: "open" } }, 200],
      [2, "/api/cache/warm", { token: tokenFor(MEMBER), headers: { "X-Workspace-ID": WS }, body: { board_id: BOARD } }, 200],
      [3, "/api/cache/webhook", { headers: { "X-Webhook-Secret": stack.secrets.WEBHOOK_SECRET }, body: WEBHOOK_CHANGE }, 200],
      [4, "/api/cache/invalidate", { token: tokenFor(OWNER), body: { workspace_id: WS, filter: "not-a-filter" } }, 400],
      [5, "/api/cache/invalidate", { token: tokenFor(OTHER_OWNER), body: { workspace_id: OTHER_WS, filter: "closed" } }, 200],
    ];
    for (const [n, path, init, status] of steps) {
      const res = await post(path, rid(n), init);
      assert.equal(res.status, status, `${path}: ${await res.clone().text()}`);
      assert.equal(res.headers.get("x-request-id"), rid(n));
      answers[n] = await res.json();
    }

    // Written after the responses: wait until the newest four of workspace 1 are ours.
    const records = await waitFor("the audit records", async () => {
      const page = await pageOf(WS, tokenFor(OWNER), "?limit=4");
      return page.length === 4 && page[0].request_id === rid(4) ? page : null;
    }, 10_000);
    assert.deepEqual(records.map((r) => r.request_id), [rid(4), rid(3), rid(2), rid(1)], "newest first, nothing else between");
    const shape = (r) => ({ actor: r.actor, workspace_id: r.workspace_id, operation: r.operation, scopes: r.scopes, boards: r.boards, result: r.result, status: r.status, detail: r.detail });
    assert.deepEqual(records.map(shape), [
      { actor: OWNER, workspace_id: WS, operation: "invalidate", scopes: [], boards: [], result: "error", status: 400, detail: "invalid_parameter" },
      { actor: "service:webhook", workspace_id: WS, operation: "webhook", scopes: answers[3].data.scopes, boards: [BOARD], result: "ok", status: 200, detail: null },
      { actor: MEMBER, workspace_id: WS, operation: "warm", scopes: ["all", "open", "unassigned", "assigned_to_me"], boards: [BOARD], result: "ok", status: 200, detail: null },
      { actor: OWNER, workspace_id: WS, operation: "invalidate", scopes: ["open"], boards: [BOARD], result: "ok", status: 200, detail: null },
    ]);
    assert.deepEqual(answers[1].data.scopes, ["open"]);
    assert.ok(answers[3].data.scopes.includes("open") && answers[3].data.scopes.includes("closed"), JSON.stringify(answers[3]));
    const times = records.map((r) => Date.parse(r.at));
    assert.ok(times.every((t, i) => i === 0 || t <= times[i - 1]) && Date.now() - times[3] < 60_000, JSON.stringify(records.map((r) => r.at)));

    // The next page starts after the last record of this one.
    const first = await pageOf(WS, tokenFor(ADMIN), "?limit=2");
    const second = await pageOf(WS, tokenFor(ADMIN), `?limit=2&before=${first[1].id}`);
    assert.deepEqual([...first, ...second].map((r) => r.request_id), [rid(4), rid(3), rid(2), rid(1)], "an admin reads it too, page by page");
  });

  test("other workspaces' records are never shown, and only owners and admins read a log", async () => {
    const mine = await pageOf(WS, tokenFor(OWNER), "?limit=200");
    assert.ok(mine.every((r) => r.workspace_id === WS));
    assert.ok(!mine.some((r) => r.request_id === rid(5)), "workspace 2's invalidation is not in workspace 1's log");
    const theirs = await waitFor("workspace 2's record", async () => {
      const page = await pageOf(OTHER_WS, tokenFor(OTHER_OWNER), "?limit=1");
      return page[0]?.request_id === rid(5) ? page[0] : null;
    }, 10_000);
    assert.equal(theirs.actor, OTHER_OWNER);

    for (const [who, workspace, token] of [["a plain member", WS, tokenFor(MEMBER)], ["a non-member", OTHER_WS, tokenFor(OWNER)]]) {
      const res = await auditOf(workspace, token);
      assert.equal(res.status, 403, who);
      assert.equal((await res.json()).error.code, "forbidden", who);
    }
    assert.equal((await auditOf(WS)).status, 401, "no token");
    assert.equal((await auditOf(WS, tokenFor(OWNER), "?limit=500")).status, 400, "limit is bounded");
    assert.equal((await auditOf("not-a-uuid", tokenFor(OWNER))).status, 400);
  });

  test("records past the retention are pruned when new ones are written", async () => {
    const insert = (id, age) =>
      sql(`insert into public.cache_audit_log (at, workspace_id, actor, operation, scopes, result, status, request_id)
           values (now() - interval '${age}', '${WS}', 'service:test', 'invalidate', '{open}', 'ok', 200, '${id}')`);
    insert(rid("old"), "100 days");
    insert(rid("recent"), "10 days");
    const present = (id) => sql(`select count(*) from public.cache_audit_log where request_id = '${id}'`)[0][0] === "1";
    assert.ok(present(rid("old")) && present(rid("recent")));

    const res = await post("/api/cache/invalidate", rid(6), { token: tokenFor(OWNER), body: { workspace_id: WS, board_id: BOARD, filter: "closed" } });
    assert.equal(res.status, 200);
    await waitFor("the next record", async () => (await pageOf(WS, tokenFor(OWNER), "?limit=1"))[0]?.request_id === rid(6), 10_000);
    assert.ok(!present(rid("old")), "older than AUDIT_RETENTION_DAYS (90): pruned");
    assert.ok(present(rid("recent")), "within the retention: kept");
  });

  test("the anon and authenticated roles see none of the table through PostgREST", async () => {
    const res = await fetch(`${stack.urls.supabase}/rest/v1/cache_audit_log?select=id&limit=1`, {
      headers: { apikey: stack.secrets.SUPABASE_ANON_KEY, Authorization: `Bearer ${tokenFor(OWNER)}` },
    });
    const body = await res.text();
    assert.ok(res.status === 401 || res.status === 403 || res.status === 404 || body === "[]", `${res.status} ${body}`);
  });
});

describe("an audit log that cannot be written", () => {
  const pieces = newStack();
  after(() => pieces.stop());

  test("never changes the operation's answer, and is counted in /metrics", async () => {
    // A backend that is not there: nothing listens on this port.
    const worker = await ownWorker(pieces, { BACKEND_URL: `http://127.0.0.1:${await freePort()}`, METRICS_TOKEN: "" });
    const res = await fetch(`${worker}/api/cache/invalidate`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${tokenFor(OWNER)}` },
      body: JSON.stringify({ workspace_id: WS, board_id: BOARD, filter: "open" }),
    });
    assert.equal(res.status, 200, await res.clone().text());
    assert.deepEqual((await res.json()).data.scopes, ["open"]);
    const audit = await waitFor("the failed audit write", async () => {
      const metrics = await (await fetch(`${worker}/metrics`)).json();
      return metrics.audit.failed >= 1 ? metrics.audit : null;
    }, 15_000);
    assert.deepEqual(audit, { written: 0, failed: 1 });
    const text = await (await fetch(`${worker}/metrics?format=prometheus`)).text();
    assert.match(text, /contact_cache_audit_records_total\{result="failed"\} 1\n/);
  });
});
