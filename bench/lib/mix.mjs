// The realistic mix: Zipf-distributed workspaces, users, boards, filters, sorts and pages over
// the seed (supabase/seed.sql), drawn from a seeded generator so every run asks the same things.
import { join } from "node:path";
import { userToken } from "../../scripts/jwt.mjs";
import { seed } from "../../scripts/seed-ids.mjs";

/** Filters in order of popularity: the first is asked for most. */
export const FILTERS_BY_POPULARITY = ["all", "open", "assigned_to_me", "unassigned", "high_priority", "closed", "favorites", "medium_priority", "low_priority", "archived"];
const PAGES = Array.from({ length: 20 }, (_, i) => i + 1);
const WORKSPACES = [1, 2, 3, 4, 5]; // the seed's largest first
const BOARDS = [1, 2, 3]; // the seed's largest first

/**
 * The Zipf exponent of each dimension: how much more the first choice is asked for than the
 * rest. People open a board's default list and its first page far more than anything else.
 * Lists are asked for in the default order (newest first), 50 a page.
 */
export const EXPONENTS = {
  workspace: 1, // 44 / 22 / 15 / 11 / 9 %
  user: 1, // among the workspace's members
  board: 1, // 55 / 27 / 18 %
  filter: 1.2, // all 41 %, open 18 %, assigned_to_me 11 %, ... archived 3 %
  page: 1.5, // page 1 46 %, 2 16 %, 3 9 %, ... 20 0.5 %
};

/** A deterministic uniform generator in [0, 1) (mulberry32). */
export function randomFrom(seedValue) {
  let state = seedValue >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Draws from `items` with probability proportional to 1 / rank^exponent (rank 1 = first item). */
export function zipf(items, exponent, random) {
  const cumulative = [];
  let total = 0;
  items.forEach((_, i) => cumulative.push((total += 1 / (i + 1) ** exponent)));
  return () => {
    const r = random() * total;
    let low = 0;
    let high = items.length - 1;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (cumulative[mid] < r) low = mid + 1;
      else high = mid;
    }
    return items[low];
  };
}

/** The seeded users of workspace `w` (numbers 1..40), as supabase/seed.sql makes them members. */
export function membersOf(w) {
  return Array.from({ length: 40 }, (_, i) => i + 1).filter((n) => (n - 1) % 5 + 1 === w || (n % 7 === 0 && n % 5 + 1 === w));
}

/** A drawer of mix requests: `{ w, workspace, board, user, params }` with seed ids. */
export function mixDrawer(seedValue = 42) {
  const random = randomFrom(seedValue);
  const workspace = zipf(WORKSPACES, EXPONENTS.workspace, random);
  const board = zipf(BOARDS, EXPONENTS.board, random);
  const filter = zipf(FILTERS_BY_POPULARITY, EXPONENTS.filter, random);
  const page = zipf(PAGES, EXPONENTS.page, random);
  const users = new Map(WORKSPACES.map((w) => [w, zipf(membersOf(w), EXPONENTS.user, random)]));
  return () => {
    const w = workspace();
    return {
      w,
      workspace: seed.workspace(w),
      board: seed.board(w, board()),
      user: seed.user(users.get(w)()),
      params: { filter: filter(), page: page() },
    };
  };
}

/** Where the mix's writes land: a workspace and a board number, as likely as the reads'. */
export function writeTargets(seedValue = 7) {
  const random = randomFrom(seedValue);
  const workspace = zipf(WORKSPACES, EXPONENTS.workspace, random);
  const board = zipf(BOARDS, EXPONENTS.board, random);
  return () => ({ w: workspace(), b: board(), offset: Math.floor(random() * 150) });
}

/** The cache key a request maps to, less its generation (the user only where lists differ by user). */
export function pageKey({ workspace, board, user, params }) {
  const perUser = params.filter === "assigned_to_me" || params.filter === "favorites";
  return `${workspace} ${board} ${new URLSearchParams(params)}${perUser ? ` ${user}` : ""}`;
}

/** The path and query of a list request. */
export function listPath({ board, params }) {
  return `/api/boards/${board}/contacts?${new URLSearchParams(Object.entries(params).map(([k, v]) => [k, String(v)]))}`;
}

/** One access token per seeded user, valid for `ttlSeconds`. */
export function tokensFor(jwtSecret, ttlSeconds = 3 * 3600) {
  const tokens = new Map();
  for (let n = 1; n <= 40; n++) {
    const sub = seed.user(n);
    tokens.set(sub, userToken(jwtSecret, { sub, email: `user${n}@example.test`, ttlSeconds }));
  }
  return tokens;
}

/** The requests a mix replays: `MIX_REQUESTS` drawn from the Zipf distributions (seeded, so every
 * run replays the same), each as `tokens`' user, written for wrk to `mix.tsv` in `dir`, and each
 * distinct page once to `mix-pages.tsv` (to fill the caches before the measurement). */
export const MIX_REQUESTS = 20_000;

export function mixFiles(dir, tokens, writeRequests) {
  const draws = Array.from({ length: MIX_REQUESTS }, mixDrawer(42));
  const requests = draws.map((d) => ({ path: listPath(d), headers: { Authorization: `Bearer ${tokens.get(d.user)}`, "X-Workspace-ID": d.workspace } }));
  const file = join(dir, "mix.tsv");
  writeRequests(file, requests);
  const pages = new Map();
  draws.forEach((d, i) => pages.has(pageKey(d)) || pages.set(pageKey(d), requests[i]));
  const pagesFile = join(dir, "mix-pages.tsv");
  writeRequests(pagesFile, [...pages.values()]);
  return { file, pagesFile, pages: pages.size };
}
