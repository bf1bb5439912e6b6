// The mix's side process (a worker thread, so its synchronous psql calls never stall the main
// thread, which serves the local Supabase gateway). While wrk replays the mix it:
//   1. writes a contact in PostgreSQL (a name change, every second write also its status or
//      priority), picking contacts on the first pages of hot lists;
//   2. measures the delay from the write's commit to the first answer from the worker that shows
//      it (polling the list page that holds the contact every `pollMs`);
//   3. once `boundMs` has passed since the write, with no other write in flight, reads that page
//      and `checksPerWrite` pages of the mix through the worker and compares each body with the
//      database (the end-to-end tests' SQL oracle): a difference is a stale read;
//   4. writes again one `1 / writeRate` s after the last write, or at once if 1-3 took longer;
//   5. when the mix has stopped, writes a few more times and measures the delay without load.
// Its own SQL runs as the role `bench_prober`, so the query counts can leave it out.
import { spawnSync } from "node:child_process";
import { parentPort, workerData } from "node:worker_threads";
import { seed } from "../../scripts/seed-ids.mjs";
import { listPath, membersOf, mixDrawer, writeTargets } from "./mix.mjs";

const { pgPort, workerUrl, tokens, writeRate, boundMs, checksPerWrite, pollMs, runId } = workerData;

// "measure": the measured part of the mix begins; "stop": it has ended, report.
let measuring = false;
let stopping = false;
parentPort.on("message", (message) => {
  if (message === "measure") measuring = true;
  if (message === "stop") stopping = true;
});

// The end-to-end tests' oracle (expectedPage, sameRows) refuses to load outside a test run
// unless told where the stack is; here that is this benchmark's stack.
process.env.CONTACT_LIST_CACHE_STACK = JSON.stringify({ ports: { postgres: pgPort }, secrets: {}, urls: { worker: workerUrl } });
const { expectedPage, sameRows } = await import("../../tests/e2e/harness.mjs");

/** Runs SQL as `bench_prober`; rows as arrays of strings. */
export function sql(query) {
  const args = ["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", String(pgPort), "-U", "bench_prober", "-d", "postgres", "-c", query];
  const result = spawnSync("psql", args, { encoding: "utf8" });
  if (result.status !== 0) throw new Error(`psql failed: ${result.stderr}`);
  return result.stdout.split("\n").filter(Boolean).map((line) => line.split("|"));
}

const sleep = (ms) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

async function list(draw) {
  const res = await fetch(`${workerUrl}${listPath(draw)}`, { headers: { Authorization: `Bearer ${tokens[draw.user]}`, "X-Workspace-ID": draw.workspace } });
  return { res, body: await res.json(), layer: `${res.headers.get("x-cache-status")}/${res.headers.get("x-cache-layer")}` };
}

/** Reads `draw` through the worker and compares it with the database; a mismatch is stale. */
async function check(draw) {
  const { res, body, layer } = await list(draw);
  const expected = expectedPage({ workspace: draw.workspace, board: draw.board, me: draw.user, ...draw.params }, sql);
  const data = body?.data;
  const fresh = res.status === 200 && data &&
    JSON.stringify(data.contacts.map((c) => c.id)) === JSON.stringify(expected.ids) &&
    sameRows(data.contacts, expected.rows) &&
    data.pagination.total === expected.total && data.pagination.totalPages === expected.totalPages;
  return { fresh: Boolean(fresh), layer, status: res.status };
}

const target = writeTargets();
const sample = mixDrawer(4242);
const intervalMs = 1000 / writeRate;
const UNLOADED_WRITES = 5;
const writes = [];
const staleReads = [];
let checks = 0;
let failedChecks = 0;
let measuredReads = 0;

/** Reads through the worker while the mix is measured count as its traffic. */
function counted(result) {
  if (measuring && !stopping) measuredReads++;
  return result;
}

/** Changes one contact on the first three pages of a hot list (a board's `all`, newest first). */
function write(i) {
  const { w, b, offset: drawn } = target();
  let offset = drawn;
  const where = `workspace_id = '${seed.workspace(w)}' and board_id = '${seed.board(w, b)}' and not archived`;
  const pick = (at) => sql(`select id, conversation_status, coalesce(priority, '') from contacts where ${where} order by created_at desc, id desc offset ${at} limit 1`);
  let rows = pick(offset);
  if (rows.length === 0) rows = pick((offset = 0)); // a small seed's small board
  const [[id, status, priority]] = rows;
  const name = `Bench ${runId} ${i}`;
  const change = i % 4 === 1 ? `, conversation_status = '${status === "Open" ? "Closed" : "Open"}'`
    : i % 4 === 3 ? `, priority = ${priority === "high" ? "'low'" : "'high'"}` : "";
  const [[committedAt]] = sql(`update contacts set name = '${name}'${change}, updated_at = now() where id = '${id}' returning (extract(epoch from clock_timestamp()) * 1000)::bigint`);
  const page = { w, workspace: seed.workspace(w), board: seed.board(w, b), user: seed.user(membersOf(w)[0]), params: { filter: "all", page: Math.floor(offset / 50) + 1 } };
  return { id, name, page, committedAt: Number(committedAt) };
}

/** Polls the written contact's page until the worker serves the new name (10 s at most). */
async function seen({ id, name, page, committedAt }) {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const { body, layer } = counted(await list(page));
    if (body?.data?.contacts?.some((c) => c.id === id && c.name === name)) return { seenAfterMs: Date.now() - committedAt, servedBy: layer };
    await sleep(pollMs);
  }
  return { seenAfterMs: null, servedBy: null };
}

const started = Date.now();
let next = started;
let i = 0;
for (; !stopping; i++) {
  while (!stopping && Date.now() < next) await sleep(Math.min(50, next - Date.now()));
  if (stopping) break;
  next = Math.max(next + intervalMs, Date.now());

  const written = write(i);
  writes.push(await seen(written));

  // Stale reads, after the bound, while no other write is in flight.
  const draws = [written.page, ...Array.from({ length: checksPerWrite }, sample)];
  await sleep(written.committedAt + boundMs - Date.now());
  for (const draw of draws) {
    const result = counted(await check(draw));
    checks++;
    if (result.status !== 200) failedChecks++;
    else if (!result.fresh) staleReads.push({ path: listPath(draw), user: draw.user, layer: result.layer, status: result.status, afterWriteMs: Date.now() - written.committedAt });
  }
  next = Math.max(next, Date.now());
}
const elapsedMs = Date.now() - started;

// The same delay with no load: the mechanism without the queueing.
const unloaded = [];
for (let j = 0; j < UNLOADED_WRITES; j++, i++) {
  await sleep(200);
  unloaded.push(await seen(write(i)));
}

parentPort.postMessage({ writes, unloaded, checks, failedChecks, staleReads, measuredReads, elapsedMs });
