// The migrations' row-level security, seen through the real PostgREST with real JWTs: exactly
// the rows SQL says a user may read, none of another workspace's, nothing for anon.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { seed, signJwt, sql, stack, tokenFor } from "./harness.mjs";

const postgrest = stack.urls.postgrest;
const anonKey = stack.secrets.SUPABASE_ANON_KEY;
const [wsA, wsB] = [seed.workspace(1), seed.workspace(2)];
const memberOfA = seed.user(1); // member of workspace 1 only (see supabase/seed.sql)
const memberOfAandB = seed.user(35); // 35 % 7 == 0: member of workspaces 5 and 1

async function get(path, token, extraHeaders = {}) {
  const headers = { apikey: anonKey, Prefer: "count=exact", ...extraHeaders };
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(`${postgrest}${path}`, { headers });
  const total = Number((res.headers.get("content-range") ?? "*/0").split("/")[1]);
  // 206 Partial Content is PostgREST's answer when a limit cuts the counted rows.
  const status = res.status === 206 ? 200 : res.status;
  return { status, rows: res.ok ? await res.json() : await res.text(), total };
}

describe("row-level security through PostgREST", () => {
  test("the seed gives user 1 exactly one workspace and user 35 two", () => {
    assert.deepEqual(sql(`select workspace_id from workspace_members where user_id = '${memberOfA}'`), [[wsA]]);
    const both = sql(`select workspace_id from workspace_members where user_id = '${memberOfAandB}' order by 1`).flat();
    assert.equal(both.length, 2);
  });

  test("a member of A reads every contact of A and no other", async () => {
    const [[expected]] = sql(`select count(*) from contacts where workspace_id = '${wsA}'`);
    const { status, rows, total } = await get("/contacts?select=id,workspace_id&limit=1000", tokenFor(memberOfA));
    assert.equal(status, 200);
    assert.equal(total, Number(expected));
    assert.ok(total > 10_000, `workspace A holds many contacts (${total})`);
    assert.ok(rows.every((row) => row.workspace_id === wsA));
  });

  test("a member of A reads none of B's contacts, even asking for them by id", async () => {
    const [[someOfB]] = sql(`select id from contacts where workspace_id = '${wsB}' limit 1`);
    const byWorkspace = await get(`/contacts?workspace_id=eq.${wsB}&select=id`, tokenFor(memberOfA));
    assert.equal(byWorkspace.status, 200);
    assert.deepEqual(byWorkspace.rows, []);
    assert.equal(byWorkspace.total, 0);
    const byId = await get(`/contacts?id=eq.${someOfB}&select=id`, tokenFor(memberOfA));
    assert.deepEqual(byId.rows, []);
  });

  test("the first page sorted by created_at matches SQL exactly", async () => {
    const board = seed.board(1, 1);
    const expected = sql(
      `select id from contacts where board_id = '${board}' and not archived and conversation_status = 'Open'
       order by created_at desc, id desc limit 50`,
    ).flat();
    const { rows } = await get(
      `/contacts?board_id=eq.${board}&archived=is.false&conversation_status=eq.Open&order=created_at.desc,id.desc&limit=50&select=id`,
      tokenFor(memberOfA),
    );
    assert.deepEqual(rows.map((r) => r.id), expected);
  });

  test("a member of two workspaces reads both", async () => {
    const [[expected]] = sql(
      `select count(*) from contacts c join workspace_members m on m.workspace_id = c.workspace_id
       where m.user_id = '${memberOfAandB}'`,
    );
    const { total } = await get("/contacts?select=id&limit=1", tokenFor(memberOfAandB));
    assert.equal(total, Number(expected));
  });

  test("favorites are personal", async () => {
    const [[expected]] = sql(`select count(*) from contact_favorites where user_id = '${memberOfA}'`);
    const { rows, total } = await get("/contact_favorites?select=user_id&limit=1000", tokenFor(memberOfA));
    assert.ok(Number(expected) > 0);
    assert.equal(total, Number(expected));
    assert.ok(rows.every((row) => row.user_id === memberOfA));
  });

  test("an anon request reads nothing", async () => {
    for (const table of ["contacts", "workspaces", "workspace_members", "boards", "board_columns", "contact_favorites"]) {
      const { status, rows, total } = await get(`/${table}?limit=5`, null);
      assert.equal(status, 200, table);
      assert.deepEqual(rows, [], table);
      assert.equal(total, 0, table);
    }
  });

  test("a token for a user in no workspace reads nothing", async () => {
    const { rows } = await get("/contacts?limit=5", tokenFor("00000000-0000-4000-8000-000000000000"));
    assert.deepEqual(rows, []);
  });

  test("a token signed with another secret is rejected", async () => {
    const forged = signJwt({ sub: memberOfA, role: "authenticated", aud: "authenticated", exp: 4102444800 }, "not-the-secret");
    const { status } = await get("/contacts?limit=1", forged);
    assert.equal(status, 401);
  });
});
