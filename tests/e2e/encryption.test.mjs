// Encryption at rest: pages in KV, carry records in the state home and pages in Redis are AES-256-GCM sealed,
// bound to their cache key; tampered, moved or unknown-key entries are misses, never served;
// rotated keys still read. After a mixed workload of reads, searches and writes, no KV or Redis
// value holds a contact's name, email or phone, or a search term.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join, sep } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { newStack, waitFor } from "../../scripts/stack.mjs";
import { FILTERS, expectedPage, markedPage, ownWorker, redisCli, seal, seed, sql, sqlLiteral, stack, stateHome, storedAgo, tokenFor } from "./harness.mjs";

const WS = seed.workspace(4);
const BOARD = seed.board(4, 1);
const ME = seed.user(4);

describe("encryption at rest", () => {
  const pieces = newStack();
  const oldKey = stack.secrets.CACHE_ENCRYPTION_KEY; // "local1:<base64>"
  const newKey = `rotated:${randomBytes(32).toString("base64")}`;
  let worker;
  let kv;
  before(async () => {
    // The current key is new; entries sealed with the old one still open.
    // No refresh-ahead: a page is in KV only when a test's read put it there.
    worker = await ownWorker(pieces, { CACHE_ENCRYPTION_KEY: `${newKey},${oldKey}`, REFRESH_AHEAD_PAGES: "0" });
    kv = await pieces.miniflare.getKVNamespace("CONTACT_CACHE");
  });
  after(() => pieces.stop());

  const list = (query) =>
    fetch(`${worker}/api/boards/${BOARD}/contacts?${query}`, { headers: { Authorization: `Bearer ${tokenFor(ME)}`, "X-Workspace-ID": WS } });
  const layer = (res) => `${res.headers.get("x-cache-status")}/${res.headers.get("x-cache-layer")}`;

  test("KV and Redis hold only sealed pages, with no contact data in the clear", async () => {
    const query = "filter=closed&page=3";
    const res = await list(query);
    const body = await res.json();
    const names = body.data.contacts.map((c) => c.name);
    assert.ok(names.length > 0);
    const kvKey = res.headers.get("x-cache-key");
    const gen = kvKey.split("&gen=")[1];
    const redisKey = `contacts:{${WS}}:closed:board:${BOARD}:page:3:limit:50:sort:created_at-desc:gen:${gen}`;
    await waitFor("write-back", async () => (await kv.get(kvKey)) !== null && redisCli(stack.ports.redis, "exists", redisKey) === "1", 5000);
    const rawKv = await kv.get(kvKey);
    const rawRedis = redisCli(stack.ports.redis, "get", redisKey);
    assert.match(rawKv, /^v1\.rotated\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+$/);
    assert.match(rawRedis, /^v1\.local1\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+$/);
    for (const raw of [rawKv, rawRedis]) {
      for (const name of names) assert.ok(!raw.includes(name), "no name in the clear");
      assert.ok(!raw.includes("conversation_status"));
    }
    assert.equal(layer(await list(query)), "HIT/KV", "and sealed pages are served");
  });

  test("a tampered KV entry is a miss, never served", async () => {
    const query = "filter=open&page=4";
    const first = await list(query);
    const kvKey = first.headers.get("x-cache-key");
    await waitFor("write-back", async () => (await kv.get(kvKey)) !== null, 5000);
    const raw = await kv.get(kvKey);
    const flipped = raw.slice(0, -3) + (raw.at(-3) === "A" ? "B" : "A") + raw.slice(-2);
    await kv.put(kvKey, flipped, storedAgo(0));
    const res = await list(query);
    assert.notEqual(layer(res), "HIT/KV");
    const expected = expectedPage({ workspace: WS, board: BOARD, me: ME, filter: "open", page: 4 });
    assert.deepEqual((await res.json()).data.contacts.map((c) => c.id), expected.ids);
  });

  test("an entry moved to another key, or sealed under an unknown key id, is a miss", async () => {
    const a = await list("filter=all&page=5");
    const b = await list("filter=all&page=6");
    const [keyA, keyB] = [a.headers.get("x-cache-key"), b.headers.get("x-cache-key")];
    await waitFor("write-back", async () => (await kv.get(keyA)) !== null && (await kv.get(keyB)) !== null, 5000);
    await kv.put(keyB, await kv.get(keyA), storedAgo(0));
    const moved = await list("filter=all&page=6");
    assert.notEqual(layer(moved), "HIT/KV");
    assert.equal((await moved.json()).data.pagination.page, 6);

    const forged = seal(`ghost:${randomBytes(32).toString("base64")}`, keyA, JSON.stringify({ success: true, data: { contacts: [{ id: "forged" }] } }));
    await kv.put(keyA, forged, storedAgo(0));
    const res = await list("filter=all&page=5");
    assert.notEqual(layer(res), "HIT/KV");
    assert.ok(!(await res.text()).includes("forged"));
  });

  test("an entry not in the sealed form (plain JSON, another version, a short nonce) is a miss", async () => {
    const query = "filter=all&page=7";
    const first = await list(query);
    const kvKey = first.headers.get("x-cache-key");
    await waitFor("write-back", async () => (await kv.get(kvKey)) !== null, 5000);
    const [, id, nonce, ciphertext] = (await kv.get(kvKey)).split(".");
    const plain = JSON.stringify({ success: true, data: { contacts: [{ id: "plain" }] } });
    const short = Buffer.from(nonce, "base64url").subarray(0, 8).toString("base64url");
    for (const bad of [plain, `v2.${id}.${nonce}.${ciphertext}`, `v1.${id}.${short}.${ciphertext}`, `v1.${id}.${nonce}`, `v1.${id}.${nonce}.${ciphertext}.x`]) {
      await kv.put(kvKey, bad, storedAgo(0));
      const res = await list(query);
      assert.notEqual(layer(res), "HIT/KV", bad.slice(0, 40));
      const body = await res.json();
      assert.equal(body.data.pagination.page, 7);
      assert.ok(!JSON.stringify(body).includes('"plain"'));
      // The page read instead is written back over the bad entry before the next one is put
      // (read again until it is: a write-back past KV's budget, on a busy machine, is dropped).
      await waitFor("write-back", async () => (await kv.get(kvKey)) !== bad || ((await list(query)).ok && false), 5000);
    }
  });

  test("entries sealed with the previous key still open after rotation", async () => {
    const query = "filter=low_priority&page=2";
    const probe = await list(query);
    const kvKey = probe.headers.get("x-cache-key");
    const page = markedPage("sealed-with-the-old-key");
    await kv.put(kvKey, seal(oldKey, kvKey, JSON.stringify(page)), storedAgo(0));
    const res = await list(query);
    assert.equal(layer(res), "HIT/KV");
    assert.deepEqual(await res.json(), page);
  });

  test("a carry record that does not open (unsealed, tampered, moved, under an unknown key) carries nothing", async () => {
    const carryKey = `carry:${WS}:${BOARD}:all`;
    const invalidate = async () => {
      const res = await fetch(`${worker}/api/cache/invalidate`, {
        method: "POST",
        headers: { Authorization: `Bearer ${tokenFor(ME)}`, "X-Workspace-ID": WS, "Content-Type": "application/json" },
        body: JSON.stringify({ workspace_id: WS, board_id: BOARD, filter: "all" }),
      });
      assert.equal(res.status, 200);
      return (await res.json()).data.generation;
    };
    /** A record leading from a generation whose page 1 is in KV to the current one, renaming the
     * page's first contact to `Forged Carry`, as `store` writes it: what page 1 then answers. */
    const pageAfter = async (store) => {
      const from = await invalidate();
      const cached = await list("filter=all&page=1");
      await waitFor("page 1 in KV", async () => (await kv.get(cached.headers.get("x-cache-key"))) !== null, 5000);
      const [first] = (await cached.json()).data.contacts;
      const to = await invalidate();
      // Past the staleness bound, so that the page of `from` is not served as the answer.
      await new Promise((resolve) => setTimeout(resolve, Number(stack.bindings.STALENESS_BOUND_MS ?? 1000) + 100));
      const [[row]] = sql(`select to_jsonb(c)::text from contacts c where id = '${first.id}'`);
      const record = JSON.stringify({ to, from, updates: [{ new: { ...JSON.parse(row), name: "Forged Carry" }, was: { name: first.name } }] });
      assert.equal(await stateHome(pieces.miniflare, WS).put({ [carryKey]: store(record) }), 200);
      const cachedKey = cached.headers.get("x-cache-key");
      assert.ok(cachedKey.endsWith(`&gen=${from}`));
      assert.equal(await kv.get(`${cachedKey.slice(0, -from.length)}${to}`), null, "no page 1 of the new generation before the read");
      const res = await list("filter=all&page=1");
      assert.equal(res.status, 200);
      return (await res.json()).data.contacts;
    };
    const sealedNow = (record) => seal(newKey, carryKey, record);
    const tampered = (record) => {
      const sealed = sealedNow(record);
      const at = sealed.length - 5;
      return sealed.slice(0, at) + (sealed[at] === "A" ? "B" : "A") + sealed.slice(at + 1);
    };
    // Sealed with the current key, the record is carried: the refusals below are not for want of a record.
    assert.equal((await pageAfter(sealedNow))[0].name, "Forged Carry");
    // The worker's own records are sealed too, in the state home (not in KV).
    const row = { id: "00000000-0000-0000-0000-000000000001", workspace_id: WS, board_id: BOARD, board_column_id: null, conversation_status: "Open", priority: "low", assigned_user_id: null, archived: false };
    const renamed = await fetch(`${worker}/api/cache/webhook`, {
      method: "POST",
      headers: { "X-Webhook-Secret": stack.secrets.WEBHOOK_SECRET, "Content-Type": "application/json" },
      body: JSON.stringify({ type: "UPDATE", table: "contacts", schema: "public", record: { ...row, name: "Sealed Name" }, old_record: { ...row, name: "Before" } }),
    });
    assert.equal(renamed.status, 200, await renamed.text());
    const keys = FILTERS.map((filter) => `carry:${WS}:${BOARD}:${filter}`);
    const stored = Object.values((await stateHome(pieces.miniflare, WS).read(keys)).values).filter((value) => value !== null);
    assert.ok(stored.length > 0, "the rename wrote carry records");
    for (const value of stored) assert.ok(value.startsWith("v1.") && !value.includes("Sealed Name"), "a record the worker wrote is sealed");
    assert.equal(await kv.get(carryKey), null, "no carry record in KV");
    for (const [what, store] of [
      ["unsealed (as an earlier version wrote it)", (record) => record],
      ["tampered", tampered],
      ["moved from another scope's key", (record) => seal(newKey, `carry:${WS}:${BOARD}:open`, record)],
      ["under an unknown key id", (record) => seal(`ghost:${randomBytes(32).toString("base64")}`, carryKey, record)],
    ]) {
      const contacts = await pageAfter(store);
      assert.ok(!contacts.some((c) => c.name === "Forged Carry"), what);
      assert.deepEqual(contacts.map((c) => c.id), expectedPage({ workspace: WS, board: BOARD, me: ME, filter: "all", page: 1 }).ids, what);
    }
  });

  test("a tampered Redis entry is a miss for the backend too", async () => {
    const call = (path, headers = {}) =>
      fetch(`${stack.urls.backend}${path}`, { headers: { "X-Internal-Auth": stack.secrets.INTERNAL_AUTH_KEY, "X-Workspace-ID": WS, Authorization: `Bearer ${tokenFor(ME)}`, ...headers } });
    const stats = async () => (await (await fetch(`${stack.urls.backend}/api/cache/stats`, { headers: { Authorization: `Bearer ${stack.backendOptions.metricsToken}` } })).json()).data.service;
    const key = `contacts:{${WS}}:archived:board:${BOARD}:page:1:limit:50:sort:created_at-desc:gen:0`;
    redisCli(stack.ports.redis, "set", key, "v1.local1.AAAAAAAAAAAAAAAA.AAAA", "EX", "60");
    const before = (await stats()).refused_entries;
    const res = await call(`/api/boards/${BOARD}/contacts/cache?filter=archived`, { "X-Cache-Only": "true" });
    assert.equal(res.status, 404);
    const afterStats = (await stats()).refused_entries;
    assert.equal(afterStats, before + 1);
  });
});

// The stack's own worker, KV and Redis: change capture posts to it, so carry records, counts,
// reads records and refreshed pages all exist after the workload. Its KV is read from Miniflare's
// persistence under the stack dir (values are files; keys live in its SQLite files), its Redis
// with one script that returns every key's type and values.
describe("no contact data in the clear after a mixed workload", () => {
  const WS = seed.workspace(4);
  const BOARD = seed.board(4, 2);
  const ME = seed.user(4);
  const TOKEN = tokenFor(ME, { app_metadata: { workspace_ids: [WS] } });
  const headers = { Authorization: `Bearer ${TOKEN}`, "X-Workspace-ID": WS };

  /** Every contact field seen or written, and every search term used. */
  const needles = new Set();
  const seen = (contact) => [contact.name, contact.email, contact.phone].filter(Boolean).forEach((field) => needles.add(field));
  const list = async (query) => {
    const res = await fetch(`${stack.urls.worker}/api/boards/${BOARD}/contacts?${query}`, { headers });
    assert.equal(res.status, 200, query);
    const body = await res.json();
    body.data.contacts.forEach(seen);
    return { label: `${res.headers.get("x-cache-status")}/${res.headers.get("x-cache-layer")}`, key: res.headers.get("x-cache-key"), body };
  };
  const counts = async () => assert.equal((await fetch(`${stack.urls.worker}/api/workspaces/${WS}/counts`, { headers })).status, 200);
  const search = (term) => {
    // As typed, and as a query string holds it (`+` for a space, `%40` for `@`).
    needles.add(term).add(new URLSearchParams({ search: term }).toString().slice("search=".length));
    return list(`filter=all&search=${encodeURIComponent(term)}`);
  };
  const readEverything = async (terms) => {
    for (const filter of FILTERS) await list(`filter=${filter}&page=1`);
    await list("filter=all&page=2");
    for (const term of terms) await search(term);
    await counts();
  };

  test("no KV or Redis value holds a contact's name, email or phone, or a search term", async () => {
    const live = (where) =>
      sql(`select id, name, email, phone from contacts where board_id = '${BOARD}' and not archived and ${where} order by created_at desc, id desc limit 3`)
        .map(([id, name, email, phone]) => ({ id, name, email, phone }));
    const [renamed, reEmailed, rePhoned] = live("email is not null and phone is not null");
    [renamed, reEmailed, rePhoned].forEach(seen);
    await readEverything([renamed.name, reEmailed.email, rePhoned.phone]);
    await waitFor("page 1 in KV", async () => (await list("filter=all&page=1")).label === "HIT/KV", 5000);
    const before = (await list("filter=all&page=1")).key;

    // Writes through PostgreSQL, as users make them; change capture invalidates the edge.
    const tag = randomBytes(4).toString("hex");
    const fresh = { name: `Sealcheck Renamed ${tag}`, email: `sealcheck.${tag}@mail.test`, phone: `+1555${parseInt(tag, 16) % 10_000_000}`.padEnd(12, "0") };
    const inserted = { name: `Sealcheck Inserted ${tag}`, email: `inserted.${tag}@mail.test`, phone: `+1444${parseInt(tag, 16) % 10_000_000}`.padEnd(12, "0") };
    const removed = { name: `Sealcheck Removed ${tag}`, email: `removed.${tag}@mail.test`, phone: "+13330000000" };
    [fresh, inserted, removed].forEach(seen);
    sql(`update contacts set name = ${sqlLiteral(fresh.name)} where id = '${renamed.id}'`);
    sql(`update contacts set email = ${sqlLiteral(fresh.email)} where id = '${reEmailed.id}'`);
    sql(`update contacts set phone = ${sqlLiteral(fresh.phone)} where id = '${rePhoned.id}'`);
    for (const contact of [inserted, removed]) {
      sql(`insert into contacts (workspace_id, board_id, name, email, phone, conversation_status, priority)
           values ('${WS}', '${BOARD}', ${sqlLiteral(contact.name)}, ${sqlLiteral(contact.email)}, ${sqlLiteral(contact.phone)}, 'Open', 'high')`);
    }
    sql(`delete from contacts where board_id = '${BOARD}' and name = ${sqlLiteral(removed.name)}`);
    sql(`insert into contact_favorites (user_id, contact_id, workspace_id) values ('${ME}', '${renamed.id}', '${WS}') on conflict do nothing`);
    const invalidated = await fetch(`${stack.urls.worker}/api/cache/invalidate`, {
      method: "POST",
      headers: { ...headers, "Content-Type": "application/json" },
      body: JSON.stringify({ workspace_id: WS, filter: "closed" }),
    });
    assert.equal(invalidated.status, 200);
    const requestId = invalidated.headers.get("x-request-id");

    await waitFor("the writes at the edge", async () => {
      const { key, body } = await list("filter=all&page=1");
      const names = body.data.contacts.map((c) => c.name);
      return key !== before && names.includes(inserted.name) && names.includes(fresh.name) && !names.includes(removed.name);
    }, 10_000);
    await readEverything([fresh.name, fresh.email, fresh.phone, inserted.email, renamed.name]);
    await waitFor("the new pages in KV", async () => (await list("filter=all&page=1")).label === "HIT/KV", 5000);

    // What was written exists: carry records (the rename kept its place), reads records, counts,
    // and the invalidation's audit record (in PostgreSQL, so in neither store).
    await waitFor("the audit record", async () => sql(`select count(*) from public.cache_audit_log where request_id = '${requestId}'`)[0][0] === "1", 5000);
    const kv = kvFiles(stack.dir);
    assert.ok(!kv.keys.includes(`carry:${WS}:`) && !kv.keys.includes(`gen:${WS}:`), "no carry record or scope state in KV (they are the state home's)");
    assert.ok(kv.values.length > 0 && kv.values.some(({ text }) => SEALED.test(text)), "KV's values are read");
    await waitFor("the reads records", async () => redisCli(stack.ports.redis, "exists", `readers:{${WS}}:${BOARD}:all`) === "1", 5000);
    const redis = await redisValues(stack.ports.redis);
    assert.ok(redis.some(({ key }) => key.startsWith(`reads:{${WS}}:`)), "reads records");
    assert.ok(redis.some(({ key }) => key.startsWith(`counts:{${WS}}:`)), "counts");

    const clear = [...needles].filter((needle) => needle.length >= 4);
    assert.ok(clear.length > 50, `the workload saw contacts (${clear.length} fields)`);
    const found = [
      ...inTheClear(kvFiles(stack.dir).values.map(({ file, text }) => ({ where: `KV ${file}`, text })), clear),
      ...inTheClear(redis.flatMap(({ key, type, parts }) => parts.map((text) => ({ where: `Redis ${type} ${key}`, text }))), clear),
    ];
    assert.deepEqual(found, [], "no contact field or search term in the clear");
  });
});

/** The sealed form of `contact_list_cache_core::sealed`. */
const SEALED = /^v1\.[A-Za-z0-9_-]{1,16}\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+$/;

/**
 * Where one of `needles` is in `values` ({where, text}): every value must be sealed, or hold only
 * what no contact field is made of (generations, sequence numbers, keyed hashes: `[0-9a-z -]`),
 * and none may contain a needle. A sealed value is base64url: a needle with any other character
 * (a name's space, an email's `@`, a phone's `+`) cannot be in it; the others are looked for.
 */
function inTheClear(values, needles) {
  const unsealable = (needle) => /[^A-Za-z0-9_-]/.test(needle);
  const found = [];
  for (const { where, text } of values) {
    const sealed = SEALED.test(text);
    if (!sealed && !/^[0-9a-z -]{0,100}$/.test(text)) found.push(`${where}: neither sealed nor plain bookkeeping: ${text.slice(0, 80)}`);
    for (const needle of needles) {
      if ((sealed && unsealable(needle)) || !text.includes(needle)) continue;
      found.push(`${where}: holds ${needle}`);
    }
  }
  return found;
}

/** The stack worker's KV from Miniflare's persistence: every stored value (a file under a
 * `blobs` folder) and the text of its SQLite files, where its keys are (`keys.includes(key)`:
 * whether `key` was stored). */
function kvFiles(dir) {
  const values = [];
  let sqlite = "";
  const walk = (path) => {
    for (const entry of readdirSync(path, { withFileTypes: true })) {
      const full = join(path, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (path.split(sep).includes("blobs")) values.push({ file: full, text: readFileSync(full, "utf8") });
      else if (/\.sqlite(-wal)?$/.test(entry.name)) sqlite += readFileSync(full, "latin1");
    }
  };
  walk(join(dir, "kv"));
  return { values, keys: sqlite };
}

/** Every key of the Redis on `port` with its type and values (a string's value, a hash's fields
 * and values, the members of a sorted set, a set or a list), read by one script (SCAN and, by
 * type, GET, HGETALL, ZRANGE, SMEMBERS, LRANGE) that answers JSON. */
async function redisValues(port) {
  const script = `
    local out, cursor = {}, "0"
    repeat
      local page = redis.call("SCAN", cursor, "COUNT", 1000)
      cursor = page[1]
      for _, key in ipairs(page[2]) do
        local kind = redis.call("TYPE", key).ok
        local parts = {}
        if kind == "string" then parts = { redis.call("GET", key) }
        elseif kind == "hash" then parts = redis.call("HGETALL", key)
        elseif kind == "zset" then parts = redis.call("ZRANGE", key, 0, -1)
        elseif kind == "set" then parts = redis.call("SMEMBERS", key)
        elseif kind == "list" then parts = redis.call("LRANGE", key, 0, -1)
        else parts = { "UNREAD TYPE " .. kind } end
        out[#out + 1] = { key = key, type = kind, parts = parts }
      end
    until cursor == "0"
    return cjson.encode(out)`;
  const { stdout } = await promisify(execFile)("redis-cli", ["-p", String(port), "--raw", "eval", script, "0"], { maxBuffer: 1 << 30 });
  return JSON.parse(stdout).map(({ key, type, parts }) => ({ key, type, parts: Array.isArray(parts) ? parts : [] }));
}
