// Hostile callers on the open internet: the public anon key, a signed-in user of no workspace,
// callers with no or bad credentials, and members naming another workspace. Every database
// function PostgREST exposes (listed from the catalog, so a new one is covered without editing
// this file) is refused to them or provably read-only and empty, every exposed table and view
// shows them nothing of another workspace; every worker and backend route
// turns them away with a JSON error; and afterwards the list counters still equal a recount and
// KV holds no key they made. The database runs under hosted Supabase's privileges
// (scripts/stack/supabase-platform.sql): migrations applied by the non-superuser `postgres`.
import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { POSTGREST_SCHEMAS, SUPERUSER, newStack } from "../../scripts/stack.mjs";
import { ownWorker, seed, signJwt, sql, sqlLiteral, sqlOn, stack, tokenFor, websocketHandshake } from "./harness.mjs";

const WS = seed.workspace(1);
const BOARD = seed.board(1, 1);
const MEMBER = seed.user(1); // of workspace 1 only
const OUTSIDER = seed.user(2); // of workspace 2, not 1
const NOBODY = randomUUID(); // a signed-in user of no workspace
const ANON_KEY = stack.secrets.SUPABASE_ANON_KEY;
const METRICS_TOKEN = randomBytes(16).toString("hex");

/** The functions of the schemas PostgREST serves, with what a call needs and what they are. */
function exposedFunctions() {
  const schemas = POSTGREST_SCHEMAS.map(sqlLiteral).join(", ");
  const json = sql(`
    select coalesce(json_agg(json_build_object(
      'schema', n.nspname, 'name', p.proname, 'signature', p.oid::regprocedure::text,
      'volatile', p.provolatile = 'v', 'returnsTrigger', p.prorettype = 'trigger'::regtype,
      'argNames', coalesce(p.proargnames, '{}'), 'argTypes', array(select format_type(t, null) from unnest(p.proargtypes) t),
      'anon', has_function_privilege('anon', p.oid, 'execute'),
      'authenticated', has_function_privilege('authenticated', p.oid, 'execute')
    ) order by p.oid::regprocedure::text), '[]')
    from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where n.nspname in (${schemas}) and p.prokind = 'f'`).map((cells) => cells.join("|")).join("\n");
  return JSON.parse(json);
}

/** A value of `type` for a call: aimed to do harm where the type allows (a counter delta that
 * would overflow every later write on the board). */
function argument(type) {
  if (type === "jsonb" || type === "json") return [{ workspace_id: WS, board_id: BOARD, list: "all", delta: "9223372036854775000" }];
  if (type === "uuid") return WS;
  if (type === "boolean") return false;
  if (/int|numeric/.test(type)) return 1;
  return "all";
}

/** `POST /rest/v1/rpc/<name>` through the Supabase gateway with `token` (the anon key's own when
 * none): status and parsed body. */
async function rpc(fn, token = ANON_KEY) {
  const body = Object.fromEntries(fn.argNames.map((name, i) => [name, argument(fn.argTypes[i])]));
  const res = await fetch(`${stack.urls.supabase}/rest/v1/rpc/${fn.name}`, {
    method: "POST",
    headers: { apikey: ANON_KEY, Authorization: `Bearer ${token}`, "Content-Type": "application/json", "Content-Profile": fn.schema },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

const isEmpty = (body) => body === null || (Array.isArray(body) && body.length === 0);

/** The tables and views of the schemas PostgREST serves, with whether each has a workspace_id. */
function exposedRelations() {
  const schemas = POSTGREST_SCHEMAS.map(sqlLiteral).join(", ");
  return sql(`
    select c.relname, exists (select 1 from pg_attribute a where a.attrelid = c.oid and a.attname = 'workspace_id' and not a.attisdropped)
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname in (${schemas}) and c.relkind in ('r', 'v', 'm', 'p', 'f') order by 1`).map(([name, scoped]) => ({ name, scoped: scoped === "t" }));
}

/** Rows where the stored totals and a recount from the rows differ (none when they agree). */
function countMismatches() {
  return sql(`
    with recount as (
      select workspace_id, board_id, list, count(*) as total from (
        select c.workspace_id, c.board_id, l.list
        from public.contacts c, unnest(public.contact_lists(c.archived, c.conversation_status, c.priority, c.assigned_user_id)) as l(list)
        union all
        select c.workspace_id, c.board_id, 'favorites:' || f.user_id
        from public.contact_favorites f join public.contacts c on c.id = f.contact_id where not c.archived
      ) rows group by workspace_id, board_id, list
    ), stored as (select workspace_id, board_id, list, total from public.contact_list_counts where total <> 0)
    (select 'stored', * from stored except select 'stored', * from recount)
    union all
    (select 'recount', * from recount except select 'recount', * from stored)`);
}

describe("the database under hosted Supabase's privileges", () => {
  test("migrations ran as a non-superuser postgres that cannot create in auth", () => {
    assert.deepEqual(sql("select rolsuper, rolbypassrls from pg_roles where rolname = 'postgres'"), [["f", "t"]]);
    assert.deepEqual(sql("select has_schema_privilege('postgres', 'auth', 'create')"), [["f"]]);
    // What the first migration once did, refused here as hosted Supabase refuses it.
    assert.throws(() => sql("create table if not exists auth.users (id uuid primary key)"), /permission denied for schema auth/);
    // Every table of ours belongs to postgres: nothing was made by a superuser.
    assert.deepEqual(sql("select tablename from pg_tables where schemaname = 'public' and tableowner <> 'postgres'"), []);
    assert.deepEqual(sqlOn(stack.ports.postgres, SUPERUSER)("select tableowner from pg_tables where schemaname = 'auth' and tablename = 'users'"), [["supabase_auth_admin"]]);
  });

  test("no extension lives in a schema PostgREST serves", () => {
    const schemas = POSTGREST_SCHEMAS.map(sqlLiteral).join(", ");
    assert.deepEqual(sql(`select extname from pg_extension e join pg_namespace n on n.oid = e.extnamespace where n.nspname in (${schemas})`), []);
  });

  test("no API role may execute a function that writes; what they may execute is read-only", () => {
    const functions = exposedFunctions();
    assert.ok(functions.some((fn) => fn.name === "apply_list_deltas"), "the catalog lists our functions");
    for (const fn of functions) {
      assert.equal(fn.anon, false, `anon may execute ${fn.signature}`);
      if (fn.authenticated) assert.equal(fn.volatile, false, `authenticated may execute ${fn.signature}, which may write`);
    }
  });
});

describe("every exposed table and view read through /rest/v1", () => {
  test("as anon, as a user of no workspace and as another workspace's member: nothing of workspace 1", async () => {
    const relations = exposedRelations();
    assert.ok(relations.some((r) => r.name === "contacts"), "the catalog lists our tables");
    const callers = { anon: ANON_KEY, "a user of no workspace": tokenFor(NOBODY), "a member of another workspace": tokenFor(OUTSIDER) };
    for (const { name, scoped } of relations) {
      for (const [who, token] of Object.entries(callers)) {
        const filter = scoped ? `&workspace_id=eq.${WS}` : "";
        const res = await fetch(`${stack.urls.supabase}/rest/v1/${name}?limit=5${filter}`, { headers: { apikey: ANON_KEY, Authorization: `Bearer ${token}` } });
        const body = await res.json();
        if (res.status !== 200) assert.ok([401, 403, 404].includes(res.status), `${name} as ${who}: ${res.status} ${JSON.stringify(body)}`);
        else if (who === "a member of another workspace") assert.ok(!JSON.stringify(body).includes(WS), `${name} showed ${who} workspace 1`);
        else assert.deepEqual(body, [], `${name} as ${who}`);
      }
    }
  });
});

describe("every exposed function called through /rest/v1/rpc", () => {
  let countsBefore;
  before(() => {
    countsBefore = sql("select board_id, list, total from public.contact_list_counts order by 1, 2");
  });

  test("the anon key setting a board's counters is refused, and the counters are untouched", async () => {
    const fn = exposedFunctions().find((f) => f.name === "apply_list_deltas");
    const { status } = await rpc(fn);
    assert.ok(status === 401 || status === 403 || status === 404, `apply_list_deltas as anon answered ${status}`);
    assert.deepEqual(sql("select board_id, list, total from public.contact_list_counts order by 1, 2"), countsBefore);
  });

  test("as anon and as a signed-in non-member: refused, or read-only and empty", async () => {
    const callers = { anon: ANON_KEY, "a user of no workspace": tokenFor(NOBODY), "a member of another workspace": tokenFor(OUTSIDER) };
    for (const fn of exposedFunctions()) {
      for (const [who, token] of Object.entries(callers)) {
        const { status, body } = await rpc(fn, token);
        const allowed = who === "anon" ? fn.anon : fn.authenticated;
        if (!allowed) {
          assert.ok([401, 403, 404].includes(status), `${fn.signature} as ${who}: ${status} ${JSON.stringify(body)}`);
        } else if (who === "a member of another workspace") {
          // It answers only about the caller: never workspace 1.
          assert.equal(status, 200, `${fn.signature} as ${who}`);
          assert.ok(!JSON.stringify(body).includes(WS), `${fn.signature} told ${who} of workspace 1`);
        } else {
          assert.equal(status, 200, `${fn.signature} as ${who}`);
          assert.ok(isEmpty(body), `${fn.signature} as ${who} answered ${JSON.stringify(body)}`);
        }
      }
    }
  });

  test("after all of it the counters equal a recount from the rows", () => {
    assert.deepEqual(sql("select board_id, list, total from public.contact_list_counts order by 1, 2"), countsBefore);
    assert.deepEqual(countMismatches(), []);
  });
});

describe("every worker route, to callers without the right credentials", () => {
  const pieces = newStack();
  let worker;
  let kv;
  let keysBefore;
  const forged = signJwt({ sub: MEMBER, role: "authenticated", aud: "authenticated", exp: Math.floor(Date.now() / 1000) + 600 }, "not-the-project-secret");
  const callers = {
    "no credentials": {},
    "a forged token": { Authorization: `Bearer ${forged}` },
    "a member of another workspace": { Authorization: `Bearer ${tokenFor(OUTSIDER)}` },
  };

  before(async () => {
    worker = await ownWorker(pieces, { METRICS_TOKEN });
    kv = await pieces.miniflare.getKVNamespace("CONTACT_CACHE");
    keysBefore = (await kv.list()).keys.map((k) => k.name);
  });
  after(() => pieces.stop());

  const call = (path, headers, init = {}) =>
    fetch(`${worker}${path}`, { ...init, headers: { "X-Workspace-ID": WS, "Content-Type": "application/json", ...headers, ...init.headers } });
  const routes = [
    ["a list", (h) => call(`/api/boards/${BOARD}/contacts?filter=open`, h)],
    ["a list, no-cache", (h) => call(`/api/boards/${BOARD}/contacts?filter=open`, h, { headers: { "Cache-Control": "no-cache" } })],
    ["counts", (h) => call(`/api/workspaces/${WS}/counts`, h)],
    ["the audit log", (h) => call(`/api/workspaces/${WS}/audit`, h)],
    ["an invalidation", (h) => call("/api/cache/invalidate", h, { method: "POST", body: JSON.stringify({ workspace_id: WS }) })],
    ["a warm", (h) => call("/api/cache/warm", h, { method: "POST", body: JSON.stringify({ board_id: BOARD }) })],
  ];

  for (const [who, headers] of Object.entries(callers)) {
    test(`${who}: every workspace route answers ${who === "a member of another workspace" ? 403 : 401} JSON`, async () => {
      const expected = who === "a member of another workspace" ? 403 : 401;
      for (const [name, send] of routes) {
        const res = await send(headers);
        const body = await res.json();
        assert.equal(res.status, expected, `${name}: ${JSON.stringify(body)}`);
        assert.equal(body.success, false, name);
        assert.equal(typeof body.error?.message, "string", name);
      }
      const token = headers.Authorization?.slice("Bearer ".length);
      const live = await websocketHandshake(`${worker}/api/workspaces/${WS}/live`, token ? ["contact-list-cache.v1", `bearer.${token}`] : ["contact-list-cache.v1"]);
      assert.equal(live.status, expected, `live: ${JSON.stringify(live.body)}`);
    });
  }

  test("the webhook, the metrics and the statistics refuse missing and wrong secrets", async () => {
    const change = JSON.stringify({ type: "UPDATE", table: "contacts", schema: "public", record: { workspace_id: WS, board_id: BOARD }, old_record: { workspace_id: WS, board_id: BOARD } });
    for (const headers of [{}, { Authorization: "Bearer wrong" }, { "X-Webhook-Secret": "wrong" }]) {
      const res = await call("/api/cache/webhook", headers, { method: "POST", body: change });
      assert.equal(res.status, 401, JSON.stringify(await res.json()));
      for (const path of ["/metrics", "/api/cache/stats"]) {
        const refused = await call(path, headers);
        assert.equal(refused.status, 401, path);
        assert.equal((await refused.json()).success, false, path);
      }
    }
  });

  test("none of it wrote a key to KV", async () => {
    const keysAfter = (await kv.list()).keys.map((k) => k.name);
    assert.deepEqual(keysAfter.filter((k) => !keysBefore.includes(k)), []);
  });
});

describe("every backend route, to callers without the internal key", () => {
  const routes = [
    ["GET", `/api/boards/${BOARD}/contacts/cache?filter=open`],
    ["GET", `/api/boards/${BOARD}/contacts?filter=open`],
    ["GET", `/api/workspaces/${WS}/counts`],
    ["GET", `/api/workspaces/${WS}/boards`],
    ["POST", "/api/reads"],
    ["GET", `/api/reads/${WS}`],
    ["POST", "/api/cache/store"],
    ["POST", "/api/cache/invalidate"],
    ["GET", "/api/cache/stats"],
    ["GET", "/metrics"],
    ["POST", "/api/audit"],
    ["GET", `/api/workspaces/${WS}/audit`],
  ];

  for (const [who, key] of [["no key", null], ["a wrong key", "not-the-internal-key"]]) {
    test(`${who}: every route but /health answers 401 JSON`, async () => {
      for (const [method, path] of routes) {
        const headers = { "X-Workspace-ID": WS, "X-User-ID": MEMBER, "Content-Type": "application/json" };
        if (key) headers["X-Internal-Auth"] = key;
        const res = await fetch(`${stack.urls.backend}${path}`, { method, headers, body: method === "POST" ? "{}" : undefined });
        assert.equal(res.status, 401, `${method} ${path}`);
        assert.equal((await res.json()).success, false, `${method} ${path}`);
      }
    });
  }
});
