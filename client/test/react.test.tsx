// @vitest-environment happy-dom
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { act, renderHook, waitFor } from "@testing-library/react";
import type { ReactNode } from "react";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { ContactListClient, contactKeys } from "../src/index.js";
import { ContactListProvider, useContactCounts, useContactList, useLiveInvalidation } from "../src/react.js";
import { FakeSocket, fakeFetch, hitHeaders, json, listEnvelope, type Recorded } from "./support/fakes.js";

const BOARD = "b1";

/** A fetch answering list pages from their URL (5 contacts, 2 per page), STALE while `stale` says so. */
function pages(options: { stale?: (call: Recorded) => boolean; name?: (i: number) => string } = {}) {
  return fakeFetch((call) => {
    const url = new URL(call.url);
    const page = Number(url.searchParams.get("page") ?? "1");
    const filter = url.searchParams.get("filter") ?? "all";
    const status = options.stale?.(call) ? "STALE" : "HIT";
    return json(200, listEnvelope({ page, filter, pageSize: 2, total: 5, ...(options.name ? { name: options.name } : {}) }), { ...hitHeaders, "X-Cache-Status": status });
  });
}

let queryClient: QueryClient;
beforeEach(() => {
  queryClient = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  FakeSocket.opened = [];
});
afterEach(() => queryClient.clear());

function setup(fetch: typeof globalThis.fetch, workspaceId: ConstructorParameters<typeof ContactListClient>[0]["workspaceId"] = "ws-1") {
  const client = new ContactListClient({ workerUrl: "https://cache.example.test", token: "tok", workspaceId, fetch, WebSocket: FakeSocket as unknown as typeof WebSocket });
  const wrapper = ({ children }: { children: ReactNode }) => (
    <QueryClientProvider client={queryClient}>
      <ContactListProvider client={client}>{children}</ContactListProvider>
    </QueryClientProvider>
  );
  return { client, wrapper };
}

const listCalls = (calls: Recorded[]) => calls.map((c) => new URL(c.url).search);

describe("useContactList", () => {
  test("reads the page and answers the data with the spec's cacheStatus", async () => {
    const { fetch } = pages();
    const { wrapper } = setup(fetch);
    const { result } = renderHook(() => useContactList(BOARD, { filter: "open" }, { prefetchNext: false }), { wrapper });
    expect(result.current.isLoading).toBe(true);
    await waitFor(() => expect(result.current.data).toBeDefined());
    expect(result.current.data?.contacts.map((c) => c.id)).toEqual(["c1", "c2"]);
    expect(result.current.cacheStatus).toEqual({ hit: true, status: "HIT", layer: "KV", key: "contacts:w:b:page=1", responseTime: 3, location: "AMS", ageSeconds: 12, source: "worker" });
    expect(result.current.error).toBeNull();
  });

  test("keys queries by workspace, board and normalized params", async () => {
    const { fetch } = pages();
    const { wrapper } = setup(fetch);
    const { result } = renderHook(() => useContactList(BOARD, { filter: "open", search: " x " }, { prefetchNext: false }), { wrapper });
    await waitFor(() => expect(result.current.data).toBeDefined());
    const key = contactKeys.list("ws-1", BOARD, { filter: "open", search: "x", page: 1 });
    expect(key).toEqual(["contact-list-cache", "ws-1", "board", BOARD, "open", { page: 1, pageSize: 50, filter: "open", sortBy: "created_at", sortOrder: "desc", search: "x" }]);
    expect(queryClient.getQueryData(key)).toBeDefined();
  });

  test("keeps the previous page on screen while the next loads, then shows it", async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const { fetch } = fakeFetch(async (call) => {
      const page = Number(new URL(call.url).searchParams.get("page") ?? "1");
      if (page === 2) await gate;
      return json(200, listEnvelope({ page, pageSize: 2 }));
    });
    const { wrapper } = setup(fetch);
    const { result, rerender } = renderHook(({ page }) => useContactList(BOARD, { page, pageSize: 2 }, { prefetchNext: false }), { wrapper, initialProps: { page: 1 } });
    await waitFor(() => expect(result.current.data?.pagination.page).toBe(1));
    rerender({ page: 2 });
    await waitFor(() => expect(result.current.isFetching).toBe(true));
    expect(result.current.isPlaceholderData).toBe(true);
    expect(result.current.data?.contacts.map((c) => c.id)).toEqual(["c1", "c2"]);
    act(() => release());
    await waitFor(() => expect(result.current.data?.pagination.page).toBe(2));
    expect(result.current.isPlaceholderData).toBe(false);
    expect(result.current.data?.contacts.map((c) => c.id)).toEqual(["c3", "c4"]);
  });

  test("prefetches the next page, and none after the last", async () => {
    const { fetch, calls } = pages();
    const { wrapper } = setup(fetch);
    const { result, rerender } = renderHook(({ page }) => useContactList(BOARD, { page, pageSize: 2 }), { wrapper, initialProps: { page: 2 } });
    await waitFor(() => expect(listCalls(calls)).toEqual(["?page=2&pageSize=2", "?page=3&pageSize=2"]));
    expect(queryClient.getQueryData(contactKeys.list("ws-1", BOARD, { page: 3, pageSize: 2 }))).toBeDefined();
    rerender({ page: 3 });
    await waitFor(() => expect(result.current.data?.pagination.page).toBe(3));
    await new Promise((r) => setTimeout(r, 30));
    expect(listCalls(calls)).toEqual(["?page=2&pageSize=2", "?page=3&pageSize=2"]);
  });

  test("refetch asks the worker again", async () => {
    const { fetch, calls } = pages();
    const { wrapper } = setup(fetch);
    const { result } = renderHook(() => useContactList(BOARD, {}, { prefetchNext: false }), { wrapper });
    await waitFor(() => expect(result.current.data).toBeDefined());
    await act(() => result.current.refetch());
    expect(calls).toHaveLength(2);
  });

  test("a STALE answer is asked again until the current page comes", async () => {
    let n = 0;
    const { fetch, calls } = pages({ stale: () => ++n <= 2 });
    const { wrapper } = setup(fetch);
    const { result } = renderHook(() => useContactList(BOARD, {}, { prefetchNext: false, staleRetryMs: 10 }), { wrapper });
    await waitFor(() => expect(result.current.cacheStatus?.status).toBe("HIT"), { timeout: 2000 });
    expect(calls).toHaveLength(3);
    await new Promise((r) => setTimeout(r, 50));
    expect(calls).toHaveLength(3);
  });

  test("an async workspace provider is awaited before the list is read", async () => {
    const { fetch, calls } = pages();
    const { wrapper } = setup(fetch, () => new Promise((r) => setTimeout(() => r("ws-late"), 20)));
    const { result } = renderHook(() => useContactList(BOARD, {}, { prefetchNext: false }), { wrapper });
    await waitFor(() => expect(result.current.data).toBeDefined());
    expect(calls[0]?.headers["x-workspace-id"]).toBe("ws-late");
    expect(queryClient.getQueryData(contactKeys.list("ws-late", BOARD))).toBeDefined();
  });

  test("an API error is the typed error", async () => {
    const { fetch } = fakeFetch(json(403, { success: false, error: { code: "forbidden", message: "not a member" } }));
    const { wrapper } = setup(fetch);
    const { result } = renderHook(() => useContactList(BOARD), { wrapper });
    await waitFor(() => expect(result.current.error).not.toBeNull());
    expect(result.current.error).toMatchObject({ kind: "http", status: 403, code: "forbidden" });
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
    await waitFor(() => expect(result.current.counts.counts).toEqual({ all: 1, open: 1 }));
    expect(new URL(calls[0]?.url ?? "").pathname).toBe("/api/workspaces/ws-1/counts");
    expect(result.current.counts.cacheStatus).toMatchObject({ hit: false, status: "MISS", layer: "REDIS" });
    await waitFor(() => expect(FakeSocket.opened).toHaveLength(1));
    act(() => FakeSocket.last().open());
    act(() => FakeSocket.last().push({ type: "invalidated", workspace_id: "ws-1", boards: [BOARD], scopes: ["open"], generation: "g2" }));
    await new Promise((r) => setTimeout(r, 30));
    expect(calls).toHaveLength(1);
    act(() => FakeSocket.last().push({ type: "invalidated", workspace_id: "ws-1", boards: [], scopes: ["counts"], generation: "g3" }));
    await waitFor(() => expect(result.current.counts.counts?.all).toBe(2));
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
    const counts = contactKeys.counts("ws-1");
    queryClient.setQueryData(counts, { envelope: {}, cache: {} });
    return { calls, result, counts };
  }

  test("an invalidation refetches exactly the queries of its boards and scopes", async () => {
    const { calls, counts } = await seedQueries();
    const before = calls.length;
    act(() => FakeSocket.last().push({ type: "invalidated", workspace_id: "ws-1", boards: [BOARD], scopes: ["open"], generation: "g2" }));
    await waitFor(() => expect(calls.length).toBe(before + 1));
    expect(new URL(calls.at(-1)?.url ?? "").pathname).toBe(`/api/boards/${BOARD}/contacts`);
    expect(new URL(calls.at(-1)?.url ?? "").search).toBe("?filter=open");
    expect(queryClient.getQueryState(contactKeys.list("ws-1", BOARD, {}))?.isInvalidated).toBe(false);
    expect(queryClient.getQueryState(contactKeys.list("ws-1", "b2", { filter: "open" }))?.isInvalidated).toBe(false);
    expect(queryClient.getQueryState(counts)?.isInvalidated).toBe(false);
    act(() => FakeSocket.last().push({ type: "invalidated", workspace_id: "ws-1", boards: [], scopes: ["counts"], generation: "g3" }));
    await waitFor(() => expect(queryClient.getQueryState(counts)?.isInvalidated).toBe(true));
  });

  test("after a reconnection every active query of the workspace is read again", async () => {
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
    const { result, unmount } = renderHook(() => useLiveInvalidation({ workspaceId: "ws-1" }), { wrapper });
    await waitFor(() => expect(result.current).toBe("connecting"));
    await waitFor(() => expect(FakeSocket.opened).toHaveLength(1));
    unmount();
    expect(FakeSocket.last().closedWith?.code).toBe(1000);
  });
});
