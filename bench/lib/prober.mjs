// The mix's side process at one write rate (a worker thread, so its synchronous psql calls never
// stall the main thread, which hosts Miniflare and waits on wrk). While wrk replays the mix it
// runs, at once:
//   - the writer: `writeRate` times a second, changes a contact in PostgreSQL (its name; every
//     second write also its status or priority), picked on the first pages of a hot list, and
//     measures the delay from the commit to the first answer from the worker that shows it
//     (polling the list page that holds the contact every `pollMs`);
//   - the checker: reads the written page and `checksPerWrite` pages of the mix through the
//     worker (at rate 0, one mix page a second) and compares each with the database (the
//     end-to-end tests' SQL oracle). A page is checked only while its workspace is quiet: every
//     write to it already served by the worker (its change captured) and the last one at least
//     `boundMs` old; a write to it during the check makes the check void. A 200 answer that
//     differs is a stale read: an answer older than the bound.
// When the mix has stopped it writes `unloadedWrites` more times, one at a time, and measures
// the delay without load. Its own SQL runs as the role `bench_prober`, so the query counts can
// leave it out.
import { parentPort, workerData } from "node:worker_threads";
import { seed } from "../../scripts/seed-ids.mjs";
import { History } from "./history.mjs";
import { listPath, membersOf, mixDrawer, writeTargets } from "./mix.mjs";

const { pgPort, workerUrl, tokens, writeRate, boundMs, checksPerWrite, pollMs, unloadedWrites, runId, seedOffset } = workerData;

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
const { expectedPage, sameRows, sqlOn } = await import("../../tests/e2e/harness.mjs");

/** Runs SQL as `bench_prober`; rows as arrays of strings. */
const sql = sqlOn(pgPort, "bench_prober");

const sleep = (ms) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

const history = new History();
/** Every answer during the writes, judged against the history: see the top of this file. */
const duringWrites = { answers: 0, judged: 0, older: 0, givenUp: { failed: 0, noWrittenContact: 0, unknownName: 0 }, withGeneration: 0, details: [] };

function judge(draw, { status, body, layer, generation }, sentAt) {
  duringWrites.answers++;
  if (generation) duringWrites.withGeneration++;
  const contacts = status === 200 ? body?.data?.contacts : null;
  if (!contacts) return void duringWrites.givenUp.failed++;
  const verdict = history.judge(contacts, sentAt, boundMs);
  if (verdict.judged === 0) duringWrites.givenUp.noWrittenContact++;
  else if (verdict.unknown > 0) duringWrites.givenUp.unknownName++;
  else {
    duringWrites.judged++;
    if (verdict.late.length > 0) {
      duringWrites.older++;
      if (duringWrites.details.length < 20) duringWrites.details.push({ path: listPath(draw), layer, generation, late: verdict.late.slice(0, 3) });
    }
  }
}

/** One list request through the worker: its status, JSON body (null if none) and label; judged. */
async function list(draw) {
  const sentAt = Date.now();
  let result;
  try {
    const res = await fetch(`${workerUrl}${listPath(draw)}`, { headers: { Authorization: `Bearer ${tokens[draw.user]}`, "X-Workspace-ID": draw.workspace } });
    const body = await res.json().catch(() => null);
    result = { status: res.status, body, layer: `${res.headers.get("x-cache-status")}/${res.headers.get("x-cache-layer")}`, generation: res.headers.get("x-cache-generation") };
  } catch (err) {
    result = { status: 0, body: null, layer: `failed: ${err.cause?.code ?? err.message}`, generation: null };
  }
  judge(draw, result, sentAt);
  return result;
}

/** Reads `draw` through the worker and compares it with the database. */
async function check(draw) {
  const { status, body, layer } = await list(draw);
  const answeredAt = Date.now();
  const expected = expectedPage({ workspace: draw.workspace, board: draw.board, me: draw.user, ...draw.params }, sql);
  const data = body?.data;
  const fresh = status === 200 && data &&
    JSON.stringify(data.contacts.map((c) => c.id)) === JSON.stringify(expected.ids) &&
    sameRows(data.contacts, expected.rows) &&
    data.pagination.total === expected.total && data.pagination.totalPages === expected.totalPages;
  return { fresh: Boolean(fresh), layer, status, answeredAt };
}

// Each rate draws its own writes and checked pages (seedOffset), so no two rates write the same sequence.
const target = writeTargets(7 + seedOffset);
const sample = mixDrawer(4242 + seedOffset);
/** How long a page may wait for its workspace to be quiet before its check is given up. */
const CHECK_PATIENCE_MS = 10_000;
/** Without writes, one mix page a second is checked. */
const IDLE_CHECK_MS = 1000;

const writes = [];
const staleReads = [];
const failures = []; // checks not answered 200: { path, status, layer }
const due = []; // pages to check: { draw, since }
const unseenByWorkspace = new Map(); // workspace -> writes not yet served by the worker
const lastCommitByWorkspace = new Map(); // workspace -> commit time (ms) of its last write
const lastServedByWorkspace = new Map(); // workspace -> when the worker first served its last served write
const neverServedByWorkspace = new Map(); // workspace -> its writes the worker did not serve within 10 s
const tally = { checked: 0, matched: 0, labelledStale: 0, failed: 0, void: 0, abandoned: 0 };
let measuredReads = 0;
let measuredWrites = 0;

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
  const pick = (at) => sql(`select id, conversation_status, coalesce(priority, ''), name from contacts where ${where} order by created_at desc, id desc offset ${at} limit 1`);
  let rows = pick(offset);
  if (rows.length === 0) rows = pick((offset = 0)); // a small seed's small board
  const [[id, status, priority, before]] = rows;
  history.know(id, before);
  const name = `Bench ${runId} ${i}`;
  const change = i % 4 === 1 ? `, conversation_status = '${status === "Open" ? "Closed" : "Open"}'`
    : i % 4 === 3 ? `, priority = ${priority === "high" ? "'low'" : "'high'"}` : "";
  const [[committedAt]] = sql(`update contacts set name = '${name}'${change}, updated_at = now() where id = '${id}' returning (extract(epoch from clock_timestamp()) * 1000)::bigint`);
  history.wrote(id, name, Number(committedAt));
  const page = { w, workspace: seed.workspace(w), board: seed.board(w, b), user: seed.user(membersOf(w)[0]), params: { filter: "all", page: Math.floor(offset / 50) + 1 } };
  return { id, name, page, committedAt: Number(committedAt) };
}

/** Polls the written contact's page until the worker serves the new name (10 s at most). Also
 * notes the answers without it before: how many, how many labelled STALE, and when the first
 * STALE one ended (the edge knew of the invalidation by then). */
async function seen({ id, name, page, committedAt }) {
  const deadline = Date.now() + 10_000;
  const before = { oldAnswers: 0, staleAnswers: 0, firstStaleAfterMs: null };
  while (Date.now() < deadline) {
    const { body, layer } = counted(await list(page));
    if (body?.data?.contacts?.some((c) => c.id === id && c.name === name)) return { seenAfterMs: Date.now() - committedAt, servedBy: layer, ...before };
    before.oldAnswers++;
    if (layer.startsWith("STALE/")) {
      before.staleAnswers++;
      before.firstStaleAfterMs ??= Date.now() - committedAt;
    }
    await sleep(pollMs);
  }
  return { seenAfterMs: null, servedBy: null, ...before };
}

/** Writes on schedule (at rate 0, queues one mix page a second to check instead); each write's
 * delay is followed on its own while the next ones go on. */
async function writer() {
  const following = [];
  const intervalMs = writeRate > 0 ? 1000 / writeRate : IDLE_CHECK_MS;
  let next = Date.now();
  let i = 0;
  for (; !stopping; i++) {
    while (!stopping && Date.now() < next) await sleep(Math.min(50, next - Date.now()));
    if (stopping) break;
    next = Math.max(next + intervalMs, Date.now() - intervalMs); // late: catch up by one, no burst
    if (writeRate === 0) {
      due.push({ draw: sample(), since: Date.now() });
      continue;
    }
    const written = write(i);
    const w = written.page.w;
    if (measuring) measuredWrites++;
    unseenByWorkspace.set(w, (unseenByWorkspace.get(w) ?? 0) + 1);
    lastCommitByWorkspace.set(w, written.committedAt);
    due.push({ draw: written.page, since: Date.now() }, ...Array.from({ length: checksPerWrite }, () => ({ draw: sample(), since: Date.now() })));
    following.push(seen(written).then((result) => {
      writes.push(result);
      unseenByWorkspace.set(w, unseenByWorkspace.get(w) - 1);
      if (result.seenAfterMs !== null) lastServedByWorkspace.set(w, written.committedAt + result.seenAfterMs);
      else neverServedByWorkspace.set(w, (neverServedByWorkspace.get(w) ?? 0) + 1);
    }));
  }
  await Promise.all(following);
  return writeRate > 0 ? i : 0;
}

const quiet = (w) => (unseenByWorkspace.get(w) ?? 0) === 0 && Date.now() - (lastCommitByWorkspace.get(w) ?? 0) >= boundMs;

/** Checks the due pages whose workspace is quiet, in order, until the writer is done and none are left. */
async function checker(writerDone) {
  let done = false;
  writerDone.then(() => (done = true));
  while (!done || due.length > 0) {
    const at = due.findIndex(({ draw }) => quiet(draw.w));
    if (at < 0) {
      const stale = due.findIndex(({ since }) => Date.now() - since > CHECK_PATIENCE_MS);
      if (stale >= 0) {
        due.splice(stale, 1);
        tally.abandoned++;
      } else {
        await sleep(done && due.length > 0 ? Math.max(10, boundMs / 4) : 10);
      }
      continue;
    }
    const [{ draw }] = due.splice(at, 1);
    const before = lastCommitByWorkspace.get(draw.w);
    const served = lastServedByWorkspace.get(draw.w);
    const result = counted(await check(draw));
    if (lastCommitByWorkspace.get(draw.w) !== before) {
      tally.void++; // a write to its workspace came in while it was read
      continue;
    }
    tally.checked++;
    if (result.layer.startsWith("STALE/")) tally.labelledStale++;
    if (result.status !== 200) {
      tally.failed++;
      failures.push({ path: listPath(draw), user: draw.user, status: result.status, layer: result.layer });
    }
    else if (result.fresh) tally.matched++;
    else {
      const now = result.answeredAt;
      staleReads.push({
        path: listPath(draw), user: draw.user, layer: result.layer,
        afterWriteMs: before === undefined ? null : now - before,
        afterServedMs: served === undefined ? null : now - served,
        neverServedWrites: neverServedByWorkspace.get(draw.w) ?? 0,
      });
    }
  }
}

const started = Date.now();
const writing = writer();
await Promise.all([writing, checker(writing)]);
const elapsedMs = Date.now() - started;
let i = await writing;

// The same delay with no load: the mechanism without the queueing.
const unloaded = [];
for (let j = 0; j < unloadedWrites; j++, i++) {
  await sleep(200);
  unloaded.push(await seen(write(i)));
}

parentPort.postMessage({ writes, unloaded, ...tally, staleReads, failures, measuredReads, measuredWrites, elapsedMs, duringWrites });
