// The checker the e2e suite runs on every worker answer (tests/openapi/preload.mjs) refuses what
// docs/openapi.yaml does not describe: run by the test command (`node --test tests/openapi/`), on
// hand-made answers, with no stack.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { OpenApi } from "./validate.mjs";

const api = new OpenApi();
const BOARD = "0f6b1a0e-6f0e-4a3c-9a41-5b0f3b1f2c11";
const WS = "2b7a3c4d-5e6f-4a1b-8c9d-0e1f2a3b4c5d";

const contact = {
  id: "8d3c1b0a-1111-4222-8333-944455566677",
  name: "Ada",
  email: "ada@example.test",
  phone: null,
  conversation_status: "open",
  priority: "high",
  last_message_time: null,
  assigned_user_id: null,
  board_column_id: "8d3c1b0a-1111-4222-8333-944455566678",
  created_at: "2025-01-27T10:00:00+00:00",
};
const page = {
  success: true,
  data: {
    contacts: [contact],
    pagination: { page: 1, pageSize: 50, total: 1, totalPages: 1, nextCursor: null, prevCursor: null },
    filters: { filter: "open", search: "", assignedTo: "", columnId: "" },
    sort: { sortBy: "created_at", sortOrder: "desc" },
  },
  cached_at: "2026-12-06T01:00:00.000Z",
  cache_ttl: 180,
};
const listHeaders = {
  "Content-Type": "application/json",
  "Cache-Control": "private, no-store",
  Vary: "Authorization, X-Workspace-ID, Origin",
  "X-Cache-Status": "HIT",
  "X-Cache-Layer": "KV",
  "X-Cache-Key": `contacts:${WS}:${BOARD}:page=1&pageSize=50&filter=open&sortBy=created_at&sortOrder=desc&gen=0`,
  "X-Response-Time": "3ms",
  "X-Worker-Location": "local",
  "X-Request-ID": "abc",
};
const list = (over = {}) => ({ method: "GET", path: `/api/boards/${BOARD}/contacts`, status: 200, headers: new Headers(listHeaders), body: JSON.stringify(page), ...over });
const error = (status, code, field, extra = {}) => ({
  status,
  headers: new Headers({ "Content-Type": "application/json", "X-Request-ID": "abc", ...extra }),
  body: JSON.stringify({ success: false, error: { code, message: "what is wrong", ...(field ? { field } : {}) } }),
});

describe("the OpenAPI checker", () => {
  test("a list answer as the worker sends it conforms, with and without issue 26's X-Cache-Generation", () => {
    assert.deepEqual(api.check(list()), []);
    const withGeneration = new Headers({ ...listHeaders, "X-Cache-Generation": "194a7543020-00000001" });
    assert.deepEqual(api.check(list({ headers: withGeneration })), []);
  });

  test("a missing required header, a header of the wrong shape and a body field too many are each refused", () => {
    const noStatus = new Headers(listHeaders);
    noStatus.delete("X-Cache-Status");
    assert.match(api.check(list({ headers: noStatus })).join(), /header X-Cache-Status is required but missing/);
    const badLayer = new Headers({ ...listHeaders, "X-Cache-Layer": "DISK" });
    assert.match(api.check(list({ headers: badLayer })).join(), /header X-Cache-Layer/);
    const badGeneration = new Headers({ ...listHeaders, "X-Cache-Generation": "NOT A GENERATION" });
    assert.match(api.check(list({ headers: badGeneration })).join(), /header X-Cache-Generation/);
    const extra = { ...page, data: { ...page.data, contacts: [{ ...contact, workspace_id: WS }] } };
    assert.match(api.check(list({ body: JSON.stringify(extra) })).join(), /must NOT have additional properties/);
    const publicCache = new Headers({ ...listHeaders, "Cache-Control": "public, max-age=60" });
    assert.match(api.check(list({ headers: publicCache })).join(), /header Cache-Control/);
  });

  test("errors must have the one error shape, their documented code and their headers", () => {
    const path = `/api/boards/${BOARD}/contacts`;
    assert.deepEqual(api.check({ method: "GET", path, ...error(400, "invalid_parameter", "pageSize") }), []);
    assert.match(api.check({ method: "GET", path, ...error(400, "invalid_parameter") }).join(), /must have required property 'field'/);
    assert.match(api.check({ method: "GET", path, ...error(400, "unavailable", "page") }).join(), /must be equal to constant/);
    assert.match(api.check({ method: "GET", path, ...error(401, "unauthorized") }).join(), /WWW-Authenticate is required/);
    assert.deepEqual(api.check({ method: "GET", path, ...error(401, "unauthorized", null, { "WWW-Authenticate": "Bearer" }) }), []);
    assert.match(api.check({ method: "GET", path, ...error(429, "rate_limited") }).join(), /Retry-After is required/);
    const plain = { status: 503, headers: new Headers({ "Content-Type": "text/plain", "X-Request-ID": "abc" }), body: "down" };
    assert.match(api.check({ method: "GET", path, ...plain }).join(), /content type "text\/plain" is not documented/);
  });

  test("a status the operation does not document is refused; unknown routes and methods are the catch-all's 404 and 405", () => {
    assert.match(api.check(list({ status: 201 })).join(), /status 201 is not documented/);
    assert.deepEqual(api.check({ method: "GET", path: "/nowhere", ...error(404, "not_found") }), []);
    assert.match(api.check({ method: "GET", path: "/nowhere", ...list({}), path: "/nowhere" }).join(), /status 200 is not documented/);
    assert.deepEqual(api.check({ method: "DELETE", path: `/api/boards/${BOARD}/contacts`, ...error(405, "method_not_allowed", null, { Allow: "GET, OPTIONS" }) }), []);
    assert.match(api.check({ method: "DELETE", path: `/api/boards/${BOARD}/contacts`, ...error(405, "method_not_allowed") }).join(), /Allow is required/);
  });

  test("issue 26's minGeneration and mode are documented", () => {
    const list = api.doc.paths["/api/boards/{boardId}/contacts"].get.parameters.map((p) => api.resolve(p)[0].name);
    const counts = api.doc.paths["/api/workspaces/{workspaceId}/counts"].get.parameters.map((p) => api.resolve(p)[0].name);
    assert.ok(list.includes("minGeneration") && counts.includes("minGeneration"));
    assert.deepEqual(api.doc.components.schemas.InvalidateRequest.properties.mode.enum, ["hard", "soft"]);
  });
});
