// Load: 1,000 concurrent connections against the KV-hit path on loopback, every response a
// 200 with the page's rows: a KV hit carrying the page's exact bytes, or, when the overload
// delays change capture's clock past the staleness bound (its posts and the isolate's reads of it
// queue behind the 1,000 connections), the database's answer with the same rows
// (docs/change-capture.md, the clock; here from a few to a third of the answers, printed). (Speed
// and hit ratios are the benchmark's business, not this test's.)
import assert from "node:assert/strict";
import { Agent, request } from "node:http";
import { describe, test } from "node:test";
import { waitFor } from "../../scripts/stack.mjs";
import { seed, stack, tokenFor } from "./harness.mjs";

const WS = seed.workspace(4);
const BOARD = seed.board(4, 1);
const ME = seed.user(4);
const CONNECTIONS = 1000;
const REQUESTS_PER_CONNECTION = 5;

describe("load on the KV-hit path", () => {
  test(`${CONNECTIONS} concurrent connections, ${REQUESTS_PER_CONNECTION} requests each, no errors`, { timeout: 300_000 }, async () => {
    const url = new URL(`${stack.urls.worker}/api/boards/${BOARD}/contacts?filter=open&sortBy=created_at&page=1`);
    const headers = { Authorization: `Bearer ${tokenFor(ME)}`, "X-Workspace-ID": WS };
    let page;
    await waitFor("the page to be in KV", async () => {
      const res = await fetch(url, { headers });
      page = await res.text();
      return res.headers.get("x-cache-status") === "HIT" && res.headers.get("x-cache-layer") === "KV";
    }, 10_000);

    const agent = new Agent({ keepAlive: true, maxSockets: CONNECTIONS, maxFreeSockets: CONNECTIONS });
    let sockets = 0;
    let open = 0;
    let mostOpen = 0;
    const get = () =>
      new Promise((resolve, reject) => {
        const req = request(url, { agent, headers }, (res) => {
          const chunks = [];
          res.on("data", (c) => chunks.push(c));
          res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
          res.on("error", reject);
        });
        req.on("socket", (socket) => {
          if (!socket.counted) {
            socket.counted = true;
            sockets++;
            open++;
            mostOpen = Math.max(mostOpen, open);
            socket.once("close", () => open--);
          }
        });
        req.setTimeout(120_000, () => req.destroy(new Error("timed out")));
        req.on("error", reject);
        req.end();
      });

    const errors = [];
    let ok = 0;
    let fromDatabase = 0;
    const rows = (body) => {
      const { data } = JSON.parse(body);
      return JSON.stringify([data.contacts, data.total]);
    };
    const connection = async () => {
      for (let i = 0; i < REQUESTS_PER_CONNECTION; i++) {
        try {
          const res = await get();
          const label = `${res.headers["x-cache-status"]}/${res.headers["x-cache-layer"]}`;
          if (res.status === 200 && label === "HIT/KV" && res.body === page) ok++;
          else if (res.status === 200 && label === "MISS/DATABASE" && rows(res.body) === rows(page)) fromDatabase++;
          else errors.push(`${res.status} ${res.headers["x-cache-status"]}/${res.headers["x-cache-layer"]} ${res.body.slice(0, 200)}`);
        } catch (err) {
          errors.push(err.message);
        }
      }
    };
    const started = Date.now();
    await Promise.all(Array.from({ length: CONNECTIONS }, connection));
    const seconds = (Date.now() - started) / 1000;
    agent.destroy();
    console.log(`# ${ok} KV hits and ${fromDatabase} database answers over ${sockets} connections (${mostOpen} open at once) in ${seconds.toFixed(1)} s`);
    assert.deepEqual(errors.slice(0, 5), []);
    assert.equal(ok + fromDatabase, CONNECTIONS * REQUESTS_PER_CONNECTION);
    assert.ok(ok > 0, "the KV-hit path served");
    assert.ok(mostOpen >= CONNECTIONS, `only ${mostOpen} connections were open at once`);
  });
});
