import { afterEach, describe, expect, test, vi } from "vitest";
import { ContactListClient, ContactListError, compareGenerations } from "../src/index.js";
import { parseRetryAfter } from "../src/errors.js";
import { fakeFetch, hitHeaders, json, listEnvelope, never } from "./support/fakes.js";

const WORKER = "https://cache.example.test";
const BOARD = "b6495e04-5abb-e13f-48ee-5435e1e75895";

function client(fetch: typeof globalThis.fetch, options: Partial<ConstructorParameters<typeof ContactListClient>[0]> = {}) {
  return new ContactListClient({ workerUrl: `${WORKER}/`, token: "tok", workspaceId: "ws-1", fetch, ...options });
}

describe("ContactListClient.getContactList", () => {
  test("asks the worker for the page with the token and workspace, leaving defaults out of the URL", async () => {
    const { fetch, calls } = fakeFetch(json(200, listEnvelope(), hitHeaders));
    await client(fetch).getContactList(BOARD, { page: 2, filter: "open", sortBy: "name", sortOrder: "desc", search: "  ada ", pageSize: 50 });
    expect(calls).toHaveLength(1);
    expect(calls[0]?.url).toBe(`${WORKER}/api/boards/${BOARD}/contacts?page=2&filter=open&search=ada&sortBy=name`);
    expect(calls[0]?.headers.authorization).toBe("Bearer tok");
    expect(calls[0]?.headers["x-workspace-id"]).toBe("ws-1");
    expect(calls[0]?.headers["cache-control"]).toBeUndefined();
  });

  test("answers the envelope and what the cache headers said", async () => {
    const envelope = listEnvelope();
    const { fetch } = fakeFetch(json(200, envelope, { ...hitHeaders, "X-Cache-Coalesced": "true" }));
    const result = await client(fetch).getContactList(BOARD);
    expect(result.envelope).toEqual(envelope);
    expect(result.cache).toMatchObject({
      status: "HIT",
      layer: "KV",
      key: "contacts:w:b:page=1",
      responseTimeMs: 3,
      location: "AMS",
      ageSeconds: 12,
      coalesced: true,
      source: "worker",
      requestId: "r1",
    });
    expect(result.cache.roundTripMs).toBeGreaterThanOrEqual(0);
  });

  test("headers the worker did not send are null", async () => {
    const { fetch } = fakeFetch(json(200, listEnvelope()));
    const { cache } = await client(fetch).getContactList(BOARD);
    expect([cache.status, cache.layer, cache.key, cache.responseTimeMs, cache.location, cache.ageSeconds, cache.coalesced]).toEqual([null, null, null, null, null, null, false]);
  });

  test("providers may be async and are asked on every request (a refreshed token is used)", async () => {
    let n = 0;
    const { fetch, calls } = fakeFetch(json(200, listEnvelope()));
    const c = client(fetch, { token: async () => `tok-${++n}`, workspaceId: () => Promise.resolve("ws-async") });
    await c.getContactList(BOARD);
    await c.getContactList(BOARD);
    expect(calls.map((call) => call.headers.authorization)).toEqual(["Bearer tok-1", "Bearer tok-2"]);
    expect(calls[1]?.headers["x-workspace-id"]).toBe("ws-async");
  });

  test("a signed-out provider sends no Authorization, and fresh asks past the caches", async () => {
    const { fetch, calls } = fakeFetch(json(200, listEnvelope()));
    await client(fetch, { token: () => null }).getContactList(BOARD, {}, { fresh: true, workspaceId: "ws-2" });
    expect(calls[0]?.headers.authorization).toBeUndefined();
    expect(calls[0]?.headers["cache-control"]).toBe("no-cache");
    expect(calls[0]?.headers["x-workspace-id"]).toBe("ws-2");
  });

  test("an API error becomes a ContactListError with its status, code and field", async () => {
    const { fetch } = fakeFetch(
      json(400, { success: false, error: { code: "invalid_parameter", message: "pageSize must be 1..=100", field: "pageSize" } }, { "X-Request-ID": "r9" }),
    );
    const err = await client(fetch).getContactList(BOARD, { pageSize: 1000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ContactListError);
    expect(err).toMatchObject({ kind: "http", status: 400, code: "invalid_parameter", field: "pageSize", requestId: "r9", message: "pageSize must be 1..=100" });
  });

  test("a 403 has no field, and an answer that is not JSON is invalid_response", async () => {
    const forbidden = await client(fakeFetch(json(403, { success: false, error: { code: "forbidden", message: "not a member" } })).fetch)
      .getContactList(BOARD)
      .catch((e: unknown) => e);
    expect(forbidden).toMatchObject({ kind: "http", status: 403, code: "forbidden", field: undefined });
    const html = await client(fakeFetch(new Response("<html>bad gateway</html>", { status: 502 })).fetch)
      .getContactList(BOARD)
      .catch((e: unknown) => e);
    expect(html).toMatchObject({ kind: "invalid_response", status: 502 });
  });

  test("no answer is a network error", async () => {
    const err = await client(fakeFetch(new TypeError("fetch failed")).fetch).getContactList(BOARD).catch((e: unknown) => e);
    expect(err).toMatchObject({ kind: "network", status: undefined });
  });

  test("timeoutMs ends a request that gets no answer, as a timeout", async () => {
    const started = Date.now();
    const err = await client(fakeFetch(never).fetch, { timeoutMs: 50 }).getContactList(BOARD).catch((e: unknown) => e);
    expect(err).toMatchObject({ kind: "timeout" });
    expect(Date.now() - started).toBeLessThan(1000);
  });

  test("the caller's AbortSignal ends a request as aborted, distinct from a timeout", async () => {
    const controller = new AbortController();
    const pending = client(fakeFetch(never).fetch).getContactList(BOARD, {}, { signal: controller.signal });
    setTimeout(() => controller.abort(), 10);
    await expect(pending).rejects.toMatchObject({ kind: "aborted" });
    const { fetch, calls } = fakeFetch(json(200, listEnvelope()));
    await expect(client(fetch).getContactList(BOARD, {}, { signal: AbortSignal.abort() })).rejects.toMatchObject({ kind: "aborted" });
    expect(calls).toHaveLength(0);
  });
});

describe("without AbortSignal.any (Safari and iOS before 17.4)", () => {
  afterEach(() => vi.unstubAllGlobals());
  const withoutAny = () => {
    vi.stubGlobal("AbortSignal", Object.assign(class extends AbortSignal {}, { abort: AbortSignal.abort.bind(AbortSignal), timeout: AbortSignal.timeout.bind(AbortSignal), any: undefined }));
    expect(AbortSignal.any).toBeUndefined();
  };

  test("a request is answered, a timeout is a timeout and the caller's abort an abort", async () => {
    withoutAny();
    const { fetch } = fakeFetch(json(200, listEnvelope()));
    expect((await client(fetch).getContactList(BOARD)).envelope.data.contacts).toHaveLength(2);
    await expect(client(fakeFetch(never).fetch, { timeoutMs: 30 }).getContactList(BOARD)).rejects.toMatchObject({ kind: "timeout" });
    const controller = new AbortController();
    const pending = client(fakeFetch(never).fetch).getContactList(BOARD, {}, { signal: controller.signal });
    setTimeout(() => controller.abort(), 10);
    await expect(pending).rejects.toMatchObject({ kind: "aborted" });
  });
});

describe("providers and identity", () => {
  const jwt = (claims: object) => `h.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.s`;

  test("a workspace or token provider that throws is a ContactListError of kind provider, with its cause", async () => {
    const cause = new Error("storage is locked");
    const { fetch, calls } = fakeFetch(json(200, listEnvelope()));
    const workspaceFails = client(fetch, { workspaceId: () => Promise.reject(cause) });
    const err = await workspaceFails.getContactList(BOARD).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ContactListError);
    expect(err).toMatchObject({ kind: "provider", cause, message: "the workspace provider failed: storage is locked" });
    await expect(client(fetch, { token: () => { throw cause; } }).getContactList(BOARD)).rejects.toMatchObject({ kind: "provider", cause });
    expect(calls).toHaveLength(0);
  });

  test("the user is the token's sub, anonymous when signed out, or what the user provider says", async () => {
    const { fetch } = fakeFetch(json(200, listEnvelope()));
    expect(await client(fetch, { token: jwt({ sub: "user-7" }) }).scope()).toEqual({ userId: "user-7", workspaceId: "ws-1" });
    expect(await client(fetch, { token: null }).userId()).toBe("anonymous");
    expect(await client(fetch, { token: jwt({ sub: "user-7" }), userId: () => "given" }).userId()).toBe("given");
    const opaque = await client(fetch, { token: "not-a-jwt" }).userId();
    expect(opaque).toMatch(/^token:[0-9a-f]+$/);
    expect(opaque).not.toContain("not-a-jwt");
  });
});

describe("Retry-After", () => {
  test("a 429's Retry-After is on the error, in ms; a 403 is not retryable, a 503 and a 429 are", async () => {
    const limited = await client(fakeFetch(json(429, { success: false, error: { code: "rate_limited", message: "slow down" } }, { "Retry-After": "2" })).fetch)
      .getContactList(BOARD)
      .catch((e: unknown) => e as ContactListError);
    expect(limited).toMatchObject({ status: 429, retryAfterMs: 2000, retryable: true });
    const forbidden = await client(fakeFetch(json(403, { success: false, error: { code: "forbidden", message: "no" } })).fetch)
      .getContactList(BOARD)
      .catch((e: unknown) => e as ContactListError);
    expect(forbidden).toMatchObject({ status: 403, retryable: false, retryAfterMs: undefined });
    expect(new ContactListError("http", "x", { status: 503 }).retryable).toBe(true);
    expect(new ContactListError("aborted", "x").retryable).toBe(false);
  });

  test("reads delay-seconds and HTTP dates", () => {
    const now = Date.parse("2026-01-01T00:00:00Z");
    expect(parseRetryAfter("120", now)).toBe(120_000);
    expect(parseRetryAfter("Thu, 01 Jan 2026 00:00:05 GMT", now)).toBe(5000);
    expect(parseRetryAfter("soon", now)).toBeUndefined();
    expect(parseRetryAfter(null, now)).toBeUndefined();
  });
});

describe("the fallback URL", () => {
  const FALLBACK = "https://backend.example.test";

  test("answers when the worker gives no answer or a 5xx, labelled as the fallback", async () => {
    for (const failure of [new TypeError("fetch failed"), json(503, { success: false, error: { code: "unavailable", message: "down" } })]) {
      const { fetch, calls } = fakeFetch(failure, json(200, listEnvelope()));
      const result = await client(fetch, { fallbackUrl: FALLBACK }).getContactList(BOARD, { page: 3 });
      expect(calls.map((c) => c.url)).toEqual([`${WORKER}/api/boards/${BOARD}/contacts?page=3`, `${FALLBACK}/api/boards/${BOARD}/contacts?page=3`]);
      expect(calls[1]?.headers.authorization).toBe("Bearer tok");
      expect(result.cache.source).toBe("fallback");
    }
  });

  test("is not asked after a deliberate 4xx or an abort, nor without being configured", async () => {
    const denied = fakeFetch(json(401, { success: false, error: { code: "unauthorized", message: "bad token" } }), json(200, listEnvelope()));
    await expect(client(denied.fetch, { fallbackUrl: FALLBACK }).getContactList(BOARD)).rejects.toMatchObject({ status: 401, code: "unauthorized" });
    expect(denied.calls).toHaveLength(1);
    const down = fakeFetch(new TypeError("fetch failed"), json(200, listEnvelope()));
    await expect(client(down.fetch).getContactList(BOARD)).rejects.toMatchObject({ kind: "network" });
    expect(down.calls).toHaveLength(1);
  });
});

describe("counts and invalidation", () => {
  test("getCounts reads the workspace's counts", async () => {
    const body = { success: true, data: { workspace_id: "ws-1", user_id: "u", counts: { all: 3 } }, cached_at: "2025-01-27T10:35:00Z", cache_ttl: 300 };
    const { fetch, calls } = fakeFetch(json(200, body, { "X-Cache-Status": "MISS", "X-Cache-Layer": "REDIS" }));
    const result = await client(fetch).getCounts();
    expect(calls[0]?.url).toBe(`${WORKER}/api/workspaces/ws-1/counts`);
    expect(result.envelope.data.counts.all).toBe(3);
    expect(result.cache).toMatchObject({ status: "MISS", layer: "REDIS" });
  });

  test("invalidateCache posts a filter, events, or nothing (every scope) for the workspace", async () => {
    const summary = { workspace_id: "ws-9", boards: [BOARD], scopes: ["open"], generation: "g", staleness_bound_ms: 1000, operations: {} };
    const { fetch, calls } = fakeFetch(json(200, { success: true, data: summary }));
    const c = client(fetch);
    expect(await c.invalidateCache("ws-9", { filter: "open", boardId: BOARD })).toEqual(summary);
    await c.invalidateCache("ws-9", { events: [{ type: "contact:favorited" }] });
    await c.invalidateCache("ws-9");
    expect(calls.map((call) => [call.method, call.url, call.headers["content-type"], call.headers["x-workspace-id"]])).toEqual(
      Array(3).fill(["POST", `${WORKER}/api/cache/invalidate`, "application/json", "ws-9"]),
    );
    expect(calls.map((call) => JSON.parse(call.body ?? "null"))).toEqual([
      { workspace_id: "ws-9", board_id: BOARD, filter: "open" },
      { workspace_id: "ws-9", events: [{ type: "contact:favorited" }] },
      { workspace_id: "ws-9" },
    ]);
  });

  test("an invalidation is hard unless asked soft", async () => {
    const summary = { workspace_id: "ws-9", boards: [], scopes: ["open"], generation: "19a-00000001", mode: "soft", staleness_bound_ms: 1000, operations: {} };
    const { fetch, calls } = fakeFetch(json(200, { success: true, data: summary }));
    await client(fetch).invalidateCache("ws-9", { filter: "open" }, { mode: "soft" });
    expect(JSON.parse(calls[0]?.body ?? "null")).toEqual({ workspace_id: "ws-9", filter: "open", mode: "soft" });
  });

  test("a refused invalidation is a typed error", async () => {
    const { fetch } = fakeFetch(json(400, { success: false, error: { code: "invalid_parameter", message: "pattern must be within workspace_id's keys", field: "pattern" } }));
    await expect(client(fetch).invalidateCache("ws-9", { filter: "open" })).rejects.toMatchObject({ kind: "http", code: "invalid_parameter", field: "pattern" });
  });
});

describe("read your writes and your pushes (minGeneration)", () => {
  const summary = (generation: string) => ({ workspace_id: "ws-1", boards: [BOARD], scopes: ["open"], generation, mode: "hard", staleness_bound_ms: 1000, operations: {} });

  test("after its own invalidation the client's reads of that workspace ask for its generation", async () => {
    const { fetch, calls } = fakeFetch(
      json(200, { success: true, data: summary("19a-00000002") }),
      json(200, listEnvelope(), { "X-Cache-Generation": "19a-00000002" }),
      json(200, listEnvelope()),
      json(200, { success: true, data: { workspace_id: "ws-1", user_id: "u", counts: {} } }),
    );
    const c = client(fetch);
    await c.invalidateCache("ws-1", { filter: "open" });
    const read = await c.getContactList(BOARD, { filter: "open" });
    expect(calls[1]?.url).toBe(`${WORKER}/api/boards/${BOARD}/contacts?filter=open&minGeneration=19a-00000002`);
    expect(read.cache).toMatchObject({ generation: "19a-00000002", behind: false });
    // Another workspace asks for nothing; the counts of this one ask too.
    await c.getContactList(BOARD, {}, { workspaceId: "ws-2" });
    expect(calls[2]?.url).toBe(`${WORKER}/api/boards/${BOARD}/contacts`);
    await c.getCounts();
    expect(calls[3]?.url).toBe(`${WORKER}/api/workspaces/ws-1/counts?minGeneration=19a-00000002`);
  });

  test("it asks for the newest generation it has seen, and a request may ask for a newer one", async () => {
    const { fetch, calls } = fakeFetch(json(200, listEnvelope()));
    const c = client(fetch);
    c.noteGeneration("ws-1", "1a0-00000001");
    c.noteGeneration("ws-1", "ff-ffffffff"); // older (0xff < 0x1a0): ignored
    expect(c.seenGeneration("ws-1")).toBe("1a0-00000001");
    await c.getContactList(BOARD);
    await c.getContactList(BOARD, {}, { minGeneration: "1b0-00000000" });
    await c.getContactList(BOARD, {}, { minGeneration: "10-00000000" });
    expect(calls.map((call) => new URL(call.url).searchParams.get("minGeneration"))).toEqual(["1a0-00000001", "1b0-00000000", "1a0-00000001"]);
  });

  test("an answer older than the generation asked for is behind", async () => {
    const { fetch } = fakeFetch(json(200, listEnvelope(), { "X-Cache-Generation": "19a-00000001" }));
    const { cache } = await client(fetch).getContactList(BOARD, {}, { minGeneration: "19a-00000002" });
    expect(cache).toMatchObject({ generation: "19a-00000001", behind: true });
    const { cache: unasked } = await client(fetch).getContactList(BOARD);
    expect(unasked.behind).toBe(false);
  });

  test("generations order by their millisecond part, numerically, then the rest", () => {
    expect(compareGenerations("0", "1-00000000")).toBeLessThan(0);
    expect(compareGenerations("ff-ffffffff", "100-00000000")).toBeLessThan(0);
    expect(compareGenerations("100-00000002", "100-00000001")).toBeGreaterThan(0);
    expect(compareGenerations("100-00000001", "100-00000001")).toBe(0);
  });
});
