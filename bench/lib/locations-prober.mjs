// The write-visibility scenario's side process across locations (a worker thread, so its
// synchronous psql never stalls the main thread, which hosts Miniflare and waits on wrk). While
// wrk replays the mix in every location it:
//   - writes: `writes` renames of contacts at `writeRate` a second (as the role `bench_prober`,
//     which the query counts leave out), picked on the first three pages of a hot list, each
//     committed at a time read from PostgreSQL's clock, and kept in a per-contact history of names
//     (bench/lib/history.mjs);
//   - follows each write in every location: polls the written page at that location's URL (its
//     router spreads the polls over its isolates) until it shows the new name, or a later one, for
//     at most `followMs`: the time from the commit is that location's delay for that write;
//   - checks, for each write, `checksPerWrite` mix pages in every location;
//   - judges every answer it gets (polls and checks) against the history: an answer showing a
//     contact under a name replaced more than the bound plus the location's round trip before
//     the request was sent is an answer older than the bound. What it could not judge is counted
//     with its reason.
import { parentPort, workerData } from "node:worker_threads";
import { seed } from "../../scripts/seed-ids.mjs";
import { History } from "./history.mjs";
import { listPath, membersOf, mixDrawer, writeTargets } from "./mix.mjs";

const { pgPort, locations, tokens, writeRate, writes: writeCount, boundMs, checksPerWrite, followMs, runId, seedOffset } = workerData;

process.env.CONTACT_LIST_CACHE_STACK = JSON.stringify({ ports: { postgres: pgPort }, secrets: {}, urls: {} });
const { sqlOn } = await import("../../tests/e2e/harness.mjs");
const sql = sqlOn(pgPort, "bench_prober");
const sleep = (ms) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

const history = new History();
const perLocation = new Map(locations.map((l) => [l.location, {
  location: l.location,
  rttMs: l.rttMs,
  allowanceMs: boundMs + l.rttMs,
  answers: 0,
  judged: 0,
  older: 0,
  olderPolls: 0,
  olderDetails: [],
  givenUp: { failed: 0, noWrittenContact: 0, unknownName: 0 },
  withGeneration: 0,
  delays: [],
  unseen: 0,
  pollReads: 0,
  checkReads: 0,
}]));

/** One list request at `loc`: judged, then returned with its contacts. */
async function read(loc, draw, kind) {
  const tally = perLocation.get(loc.location);
  const sentAt = Date.now();
  let status = 0;
  let body = null;
  let layer = "failed";
  let generation = null;
  try {
    const res = await fetch(`${loc.url}${listPath(draw)}`, { headers: { Authorization: `Bearer ${tokens[draw.user]}`, "X-Workspace-ID": draw.workspace } });
    status = res.status;
    layer = `${res.headers.get("x-cache-status")}/${res.headers.get("x-cache-layer")}`;
    generation = res.headers.get("x-cache-generation");
    body = await res.json().catch(() => null);
  } catch (err) {
    layer = `failed: ${err.cause?.code ?? err.message}`;
  }
  tally.answers++;
  tally[kind === "poll" ? "pollReads" : "checkReads"]++;
  if (generation) tally.withGeneration++;
  const contacts = status === 200 ? body?.data?.contacts ?? null : null;
  if (!contacts) {
    tally.givenUp.failed++;
    return { contacts: null, layer };
  }
  const verdict = history.judge(contacts, sentAt, tally.allowanceMs);
  if (verdict.judged === 0) tally.givenUp.noWrittenContact++;
  else if (verdict.unknown > 0) tally.givenUp.unknownName++;
  else {
    tally.judged++;
    if (verdict.late.length > 0) {
      tally.older++;
      if (kind === "poll") tally.olderPolls++;
      if (tally.olderDetails.length < 20) tally.olderDetails.push({ path: listPath(draw), kind, layer, generation, late: verdict.late.slice(0, 3) });
    }
  }
  return { contacts, layer };
}

const target = writeTargets(7 + seedOffset);
const sample = mixDrawer(4242 + seedOffset);

/** Renames one contact on the first three pages of a hot list (a board's `all`, newest first). */
function write(i) {
  const { w, b, offset: drawn } = target();
  let offset = drawn;
  const where = `workspace_id = '${seed.workspace(w)}' and board_id = '${seed.board(w, b)}' and not archived`;
  const pick = (at) => sql(`select id, name from contacts where ${where} order by created_at desc, id desc offset ${at} limit 1`);
  let rows = pick(offset);
  if (rows.length === 0) rows = pick((offset = 0)); // a small seed's small board
  const [[id, before]] = rows;
  history.know(id, before);
  const name = `Bench ${runId} ${i}`;
  const [[committedAt]] = sql(`update contacts set name = '${name}', updated_at = now() where id = '${id}' returning (extract(epoch from clock_timestamp()) * 1000)::bigint`);
  history.wrote(id, name, Number(committedAt));
  const page = { w, workspace: seed.workspace(w), board: seed.board(w, b), user: seed.user(membersOf(w)[0]), params: { filter: "all", page: Math.floor(offset / 50) + 1 } };
  return { id, page, committedAt: Number(committedAt) };
}

/** Polls the written page at `loc` until it shows the write (or a later one); often at first. */
async function follow(loc, { id, page, committedAt }) {
  const tally = perLocation.get(loc.location);
  for (;;) {
    const elapsed = Date.now() - committedAt;
    if (elapsed > followMs) {
      tally.unseen++;
      return;
    }
    const { contacts } = await read(loc, page, "poll");
    if (contacts && history.showsSince(contacts, id, committedAt)) {
      tally.delays.push(Date.now() - committedAt);
      return;
    }
    await sleep(elapsed < 2000 ? 20 : elapsed < 10_000 ? 250 : 1000);
  }
}

const checks = [];
/** Reads the queued mix pages, one at a time, in their locations. */
async function checker(done) {
  let finished = false;
  done.then(() => (finished = true));
  while (!finished || checks.length > 0) {
    const next = checks.shift();
    if (!next) {
      await sleep(20);
      continue;
    }
    await read(next.loc, next.draw, "check");
  }
}

const started = Date.now();
const following = [];
let nextAt = Date.now();
for (let i = 0; i < writeCount; i++) {
  await sleep(nextAt - Date.now());
  nextAt += 1000 / writeRate;
  const written = write(i);
  for (const loc of locations) {
    following.push(follow(loc, written));
    for (let k = 0; k < checksPerWrite; k++) checks.push({ loc, draw: sample() });
  }
}
const writesEndedMs = Date.now() - started;
const followed = Promise.all(following);
await Promise.all([followed, checker(followed)]);

parentPort.postMessage({ locations: [...perLocation.values()], writes: writeCount, writesEndedMs, elapsedMs: Date.now() - started });
