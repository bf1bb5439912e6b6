// @vitest-environment happy-dom
import { QueryClient, QueryClientProvider, useInfiniteQuery, useQuery, useSuspenseQuery } from "@tanstack/react-query";
import { act, renderHook, waitFor } from "@testing-library/react";
import { Suspense, type ReactNode } from "react";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { ContactListClient, ContactListError, contactKeys, type ContactScope } from "../src/index.js";
import {
  ContactListProvider,
  contactCountsOptions,
  contactListInfiniteOptions,
  contactListOptions,
  useContactCounts,
  useContactInfiniteList,
  useContactList,
  useLiveInvalidation,
} from "../src/react.js";
import { FakeSocket, fakeFetch, hitHeaders, json, listEnvelope, type Recorded } from "./support/fakes.js";

const BOARD = "b1";
const SCOPE: ContactScope = { userId: "u1", workspaceId: "ws-1" };

/** A fetch answering list pages from their URL (5 contacts, 2 per page), STALE while `stale` says so. */
function pages(options: { stale?: (call: Recorded) => boolean; name?: (i: number, call: Recorded) => string; gate?: (call: Recorded) => Promise<void> | undefined } = {}) {
  return fakeFetch(async (call) => {
    await options.gate?.(call);
    const url = new URL(call.url);
    const page = Number(url.searchParams.get("page") ?? "1");
    const filter = url.searchParams.get("filter") ?? "all";
    const status = options.stale?.(call) ? "STALE" : "HIT";
    const name = options.name;
    return json(200, listEnvelope({ page, filter, pageSize: 2, total: 5, ...(name ? { name: (i: number) => name(i, call) } : {}) }), { ...hitHeaders, "X-Cache-Status": status });
  });
}

let queryClient: QueryClient;
beforeEach(() => {
  queryClient = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  FakeSocket.opened = [];
});
afterEach(() => queryClient.clear());

/**
 * A client and a wrapper whose provider shows `shown.scope` (change it, then `rerender()`), or
 * (`shown.scope` null) asks the client's providers.
 */
/** A Supabase-like access token of `sub` (its signature is the worker's business). */
const jwt = (sub: string) => `h.${btoa(JSON.stringify({ sub })).replace(/=+$/, "")}.s`;

function setup(fetch: typeof globalThis.fetch, options: { workspaceId?: ConstructorParameters<typeof ContactListClient>[0]["workspaceId"]; scope?: ContactScope | null } = {}) {
  /** Who is signed in: the token the client sends is theirs. */
  const session = { user: "u1" };
  const client = new ContactListClient({
    workerUrl: "https://cache.example.test",
    token: () => jwt(session.user),
    workspaceId: options.workspaceId ?? "ws-1",
    fetch,
    WebSocket: FakeSocket as unknown as typeof WebSocket,
  });
  const shown: { scope: ContactScope | null } = { scope: options.scope === undefined ? SCOPE : options.scope };
  const wrapper = ({ children }: { children: ReactNode }) => (
    <QueryClientProvider client={queryClient}>
      <ContactListProvider client={client} {...(shown.scope ?? {})}>
        <Suspense fallback={null}>{children}</Suspense>
      </ContactListProvider>
    </QueryClientProvider>
  );
  return { client, wrapper, shown, session };
}

const listCalls = (calls: Recorded[]) => calls.map((c) => new URL(c.url).search);
const ids = (result: { data?: { envelope: { data: { contacts: { id: string }[] } } } | undefined }) => result.data?.envelope.data.contacts.map((c) => c.id);

describe("the options factories", () => {
  test("useSuspenseQuery(contactListOptions(...)) suspends, then answers the page", async () => {
    const { fetch, calls } = pages();
    const { client, wrapper } = setup(fetch);
    const { result } = renderHook(() => useSuspenseQuery(contactListOptions(client, SCOPE, BOARD, { filter: "open" })), { wrapper });
    expect(result.current).toBeNull(); // suspended
    await waitFor(() => expect(result.current?.data.envelope.data.contacts.map((c) => c.id)).toEqual(["c1", "c2"]));
    expect(result.current.data.cache.status).toBe("HIT");
    expect(listCalls(calls)).toEqual(["?filter=open"]);
  });

  test("a route loader's ensureQueryData fills the cache: the component renders the page at once, asking nothing", async () => {
    const { fetch, calls } = pages();
    const { client, wrapper } = setup(fetch);
    const loader = async () => {
      const scope = await client.scope();
      expect(scope).toEqual(SCOPE);
      await queryClient.ensureQueryData(contactListOptions(client, scope, BOARD, { pageSize: 2 }));
      await queryClient.prefetchQuery(contactCountsOptions(client, SCOPE));
    };
    const { fetch: countsFetch } = fakeFetch(json(200, { success: true, data: { workspace_id: "ws-1", user_id: "u1", counts: { all: 5 } }, cached_at: "2025-01-27T10:35:00Z", cache_ttl: 300 }));
    (client as unknown as { options: { fetch: typeof globalThis.fetch } }).options.fetch = (input, init) =>
      String(input).includes("/counts") ? countsFetch(input, init) : fetch(input, init);
    await loader();
    expect(calls).toHaveLength(1);
    const { result } = renderHook(() => ({ list: useQuery(contactListOptions(client, SCOPE, BOARD, { pageSize: 2 })), counts: useQuery(contactCountsOptions(client, SCOPE)) }), { wrapper });
    expect(result.current.list.isPending).toBe(false);
    expect(ids(result.current.list)).toEqual(["c1", "c2"]);
    expect(result.current.counts.data?.envelope.data.counts).toEqual({ all: 5 });
    expect(queryClient.getQueryData(contactListOptions(client, SCOPE, BOARD, { pageSize: 2 }).queryKey)?.envelope.data.pagination.page).toBe(1);
    expect(calls).toHaveLength(1);
  });

  test("an infinite list reads page after page to the last", async () => {
    const { fetch, calls } = pages();
    const { client, wrapper } = setup(fetch);
    const { result } = renderHook(() => useInfiniteQuery(contactListInfiniteOptions(client, SCOPE, BOARD, { pageSize: 2 })), { wrapper });
    await waitFor(() => expect(result.current.data?.pages).toHaveLength(1));
    expect(result.current.hasNextPage).toBe(true);
    await act(() => result.current.fetchNextPage());
    await waitFor(() => expect(result.current.data?.pages).toHaveLength(2));
    await act(() => result.current.fetchNextPage());
    await waitFor(() => expect(result.current.data?.pages).toHaveLength(3));
    expect(result.current.data?.pages.flatMap((p) => p.envelope.data.contacts.map((c) => c.id))).toEqual(["c1", "c2", "c3", "c4", "c5"]);
    expect(result.current.data?.pageParams).toEqual([1, 2, 3]);
    expect(result.current.hasNextPage).toBe(false);
    expect(listCalls(calls)).toEqual(["?pageSize=2", "?page=2&pageSize=2", "?page=3&pageSize=2"]);
  });

  test("an infinite list follows the answer's nextCursor when it carries one", async () => {
    const { fetch, calls } = fakeFetch((call) => {
      const envelope = listEnvelope({ pageSize: 2 });
      const cursor = new URL(call.url).searchParams.get("cursor");
      (envelope.data.pagination as { nextCursor?: string | null }).nextCursor = cursor === null ? "c2-cursor" : null;
      return json(200, envelope);
    });
    const { wrapper } = setup(fetch);
    const { result } = renderHook(() => useContactInfiniteList(BOARD, { pageSize: 2 }), { wrapper });
    await waitFor(() => expect(result.current.data?.pages).toHaveLength(1));
    expect(result.current.cacheStatus?.status).toBeNull();
    await act(() => result.current.fetchNextPage());
    await waitFor(() => expect(result.current.data?.pages).toHaveLength(2));
    expect(listCalls(calls)).toEqual(["?pageSize=2", "?pageSize=2&cursor=c2-cursor"]);
    expect(result.current.data?.pageParams).toEqual([1, { cursor: "c2-cursor" }]);
    // No cursor in the second answer: the page number takes over.
    expect(result.current.hasNextPage).toBe(true);
  });
});

describe("retries", () => {
  test("a 403 is not retried, even with TanStack's default of three retries", async () => {
    const { fetch, calls } = fakeFetch(json(403, { success: false, error: { code: "forbidden", message: "not a member" } }));
    const { client, wrapper } = setup(fetch);
    queryClient = new QueryClient(); // TanStack's defaults: retry 3
    const { result } = renderHook(() => useQuery(contactListOptions(client, SCOPE, BOARD)), { wrapper });
    await waitFor(() => expect(result.current.error).not.toBeNull());
    expect(result.current.error).toBeInstanceOf(ContactListError);
    expect(result.current.error).toMatchObject({ kind: "http", status: 403, code: "forbidden" });
    await new Promise((r) => setTimeout(r, 50));
    expect(calls).toHaveLength(1);
  });

  test("a 503 and a network error are retried three times; a 429 after its Retry-After", async () => {
    const { fetch, calls } = fakeFetch(json(503, { success: false, error: { code: "unavailable", message: "down" } }), new TypeError("fetch failed"));
    const { client, wrapper } = setup(fetch);
    const { result } = renderHook(() => useQuery({ ...contactListOptions(client, SCOPE, BOARD), retryDelay: 1 }), { wrapper });
    await waitFor(() => expect(result.current.error).not.toBeNull(), { timeout: 2000 });
    expect(calls).toHaveLength(4);
    expect(result.current.error?.kind).toBe("network");

    const limited = fakeFetch(json(429, { success: false, error: { code: "rate_limited", message: "slow" } }, { "Retry-After": "1" }), json(200, listEnvelope()));
    const second = setup(limited.fetch);
    const started = Date.now();
    const { result: retried } = renderHook(() => useQuery(contactListOptions(second.client, SCOPE, "b2")), { wrapper: second.wrapper });
    await waitFor(() => expect(retried.current.data).toBeDefined(), { timeout: 3000 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(limited.calls).toHaveLength(2);
  });
});

describe("useContactList", () => {
  test("answers TanStack's result with the spec's cacheStatus", async () => {
    const { fetch } = pages();
    const { wrapper } = setup(fetch);
    const { result } = renderHook(() => useContactList(BOARD, { filter: "open" }, { prefetchNext: false }), { wrapper });
    expect(result.current.isPending).toBe(true);
    await waitFor(() => expect(result.current.data).toBeDefined());
    expect(ids(result.current)).toEqual(["c1", "c2"]);
    expect(result.current.cacheStatus).toEqual({ hit: true, status: "HIT", layer: "KV", key: "contacts:w:b:page=1", responseTime: 3, location: "AMS", ageSeconds: 12, source: "worker" });
    expect(result.current.error).toBeNull();
    expect(result.current.status).toBe("success");
  });

  test("keys queries by workspace, user, board and normalized params", async () => {
    const { fetch } = pages();
    const { wrapper } = setup(fetch);
    const { result } = renderHook(() => useContactList(BOARD, { filter: "open", search: " x " }, { prefetchNext: false }), { wrapper });
    await waitFor(() => expect(result.current.data).toBeDefined());
    const key = contactKeys.list(SCOPE, BOARD, { filter: "open", search: "x", page: 1 });
    expect(key).toEqual(["contact-list-cache", "ws-1", "u1", "board", BOARD, "open", { page: 1, pageSize: 50, filter: "open", sortBy: "created_at", sortOrder: "desc", search: "x" }]);
    expect(queryClient.getQueryData(key)).toBeDefined();
  });

  test("passes TanStack's options through (select, staleTime)", async () => {
    const { fetch, calls } = pages();
    const { wrapper } = setup(fetch);
    const { result } = renderHook(() => useContactList(BOARD, {}, { prefetchNext: false, staleTime: 0, select: (r) => ({ ...r, envelope: { ...r.envelope, cached_at: "selected" } }) }), { wrapper });
    await waitFor(() => expect(result.current.data?.envelope.cached_at).toBe("selected"));
    expect(calls).toHaveLength(1);
  });

  test("keeps the previous page on screen while the next loads, then shows it", async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const { fetch } = pages({ gate: (call) => (new URL(call.url).searchParams.get("page") === "2" ? gate : undefined) });
    const { wrapper } = setup(fetch);
    const { result, rerender } = renderHook(({ page }) => useContactList(BOARD, { page, pageSize: 2 }, { prefetchNext: false }), { wrapper, initialProps: { page: 1 } });
    await waitFor(() => expect(result.current.data?.envelope.data.pagination.page).toBe(1));
    rerender({ page: 2 });
    await waitFor(() => expect(result.current.isFetching).toBe(true));
    expect(result.current.isPlaceholderData).toBe(true);
    expect(ids(result.current)).toEqual(["c1", "c2"]);
    act(() => release());
    await waitFor(() => expect(result.current.data?.envelope.data.pagination.page).toBe(2));
    expect(result.current.isPlaceholderData).toBe(false);
    expect(ids(result.current)).toEqual(["c3", "c4"]);
  });

  test("prefetches the next page, and none after the last", async () => {
    const { fetch, calls } = pages();
    const { wrapper } = setup(fetch);
    const { result, rerender } = renderHook(({ page }) => useContactList(BOARD, { page, pageSize: 2 }), { wrapper, initialProps: { page: 2 } });
    await waitFor(() => expect(listCalls(calls)).toEqual(["?page=2&pageSize=2", "?page=3&pageSize=2"]));
    expect(queryClient.getQueryData(contactKeys.list(SCOPE, BOARD, { page: 3, pageSize: 2 }))).toBeDefined();
    rerender({ page: 3 });
    await waitFor(() => expect(result.current.data?.envelope.data.pagination.page).toBe(3));
    await new Promise((r) => setTimeout(r, 30));
    expect(listCalls(calls)).toEqual(["?page=2&pageSize=2", "?page=3&pageSize=2"]);
  });

  test("a STALE answer is asked again until the current page comes", async () => {
    let n = 0;
    const { fetch, calls } = pages({ stale: () => ++n <= 2 });
    const { wrapper } = setup(fetch);
    const { result } = renderHook(() => useContactList(BOARD, {}, { prefetchNext: false }), { wrapper });
    await waitFor(() => expect(result.current.cacheStatus?.status).toBe("HIT"), { timeout: 3000 });
    expect(calls).toHaveLength(3);
    await new Promise((r) => setTimeout(r, 50));
    expect(calls).toHaveLength(3);
  });

  test("without props, the client's async providers are asked: the workspace and the token's user", async () => {
    const { fetch, calls } = pages();
    const { wrapper } = setup(fetch, { scope: null, workspaceId: () => new Promise((r) => setTimeout(() => r("ws-late"), 20)) });
    const { result } = renderHook(() => useContactList(BOARD, {}, { prefetchNext: false }), { wrapper });
    await waitFor(() => expect(result.current.data).toBeDefined());
    expect(calls[0]?.headers["x-workspace-id"]).toBe("ws-late");
    const [, workspace, user] = queryClient.getQueryCache().findAll({ queryKey: contactKeys.all(), type: "active" }).find((q) => q.queryKey.includes("board") && q.state.data)?.queryKey ?? [];
    expect([workspace, user]).toEqual(["ws-late", "u1"]);
  });

  test("a workspace provider that fails is a ContactListError, not endless loading", async () => {
    const { fetch, calls } = pages();
    const { wrapper } = setup(fetch, { scope: null, workspaceId: () => Promise.reject(new Error("no workspace chosen")) });
    const { result } = renderHook(() => ({ list: useContactList(BOARD), counts: useContactCounts() }), { wrapper });
    await waitFor(() => expect(result.current.list.error).not.toBeNull());
    expect(result.current.list.error).toBeInstanceOf(ContactListError);
    expect(result.current.list.error).toMatchObject({ kind: "provider", message: "the workspace provider failed: no workspace chosen" });
    expect(result.current.list).toMatchObject({ isError: true, isLoading: false, isPending: false, status: "error" });
    expect(result.current.counts.error?.kind).toBe("provider");
    expect(calls).toHaveLength(0);
  });
});

describe("switching user or workspace", () => {
  test("another user on the same page sees nothing of the previous one's lists or counts, not even as placeholder", async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    let switched = false;
    const { fetch } = pages({ gate: () => (switched ? gate : undefined) });
    const { wrapper, shown, session } = setup(fetch);
    const { result, rerender } = renderHook(() => ({ list: useContactList(BOARD, { filter: "assigned_to_me" }, { prefetchNext: false }), counts: useContactCounts() }), { wrapper });
    await waitFor(() => expect(ids(result.current.list)).toEqual(["c1", "c2"]));
    session.user = "u2";
    shown.scope = { userId: "u2", workspaceId: "ws-1" };
    switched = true;
    rerender();
    expect(result.current.list.data).toBeUndefined();
    expect(result.current.list.isPlaceholderData).toBe(false);
    expect(result.current.counts.data).toBeUndefined();
    act(() => release());
    await waitFor(() => expect(result.current.list.data).toBeDefined());
    expect(queryClient.getQueryData(contactKeys.list({ userId: "u2", workspaceId: "ws-1" }, BOARD, { filter: "assigned_to_me" }))).toBeDefined();
  });

  test("signed in as another user without props: no request goes out under the previous user's key, and the new user's data shows", async () => {
    const { fetch, calls } = pages({ name: (i, call) => `${call.headers.authorization}/${i}` });
    const { wrapper, session } = setup(fetch, { scope: null });
    const { result } = renderHook(() => useContactList(BOARD, {}, { prefetchNext: false }), { wrapper });
    await waitFor(() => expect(result.current.data?.envelope.data.contacts[0]?.name).toBe(`Bearer ${jwt("u1")}/1`));
    const firstKey = contactKeys.list(SCOPE, BOARD);
    session.user = "u2";
    // Something asks u1's page again (a push, a focus) after the sign-in.
    await act(() => queryClient.invalidateQueries({ queryKey: contactKeys.scope(SCOPE) }));
    await waitFor(() => expect(result.current.data?.envelope.data.contacts[0]?.name).toBe(`Bearer ${jwt("u2")}/1`));
    expect(queryClient.getQueryData(contactKeys.list({ userId: "u2", workspaceId: "ws-1" }, BOARD))).toBeDefined();
    expect(queryClient.getQueryData<{ envelope: { data: { contacts: { name: string }[] } } }>(firstKey)?.envelope.data.contacts[0]?.name).toBe(`Bearer ${jwt("u1")}/1`);
    expect(queryClient.getQueryState(firstKey)?.error).toMatchObject({ kind: "provider", code: "user_changed" });
    expect(calls.map((c) => c.headers.authorization)).toEqual([`Bearer ${jwt("u1")}`, `Bearer ${jwt("u2")}`]);
  });

  test("another workspace shows nothing of the previous one's, and reads with its own X-Workspace-ID", async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const { fetch, calls } = pages({ name: (i, call) => `${call.headers["x-workspace-id"]}/${i}`, gate: (call) => (call.headers["x-workspace-id"] === "ws-2" ? gate : undefined) });
    const { wrapper, shown } = setup(fetch);
    const { result, rerender } = renderHook(() => useContactList(BOARD, {}, { prefetchNext: false }), { wrapper });
    await waitFor(() => expect(result.current.data?.envelope.data.contacts[0]?.name).toBe("ws-1/1"));
    shown.scope = { userId: "u1", workspaceId: "ws-2" };
    rerender();
    expect(result.current.data).toBeUndefined();
    act(() => release());
    await waitFor(() => expect(result.current.data?.envelope.data.contacts[0]?.name).toBe("ws-2/1"));
    expect(calls.at(-1)?.headers["x-workspace-id"]).toBe("ws-2");
    // And back: the first workspace's page, never the second's, is what shows.
    shown.scope = SCOPE;
    rerender();
    expect(result.current.data?.envelope.data.contacts[0]?.name).toBe("ws-1/1");
  });
});

describe("useContactCounts", () => {
  test("reads the workspace's counts, and a live counts invalidation reads them again", async () => {
    let n = 0;
    const { fetch, calls } = fakeFetch(() =>
      json(200, { success: true, data: { workspace_id: "ws-1", user_id: "u", counts: { all: ++n, open: 1 } }, cached_at: "2025-01-27T10:35:00Z", cache_ttl: 300 }, { "X-Cache-Status": "MISS", "X-Cache-Layer": "REDIS" }),
    );
    const { wrapper } = setup(fetch);
    const { result } = renderHook(() => ({ counts: useContactCounts(), live: useLiveInvalidation() }), { wrapper });
    await waitFor(() => expect(result.current.counts.data?.envelope.data.counts).toEqual({ all: 1, open: 1 }));
    expect(new URL(calls[0]?.url ?? "").pathname).toBe("/api/workspaces/ws-1/counts");
    expect(result.current.counts.cacheStatus).toMatchObject({ hit: false, status: "MISS", layer: "REDIS" });
    await waitFor(() => expect(FakeSocket.opened).toHaveLength(1));
    act(() => FakeSocket.last().open());
    act(() => FakeSocket.last().push({ type: "invalidated", workspace_id: "ws-1", boards: [BOARD], scopes: ["open"], generation: "g2" }));
    await new Promise((r) => setTimeout(r, 50));
    expect(calls).toHaveLength(1);
    act(() => FakeSocket.last().push({ type: "invalidated", workspace_id: "ws-1", boards: [], scopes: ["counts"], generation: "g3" }));
    await waitFor(() => expect(result.current.counts.data?.envelope.data.counts.all).toBe(2));
  });
});

describe("useLiveInvalidation", () => {
  async function seedQueries() {
    const { fetch, calls } = pages();
    const { wrapper } = setup(fetch);
    const { result } = renderHook(
      () => ({
        live: useLiveInvalidation(),
        openB1: useContactList(BOARD, { filter: "open" }, { prefetchNext: false }),
        allB1: useContactList(BOARD, {}, { prefetchNext: false }),
        openB2: useContactList("b2", { filter: "open" }, { prefetchNext: false }),
      }),
      { wrapper },
    );
    await waitFor(() => expect([result.current.openB1.data, result.current.allB1.data, result.current.openB2.data].every(Boolean)).toBe(true));
    await waitFor(() => expect(FakeSocket.opened).toHaveLength(1));
    act(() => FakeSocket.last().open());
    await waitFor(() => expect(result.current.live).toBe("live"));
    const counts = contactKeys.counts(SCOPE);
    queryClient.setQueryData(counts, { envelope: {}, cache: {} });
    return { calls, result, counts };
  }

  test("an invalidation refetches exactly the queries of its boards and scopes, once however many pushes named them", async () => {
    const { calls, counts } = await seedQueries();
    const before = calls.length;
    act(() => {
      for (let i = 0; i < 3; i++) FakeSocket.last().push({ type: "invalidated", workspace_id: "ws-1", boards: [BOARD], scopes: ["open"], generation: `19a-0000000${2 + i}` });
    });
    await waitFor(() => expect(calls.length).toBe(before + 1));
    await new Promise((r) => setTimeout(r, 50));
    expect(calls.length).toBe(before + 1);
    expect(new URL(calls.at(-1)?.url ?? "").pathname).toBe(`/api/boards/${BOARD}/contacts`);
    // The refetch asks for the newest pushed generation: no location answers older.
    expect(new URL(calls.at(-1)?.url ?? "").search).toBe("?filter=open&minGeneration=19a-00000004");
    expect(queryClient.getQueryState(contactKeys.list(SCOPE, BOARD, {}))?.isInvalidated).toBe(false);
    expect(queryClient.getQueryState(contactKeys.list(SCOPE, "b2", { filter: "open" }))?.isInvalidated).toBe(false);
    expect(queryClient.getQueryState(counts)?.isInvalidated).toBe(false);
    act(() => FakeSocket.last().push({ type: "invalidated", workspace_id: "ws-1", boards: [], scopes: ["counts"], generation: "g9" }));
    await waitFor(() => expect(queryClient.getQueryState(counts)?.isInvalidated).toBe(true));
  });

  test("after a push, an answer older than the pushed generation is asked again like STALE", async () => {
    let behind = 1;
    const { fetch, calls } = fakeFetch((call) => {
      const asked = new URL(call.url).searchParams.get("minGeneration");
      // The first answer to the refetch is older than asked (the worker could not confirm it).
      const generation = asked === null ? "199-00000001" : behind-- > 0 ? "199-00000001" : asked;
      return json(200, listEnvelope({ filter: "open", pageSize: 2, total: 5 }), { ...hitHeaders, "X-Cache-Generation": generation });
    });
    const { wrapper } = setup(fetch);
    const { result } = renderHook(() => ({ live: useLiveInvalidation(), list: useContactList(BOARD, { filter: "open" }, { prefetchNext: false }) }), { wrapper });
    await waitFor(() => expect(result.current.list.data).toBeDefined());
    await waitFor(() => expect(FakeSocket.opened).toHaveLength(1));
    act(() => FakeSocket.last().open());
    await waitFor(() => expect(result.current.live).toBe("live"));
    act(() => FakeSocket.last().push({ type: "invalidated", workspace_id: "ws-1", boards: [BOARD], scopes: ["open"], generation: "19a-00000002" }));
    await waitFor(() => expect(result.current.list.data?.cache).toMatchObject({ generation: "19a-00000002", behind: false }), { timeout: 3000 });
    const asked = calls.slice(1).map((call) => new URL(call.url).searchParams.get("minGeneration"));
    expect(asked).toEqual(["19a-00000002", "19a-00000002"]);
    await new Promise((r) => setTimeout(r, 50));
    expect(calls).toHaveLength(3);
  });

  test("after a reconnection every active query of the scope is read again", async () => {
    const { calls, result } = await seedQueries();
    const before = calls.length;
    act(() => FakeSocket.last().drop());
    await waitFor(() => expect(result.current.live).toBe("offline"));
    await waitFor(() => expect(FakeSocket.opened).toHaveLength(2), { timeout: 2000 });
    expect(calls.length).toBe(before);
    act(() => FakeSocket.last().open());
    await waitFor(() => expect(calls.length).toBe(before + 3));
    expect(result.current.live).toBe("live");
  });

  test("unmounting closes the channel", async () => {
    const { fetch } = pages();
    const { wrapper } = setup(fetch);
    const { result, unmount } = renderHook(() => useLiveInvalidation(), { wrapper });
    await waitFor(() => expect(result.current).toBe("connecting"));
    await waitFor(() => expect(FakeSocket.opened).toHaveLength(1));
    unmount();
    expect(FakeSocket.last().closedWith?.code).toBe(1000);
  });
});
