// The client's live channel in headless Chromium against the real stack (the demo page, the
// worker, the live Durable Object): pings answered by the runtime keep it live; a socket whose
// pongs stop is reported offline within two ping intervals and reconnects; a hidden tab makes no
// request on a push and catches up when shown; two tabs share one socket (and the other takes
// over when its holder closes); a server that accepts and drops at once gets few connections.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { connect, createServer } from "node:net";
import { after, before, describe, test } from "node:test";
import { chromium } from "playwright-core";
import { serveDemo } from "../../scripts/demo-server.mjs";
import { contactRenames, seed, stack } from "./harness.mjs";

const worker = stack.urls.worker;
const WS = seed.workspace(1);
const BOARD = seed.board(1, 1);
const config = (workerUrl, live = {}) => ({ workerUrl, token: stack.tokens.demo, workspaceId: WS, boardId: BOARD, live });

const { rename, restore: restoreNames } = contactRenames();
after(restoreNames);

/**
 * A TCP proxy to the worker that counts WebSocket upgrades and can `mute()` the server's side of
 * the open WebSockets (the connection stays up, nothing more arrives: a silent dead peer), or
 * (`dropAfterAccept`) pass each upgrade's 101 and then cut the connection.
 */
async function wsProxy(port, { dropAfterAccept = false } = {}) {
  const open = new Set();
  const state = { upgrades: 0 };
  const server = createServer((client) => {
    const upstream = connect(Number(port), "127.0.0.1");
    const conn = { ws: false, muted: false, first: true, accepted: false };
    const end = () => {
      client.destroy();
      upstream.destroy();
      open.delete(conn);
    };
    conn.end = end;
    open.add(conn);
    client.on("data", (chunk) => {
      if (conn.first) {
        conn.first = false;
        if (/\r\nupgrade:\s*websocket/i.test(chunk.toString("latin1"))) {
          conn.ws = true;
          state.upgrades += 1;
        }
      }
      upstream.write(chunk);
    });
    upstream.on("data", (chunk) => {
      if (conn.muted) return;
      client.write(chunk);
      if (conn.ws && dropAfterAccept && !conn.accepted && chunk.toString("latin1").startsWith("HTTP/1.1 101")) {
        conn.accepted = true;
        setTimeout(end, 20);
      }
    });
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    state,
    mute: () => {
      for (const conn of open) if (conn.ws) conn.muted = true;
    },
    close: () => {
      for (const conn of [...open]) conn.end();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

let browser;
before(async () => {
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking", "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync"],
  });
});
after(async () => browser?.close());

/** Opens the demo in a fresh context; records the live indicator's changes in `window.__statuses`. */
async function openDemo(url, context) {
  const page = await (context ?? (await browser.newContext())).newPage({ viewport: { width: 1280, height: 900 } });
  await page.addInitScript(() => {
    window.__statuses = [];
    new MutationObserver(() => {
      const status = document.querySelector("#live")?.dataset.status;
      if (status && window.__statuses.at(-1)?.[0] !== status) window.__statuses.push([status, Date.now()]);
    }).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ["data-status"] });
  });
  await page.goto(url);
  await page.waitForSelector("#contacts[data-page='1']:not(.placeholder) tr", { timeout: 20_000 });
  await page.waitForSelector("#live[data-status='live']", { timeout: 10_000 });
  return page;
}

const status = (page) => page.$eval("#live", (el) => el.dataset.status);
/** Resolves once row `id` shows `name`. */
const shows = (page, id, name, timeout) =>
  page.waitForFunction(([id, name]) => document.querySelector(`tr[data-id="${id}"] .name`)?.textContent === name, [id, name], { timeout, polling: 20 });

describe("keep-alive", () => {
  const PING_MS = 1000;
  let proxy;
  let demo;
  let page;
  before(async () => {
    proxy = await wsProxy(new URL(worker).port);
    demo = await serveDemo({ config: config(proxy.url, { pingMs: PING_MS }) });
    page = await openDemo(demo.url);
  });
  after(async () => {
    await page?.context().close();
    await demo?.close();
    await proxy?.close();
  });

  test("pings are answered (by the runtime, without waking the object): live on one socket for four intervals", async () => {
    await page.waitForTimeout(4 * PING_MS);
    assert.equal(await status(page), "live");
    assert.equal(proxy.state.upgrades, 1);
    const statuses = (await page.evaluate(() => window.__statuses)).map(([s]) => s);
    assert.deepEqual(statuses.slice(statuses.indexOf("live")), ["live"], "never anything but live once live");
  });

  test("a socket whose pongs stop is reported offline within two ping intervals, then reconnects", async (t) => {
    const muted = Date.now();
    proxy.mute();
    let statuses = [];
    while (Date.now() - muted < 4 * PING_MS && !statuses.some(([s, at]) => s !== "live" && at >= muted)) {
      await page.waitForTimeout(50);
      statuses = await page.evaluate(() => window.__statuses);
    }
    const [offline, at] = statuses.find(([s, at]) => s !== "live" && at >= muted) ?? [`still live (${JSON.stringify(statuses.map(([s, at]) => [s, at - muted]))})`, Infinity];
    const elapsed = at - muted;
    t.diagnostic(`${offline} ${elapsed} ms after the pongs stopped`);
    assert.equal(offline, "offline");
    assert.ok(elapsed <= 2 * PING_MS, `reported ${offline} after ${elapsed} ms`);
    await page.waitForSelector("#live[data-status='live']", { timeout: 5_000 });
    assert.equal(proxy.state.upgrades, 2);
  });
});

describe("tabs", () => {
  let demo;
  before(async () => {
    demo = await serveDemo({ config: config(worker) });
  });
  after(async () => demo?.close());

  test("a hidden tab makes no request on a push, and catches up when shown", async () => {
    const page = await openDemo(demo.url);
    try {
      const requests = [];
      page.on("request", (request) => new URL(request.url()).pathname.startsWith("/api/") && requests.push(request.url()));
      const setVisibility = (state) =>
        page.evaluate((state) => {
          Object.defineProperty(document, "visibilityState", { configurable: true, get: () => state });
          Object.defineProperty(document, "hidden", { configurable: true, get: () => state === "hidden" });
          document.dispatchEvent(new Event("visibilitychange", { bubbles: true }));
        }, state);
      const id = await page.$$eval("#contacts tr", (rows) => rows[1].dataset.id);
      await setVisibility("hidden");
      await page.waitForSelector("#live[data-status='paused']", { timeout: 2_000 });
      requests.length = 0;
      const name = `Hidden ${randomBytes(3).toString("hex")}`;
      await rename(id, name);
      await assert.rejects(shows(page, id, name, 2_000), /Timeout/);
      assert.deepEqual(requests, [], "no request while hidden");
      await setVisibility("visible");
      await shows(page, id, name, 5_000);
      assert.ok(requests.some((url) => new URL(url).pathname === `/api/boards/${BOARD}/contacts`), "the list was read again once shown");
      await page.waitForSelector("#live[data-status='live']", { timeout: 5_000 });
    } finally {
      await page.context().close();
    }
  });

  test("two tabs share one socket; a push reaches both; when the holder closes, the other takes over", async () => {
    const context = await browser.newContext();
    try {
      const sockets = [];
      const watch = (page, tab) => page.on("websocket", (ws) => sockets.push({ tab, url: ws.url() }));
      const first = await context.newPage();
      watch(first, "first");
      await first.goto(demo.url);
      await first.waitForSelector("#live[data-status='live']", { timeout: 20_000 });
      const second = await context.newPage();
      watch(second, "second");
      await second.goto(demo.url);
      await second.waitForSelector("#contacts[data-page='1']:not(.placeholder) tr", { timeout: 20_000 });
      await second.waitForSelector("#live[data-status='live']", { timeout: 10_000 });
      await second.waitForTimeout(1000);
      assert.deepEqual(sockets.map((s) => s.tab), ["first"]);

      const id = await first.$$eval("#contacts tr", (rows) => rows[3].dataset.id);
      const name = `Shared ${randomBytes(3).toString("hex")}`;
      await rename(id, name);
      await Promise.all([shows(first, id, name, 3_000), shows(second, id, name, 3_000)]);

      await first.close();
      await second.waitForFunction(() => true); // the page is still there
      const deadline = Date.now() + 5_000;
      while (sockets.length < 2 && Date.now() < deadline) await second.waitForTimeout(50);
      assert.deepEqual(sockets.map((s) => s.tab), ["first", "second"]);
      await second.waitForSelector("#live[data-status='live']", { timeout: 5_000 });
      const again = `Taken over ${randomBytes(3).toString("hex")}`;
      await rename(id, again);
      await shows(second, id, again, 3_000);
    } finally {
      await context.close();
    }
  });
});

describe("backoff", () => {
  test("a server that accepts and drops at once gets at most 5 connections in 5 s", async (t) => {
    const proxy = await wsProxy(new URL(worker).port, { dropAfterAccept: true });
    const demo = await serveDemo({ config: config(proxy.url) });
    const page = await (await browser.newContext()).newPage();
    try {
      await page.goto(demo.url);
      const deadline = Date.now() + 10_000;
      while (proxy.state.upgrades === 0 && Date.now() < deadline) await page.waitForTimeout(20);
      assert.equal(proxy.state.upgrades, 1);
      await page.waitForTimeout(5_000);
      t.diagnostic(`${proxy.state.upgrades} connections in 5 s`);
      assert.ok(proxy.state.upgrades >= 2, "it does reconnect");
      assert.ok(proxy.state.upgrades <= 5, `${proxy.state.upgrades} connections in 5 s`);
    } finally {
      await page.context().close();
      await demo.close();
      await proxy.close();
    }
  });
});
