// The scale run (`--scale 100000,1000000`): for each seed size a stack of its own, and on it four
// pages of board 1 of workspace 1, each through the worker's database path and straight to
// PostgREST, under load and alone; then the issue-14 targets: a miss's cost must not grow with
// the board. bench/README.md ("The scale run") says what each number means.
import { seed } from "../../scripts/seed-ids.mjs";
import { psql } from "../../scripts/stack.mjs";
import { runMatrix } from "./matrix.mjs";
import { tokensFor } from "./mix.mjs";
import { directCounter, directPage, startBenchStack } from "./plan.mjs";
import { fmt } from "./report.mjs";
import { runScenario } from "./run.mjs";

const log = (msg) => process.stderr.write(`[bench] ${msg}\n`);

/** The ways each page is read, in the order they run. */
export const SCALE_PATHS = {
  database: "database path (worker)",
  postgrest: "PostgREST: rows",
  counter: "PostgREST: list counter",
  "postgrest-count": "PostgREST: rows + count=exact (old)",
};

/** What the scale run measures besides the paths: `matrix`, every filter × sort × order by
 * number and by cursor, and searches (bench/lib/matrix.mjs). */
export const SCALE_EXTRAS = { matrix: "the issue-30 matrix (database path)" };

/**
 * The pages, as a user asks the worker for them (`query`) and as its database layer asks
 * PostgREST (crates/core query.rs and postgrest.rs): the filter's conditions after the workspace
 * and the board, the order (descending by default, ties by id), the offset (50 a page) and the
 * counter that holds the list's total; `user` is the caller's id.
 */
export const SCALE_PAGES = [
  { id: "open", query: "filter=open&page=1", where: () => ["archived=is.false", "conversation_status=eq.Open"], order: "created_at.desc,id.desc", offset: 0, counter: () => "open" },
  { id: "name", query: "sortBy=name", where: () => ["archived=is.false"], order: "name.desc,id.desc", offset: 0, counter: () => "all" },
  { id: "page-100", query: "page=100", where: () => ["archived=is.false"], order: "created_at.desc,id.desc", offset: 4950, counter: () => "all" },
  { id: "assigned", query: "filter=assigned_to_me", where: (user) => ["archived=is.false", `assigned_user_id=eq.${user}`], order: "created_at.desc,id.desc", offset: 0, counter: (user) => `assigned:${user}` },
];

/** The ceiling on the database path's p50, one request at a time, at 1,000,000 contacts. */
export const SCALE_CEILING_MS = 30;
/** The most the database path's p50 alone may grow from the smallest size to the largest. */
export const SCALE_GROWTH = 2;

/** What each of a page's reads asks, where, and the answer every request must get. */
function pagePlan(stack, page, user, authorization) {
  const supabase = new URL(stack.bindings.SUPABASE_URL).origin;
  const rows = (count) => directPage(stack, authorization, { where: page.where(user), order: page.order, offset: page.offset, count });
  return {
    database: {
      url: stack.urls.worker,
      request: { path: `/api/boards/${seed.board(1, 1)}/contacts?${page.query}`, headers: { Authorization: authorization, "X-Workspace-ID": seed.workspace(1), "Cache-Control": "no-cache" } },
      expect: "200 BYPASS/DATABASE",
    },
    // Without a count PostgREST answers 200 (it cannot tell the page is partial); with one, 206.
    postgrest: { url: supabase, request: rows(false), expect: "200 -/-", shown: "200" },
    counter: { url: supabase, request: directCounter(stack, authorization, page.counter(user)), expect: "200 -/-", shown: "200" },
    "postgrest-count": { url: supabase, request: rows(true), expect: "206 -/-", shown: "206" },
  };
}

/** Board 1's contacts (all of them, archived too) and the totals of the pages' lists, from their counters. */
async function boardSize(stack, user) {
  const where = `workspace_id = '${seed.workspace(1)}' and board_id = '${seed.board(1, 1)}'`;
  const lists = [...new Set(SCALE_PAGES.map((p) => p.counter(user)))].map((l) => `'${l}'`).join(", ");
  const command = `select json_build_object('contacts', (select count(*) from contacts where ${where}), `
    + `'lists', (select json_object_agg(list, total) from contact_list_counts where ${where} and list in (${lists})))`;
  return JSON.parse((await psql(stack.ports.postgres, { command })).trim());
}

/**
 * Runs every page on every path of `settings.only` at each of `settings.scale`'s sizes, one
 * stack at a time (started, measured, stopped). `stopped()` says whether a signal is stopping
 * the stacks already (then they are left to it).
 */
export async function runScale(settings, wrkOptions, stopped) {
  const user = seed.user(1);
  const sizes = [];
  for (const contacts of settings.scale) {
    log(`scale: ${fmt.int(contacts)} contacts`);
    const stack = await startBenchStack(contacts);
    try {
      log(`stack ready after ${stack.timings.readySeconds.toFixed(0)} s (seed ${stack.timings.seedSeconds.toFixed(0)} s); worker on ${stack.urls.worker}`);
      const authorization = `Bearer ${tokensFor(stack.secrets.SUPABASE_JWT_SECRET).get(user)}`;
      const runs = [];
      for (const page of SCALE_PAGES) {
        const plans = pagePlan(stack, page, user, authorization);
        for (const path of Object.keys(SCALE_PATHS).filter((p) => settings.only.includes(p))) {
          const label = `${fmt.int(contacts)}: ${page.query}, ${SCALE_PATHS[path]}`;
          const run = await runScenario(stack, `${page.id}-${path}`, { ...plans[path], label }, settings, wrkOptions);
          runs.push({ page: page.id, query: page.query, path, ...run });
        }
      }
      const matrix = settings.only.includes("matrix") ? await runMatrix(stack, authorization) : undefined;
      sizes.push({ contacts, board: await boardSize(stack, user), stack: stack.timings, runs, matrix });
    } finally {
      if (!stopped()) await stack.stop();
    }
  }
  return sizes;
}

/** The run of `page` on `path` at `contacts`, if it ran. */
export function scaleRun(sizes, contacts, page, path) {
  return sizes.find((s) => s.contacts === contacts)?.runs.find((r) => r.page === page && r.path === path);
}

/** Per page: the database path's p50 alone at the largest size against the ceiling, and its
 * growth from the smallest size (the sizes are 100,000 and 1,000,000). */
export function scaleTargets(sizes) {
  const counts = sizes.map((s) => s.contacts);
  const [small, large] = [Math.min(...counts), Math.max(...counts)];
  const out = [];
  for (const page of SCALE_PAGES) {
    const big = scaleRun(sizes, large, page.id, "database");
    if (!big) continue;
    const p50 = big.aloneMs.p50;
    out.push({ name: `\`${page.query}\`: database path p50 alone at ${fmt.int(large)} contacts ≤ ${SCALE_CEILING_MS} ms`, measured: `${fmt.ms(p50)} ms`, ratio: (p50 / SCALE_CEILING_MS).toFixed(2), met: p50 <= SCALE_CEILING_MS });
    const base = small === large ? null : scaleRun(sizes, small, page.id, "database");
    if (base) {
      const growth = p50 / base.aloneMs.p50;
      out.push({ name: `\`${page.query}\`: database path p50 alone at ${fmt.int(large)} ≤ ${SCALE_GROWTH}× at ${fmt.int(small)}`, measured: `${fmt.ms(p50)} ms vs ${fmt.ms(base.aloneMs.p50)} ms: ×${growth.toFixed(2)}`, ratio: (growth / SCALE_GROWTH).toFixed(2), met: growth <= SCALE_GROWTH });
    }
  }
  return out;
}
