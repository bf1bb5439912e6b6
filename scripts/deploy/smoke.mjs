// The smoke test after a deploy: the worker's health, one authorized list read, one invalidation
// of that list and the read after it, against the URLs it is given (the deployed ones in the
// pipeline, the local stack's in the test command). Exits 1 naming the first check that failed.
//
//   WORKER_URL            the worker's origin (https://contact-list-cache-prod.<you>.workers.dev)
//   BACKEND_URL           optional: the backend's origin; its /health must answer `healthy`
//   SMOKE_WORKSPACE_ID    a workspace the smoke user belongs to
//   SMOKE_BOARD_ID        one of its boards
//   SMOKE_ACCESS_TOKEN    the smoke user's access token, or instead
//   SUPABASE_JWT_SECRET + SMOKE_USER_ID: a 5-minute token for that user is signed here (HS256,
//                         the project's JWT secret, as Supabase Auth signs one)
//
// Read from the environment only: nothing is printed but URLs, statuses and cache headers.
import { userToken } from "../jwt.mjs";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function setting(name, { optional = false, uuid = false } = {}) {
  const value = (process.env[name] ?? "").trim();
  if (!value && !optional) fail(`${name} is not set`);
  if (value && uuid && !UUID.test(value)) fail(`${name} is not a UUID`);
  return value;
}

function fail(message) {
  console.error(`[smoke] FAILED: ${message}`);
  process.exit(1);
}

const origin = (name, value) => {
  try {
    return new URL(value).origin;
  } catch {
    return fail(`${name} is not a URL`);
  }
};

const worker = origin("WORKER_URL", setting("WORKER_URL"));
const backendUrl = setting("BACKEND_URL", { optional: true });
const backend = backendUrl && origin("BACKEND_URL", backendUrl);
const workspace = setting("SMOKE_WORKSPACE_ID", { uuid: true });
const board = setting("SMOKE_BOARD_ID", { uuid: true });
let token = setting("SMOKE_ACCESS_TOKEN", { optional: true });
if (!token) {
  const secret = setting("SUPABASE_JWT_SECRET", { optional: true });
  const user = setting("SMOKE_USER_ID", { optional: true, uuid: true });
  if (!secret || !user) fail("set SMOKE_ACCESS_TOKEN, or SUPABASE_JWT_SECRET and SMOKE_USER_ID");
  token = userToken(secret, { sub: user, email: `${user}@smoke.invalid`, ttlSeconds: 300 });
}

/** fetch with a 10 s budget; a network error or a timeout fails the check it belongs to. */
async function call(what, url, init = {}) {
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(10_000) });
    const text = await res.text();
    let json = null;
    try {
      json = JSON.parse(text);
    } catch {
      // not JSON: checked by the caller
    }
    return { status: res.status, headers: res.headers, json, text };
  } catch (err) {
    return fail(`${what}: ${url} did not answer (${err.cause?.code ?? err.name})`);
  }
}

function expect(what, condition, res) {
  if (!condition) fail(`${what}: status ${res.status}, body ${res.text.slice(0, 300)}`);
  console.error(`[smoke] ok: ${what}`);
}

const auth = { Authorization: `Bearer ${token}`, "X-Workspace-ID": workspace };
const listUrl = `${worker}/api/boards/${board}/contacts?pageSize=10`;
const cacheOf = (res) => ({ status: res.headers.get("x-cache-status"), layer: res.headers.get("x-cache-layer"), key: res.headers.get("x-cache-key") });

const health = await call("worker health", `${worker}/health`);
expect(`worker /health is healthy (${worker})`, health.status === 200 && health.json?.status === "healthy", health);

if (backend) {
  const res = await call("backend health", `${backend}/health`);
  expect(`backend /health is healthy (${backend})`, res.status === 200 && res.json?.status === "healthy", res);
}

const first = await call("list read", listUrl, { headers: auth });
expect("an authorized list read answers 200 with a page", first.status === 200 && first.json?.success === true && Array.isArray(first.json?.data?.contacts), first);
const before = cacheOf(first);
console.error(`[smoke]     X-Cache-Status ${before.status}, X-Cache-Layer ${before.layer}`);

const invalidated = await call("invalidation", `${worker}/api/cache/invalidate`, {
  method: "POST",
  headers: { ...auth, "Content-Type": "application/json" },
  body: JSON.stringify({ workspace_id: workspace, board_id: board, filter: "all" }),
});
expect("an invalidation of that list answers 200", invalidated.status === 200 && invalidated.json?.success === true, invalidated);

const second = await call("list read after the invalidation", listUrl, { headers: auth });
expect("the list read after it answers 200", second.status === 200 && second.json?.success === true, second);
const after = cacheOf(second);
// The key ends with the scope's generation: the invalidation must have moved it.
if (before.key && after.key && before.key === after.key) fail(`the list's cache key did not change after the invalidation (${after.key})`);
console.error(`[smoke] ok: the list's cache key names a new generation (X-Cache-Status ${after.status})`);
console.error("[smoke] passed");
