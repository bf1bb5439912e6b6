// The scale run's matrix (issue 30): on board 1 of workspace 1, the worker's database path
// (`Cache-Control: no-cache`, one request at a time, median of 5 after one unmeasured) for every
// filter × sort × order at pages 1, 100 and 1,000 by number and by cursor, and searches with many,
// few and no matches (and 1- and 2-character terms, which trigrams cannot serve: the index of
// character pairs does, supabase/migrations/20250127001000_short_search.sql).
import { request as httpRequest } from "node:http";
import { seed } from "../../scripts/seed-ids.mjs";
import { fmt, markdownTable } from "./report.mjs";

const log = (msg) => process.stderr.write(`[bench] ${msg}\n`);

export const MATRIX_FILTERS = ["all", "open", "closed", "unassigned", "assigned_to_me", "high_priority", "medium_priority", "low_priority", "favorites", "archived"];
export const MATRIX_SORTS = [["created_at", "desc"], ["created_at", "asc"], ["last_message_time", "desc"], ["last_message_time", "asc"], ["name", "desc"], ["name", "asc"]];
export const MATRIX_DEPTHS = [100, 1000];
/** Search terms by how much of the board they match (supabase/seed.sql's names, emails and phones). */
export const MATRIX_SEARCHES = [
  { term: "example.com", matches: "many" },
  { term: "smith", matches: "many" },
  { term: "55501", matches: "few" },
  { term: "zzqx", matches: "none" },
  { term: "a", matches: "many, 1 character" },
  { term: "q", matches: "none, 1 character" },
  { term: "zq", matches: "none, 2 characters" },
  { term: "o6", matches: "few, 2 characters" },
];
/** Requests measured per cell (after one unmeasured). */
const REPEAT = 5;
/** The issue's ceiling on every cell but numbered pages past 100. */
export const MATRIX_CEILING_MS = 30;

/** One GET: status, wall time (ms) and the parsed body. */
function get(url, path, headers) {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const req = httpRequest(`${url}${path}`, { headers }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("error", reject);
      res.on("end", () => {
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        let body;
        try {
          body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
        } catch {
          body = undefined;
        }
        resolve({ status: res.statusCode, layer: res.headers["x-cache-layer"], ms, body });
      });
    });
    req.on("error", reject);
    req.end();
  });
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/**
 * Runs the matrix on `stack` as `user` (its `authorization`): answers
 * `{ lists: [{filter, sortBy, sortOrder, total, pages, cells: {"page-1", "page-100", "cursor-100", …}}], searches: [...] }`,
 * each cell `{p50, min, max, first, status}` in ms (`first`: the unmeasured request), or
 * `{absent: true}` past the list's end.
 */
export async function runMatrix(stack, authorization) {
  const board = seed.board(1, 1);
  const headers = { Authorization: authorization, "X-Workspace-ID": seed.workspace(1), "Cache-Control": "no-cache" };
  const url = stack.urls.worker;
  const ask = (query) => get(url, `/api/boards/${board}/contacts?${query}`, headers);
  const cell = async (query) => {
    const first = await ask(query);
    const times = [];
    let status = first.status;
    for (let i = 0; i < REPEAT; i += 1) {
      const res = await ask(query);
      times.push(res.ms);
      if (res.status !== 200 || res.layer !== "DATABASE") status = `${res.status} ${res.layer}`;
    }
    return { p50: median(times), min: Math.min(...times), max: Math.max(...times), first: first.ms, status, rows: first.body?.data?.contacts?.length ?? null, body: first.body };
  };
  const lists = [];
  for (const filter of MATRIX_FILTERS) {
    for (const [sortBy, sortOrder] of MATRIX_SORTS) {
      const list = `filter=${filter}&sortBy=${sortBy}&sortOrder=${sortOrder}`;
      const cells = {};
      const { body, ...page1 } = await cell(`${list}&page=1`);
      cells["page-1"] = page1;
      const total = body?.data?.pagination?.total ?? 0;
      const pages = body?.data?.pagination?.totalPages ?? 0;
      for (const depth of MATRIX_DEPTHS) {
        if (depth > pages) {
          cells[`page-${depth}`] = { absent: true };
          cells[`cursor-${depth}`] = { absent: true };
          continue;
        }
        const { body: _, ...numbered } = await cell(`${list}&page=${depth}`);
        cells[`page-${depth}`] = numbered;
        // The cursor of page `depth`: the next cursor of page depth - 1 (read by number, unmeasured).
        const before = await ask(`${list}&page=${depth - 1}`);
        const cursor = before.body?.data?.pagination?.nextCursor;
        if (!cursor) throw new Error(`${list}: page ${depth - 1} has no next cursor`);
        const { body: __, ...byCursor } = await cell(`${list}&cursor=${cursor}`);
        cells[`cursor-${depth}`] = byCursor;
      }
      lists.push({ filter, sortBy, sortOrder, total, pages, cells });
      log(`matrix: ${list}: ${["page-1", ...MATRIX_DEPTHS.flatMap((d) => [`page-${d}`, `cursor-${d}`])].map((k) => (cells[k].absent ? "-" : fmt.ms(cells[k].p50))).join(" / ")} ms`);
    }
  }
  const searches = [];
  for (const { term, matches } of MATRIX_SEARCHES) {
    for (const [sortBy, sortOrder] of MATRIX_SORTS) {
      const query = `search=${encodeURIComponent(term)}&sortBy=${sortBy}&sortOrder=${sortOrder}`;
      const { body, ...measured } = await cell(query);
      searches.push({ term, matches, sortBy, sortOrder, total: body?.data?.pagination?.total ?? null, ...measured });
    }
    log(`matrix: search ${term}: ${searches.slice(-MATRIX_SORTS.length).map((s) => fmt.ms(s.p50)).join(" / ")} ms`);
  }
  return { lists, searches };
}

const shown = (c) => (c.absent ? "—" : `${fmt.ms(c.p50)}${c.status === 200 ? "" : ` (${c.status})`}`);

/** Whether a list's cell is held to the ceiling: every one but numbered pages past 100 (every search is). */
const heldToCeiling = (key) => !/^page-(\d+)$/.test(key) || Number(key.slice(5)) <= 100;

/** The cells over the ceiling that it holds, as `filter sort order cell: ms`. */
export function matrixMisses(matrix) {
  const misses = [];
  for (const l of matrix.lists) {
    for (const [key, c] of Object.entries(l.cells)) {
      if (!c.absent && heldToCeiling(key) && c.p50 > MATRIX_CEILING_MS) misses.push(`${l.filter} ${l.sortBy} ${l.sortOrder} ${key}: ${fmt.ms(c.p50)} ms`);
    }
  }
  for (const s of matrix.searches) {
    if (s.p50 > MATRIX_CEILING_MS) misses.push(`search ${s.term} ${s.sortBy} ${s.sortOrder}: ${fmt.ms(s.p50)} ms`);
  }
  return misses;
}

/** The matrix as markdown: one row per list, one per search. */
export function matrixMarkdown(contacts, matrix) {
  const keys = ["page-1", ...MATRIX_DEPTHS.flatMap((d) => [`page-${d}`, `cursor-${d}`])];
  const header = ["filter", "sort", "total", "page 1", "page 100", "cursor 100", "page 1,000", "cursor 1,000"];
  const rows = matrix.lists.map((l) => [l.filter, `${l.sortBy} ${l.sortOrder}`, fmt.int(l.total), ...keys.map((k) => shown(l.cells[k]))]);
  const searchHeader = ["search", "matches", "sort", "total", "first (counts)", "p50", "min", "max"];
  const searchRows = matrix.searches.map((s) => [`\`${s.term}\``, s.matches, `${s.sortBy} ${s.sortOrder}`, s.total === null ? "—" : fmt.int(s.total), fmt.ms(s.first), shown(s), fmt.ms(s.min), fmt.ms(s.max)]);
  const misses = matrixMisses(matrix);
  return [
    `## The matrix at ${fmt.int(contacts)} contacts (issue 30)`,
    "",
    `The worker's database path (\`Cache-Control: no-cache\`), one request at a time: p50 of ${REPEAT} after one unmeasured, in ms, on board 1 of workspace 1. `
      + `A cursor page is read by the cursor the page before it gave (its next cursor); "—": the list has no such page. `
      + `Held to ${MATRIX_CEILING_MS} ms: every cell but numbered pages past 100 (searches of every length included).`,
    "",
    markdownTable(header, rows, [2, 3, 4, 5, 6, 7]),
    "",
    `Searches (filter \`all\`, page 1). "first" is the unmeasured request, which counts the list's matches (a narrowed list's total is counted once per list and generation, then kept).`,
    "",
    markdownTable(searchHeader, searchRows, [3, 4, 5, 6, 7]),
    "",
    misses.length ? `Over ${MATRIX_CEILING_MS} ms (${misses.length}): ${misses.join("; ")}.` : `Every cell held to the ceiling is within ${MATRIX_CEILING_MS} ms.`,
    "",
  ].join("\n");
}
