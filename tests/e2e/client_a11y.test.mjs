// The demo page's accessibility in headless Chromium against the real stack: axe-core (WCAG 2.x
// A and AA rules, best practices) finds no violation with a list shown, with the empty state, and
// with an error shown; the controls have labels and the status is announced.
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { after, before, describe, test } from "node:test";
import { chromium } from "playwright-core";
import { serveDemo } from "../../scripts/demo-server.mjs";
import { seed, stack } from "./harness.mjs";

const AXE = createRequire(import.meta.url).resolve("axe-core/axe.min.js");
const WS = seed.workspace(1);
const OTHER_WS = seed.workspace(2);
const BOARD = seed.board(1, 1);

let browser;
before(async () => {
  browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking", "--no-first-run", "--disable-sync"] });
});
after(async () => browser?.close());

/** axe-core's violations on `page`, as `rule: targets` lines (empty when none). */
async function violations(page) {
  await page.addScriptTag({ path: AXE });
  const found = await page.evaluate(async () => {
    const result = await window.axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"] } });
    return result.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
  });
  return found;
}

describe("the demo page under axe-core", () => {
  let demo;
  let page;
  before(async () => {
    demo = await serveDemo({ config: { workerUrl: stack.urls.worker, token: stack.tokens.demo, workspaceId: WS, boardId: BOARD } });
    page = await (await browser.newContext()).newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(demo.url);
    await page.waitForSelector("#contacts[data-page='1']:not(.placeholder) tr", { timeout: 20_000 });
    await page.waitForSelector("#live[data-status='live']", { timeout: 10_000 });
    await page.waitForSelector("#filter option[value='open']:has-text('(')", { state: "attached" });
  });
  after(async () => {
    await page?.context().close();
    await demo?.close();
  });

  test("a list shown: no violation; every control has a label; the status is a live region", async () => {
    assert.deepEqual(await violations(page), []);
    for (const id of ["filter", "sort-by", "sort-order", "search"]) {
      const label = await page.$eval(`#${id}`, (el) => el.labels?.[0]?.textContent ?? "");
      assert.notEqual(label.trim(), "", `#${id} has a label`);
    }
    assert.equal(await page.getAttribute("#status", "aria-live"), "polite");
    assert.match(await page.textContent("#status"), /^Showing page 1 of \d+, \d+ contacts$/);
    assert.equal(await page.getAttribute("#error-region", "role"), "alert");
  });

  test("the empty state: said in words, no violation", async () => {
    await page.fill("#search", "zzzz-no-such-contact-qqqq");
    await page.waitForSelector("#empty", { timeout: 10_000 });
    assert.match(await page.textContent("#empty"), /^No contacts match these filters and the search “zzzz-no-such-contact-qqqq”\.$/);
    assert.equal(await page.$("#contacts"), null);
    assert.deepEqual(await violations(page), []);
    await page.fill("#search", "");
    await page.waitForSelector("#contacts tr", { timeout: 10_000 });
  });

  test("an error shown in the alert region: no violation", async () => {
    const other = await serveDemo({ config: { workerUrl: stack.urls.worker, token: stack.tokens.demo, workspaceId: OTHER_WS, boardId: BOARD } });
    const denied = await (await browser.newContext()).newPage();
    try {
      await denied.goto(other.url);
      await denied.waitForSelector("#error-region #error", { timeout: 10_000 });
      assert.match(await denied.textContent("#error"), /^forbidden: /);
      assert.deepEqual(await violations(denied), []);
    } finally {
      await denied.context().close();
      await other.close();
    }
  });
});
