// The worker's GET /api/boards/{boardId}/contacts end to end: bodies equal SQL for every filter,
// sort and order; the cache layers in turn; failing layers skipped; isolation; tokens; 400s and
// hostile search terms; 1- and 2-character searches (through the index of character pairs) equal
// SQL at the worker's database path and the backend's fallback.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { SUPERUSER, newStack, waitFor } from "../../scripts/stack.mjs";
import { signJwt, signJwtWith } from "../../scripts/jwt.mjs";
import { FILTERS, expectedPage, ownBackend, ownSupabase, ownWorker, sameRows, seed, sql, sqlLiteral, sqlOn, stack, tokenFor } from "./harness.mjs";

const WS1 = seed.workspace(1);
const WS5 = seed.workspace(5);
const BOARD = seed.board(1, 1);
const USER1 = seed.user(1); // workspace 1 only
const USER6 = seed.user(6); // workspace 1 only
const USER35 = seed.user(35); // workspaces 5 and 1
const USER2 = seed.user(2); // workspace 2 only

/** GET the list through the worker at `base`. */
async function list(base, { board = BOARD, query = "", user = USER1, workspace = WS1, token, headers = {} } = {}) {
  const all = { "X-Workspace-ID": workspace, ...headers };
  const bearer = token === undefined ? tokenFor(user) : token;
  if (bearer !== null) all.Authorization = `Bearer ${bearer}`;
  const res = await fetch(`${base}/api/boards/${board}/contacts${query ? `?${query}` : ""}`, { headers: all });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: text ? JSON.parse(text) : undefined };
}

const cacheHeaders = (res) => [res.headers.get("x-cache-status"), res.headers.get("x-cache-layer")];

/** Asserts that `res` is exactly the page SQL computes for `params`. */
function assertMatchesSql(res, params, label) {
  assert.equal(res.status, 200, `${label}: ${res.text.slice(0, 200)}`);
  const expected = expectedPage({ workspace: WS1, board: BOARD, me: USER1, ...params });
  const { data } = res.json;
  assert.deepEqual(data.contacts.map((c) => c.id), expected.ids, `${label}: ids in order`);
  assert.ok(sameRows(data.contacts, expected.rows), `${label}: every field equals SQL`);
  const { nextCursor, prevCursor, ...numbers } = data.pagination;
  const [page, pageSize] = [params.page ?? 1, params.pageSize ?? 50];
  assert.deepEqual(numbers, { page, pageSize, total: expected.total, totalPages: expected.totalPages }, label);
  assert.equal(nextCursor !== null, page * pageSize < expected.total, `${label}: a next cursor while contacts follow`);
  assert.equal(prevCursor !== null, page > 1 && expected.ids.length > 0, `${label}: a previous cursor past page 1`);
  return expected;
}

describe("bodies equal SQL", () => {
  for (const filter of FILTERS) {
    test(`filter=${filter}: every sort field and order, first, last and past-the-last pages`, async () => {
      for (const sortBy of ["created_at", "last_message_time", "name"]) {
        for (const sortOrder of ["asc", "desc"]) {
          const pageSize = sortBy === "name" ? 100 : 37;
          const base = { filter, sortBy, sortOrder, pageSize };
          const first = await list(stack.urls.worker, { query: new URLSearchParams({ ...base, page: 1 }).toString() });
          const expected = assertMatchesSql(first, { ...base, page: 1 }, `${filter} ${sortBy} ${sortOrder} p1`);
          assert.deepEqual(first.json.data.sort, { sortBy, sortOrder });
          assert.deepEqual(first.json.data.filters, { filter, search: "", assignedTo: "", columnId: "" });
          assert.equal(first.json.success, true);
          assert.equal(first.json.cache_ttl, 180);
          assert.match(first.json.cached_at, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
          const last = Math.max(expected.totalPages, 1);
          for (const page of new Set([2, last, last + 1])) {
            const res = await list(stack.urls.worker, { query: new URLSearchParams({ ...base, page }).toString() });
            assertMatchesSql(res, { ...base, page }, `${filter} ${sortBy} ${sortOrder} p${page}`);
          }
        }
      }
    });
  }

  test("assignedTo and columnId narrow the filter", async () => {
    const column = seed.column(1, 1, 2);
    const res = await list(stack.urls.worker, { query: `filter=open&assignedTo=${USER6}&columnId=${column}&pageSize=100` });
    assertMatchesSql(res, { filter: "open", assignedTo: USER6, columnId: column, pageSize: 100 }, "narrowed");
    assert.deepEqual(res.json.data.filters, { filter: "open", search: "", assignedTo: USER6, columnId: column });
  });
});

describe("headers", () => {
  test("every answer carries the X-Cache-* headers, the response time and the location", async () => {
    const res = await list(stack.urls.worker, { query: "filter=closed&page=4" });
    assert.equal(res.status, 200);
    assert.match(res.headers.get("x-cache-status"), /^(HIT|MISS|BYPASS)$/);
    assert.match(res.headers.get("x-cache-key"), /&gen=[0-9a-z-]+$/);
    assert.match(res.headers.get("x-cache-layer"), /^(KV|REDIS|DATABASE|BACKEND-FALLBACK)$/);
    assert.equal(
      res.headers.get("x-cache-key"),
      `contacts:${WS1}:${BOARD}:page=4&pageSize=50&filter=closed&sortBy=created_at&sortOrder=desc&gen=${res.headers.get("x-cache-key").split("&gen=")[1]}`,
    );
    assert.match(res.headers.get("x-response-time"), /^\d+ms$/);
    assert.ok(res.headers.get("x-worker-location"));
    assert.match(res.headers.get("content-type"), /application\/json/);
  });

  test("the same request with parameters in another order hits the same entry", async () => {
    const a = await list(stack.urls.worker, { query: "sortBy=name&filter=low_priority&page=2" });
    await waitFor("KV write-back", async () => (await list(stack.urls.worker, { query: "page=2&filter=low_priority&sortBy=name&sortOrder=desc" })).headers.get("x-cache-status") === "HIT", 5000);
    const b = await list(stack.urls.worker, { query: "page=2&sortOrder=desc&filter=low_priority&sortBy=name" });
    assert.equal(b.headers.get("x-cache-key"), a.headers.get("x-cache-key"));
    assert.deepEqual(b.json, a.json);
  });

  test("every list and counts answer is Cache-Control: private, no-store, from a cache or not", async () => {
    // A page no cache has (MISS), the same from KV or L0 (HIT), asked fresh (BYPASS), and after a
    // soft invalidation the superseded copy (STALE); the caller's counts asked fresh, then cached.
    const query = "filter=open&sortBy=name&page=6";
    const seen = new Map();
    const keep = (res) => {
      const label = cacheHeaders(res).join("/");
      assert.equal(res.status, 200, `${label}: ${res.text.slice(0, 200)}`);
      assert.equal(res.headers.get("cache-control"), "private, no-store", label);
      seen.set(label.split("/")[0], res.headers.get("cache-control"));
      return res;
    };
    keep(await list(stack.urls.worker, { query }));
    const hit = await waitFor("a hit", async () => {
      const res = await list(stack.urls.worker, { query });
      return res.headers.get("x-cache-status") === "HIT" && res;
    }, 5000);
    keep(hit);
    keep(await list(stack.urls.worker, { query, headers: { "Cache-Control": "no-cache" } }));
    const soft = await fetch(`${stack.urls.worker}/api/cache/invalidate`, {
      method: "POST",
      headers: { Authorization: `Bearer ${tokenFor(USER1)}`, "Content-Type": "application/json" },
      body: JSON.stringify({ workspace_id: WS1, board_id: BOARD, filter: "open", mode: "soft" }),
    });
    assert.equal(soft.status, 200);
    keep(await list(stack.urls.worker, { query }));
    assert.deepEqual([...seen.keys()].sort(), ["BYPASS", "HIT", "MISS", "STALE"], "each kind of answer was seen");
    const counts = (headers = {}) => fetch(`${stack.urls.worker}/api/workspaces/${WS1}/counts`, { headers: { Authorization: `Bearer ${tokenFor(USER1)}`, ...headers } });
    for (const res of [await counts({ "Cache-Control": "no-cache" }), await counts()]) {
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("cache-control"), "private, no-store", `counts ${res.headers.get("x-cache-status")}`);
      await res.body.cancel();
    }
  });

  test("Cache-Control: no-cache bypasses the caches and refreshes them", async () => {
    const query = "filter=high_priority&page=3";
    await list(stack.urls.worker, { query });
    const res = await list(stack.urls.worker, { query, headers: { "Cache-Control": "no-cache" } });
    assert.deepEqual(cacheHeaders(res), ["BYPASS", "DATABASE"]);
    assertMatchesSql(res, { filter: "high_priority", page: 3 }, "bypass");
  });
});

describe("the layers in turn, with their own worker and backend", () => {
  const pieces = newStack();
  let worker;
  let backend;
  let kv;
  before(async () => {
    backend = await ownBackend(pieces);
    worker = await ownWorker(pieces, { BACKEND_URL: backend.url });
    kv = await pieces.miniflare.getKVNamespace("CONTACT_CACHE");
  });
  after(() => pieces.stop());

  test("MISS from the database, then HIT from KV, then with KV cleared HIT from Redis, then KV again", async () => {
    const query = "filter=unassigned&sortBy=last_message_time&page=2";
    const first = await list(worker, { query });
    assert.deepEqual(cacheHeaders(first), ["MISS", "DATABASE"]);
    assertMatchesSql(first, { filter: "unassigned", sortBy: "last_message_time", page: 2 }, "first");
    const second = await waitFor("KV write-back", async () => {
      const res = await list(worker, { query });
      return res.headers.get("x-cache-layer") === "KV" && res;
    }, 5000);
    assert.deepEqual(cacheHeaders(second), ["HIT", "KV"]);
    assert.deepEqual(second.json, first.json);

    await kv.delete(first.headers.get("x-cache-key"));
    // With L0 on (the production-defaults pass) the isolate keeps its copy for at most the
    // staleness bound; the first answer not from it comes from Redis.
    const third = await waitFor("an answer from below L0", async () => {
      const res = await list(worker, { query });
      return res.headers.get("x-cache-layer") !== "L0" && res;
    }, 5000);
    assert.deepEqual(cacheHeaders(third), ["HIT", "REDIS"]);
    for (const res of [first, second, third]) assert.equal(res.headers.get("cache-control"), "private, no-store", cacheHeaders(res).join("/"));
    assert.deepEqual(third.json, first.json);
    await waitFor("KV refilled from Redis", async () => (await list(worker, { query })).headers.get("x-cache-layer") === "KV", 5000);
  });

  test("with the backend stopped, answers still come, correct, from the database", async () => {
    await pieces.stopService(backend.child);
    const query = "filter=medium_priority&sortBy=name&sortOrder=asc&page=5";
    const res = await list(worker, { query });
    assert.deepEqual(cacheHeaders(res), ["MISS", "DATABASE"]);
    assertMatchesSql(res, { filter: "medium_priority", sortBy: "name", sortOrder: "asc", page: 5 }, "backend down");
  });
});

describe("PostgREST stopped", () => {
  const pieces = newStack();
  let worker;
  let postgrest;
  before(async () => {
    const supabase = await ownSupabase(pieces);
    postgrest = supabase.postgrest;
    worker = await ownWorker(pieces, { SUPABASE_URL: supabase.url });
    await pieces.stopService(postgrest.child);
  });
  after(() => pieces.stop());

  test("the backend fallback answers with the same rows, and still refuses non-members", async () => {
    for (const [filter, page] of [["open", 1], ["favorites", 1], ["archived", 2]]) {
      const query = `filter=${filter}&page=${page}&pageSize=40`;
      const res = await list(worker, { query, headers: { "Cache-Control": "no-cache" } });
      assert.equal(res.headers.get("x-cache-layer"), "BACKEND-FALLBACK", query);
      assertMatchesSql(res, { filter, page, pageSize: 40 }, `fallback ${query}`);
    }
    const outsider = await list(worker, { user: USER2, query: "filter=open" });
    assert.equal(outsider.status, 403);
  });
});

describe("isolation between workspaces", () => {
  test("the same parameters in another workspace never return the first workspace's rows or cache entry", async () => {
    const query = "filter=open&page=1";
    const mine = await list(stack.urls.worker, { query, user: USER1 });
    await waitFor("KV write-back", async () => (await list(stack.urls.worker, { query, user: USER1 })).headers.get("x-cache-status") === "HIT", 5000);
    const other = await list(stack.urls.worker, { query, user: USER35, workspace: WS5 });
    assert.equal(other.status, 200);
    assert.deepEqual(other.json.data.contacts, []);
    assert.equal(other.json.data.pagination.total, 0);
    assert.notEqual(other.headers.get("x-cache-key"), mine.headers.get("x-cache-key"));
    const colleague = await list(stack.urls.worker, { query, user: USER6 });
    assert.equal(colleague.headers.get("x-cache-status"), "HIT", "the shared entry, from KV (or L0 in front of it)");
    assert.equal(colleague.headers.get("x-cache-key"), mine.headers.get("x-cache-key"));
    assert.deepEqual(colleague.json.data.contacts, mine.json.data.contacts);
  });

  test("user-relative filters are per user, each equal to SQL for that user", async () => {
    for (const filter of ["favorites", "assigned_to_me"]) {
      const a = await list(stack.urls.worker, { query: `filter=${filter}`, user: USER1 });
      const b = await list(stack.urls.worker, { query: `filter=${filter}`, user: USER6 });
      assert.notEqual(a.headers.get("x-cache-key"), b.headers.get("x-cache-key"));
      assert.deepEqual(a.json.data.contacts.map((c) => c.id), expectedPage({ workspace: WS1, board: BOARD, me: USER1, filter }).ids);
      assert.deepEqual(b.json.data.contacts.map((c) => c.id), expectedPage({ workspace: WS1, board: BOARD, me: USER6, filter }).ids);
    }
  });

  test("a member of A naming workspace B gets 403, even for a page cached for B", async () => {
    const boardB = seed.board(2, 1);
    const member = await list(stack.urls.worker, { board: boardB, workspace: seed.workspace(2), user: USER2, query: "filter=all" });
    assert.equal(member.status, 200);
    const res = await list(stack.urls.worker, { board: boardB, workspace: seed.workspace(2), user: USER1, query: "filter=all" });
    assert.equal(res.status, 403);
    assert.deepEqual(res.json, { success: false, error: { code: "forbidden", message: "you are not a member of this workspace", field: "X-Workspace-ID" } });
  });
});

describe("tokens", () => {
  const now = Math.floor(Date.now() / 1000);
  const claims = { sub: USER1, role: "authenticated", aud: "authenticated", iat: now, exp: now + 600 };
  const secret = stack.secrets.SUPABASE_JWT_SECRET;
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");

  test("HS256, ES256 and RS256 tokens of the project are accepted", async () => {
    for (const token of [signJwt(claims, secret), signJwtWith(claims, stack.signing.ec), signJwtWith(claims, stack.signing.rsa)]) {
      const res = await list(stack.urls.worker, { token, query: "filter=closed" });
      assert.equal(res.status, 200, res.text);
    }
  });

  const bad = {
    missing: null,
    garbage: "not.a.jwt",
    empty: "",
    forged: signJwt(claims, "some-other-secret"),
    expired: signJwt({ ...claims, exp: now - 3600 }, secret),
    "not yet valid": signJwt({ ...claims, nbf: now + 3600 }, secret),
    "wrong audience": signJwt({ ...claims, aud: "someone-else" }, secret),
    "no subject": signJwt({ ...claims, sub: undefined }, secret),
    "alg none": `${b64({ alg: "none", typ: "JWT" })}.${b64(claims)}.`,
    "alg none with a signature": `${b64({ alg: "none", typ: "JWT" })}.${b64(claims)}.${Buffer.from("x").toString("base64url")}`,
    "HS256 signed with the public key": signJwt(claims, JSON.stringify(stack.signing.ec.jwk)),
    "ES256 with an unknown key id": signJwtWith(claims, { ...stack.signing.ec, kid: "unknown" }),
  };
  for (const [what, token] of Object.entries(bad)) {
    test(`a ${what} token gets 401`, async () => {
      const res = await list(stack.urls.worker, { token, query: "filter=all" });
      assert.equal(res.status, 401, res.text);
      assert.equal(res.json.success, false);
      assert.equal(res.json.error.code, "unauthorized");
    });
  }
});

describe("invalid parameters", () => {
  const cases = [
    ["page=0", "page"],
    ["page=abc", "page"],
    ["page=10001", "page"],
    ["pageSize=0", "pageSize"],
    ["pageSize=101", "pageSize"],
    ["filter=everything", "filter"],
    ["sortBy=email", "sortBy"],
    ["sortOrder=sideways", "sortOrder"],
    ["assignedTo=bob", "assignedTo"],
    ["columnId=col_1", "columnId"],
    [`search=${"x".repeat(101)}`, "search"],
    ["page=1&page=2", "page"],
  ];
  for (const [query, field] of cases) {
    test(`${query.slice(0, 40)} gets 400 naming ${field}`, async () => {
      const res = await list(stack.urls.worker, { query });
      assert.equal(res.status, 400);
      assert.equal(res.json.success, false);
      assert.equal(res.json.error.code, "invalid_parameter");
      assert.equal(res.json.error.field, field);
      assert.ok(res.json.error.message.includes(field));
    });
  }

  test("a malformed board id and a missing workspace get 400 naming them", async () => {
    const board = await list(stack.urls.worker, { board: "board_123" });
    assert.equal(board.status, 400);
    assert.equal(board.json.error.field, "boardId");
    const workspace = await list(stack.urls.worker, { workspace: "" });
    assert.equal(workspace.status, 400);
    assert.equal(workspace.json.error.field, "X-Workspace-ID");
  });
});

describe("hostile search terms", () => {
  const terms = [
    "mensah", "MENSAH", ".mensah", "emma.m", "+1", ".com", "a,b", "(", ")", "a)b,(c", '"', "'", "o'brien",
    ".", "*", "*@example.com", "%", "%a%", "_", "\\", "\\\\", "a\\%", "'; drop table contacts; --",
    "name.eq.x", "or=(id.eq.1)", "éé", "  spaced  ",
  ];
  for (const term of terms) {
    test(`search ${JSON.stringify(term)} returns exactly what ILIKE on the literal term returns`, async () => {
      const res = await list(stack.urls.worker, { query: new URLSearchParams({ search: term, pageSize: "100" }).toString() });
      assert.equal(res.status, 200, res.text);
      const expected = expectedPage({ workspace: WS1, board: BOARD, me: USER1, search: term.trim(), pageSize: 100 });
      assert.deepEqual(res.json.data.contacts.map((c) => c.id), expected.ids);
      assert.equal(res.json.data.pagination.total, expected.total);
      assert.equal(res.json.data.filters.search, term.trim());
      if (/^[a-z]+$/i.test(term)) assert.ok(!res.headers.get("x-cache-key").toLowerCase().includes(term.toLowerCase()), "no term in a key");
    });
  }
});

describe("1- and 2-character searches", () => {
  /** Board 1's contacts whose field `column`, lower-cased, holds `term` lower-cased. */
  const holders = (column, term) => Number(sql(`select count(*) from contacts where workspace_id = '${WS1}' and board_id = '${BOARD}' and not archived and position(lower(${sqlLiteral(term)}) in lower(coalesce(${column}, ''))) > 0`)[0][0]);
  /** A term of `length` ASCII characters that no field of board 1 holds, so the no-match case is real. */
  const absent = (candidates) => {
    const term = candidates.find((t) => ["name", "email", "phone"].every((column) => holders(column, t) === 0));
    assert.ok(term, `one of ${candidates.join(" ")} matches nothing on board 1`);
    return term;
  };
  let terms;
  before(() => {
    const oneAbsent = absent([..."qxzjQ#~^&!"]);
    // A pair few contacts hold (a letter then a digit: the end of a name in an email, then its number).
    const rare = ["o6", "l8", "m5", "h8", "a2", "k5"].find((t) => holders("email", t) > 0);
    assert.ok(rare, "a rare pair is in some email");
    const twoAbsent = absent(["zq", "qz", "xq", "Qj", "~!", "jj"]);
    // Matches only in emails, only in phones, and in names: each checked against the data, so the
    // test cannot pass by covering less than it says.
    const emailOnly = ["@", "@E", "."];
    const phoneOnly = ["+", "+1"];
    for (const t of emailOnly) assert.ok(holders("email", t) > 0 && holders("name", t) === 0 && holders("phone", t) === 0, `${t}: email only`);
    for (const t of phoneOnly) assert.ok(holders("phone", t) > 0 && holders("name", t) === 0 && holders("email", t) === 0, `${t}: phone only`);
    assert.ok(holders("phone", "55") > 0 && holders("email", "55") > 0, "55 in phones and emails");
    // Both ways of counting a short term's list are taken (SearchTerm::COMMON_MATCHES = 1,000):
    // through the pairs' index for a rare term, by one pass with the match alone for a common one.
    assert.ok(expectedPage({ workspace: WS1, board: BOARD, me: USER1, search: "a" }).total >= 1000, "a is common on board 1");
    assert.ok(expectedPage({ workspace: WS1, board: BOARD, me: USER1, search: rare }).total < 1000, `${rare} is rare on board 1`);
    terms = [
      ["no match, 1 character", oneAbsent], ["no match, 2 characters", twoAbsent],
      ...emailOnly.map((t) => ["email only", t]), ...phoneOnly.map((t) => ["phone only", t]), ["phones and emails", "55"], ["digit", "7"],
      ["many", "a"], ["many, upper case", "A"], ["name, mixed case", "eM"], ["a space inside", "n S"], ["few", rare],
      // Quoting and escaping, and a non-ASCII term (read without the pairs): no contact holds these.
      ["no match, LIKE's wildcard", "%"], ["no match, LIKE's escape", "\\"], ["no match, a quote", '"'], ["no match, a comma", ","],
      ["no match, a brace", "{"], ["no match, non-ASCII", "é"],
    ];
  });

  /** The backend's fallback, as the worker asks it (the internal key and the user's token). */
  const fallback = async (query) => {
    const headers = { "X-Internal-Auth": stack.secrets.INTERNAL_AUTH_KEY, "X-Workspace-ID": WS1, Authorization: `Bearer ${tokenFor(USER1)}`, "Cache-Control": "no-cache" };
    const res = await fetch(`${stack.urls.backend}/api/boards/${BOARD}/contacts?${query}`, { headers });
    const text = await res.text();
    return { status: res.status, text, json: JSON.parse(text) };
  };

  test("each equals SQL's case-insensitive substring match on name, email and phone, at the worker and at the backend", async () => {
    for (const [kind, term] of terms) {
      for (const [sortBy, sortOrder] of [["created_at", "desc"], ["name", "asc"]]) {
        const query = new URLSearchParams({ search: term, pageSize: "100", sortBy, sortOrder }).toString();
        const expected = expectedPage({ workspace: WS1, board: BOARD, me: USER1, search: term, pageSize: 100, sortBy, sortOrder });
        if (kind.startsWith("no match")) assert.equal(expected.total, 0, `${term}: SQL finds nothing`);
        else assert.ok(expected.total > 0, `${kind} ${JSON.stringify(term)}: SQL finds some`);
        const label = `${kind} ${JSON.stringify(term)} ${sortBy} ${sortOrder}`;
        const edge = await list(stack.urls.worker, { query, headers: { "Cache-Control": "no-cache" } });
        assert.equal(edge.status, 200, `${label}: ${edge.text.slice(0, 200)}`);
        assert.deepEqual(cacheHeaders(edge), ["BYPASS", "DATABASE"], label);
        assert.deepEqual(edge.json.data.contacts.map((c) => c.id), expected.ids, `${label}: the worker's ids`);
        assert.ok(sameRows(edge.json.data.contacts, expected.rows), `${label}: every field`);
        assert.equal(edge.json.data.pagination.total, expected.total, `${label}: the worker's total`);
        const backend = await fallback(query);
        assert.equal(backend.status, 200, `${label}: ${backend.text.slice(0, 200)}`);
        assert.deepEqual(backend.json.data.contacts.map((c) => c.id), expected.ids, `${label}: the fallback's ids`);
        assert.equal(backend.json.data.pagination.total, expected.total, `${label}: the fallback's total`);
      }
    }
  });

  test("a search is planned for its own values, and no other read is", () => {
    // What PostgREST does for each request: its role, the request's path, then its db-pre-request
    // function (20250127001210_search_custom_plans.sql), in the request's transaction.
    const mode = (path) =>
      sql(`begin; set local role authenticated; select set_config('request.path', ${sqlLiteral(path)}, true); select request_tracing.trace_request(); select current_setting('plan_cache_mode')`).at(-1)[0];
    assert.equal(mode("/contacts_searchable"), "force_custom_plan", "a search");
    assert.equal(mode("/contacts"), "auto", "a list without a search");
    assert.equal(mode("/contact_list_counts"), "auto", "a counter");
    const [[settings]] = sql("select coalesce(array_to_string(rolconfig, ' '), '') from pg_roles where rolname = 'authenticated'");
    assert.ok(!settings.includes("plan_cache_mode"), `the role itself keeps the default: ${settings}`);
  });

  test("through PostgREST, every search statement is planned for its values and a plain list's plan is reused", async () => {
    // pg_stat_statements counts plannings beside executions once track_planning is on: a statement
    // planned at every execution has plans = calls; one whose generic plan is reused has fewer.
    // The platform's superuser (as on hosted Supabase, the project's `postgres` is none).
    const admin = sqlOn(stack.ports.postgres, SUPERUSER);
    admin("alter system set pg_stat_statements.track_planning = on");
    admin("select pg_reload_conf()");
    try {
      await waitFor("track_planning on", async () => sql("show pg_stat_statements.track_planning")[0][0] === "on", 5000);
      sql("select pg_stat_statements_reset()");
      // One at a time, so PostgREST runs them on the same connection, where a generic plan would be
      // chosen after five executions.
      for (let i = 0; i < 12; i++) {
        const res = await list(stack.urls.worker, { query: `search=q&sortBy=name&page=${1 + (i % 3)}`, headers: { "Cache-Control": "no-cache" } });
        assert.equal(res.status, 200, res.text);
      }
      for (let i = 0; i < 40; i++) {
        const res = await list(stack.urls.worker, { query: "filter=open&sortBy=name", headers: { "Cache-Control": "no-cache" } });
        assert.equal(res.status, 200, res.text);
      }
      const counts = (like) => sql(`select coalesce(sum(calls), 0), coalesce(sum(plans), 0) from pg_stat_statements where query ilike ${sqlLiteral(like)} and query not ilike '%pg_stat_statements%'`)[0].map(Number);
      const [searchCalls, searchPlans] = counts("%from \"public\".\"contacts_searchable\"%");
      assert.ok(searchCalls >= 12, `the searches reached PostgREST's statements: ${searchCalls}`);
      assert.equal(searchPlans, searchCalls, "each search execution was planned for its own values");
      const [listCalls, listPlans] = counts("%from \"public\".\"contacts\"%conversation_status%");
      assert.ok(listCalls >= 40, `the plain list reached PostgREST: ${listCalls}`);
      assert.ok(listPlans < listCalls, `a plain list's cached plan is reused (${listPlans} plannings for ${listCalls} executions): no setting makes every request plan again`);
    } finally {
      admin("alter system reset pg_stat_statements.track_planning");
      admin("select pg_reload_conf()");
    }
  });

  test("another workspace's contacts never match, whatever they hold", async () => {
    // User 2 is a member of workspace 2 only: asking workspace 1 is refused, and its own search
    // lists workspace 2's contacts alone.
    const refused = await list(stack.urls.worker, { user: USER2, query: "search=a", headers: { "Cache-Control": "no-cache" } });
    assert.equal(refused.status, 403, refused.text);
    const WS2 = seed.workspace(2);
    const board = seed.board(2, 1);
    const own = await list(stack.urls.worker, { user: USER2, workspace: WS2, board, query: "search=a&pageSize=100", headers: { "Cache-Control": "no-cache" } });
    assert.equal(own.status, 200, own.text);
    const expected = expectedPage({ workspace: WS2, board, me: USER2, search: "a", pageSize: 100 });
    assert.ok(expected.total > 0);
    assert.deepEqual(own.json.data.contacts.map((c) => c.id), expected.ids);
    assert.equal(own.json.data.pagination.total, expected.total);
  });
});
