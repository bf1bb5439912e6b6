// The backend checks the user itself: the internal key alone reads nothing as a user (a read
// needs the user's own access token, verified by the backend, and a Redis page only a member of
// its workspace); refresh-ahead, which has no token, gets its answers sealed. Metrics scraping has
// its own token. Every shared secret rotates: with NAME_PREVIOUS=old and NAME=new on the receiver
// both are accepted and nothing else; once NAME_PREVIOUS is gone, the old one is refused.
import assert from "node:assert/strict";
import { createDecipheriv, randomBytes } from "node:crypto";
import { after, describe, test } from "node:test";
import { newStack } from "../../scripts/stack.mjs";
import { signJwt, signJwtWith } from "../../scripts/jwt.mjs";
import { ownBackend, ownWorker, readAnswer, seed, stack, tokenFor } from "./harness.mjs";

const WS_A = seed.workspace(1);
const WS_B = seed.workspace(2);
const ME = seed.user(1); // a member of workspace 1 only
const MEMBER_B = seed.user(2); // a member of workspace 2
const BOARD_A = seed.board(1, 1);
const BOARD_B = seed.board(2, 1);
const INTERNAL = stack.secrets.INTERNAL_AUTH_KEY;
const listKey = (workspace, board, filter) => `contacts:{${workspace}}:${filter}:board:${board}:page:1:limit:50:sort:created_at-desc:gen:0`;
const bearer = (token) => ({ Authorization: `Bearer ${token}` });

/** `fetch` of `url`: the status, the body as text and as JSON (when it is), the headers. */
async function call(url, { method = "GET", headers = {}, body } = {}) {
  return readAnswer(await fetch(url, { method, headers: { ...(body !== undefined && { "Content-Type": "application/json" }), ...headers }, body: body === undefined ? undefined : JSON.stringify(body) }));
}

const backend = (path, headers = {}, init = {}) => call(`${stack.urls.backend}${path}`, { ...init, headers: { "X-Internal-Auth": INTERNAL, ...headers } });
const store = async (key, data) => assert.equal((await backend("/api/cache/store", {}, { method: "POST", body: { key, data, ttl: 120 } })).status, 200);

/** Opens a sealed answer like `contact_list_cache_core::sealed` (AAD = `name`) with the stack's keyring. */
function open(sealed, name) {
  const [version, kid, nonce, body] = sealed.split(".");
  assert.equal(version, "v1");
  const [ringKid, keyBase64] = stack.secrets.CACHE_ENCRYPTION_KEY.split(",")[0].split(":");
  assert.equal(kid, ringKid);
  const bytes = Buffer.from(body, "base64url");
  const decipher = createDecipheriv("aes-256-gcm", Buffer.from(keyBase64, "base64"), Buffer.from(nonce, "base64url"));
  decipher.setAAD(Buffer.from(name));
  decipher.setAuthTag(bytes.subarray(bytes.length - 16));
  return Buffer.concat([decipher.update(bytes.subarray(0, bytes.length - 16)), decipher.final()]).toString("utf8");
}

describe("the backend verifies the user", () => {
  const reads = [
    `/api/boards/${BOARD_A}/contacts/cache?filter=closed`,
    `/api/boards/${BOARD_A}/contacts?filter=closed`,
    `/api/workspaces/${WS_A}/counts`,
    `/api/workspaces/${WS_A}/audit`,
  ];

  test("the internal key with X-User-ID and no valid user credential reads nothing: 401 naming what is wrong", async () => {
    await store(listKey(WS_A, BOARD_A, "closed"), { success: true, marker: "held in redis" });
    const now = Math.floor(Date.now() / 1000);
    const claims = { sub: ME, aud: "authenticated", role: "authenticated", exp: now + 600 };
    const cases = [
      [{ "X-User-ID": ME }, "missing Authorization: Bearer token (the user's own access token)"],
      [{ "X-User-ID": ME, "X-Cache-Only": "true" }, "missing Authorization: Bearer token (the user's own access token)"],
      [{ "X-User-ID": ME, ...bearer(signJwt(claims, "not-the-project-secret")) }, "invalid token"],
      [{ "X-User-ID": ME, ...bearer(tokenFor(ME, { exp: now - 3600 })) }, "token expired"],
      [{ "X-User-ID": ME, ...bearer(tokenFor(ME, { nbf: now + 3600 })) }, "token not yet valid"],
      [{ ...bearer(tokenFor(ME, { aud: "anon" })) }, "token audience must be authenticated"],
      [{ ...bearer(tokenFor(ME, { role: "service_role" })) }, "token role must be authenticated"],
      [{ ...bearer(signJwtWith(claims, { ...stack.signing.ec, kid: "unknown" })) }, "token signed with an unknown key"],
      [{ ...bearer(stack.secrets.SUPABASE_ANON_KEY) }, "token audience must be authenticated"],
      [{ "X-User-ID": ME, Authorization: `Basic ${INTERNAL}` }, "Authorization must be Bearer <token>"],
      [{ "X-User-ID": ME, ...bearer(tokenFor(MEMBER_B)) }, "X-User-ID must be the token's subject"],
    ];
    for (const path of reads) {
      for (const [headers, message] of cases) {
        const res = await backend(path, { "X-Workspace-ID": WS_A, ...headers });
        assert.equal(res.status, 401, `${path} ${JSON.stringify(headers)}: ${res.text}`);
        assert.deepEqual(res.json, { success: false, error: { code: "unauthorized", message } }, path);
      }
    }
  });

  test("a valid token of the user, HS256, ES256 or RS256, reads as that user", async () => {
    const now = Math.floor(Date.now() / 1000);
    const claims = { sub: ME, aud: "authenticated", role: "authenticated", exp: now + 600 };
    for (const token of [tokenFor(ME), signJwtWith(claims, stack.signing.ec), signJwtWith(claims, stack.signing.rsa)]) {
      const res = await backend(`/api/boards/${BOARD_A}/contacts/cache?filter=closed`, { "X-Workspace-ID": WS_A, "X-Cache-Only": "true", ...bearer(token) });
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(res.json, { success: true, marker: "held in redis" });
      const counts = await backend(`/api/workspaces/${WS_A}/counts`, { ...bearer(token), "Cache-Control": "no-cache" });
      assert.equal(counts.status, 200, counts.text);
      assert.equal(counts.headers.get("x-cache-key"), `counts:{${WS_A}}:${ME}:gen:0`, "the counts are the token's user's");
    }
  });

  test("a member's valid token reads nothing of a workspace they do not belong to (403), though the page is in Redis", async () => {
    await store(listKey(WS_B, BOARD_B, "open"), { success: true, marker: "workspace B's page" });
    const path = `/api/boards/${BOARD_B}/contacts/cache?filter=open`;
    const member = await backend(path, { "X-Workspace-ID": WS_B, "X-Cache-Only": "true", ...bearer(tokenFor(MEMBER_B)) });
    assert.equal(member.status, 200, "the page is there for B's member");
    assert.equal(member.json.marker, "workspace B's page");
    for (const headers of [{ "X-Cache-Only": "true" }, {}]) {
      const outsider = await backend(path, { "X-Workspace-ID": WS_B, ...headers, ...bearer(tokenFor(ME)) });
      assert.equal(outsider.status, 403, outsider.text);
      assert.deepEqual(outsider.json.error.code, "forbidden");
      assert.ok(!outsider.text.includes("workspace B's page"));
    }
    const counts = await backend(`/api/workspaces/${WS_B}/counts`, bearer(tokenFor(ME)));
    assert.equal(counts.status, 403);
    const refreshAhead = await backend(path, { "X-Workspace-ID": WS_B, "X-Refresh-Ahead": "sealed", "X-User-ID": ME, "X-Cache-Only": "true" });
    assert.equal(refreshAhead.status, 403, "refresh-ahead for a non-member is refused too");
  });

  test("refresh-ahead (no token) gets the page sealed with the cache's key, under its own name: ciphertext to the internal key alone", async () => {
    const path = `/api/boards/${BOARD_A}/contacts?filter=open&pageSize=5`;
    const plain = await backend(path, { "X-Workspace-ID": WS_A, ...bearer(tokenFor(ME)) });
    assert.equal(plain.status, 200);
    const names = plain.json.data.contacts.map((c) => c.name);
    assert.ok(names.length > 0);
    const sealed = await backend(path, { "X-Workspace-ID": WS_A, "X-Refresh-Ahead": "sealed", "X-User-ID": ME });
    assert.equal(sealed.status, 200, sealed.text);
    assert.match(sealed.text, /^v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    for (const name of names) assert.ok(!sealed.text.includes(name));
    const key = sealed.headers.get("x-cache-key");
    assert.equal(key, plain.headers.get("x-cache-key"));
    assert.deepEqual(JSON.parse(open(sealed.text, `refresh-ahead:${key}`)).data.contacts, plain.json.data.contacts);
    assert.throws(() => open(sealed.text, key), "it opens under its refresh-ahead name only");
    const noUser = await backend(path, { "X-Workspace-ID": WS_A, "X-Refresh-Ahead": "sealed" });
    assert.deepEqual([noUser.status, noUser.json.error.message], [401, "X-Refresh-Ahead needs X-User-ID"]);
  });

  test("the worker reads counts through the backend with the caller's token", async () => {
    const res = await call(`${stack.urls.worker}/api/workspaces/${WS_A}/counts`, { headers: bearer(tokenFor(ME)) });
    assert.equal(res.status, 200, res.text);
    assert.equal(typeof res.json.data.counts.all, "number");
  });
});

describe("metrics have their own token", () => {
  test("/metrics and /api/cache/stats take the metrics token, not the internal key", async () => {
    for (const path of ["/metrics", "/api/cache/stats"]) {
      const withKey = await backend(path);
      assert.deepEqual([withKey.status, withKey.json?.error?.message], [401, "metrics need Authorization: Bearer <METRICS_TOKEN>"], path);
      assert.equal((await call(`${stack.urls.backend}${path}`, { headers: bearer(INTERNAL) })).status, 401, `${path}: the internal key as a bearer`);
      assert.equal((await call(`${stack.urls.backend}${path}`, { headers: bearer(stack.backendOptions.metricsToken) })).status, 200, path);
    }
  });
});

describe("every shared secret rotates with no downtime", () => {
  const pieces = newStack();
  after(() => pieces.stop());
  const fresh = () => randomBytes(16).toString("hex");

  test("INTERNAL_AUTH_KEY: the backend takes the new and the previous key during the switch, then only the new one", async () => {
    const [old, next] = [INTERNAL, fresh()];
    const during = await ownBackend(pieces, { env: { INTERNAL_AUTH_KEY: next, INTERNAL_AUTH_KEY_PREVIOUS: old } });
    const store = (url, key) => call(`${url}/api/cache/store`, { method: "POST", headers: { "X-Internal-Auth": key }, body: { key: listKey(WS_A, BOARD_A, "low_priority"), data: { rotated: true }, ttl: 30 } });
    assert.equal((await store(during.url, next)).status, 200);
    assert.equal((await store(during.url, old)).status, 200);
    for (const other of ["", fresh(), `${next}x`]) assert.equal((await store(during.url, other)).status, 401, other);
    // A worker already switched to the new key reads through this backend.
    const worker = await ownWorker(pieces, { BACKEND_URL: during.url, INTERNAL_AUTH_KEY: next });
    const counts = await call(`${worker}/api/workspaces/${WS_A}/counts`, { headers: bearer(tokenFor(ME)) });
    assert.equal(counts.status, 200, counts.text);
    const afterwards = await ownBackend(pieces, { env: { INTERNAL_AUTH_KEY: next } });
    assert.equal((await store(afterwards.url, next)).status, 200);
    assert.equal((await store(afterwards.url, old)).status, 401, "the old key is refused once NAME_PREVIOUS is gone");
  });

  test("METRICS_TOKEN: the backend takes the new and the previous token during the switch, then only the new one", async () => {
    const [old, next] = [fresh(), fresh()];
    const during = await ownBackend(pieces, { metricsToken: next, env: { METRICS_TOKEN_PREVIOUS: old } });
    const scrape = async (url, token) => (await call(`${url}/metrics`, { headers: bearer(token) })).status;
    assert.deepEqual([await scrape(during.url, next), await scrape(during.url, old), await scrape(during.url, fresh()), await scrape(during.url, INTERNAL)], [200, 200, 401, 401]);
    const afterwards = await ownBackend(pieces, { metricsToken: next });
    assert.deepEqual([await scrape(afterwards.url, next), await scrape(afterwards.url, old)], [200, 401]);
  });

  test("WEBHOOK_SECRET: the worker takes the new and the previous secret during the switch, then only the new one", async () => {
    const [old, next] = [stack.secrets.WEBHOOK_SECRET, fresh()];
    const change = {
      type: "UPDATE",
      table: "contacts",
      schema: "public",
      record: { workspace_id: WS_A, board_id: BOARD_A, board_column_id: null, conversation_status: "Open", priority: null, assigned_user_id: null, archived: false },
      old_record: { workspace_id: WS_A, board_id: BOARD_A, board_column_id: null, conversation_status: "Closed", priority: null, assigned_user_id: null, archived: false },
    };
    const post = (worker, secret) => call(`${worker}/api/cache/webhook`, { method: "POST", headers: { "X-Webhook-Secret": secret }, body: change });
    const during = await ownWorker(pieces, { WEBHOOK_SECRET: next, WEBHOOK_SECRET_PREVIOUS: old });
    for (const secret of [next, old]) {
      const res = await post(during, secret);
      assert.equal(res.status, 200, res.text);
    }
    for (const other of ["", fresh(), stack.secrets.INTERNAL_AUTH_KEY]) {
      const res = await post(during, other);
      assert.deepEqual([res.status, res.json?.error?.message], [401, "missing or wrong webhook secret"], other);
    }
    const bearerSecret = await call(`${during}/api/cache/webhook`, { method: "POST", headers: bearer(old), body: change });
    assert.equal(bearerSecret.status, 200, "the previous secret as a bearer token too");
    const afterwards = await ownWorker(pieces, { WEBHOOK_SECRET: next });
    assert.equal((await post(afterwards, next)).status, 200);
    assert.equal((await post(afterwards, old)).status, 401, "the old secret is refused once WEBHOOK_SECRET_PREVIOUS is gone");
  });
});
