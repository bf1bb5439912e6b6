// Shared by every end-to-end test: the running stack (started by tests/run.mjs), pieces of a
// test's own made like the stack's, and helpers.
import { spawnSync } from "node:child_process";
import { createCipheriv, randomBytes } from "node:crypto";
import { createServer, request } from "node:http";
import { userToken, signJwt } from "../../scripts/jwt.mjs";
import { psql, psqlArgs, runSync } from "../../scripts/stack.mjs";
import { liveWorker } from "../../scripts/stack/services.mjs";
export { seed } from "../../scripts/seed-ids.mjs";

if (!process.env.CONTACT_LIST_CACHE_STACK) {
  throw new Error("run the end-to-end tests through `node tests/run.mjs`, which starts the stack");
}

/** What startStack answered for the stack under test: URLs, ports, secrets, the worker's
 * bindings, the backend's options and tokens. */
export const stack = JSON.parse(process.env.CONTACT_LIST_CACHE_STACK);

/** A function running queries as `user` (the superuser by default) of the PostgreSQL on `port`,
 * returning rows as arrays of strings. It blocks: use fetchOnce for requests in between. */
export const sqlOn = (port, user) => (query) => {
  const out = runSync("psql", psqlArgs(port, { command: query, user }));
  return out.split("\n").filter(Boolean).map((line) => line.split("|"));
};

/** Runs a query as the database superuser and returns its rows as arrays of strings. */
export const sql = sqlOn(stack.ports.postgres);

/** `redis-cli -p port args...`, trimmed stdout ("" when it fails). It blocks. */
export function redisCli(port, ...args) {
  return (spawnSync("redis-cli", ["-p", String(port), ...args], { encoding: "utf8" }).stdout ?? "").trim();
}

/** A backend of the test's own in `pieces` (a newStack()), started as the stack's is (its
 * encryption key, Redis, database and internal key) with `overrides` (`env`, `port`, ...). */
export const ownBackend = (pieces, overrides = {}) => pieces.startBackend({ ...stack.backendOptions, ...overrides });

/** A Supabase of the test's own in `pieces`: PostgREST and its gateway, with the stack's keys, in
 * front of the stack's database (or the one `overrides.pgPort` names). */
export const ownSupabase = (pieces, overrides = {}) =>
  pieces.startSupabase({ jwtSecret: stack.secrets.SUPABASE_JWT_SECRET, signing: stack.signing, pgPort: stack.ports.postgres, ...overrides });

/** The worker in a Miniflare of the test's own in `pieces`, with the stack's bindings and
 * `bindings` over them, and the live worker beside it (its state home and live channel, bound
 * as LIVE, as in the stack); `miniflare` holds startMiniflare's other options. Resolves to its URL. */
export function ownWorker(pieces, bindings = {}, { app = {}, extraWorkers = [], ...miniflare } = {}) {
  const live = liveWorker();
  const workers = extraWorkers.some((w) => w.name === live.name) ? extraWorkers : [live, ...extraWorkers];
  const withLive = { ...app, serviceBindings: { LIVE: live.name, ...app.serviceBindings } };
  return pieces.startMiniflare({ ...miniflare, app: withLive, extraWorkers: workers, bindings: { ...stack.bindings, ...bindings } });
}

/** The state home of `workspace` (the live worker's Durable Object) in the Miniflare `mf` of a
 * test's own: `read(keys)` answers `{version, newest, values}`; `put(values)` writes values as
 * the worker does (conditioned on the version just read, keeping the newest generation) and
 * answers the status. */
export function stateHome(mf, workspace) {
  const call = async (action, body) => {
    const live = await mf.getWorker("contact-list-cache-live");
    const res = await live.fetch(`http://live/state/${workspace}/${action}`, { method: "POST", body: JSON.stringify(body) });
    return { status: res.status, json: res.status === 200 ? await res.json() : await res.text() };
  };
  return {
    read: async (keys) => (await call("read", { keys })).json,
    async put(values) {
      const { version, newest } = await this.read([]);
      return (await call("write", { version, newest, values })).status;
    },
  };
}

/** An access token for the user with id `sub`, signed with the project's JWT secret. */
export function tokenFor(sub, extra = {}) {
  return userToken(stack.secrets.SUPABASE_JWT_SECRET, { sub, email: `${sub}@example.test`, ...extra });
}

export { signJwt };

/** Every filter of the API, and what it means in SQL for user `me` (written independently of
 * the implementation, straight from the spec). */
export const FILTERS = ["all", "open", "closed", "unassigned", "assigned_to_me", "high_priority", "medium_priority", "low_priority", "favorites", "archived"];
export function filterSql(filter, me) {
  const live = "not c.archived";
  return {
    all: live,
    open: `${live} and c.conversation_status = 'Open'`,
    closed: `${live} and c.conversation_status = 'Closed'`,
    unassigned: `${live} and c.assigned_user_id is null`,
    assigned_to_me: `${live} and c.assigned_user_id = '${me}'`,
    high_priority: `${live} and c.priority = 'high'`,
    medium_priority: `${live} and c.priority = 'medium'`,
    low_priority: `${live} and c.priority = 'low'`,
    favorites: `${live} and c.id in (select contact_id from contact_favorites where user_id = '${me}')`,
    archived: "c.archived",
  }[filter];
}

/** A literal for SQL text: single quotes doubled. */
export const sqlLiteral = (text) => `'${text.replaceAll("'", "''")}'`;

/**
 * The page the API must answer, computed by SQL (`query`, the stack's database by default): ids
 * in order, total, totalPages and the rows. `search` is matched as ILIKE on the literal term.
 */
export function expectedPage({ workspace, board, me, filter = "all", sortBy = "created_at", sortOrder = "desc", page = 1, pageSize = 50, search, columnId, assignedTo }, query = sql) {
  const where = [`c.workspace_id = '${workspace}'`, `c.board_id = '${board}'`, filterSql(filter, me)];
  if (columnId) where.push(`c.board_column_id = '${columnId}'`);
  if (assignedTo) where.push(`c.assigned_user_id = '${assignedTo}'`);
  if (search !== undefined) {
    const escaped = search.replaceAll("\\", "\\\\").replaceAll("%", "\\%").replaceAll("_", "\\_");
    const pattern = sqlLiteral(`%${escaped}%`);
    where.push(`(c.name ilike ${pattern} or c.email ilike ${pattern} or c.phone ilike ${pattern})`);
  }
  const nulls = sortBy === "last_message_time" ? " nulls last" : "";
  const order = `c.${sortBy} ${sortOrder}${nulls}, c.id ${sortOrder}`;
  const [[total]] = query(`select count(*) from contacts c where ${where.join(" and ")}`);
  const rows = query(
    `select c.id, c.name, coalesce(c.email, '<null>'), coalesce(c.phone, '<null>'), c.conversation_status,
            coalesce(c.priority, '<null>'), coalesce(extract(epoch from c.last_message_time)::text, '<null>'),
            coalesce(c.assigned_user_id::text, '<null>'), coalesce(c.board_column_id::text, '<null>'),
            extract(epoch from c.created_at)::text
     from contacts c where ${where.join(" and ")} order by ${order} limit ${pageSize} offset ${(page - 1) * pageSize}`,
  );
  return {
    total: Number(total),
    totalPages: Math.ceil(Number(total) / pageSize),
    ids: rows.map((r) => r[0]),
    rows: rows.map((r) => r.map((v) => (v === "<null>" ? null : v))),
  };
}

/** An API contact in the shape of `expectedPage().rows`. */
export function contactRow(c) {
  const epoch = (t) => (t === null ? null : String(Date.parse(t) / 1000));
  return [c.id, c.name, c.email, c.phone, c.conversation_status, c.priority, c.last_message_time, c.assigned_user_id, c.board_column_id, c.created_at]
    .map((v, i) => (i === 6 || i === 9 ? epoch(v) : v));
}

/** Compares SQL epoch strings and API epochs numerically (microsecond text vs float). */
/** Calls since the last `pg_stat_statements_reset()` of the statements whose text matches
 * `like` (SQL ILIKE), the counting query's own aside. */
export function statementCalls(like) {
  const [[n]] = sql(`select coalesce(sum(calls), 0) from pg_stat_statements where query ilike ${sqlLiteral(like)} and query not ilike '%pg_stat_statements%'`);
  return Number(n);
}

export function sameRows(apiContacts, expectedRows) {
  const api = apiContacts.map(contactRow);
  if (api.length !== expectedRows.length) return false;
  return api.every((row, i) =>
    row.every((v, j) => ((j === 6 || j === 9) && v !== null ? Math.abs(Number(v) - Number(expectedRows[i][j])) < 1e-3 : v === expectedRows[i][j])),
  );
}

/** Seals like `contact_list_cache_core::sealed`: v1.<kid>.<nonce>.<ciphertext+tag>, AAD = cache key.
 * `keyring` is a `CACHE_ENCRYPTION_KEY` value; its first key seals. */
export function seal(keyring, cacheKey, plaintext) {
  const [kid, keyBase64] = keyring.split(",")[0].trim().split(":");
  const nonce = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", Buffer.from(keyBase64, "base64"), nonce);
  cipher.setAAD(Buffer.from(cacheKey));
  const body = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final(), cipher.getAuthTag()]);
  return `v1.${kid}.${nonce.toString("base64url")}.${body.toString("base64url")}`;
}

/**
 * A page as the worker stores and serves it (docs/openapi.yaml's ContactList), made recognisable
 * by `marker`, the name of its one contact: for tests that plant a page in a cache and expect it
 * served as planted (every answer of the worker is checked against the document).
 */
export function markedPage(marker, { cachedAt = new Date().toISOString(), page = 1 } = {}) {
  const contact = {
    id: "00000000-0000-4000-8000-00000000000a",
    name: marker,
    email: null,
    phone: null,
    conversation_status: "open",
    priority: null,
    last_message_time: null,
    assigned_user_id: null,
    board_column_id: null,
    created_at: "2025-01-01T00:00:00+00:00",
  };
  return {
    success: true,
    data: {
      contacts: [contact],
      pagination: { page, pageSize: 50, total: 1, totalPages: 1, nextCursor: null, prevCursor: null },
      filters: { filter: "all", search: "", assignedTo: "", columnId: "" },
      sort: { sortBy: "created_at", sortOrder: "desc" },
    },
    cached_at: cachedAt,
    cache_ttl: 180,
  };
}

/** KV metadata saying a page was read from its source `secondsAgo` seconds ago. */
export const storedAgo = (secondsAgo) => ({ metadata: { t: Date.now() - secondsAgo * 1000 }, expirationTtl: 3600 });

/**
 * Checks an answer received without `fetch` against docs/openapi.yaml, as tests/openapi/preload.mjs
 * checks fetch's (when it is loaded, as tests/run.mjs loads it): the error to fail with, or null.
 */
function checkedAgainstOpenApi(method, url, status, headers, body) {
  const openapi = globalThis[Symbol.for("contact-list-cache.openapi")];
  const problems = openapi?.checkAnswer(method, String(url), status, headers, body) ?? [];
  return problems.length ? new openapi.OpenApiViolation(problems) : null;
}

/**
 * `fetch`, but on a new connection every time (no keep-alive pool): for tests that block the
 * event loop between requests (synchronous psql), where a pooled connection the server has
 * meanwhile closed would fail the next request. GET only; answers a standard `Response`.
 */
export function fetchOnce(url, { headers = {}, timeoutMs = 15_000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, headers }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("error", reject);
      res.on("end", () => {
        const pairs = Object.entries(res.headers).map(([name, value]) => [name, Array.isArray(value) ? value.join(", ") : value]);
        const body = Buffer.concat(chunks);
        const problems = checkedAgainstOpenApi("GET", url, res.statusCode, new Headers(pairs), body.toString("utf8"));
        if (problems) return reject(problems);
        resolve(new Response(body, { status: res.statusCode, headers: pairs }));
      });
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end();
  });
}

/**
 * A WebSocket handshake to `url` offering `protocols` (none when empty), on a connection of its
 * own: the status, the answer's headers, and the JSON error when the upgrade is refused. An
 * accepted socket is closed at once.
 */
export function websocketHandshake(url, protocols = [], headers = {}) {
  return new Promise((resolve, reject) => {
    const offered = protocols.length ? { "Sec-WebSocket-Protocol": protocols.join(", ") } : {};
    const req = request(url, {
      agent: false,
      headers: { Connection: "Upgrade", Upgrade: "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": randomBytes(16).toString("base64"), ...offered, ...headers },
    });
    const headersOf = (res) => new Headers(Object.entries(res.headers).map(([name, value]) => [name, Array.isArray(value) ? value.join(", ") : value]));
    req.on("upgrade", (res, socket) => {
      socket.destroy();
      const problems = checkedAgainstOpenApi("GET", url, res.statusCode, headersOf(res), null);
      if (problems) return reject(problems);
      resolve({ status: res.statusCode, headers: res.headers, body: null });
    });
    req.on("response", (res) => {
      let body = "";
      res.on("data", (chunk) => (body += chunk));
      res.on("end", () => {
        const problems = checkedAgainstOpenApi("GET", url, res.statusCode, headersOf(res), body);
        if (problems) return reject(problems);
        resolve({ status: res.statusCode, headers: res.headers, body: body ? JSON.parse(body) : null });
      });
    });
    req.on("error", reject);
    req.end();
  });
}

/**
 * Renames of contacts that are undone later: `rename(id, name)` renames one through SQL without
 * blocking this process (for tests whose servers live in it) and remembers its name before;
 * `restore()` puts every name back, the last renamed first.
 */
export function contactRenames(port = stack.ports.postgres) {
  const sqlAsync = (command) => psql(port, { command });
  const renamed = [];
  return {
    async rename(id, name) {
      const before = (await sqlAsync(`select name from contacts where id = '${id}'`)).trim();
      renamed.push([id, before]);
      await sqlAsync(`update contacts set name = ${sqlLiteral(name)} where id = '${id}'`);
    },
    async restore() {
      for (const [id, name] of renamed.reverse()) await sqlAsync(`update contacts set name = ${sqlLiteral(name)} where id = '${id}'`);
      renamed.length = 0;
    },
  };
}

/** A response read whole: its status, headers, body as text, and as JSON when it is JSON. */
export async function readAnswer(res) {
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/**
 * A pass-through proxy on loopback in front of `workerUrl`'s `/api/cache/webhook`, for change
 * capture to post to: a batch that `refuse(changes)` says yes to is answered 503 instead (counted
 * in `refused`); `accepted(changes, answer)` hears of each batch the worker took (2xx), with its
 * answer's text. Resolves, once listening, to `{ url, refused, stop }`.
 */
export async function webhookProxy(workerUrl, { refuse = () => false, accepted = () => {} } = {}) {
  const proxy = { url: null, refused: 0 };
  const server = createServer(async (req, res) => {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const body = Buffer.concat(chunks).toString();
    let changes = [];
    try {
      changes = JSON.parse(body);
    } catch {
      // Not a batch: passed on for the worker to refuse.
    }
    if (Array.isArray(changes) && refuse(changes)) {
      proxy.refused += 1;
      res.writeHead(503, { "Content-Type": "application/json" }).end('{"success":false}');
      return;
    }
    try {
      const upstream = await fetch(`${workerUrl}/api/cache/webhook`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Webhook-Secret": req.headers["x-webhook-secret"] ?? "" },
        body,
      });
      const text = await upstream.text();
      if (upstream.ok) accepted(changes, text);
      res.writeHead(upstream.status, { "Content-Type": "application/json" }).end(text);
    } catch (err) {
      res.writeHead(502).end(String(err));
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  proxy.url = `http://127.0.0.1:${server.address().port}`;
  proxy.stop = () => new Promise((resolve) => server.close(resolve));
  return proxy;
}
