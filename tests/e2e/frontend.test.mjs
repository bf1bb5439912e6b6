// The frontend against the real stack: the live channel's gate (who may open a socket), what it
// pushes to whom, and the demo page in headless Chromium: paging, the cache badge, a row changed
// with psql appearing without a reload, and a page that is current again after its connection
// dropped.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import { connect, createServer } from "node:net";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { chromium } from "playwright-core";
import { serveDemo } from "../../scripts/demo-server.mjs";
import { ROOT, psql } from "../../scripts/stack.mjs";
import { handshake as wsHandshake, seed, stack, tokenFor } from "./harness.mjs";

const worker = stack.urls.worker;
const WS = seed.workspace(1);
const OTHER_WS = seed.workspace(2);
const BOARD = seed.board(1, 1);
const USER = seed.user(1); // a member of workspace 1 only
const OTHER_USER = seed.user(2); // a member of workspace 2 only
const PROTOCOL = "contact-list-cache.v1";
const livePath = (workspace) => `/api/workspaces/${workspace}/live`;

/** SQL as the superuser, without blocking this process (the demo server lives in it). */
const sql = (command) => psql(stack.ports.postgres, { command });

/** Contacts this file renamed, with their names before, put back when it ends. */
const renamed = [];
async function rename(id, name) {
  const before = (await sql(`select name from contacts where id = '${id}'`)).trim();
  renamed.push([id, before]);
  await sql(`update contacts set name = '${name}' where id = '${id}'`);
}
after(async () => {
  for (const [id, name] of renamed.reverse()) await sql(`update contacts set name = '${name.replaceAll("'", "''")}' where id = '${id}'`);
});

/** A WebSocket handshake by hand with the stack's worker (see the harness). */
const handshake = (path, protocols) => wsHandshake(worker, path, protocols);

/** A TCP proxy to `port` on loopback that `cut()` severs (every open connection, and new ones
 * refused) until `restore()`. */
async function cuttableProxy(port) {
  const open = new Set();
  let up = true;
  const server = createServer((client) => {
    if (!up) return client.destroy();
    const upstream = connect(Number(port), "127.0.0.1");
    const end = () => {
      client.destroy();
      upstream.destroy();
      open.delete(end);
    };
    open.add(end);
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
    client.pipe(upstream).pipe(client);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    cut: () => {
      up = false;
      for (const end of [...open]) end();
    },
    restore: () => (up = true),
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** The ids of a page as the API answers it to the demo user. */
async function apiIds(query) {
  const res = await fetch(`${worker}/api/boards/${BOARD}/contacts?${query}`, { headers: { Authorization: `Bearer ${stack.tokens.demo}`, "X-Workspace-ID": WS } });
  assert.equal(res.status, 200);
  return (await res.json()).data.contacts.map((c) => c.id);
}

describe("the live channel's gate", () => {
  test("a member with a valid token gets a socket speaking the channel's subprotocol", async () => {
    const res = await handshake(livePath(WS), [PROTOCOL, `bearer.${stack.tokens.demo}`]);
    assert.equal(res.status, 101);
    assert.equal(res.headers["sec-websocket-protocol"], PROTOCOL);
  });

  test("a bad, missing or expired token is refused with 401", async () => {
    const expired = tokenFor(USER, { ttlSeconds: -120 });
    const justExpired = tokenFor(USER, { ttlSeconds: -5 }); // within the 30 s leeway reads allow
    const forged = tokenFor(USER).slice(0, -4) + "AAAA";
    for (const protocols of [[PROTOCOL, "bearer.not-a-jwt"], [PROTOCOL], [PROTOCOL, `bearer.${expired}`], [PROTOCOL, `bearer.${justExpired}`], [PROTOCOL, `bearer.${forged}`]]) {
      const res = await handshake(livePath(WS), protocols);
      assert.equal(res.status, 401, `refused: ${protocols[1] ?? "no token"}`);
      assert.equal(res.body.error.code, "unauthorized");
    }
  });

  test("another workspace's socket is refused with 403", async () => {
    const res = await handshake(livePath(OTHER_WS), [PROTOCOL, `bearer.${stack.tokens.demo}`]);
    assert.equal(res.status, 403);
    assert.equal(res.body.error.code, "forbidden");
    assert.equal(res.body.error.field, "X-Workspace-ID");
  });

  test("a socket without the subprotocol, or a plain GET, is a 400 naming the field; a POST is 405", async () => {
    assert.equal((await handshake(livePath(WS), [`bearer.${stack.tokens.demo}`])).body.error.field, "Sec-WebSocket-Protocol");
    const plain = await fetch(`${worker}${livePath(WS)}`, { headers: { Authorization: `Bearer ${stack.tokens.demo}` } });
    assert.equal(plain.status, 400);
    assert.equal((await plain.json()).error.field, "Upgrade");
    const posted = await fetch(`${worker}${livePath(WS)}`, { method: "POST" });
    assert.equal(posted.status, 405);
    assert.equal(posted.headers.get("allow"), "GET, OPTIONS");
  });
});

describe("the demo page in headless Chromium", () => {
  let browser;
  let demo;
  let page;

  before(async () => {
    demo = await serveDemo({ config: { workerUrl: worker, token: stack.tokens.demo, workspaceId: WS, boardId: BOARD } });
    browser = await chromium.launch({
      executablePath: "/usr/bin/chromium",
      args: ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking", "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync"],
    });
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(demo.url);
    await page.waitForSelector("#contacts[data-page='1']:not(.placeholder) tr", { timeout: 20_000 });
    await page.waitForSelector("#live[data-status='live']", { timeout: 10_000 });
    // Gone after a reload: proves the updates below arrive without one.
    await page.evaluate((token) => {
      window.__sameDocument = true;
      window.demoToken = token;
    }, stack.tokens.demo);
  });

  after(async () => {
    await browser?.close();
    await demo?.close();
  });

  const shownIds = () => page.$$eval("#contacts tr", (rows) => rows.map((r) => r.dataset.id));
  const nameOf = (id) => page.$eval(`tr[data-id="${id}"] .name`, (el) => el.textContent);
  /** Resolves once the row `id` shows `name`; rejects after `timeout` ms. */
  const shows = (id, name, timeout) =>
    page.waitForFunction(([id, name]) => document.querySelector(`tr[data-id="${id}"] .name`)?.textContent === name, [id, name], { timeout, polling: 10 });

  test("shows the board's first page, as the API answers it, with the layer badge", async () => {
    assert.deepEqual(await shownIds(), await apiIds("pageSize=20"));
    const badge = page.locator("#cache-badge");
    assert.match(await badge.getAttribute("data-layer"), /^(KV|REDIS|DATABASE|BACKEND-FALLBACK)$/);
    assert.match(await badge.getAttribute("data-status"), /^(HIT|MISS|BYPASS|STALE)$/);
    assert.match(await badge.textContent(), /^(HIT|MISS|BYPASS|STALE) · (KV|REDIS|DATABASE|BACKEND-FALLBACK) · \d+ ms/);
  });

  test("shows the caller's per-filter counts as the API answers them", async () => {
    const res = await fetch(`${worker}/api/workspaces/${WS}/counts`, { headers: { Authorization: `Bearer ${stack.tokens.demo}`, "X-Workspace-ID": WS } });
    const { counts } = (await res.json()).data;
    await page.waitForSelector("#filter option[value='open']:has-text('(')", { state: "attached" });
    const shown = await page.$$eval("#filter option", (options) => options.map((o) => [o.value, o.textContent]));
    assert.deepEqual(shown.map(([filter]) => filter).sort(), Object.keys(counts).sort());
    assert.deepEqual(shown, shown.map(([filter]) => [filter, `${filter} (${counts[filter]})`]));
  });

  test("pages forward and back", async () => {
    const first = await shownIds();
    await page.click("#next");
    await page.waitForSelector("#contacts[data-page='2']:not(.placeholder)");
    const second = await shownIds();
    assert.deepEqual(second, await apiIds("page=2&pageSize=20"));
    assert.equal(second.filter((id) => first.includes(id)).length, 0);
    assert.match(await page.textContent("#page-info"), /^Page 2 of \d+/);
    await page.click("#prev");
    await page.waitForSelector("#contacts[data-page='1']:not(.placeholder)");
    assert.deepEqual(await shownIds(), first);
    // Page 1 came from the client's query cache: its badge is the one it had.
    assert.match(await page.textContent("#cache-badge"), / · \d+ ms/);
  });

  test("filters, sorts and searches as the API does, and back", async () => {
    /** Resolves once the rows shown (not placeholders) are `ids`. */
    const showing = (ids) =>
      page.waitForFunction((ids) => [...document.querySelectorAll("#contacts:not(.placeholder) tr")].map((r) => r.dataset.id).join() === ids.join(), ids, { timeout: 10_000 });
    await page.selectOption("#filter", "open");
    await page.selectOption("#sort-by", "name");
    await page.selectOption("#sort-order", "asc");
    await page.fill("#search", "an");
    const expected = await apiIds("filter=open&sortBy=name&sortOrder=asc&search=an&pageSize=20");
    assert.ok(expected.length > 0);
    await showing(expected);
    assert.match(await page.textContent("#page-info"), /^Page 1 of \d+/);
    await page.fill("#search", "");
    await page.selectOption("#filter", "all");
    await page.selectOption("#sort-by", "created_at");
    await page.selectOption("#sort-order", "desc");
    await showing(await apiIds("pageSize=20"));
  });

  test("a psql UPDATE of a visible contact is on screen within 1 s, without a reload", async (t) => {
    const [, id] = await shownIds();
    const name = `Live ${randomBytes(3).toString("hex")}`;
    assert.notEqual(await nameOf(id), name);
    const shown = shows(id, name, 5_000);
    const committed = Date.now();
    await rename(id, name);
    await shown;
    const elapsed = Date.now() - committed;
    t.diagnostic(`on screen ${elapsed} ms after the UPDATE committed`);
    assert.ok(elapsed < 1000, `the new name took ${elapsed} ms to show`);
    assert.equal(await page.evaluate(() => window.__sameDocument), true);
    const dir = join(ROOT, "tests", "artifacts");
    mkdirSync(dir, { recursive: true });
    await page.screenshot({ path: join(dir, "demo.png") });
  });

  test("an invalidation reaches the workspace's sockets and no other workspace's", async () => {
    const heard = await page.evaluate(
      async ([base, ws, otherWs, token, otherToken, protocol]) => {
        const open = (workspace, t) =>
          new Promise((resolve, reject) => {
            const socket = new WebSocket(`${base.replace(/^http/, "ws")}/api/workspaces/${workspace}/live`, [protocol, `bearer.${t}`]);
            socket.messages = [];
            socket.onmessage = (e) => socket.messages.push(JSON.parse(e.data));
            socket.onopen = () => resolve(socket);
            socket.onerror = () => reject(new Error(`socket of ${workspace} failed`));
          });
        const [mine, theirs] = await Promise.all([open(ws, token), open(otherWs, otherToken)]);
        const res = await fetch(`${base}/api/cache/invalidate`, {
          method: "POST",
          headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
          body: JSON.stringify({ workspace_id: ws, filter: "closed" }),
        });
        if (!res.ok) throw new Error(`invalidate answered ${res.status}`);
        const deadline = Date.now() + 3000;
        while (mine.messages.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
        await new Promise((r) => setTimeout(r, 300)); // time for a wrong delivery to arrive too
        mine.close();
        theirs.close();
        return { mine: mine.messages, theirs: theirs.messages };
      },
      [worker, WS, OTHER_WS, stack.tokens.demo, tokenFor(OTHER_USER), PROTOCOL],
    );
    assert.equal(heard.mine.length, 1);
    assert.equal(heard.mine[0].type, "invalidated");
    assert.equal(heard.mine[0].workspace_id, WS);
    assert.deepEqual(heard.mine[0].scopes, ["closed"]);
    assert.ok(heard.mine[0].boards.includes(BOARD));
    assert.deepEqual(heard.theirs, []);
  });

  test("a socket ends when its token expires: told so, closed with 4001, and sent nothing more", async () => {
    const ended = await page.evaluate(
      ([base, ws, token, protocol]) =>
        new Promise((resolve) => {
          const opened = Date.now();
          const messages = [];
          let closed = null;
          const socket = new WebSocket(`${base.replace(/^http/, "ws")}/api/workspaces/${ws}/live`, [protocol, `bearer.${token}`]);
          socket.onmessage = (e) => messages.push({ ...JSON.parse(e.data), atMs: Date.now() - opened });
          socket.onclose = (e) => (closed = { code: e.code, reason: e.reason, atMs: Date.now() - opened });
          // After the token's expiry, an invalidation of the workspace must not reach it.
          setTimeout(() => {
            fetch(`${base}/api/cache/invalidate`, {
              method: "POST",
              headers: { Authorization: `Bearer ${window.demoToken}`, "Content-Type": "application/json" },
              body: JSON.stringify({ workspace_id: ws, filter: "archived" }),
            });
          }, 3500);
          const done = () => (closed || Date.now() - opened > 9000 ? resolve({ messages, closed }) : setTimeout(done, 50));
          setTimeout(done, 4500);
        }),
      [worker, WS, tokenFor(USER, { ttlSeconds: 2 }), PROTOCOL],
    );
    assert.deepEqual(ended.messages.map((m) => m.type), ["expired"]);
    assert.ok(ended.messages[0].atMs > 500 && ended.messages[0].atMs < 3500, `told at ${ended.messages[0].atMs} ms`);
    assert.equal(ended.closed?.code, 4001);
    assert.equal(ended.closed?.reason, "token expired");
  });

  test("after the connection drops, a change made meanwhile is on screen once it reconnects", async () => {
    // The page talks to the worker through a TCP proxy that this test cuts and restores: a real
    // network drop for the browser, its socket and its requests alike.
    const proxy = await cuttableProxy(new URL(worker).port);
    const proxied = await serveDemo({ config: { workerUrl: proxy.url, token: stack.tokens.demo, workspaceId: WS, boardId: BOARD } });
    const other = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    try {
      await other.goto(proxied.url);
      await other.waitForSelector("#contacts[data-page='1']:not(.placeholder) tr", { timeout: 20_000 });
      await other.waitForSelector("#live[data-status='live']", { timeout: 10_000 });
      await other.evaluate(() => (window.__sameDocument = true));
      const id = await other.$$eval("#contacts tr", (rows) => rows[2].dataset.id);
      const name = `Offline ${randomBytes(3).toString("hex")}`;
      proxy.cut();
      await other.waitForSelector("#live:not([data-status='live'])", { timeout: 5_000 });
      await rename(id, name);
      // Change capture has delivered it by now, and the push found no socket of this page.
      const showsName = (timeout) =>
        other.waitForFunction(([id, name]) => document.querySelector(`tr[data-id="${id}"] .name`)?.textContent === name, [id, name], { timeout, polling: 10 });
      await assert.rejects(showsName(1500), /Timeout/);
      proxy.restore();
      await other.waitForSelector("#live[data-status='live']", { timeout: 15_000 });
      await showsName(3_000);
      assert.equal(await other.evaluate(() => window.__sameDocument), true);
    } finally {
      await other.close();
      await proxied.close();
      await proxy.close();
    }
  });
});
