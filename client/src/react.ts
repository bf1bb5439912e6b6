// React bindings on TanStack Query v5: `useContactList` reads a page (keeping the previous page
// on screen while the next loads, prefetching the one after), `useContactCounts` the per-filter
// counts, `useLiveInvalidation` keeps every query of the workspace current from the live channel. Both need a `ContactListProvider` inside
// a `QueryClientProvider`.

import { keepPreviousData, useQuery, useQueryClient, type Query, type QueryClient } from "@tanstack/react-query";
import { createContext, createElement, useContext, useEffect, useState, type ReactNode } from "react";
import type { CachedResult, CacheInfo, CacheLayer, CacheStatus, ContactListClient, ContactListParams, ContactListResult, CountsResult } from "./client.js";
import type { ContactListData, ContactListResponse, Filter } from "./envelope.js";
import type { ContactListError } from "./errors.js";
import { contactKeys, normalizeParams } from "./keys.js";
import type { LiveInvalidation, LiveStatus } from "./live.js";

const ClientContext = createContext<ContactListClient | null>(null);

/** Makes `client` available to the hooks below it. */
export function ContactListProvider({ client, children }: { client: ContactListClient; children?: ReactNode }) {
  return createElement(ClientContext.Provider, { value: client }, children);
}

function useClient(): ContactListClient {
  const client = useContext(ClientContext);
  if (!client) throw new Error("useContactList needs a <ContactListProvider client={...}> above it");
  return client;
}

/** The workspace: the one given, else the client's provider's (asked once, it may be async). */
function useWorkspaceId(client: ContactListClient, given: string | undefined): string | undefined {
  const asked = useQuery({
    queryKey: [...contactKeys.all(), "current-workspace"],
    queryFn: () => client.workspaceId(),
    staleTime: Infinity,
    enabled: given === undefined,
  });
  return given ?? asked.data;
}

export interface UseContactListOptions {
  /** The workspace, instead of the client's provider's. */
  workspaceId?: string;
  enabled?: boolean;
  /** Prefetch the next page once this one is shown (default true). */
  prefetchNext?: boolean;
  /** How long an answer counts as fresh, in ms (default 30000; live updates invalidate sooner). */
  staleTime?: number;
  /**
   * While the answer is `STALE` (the worker served the superseded page right after an
   * invalidation, or a kept copy while its sources fail), ask again after this many ms, doubling
   * per `STALE` answer in a row up to 30 s (default 250).
   */
  staleRetryMs?: number;
}

/** The spec's `cacheStatus`, with everything the worker said about the answer. */
export interface ContactListCacheStatus {
  hit: boolean;
  status: CacheStatus | null;
  layer: CacheLayer | null;
  key: string | null;
  /** The worker's time to answer, in ms. */
  responseTime: number | null;
  location: string | null;
  ageSeconds: number | null;
  source: CacheInfo["source"];
}

export interface UseContactListResult {
  data: ContactListData | undefined;
  envelope: ContactListResponse | undefined;
  cacheStatus: ContactListCacheStatus | null;
  /** No answer yet for any params (the first load). */
  isLoading: boolean;
  isFetching: boolean;
  /** The data shown is the previous params' while these load. */
  isPlaceholderData: boolean;
  error: ContactListError | null;
  refetch: () => Promise<unknown>;
}

function cacheStatus(cache: CacheInfo | undefined): ContactListCacheStatus | null {
  if (!cache) return null;
  const { status, layer, key, responseTimeMs, location, ageSeconds, source } = cache;
  return { hit: status === "HIT", status, layer, key, responseTime: responseTimeMs, location, ageSeconds, source };
}

/** Consecutive `STALE` answers per query, for the backoff of `staleRetryMs`. */
const staleStreaks = new WeakMap<object, { since: number }>();

function staleRetry<T extends CachedResult<unknown>>(query: Query<T, ContactListError>, baseMs: number): number | false {
  const data = query.state.data;
  if (data?.cache.status !== "STALE") {
    staleStreaks.delete(query);
    return false;
  }
  let streak = staleStreaks.get(query);
  if (!streak) staleStreaks.set(query, (streak = { since: query.state.dataUpdateCount }));
  return Math.min(baseMs * 2 ** (query.state.dataUpdateCount - streak.since), 30_000);
}

/** One page of a board's contacts, kept current by TanStack Query. */
export function useContactList(boardId: string, params: ContactListParams = {}, options: UseContactListOptions = {}): UseContactListResult {
  const client = useClient();
  const queryClient = useQueryClient();
  const workspaceId = useWorkspaceId(client, options.workspaceId);
  const normalized = normalizeParams(params);
  const staleTime = options.staleTime ?? 30_000;
  const staleRetryMs = options.staleRetryMs ?? 250;
  const enabled = options.enabled ?? true;
  const query = useQuery<ContactListResult, ContactListError>({
    queryKey: contactKeys.list(workspaceId ?? "", boardId, normalized),
    queryFn: ({ signal }) => client.getContactList(boardId, normalized, { signal, workspaceId: workspaceId as string }),
    enabled: workspaceId !== undefined && boardId !== "" && enabled,
    placeholderData: keepPreviousData,
    staleTime,
    refetchInterval: (q) => staleRetry(q, staleRetryMs),
  });

  const pagination = query.data?.envelope.data.pagination;
  const shown = !query.isPlaceholderData && pagination !== undefined;
  const nextPage = shown && pagination.page < pagination.totalPages && pagination.page === normalized.page ? pagination.page + 1 : null;
  const prefetchNext = options.prefetchNext ?? true;
  const paramsKey = JSON.stringify(normalized);
  useEffect(() => {
    if (!prefetchNext || nextPage === null || workspaceId === undefined) return;
    const next = { ...normalized, page: nextPage };
    void queryClient.prefetchQuery({
      queryKey: contactKeys.list(workspaceId, boardId, next),
      queryFn: ({ signal }) => client.getContactList(boardId, next, { signal, workspaceId }),
      staleTime,
    });
    // `normalized` is a new object per render; its content is `paramsKey`.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [prefetchNext, nextPage, workspaceId, boardId, paramsKey, queryClient, client, staleTime]);

  return {
    data: query.data?.envelope.data,
    envelope: query.data?.envelope,
    cacheStatus: cacheStatus(query.data?.cache),
    // Still loading while an async workspace provider answers.
    isLoading: query.isLoading || (enabled && boardId !== "" && workspaceId === undefined),
    isFetching: query.isFetching,
    isPlaceholderData: query.isPlaceholderData,
    error: query.error,
    refetch: () => query.refetch(),
  };
}

export interface UseContactCountsResult {
  /** One number per filter name. */
  counts: Record<string, number> | undefined;
  cacheStatus: ContactListCacheStatus | null;
  isLoading: boolean;
  isFetching: boolean;
  error: ContactListError | null;
  refetch: () => Promise<unknown>;
}

/** The caller's per-filter counts in the workspace (sidebar badges), kept current like lists. */
export function useContactCounts(options: Omit<UseContactListOptions, "prefetchNext"> = {}): UseContactCountsResult {
  const client = useClient();
  const workspaceId = useWorkspaceId(client, options.workspaceId);
  const enabled = options.enabled ?? true;
  const staleRetryMs = options.staleRetryMs ?? 250;
  const query = useQuery<CountsResult, ContactListError>({
    queryKey: contactKeys.counts(workspaceId ?? ""),
    queryFn: ({ signal }) => client.getCounts({ signal, workspaceId: workspaceId as string }),
    enabled: workspaceId !== undefined && enabled,
    staleTime: options.staleTime ?? 30_000,
    refetchInterval: (q) => staleRetry(q, staleRetryMs),
  });
  return {
    counts: query.data?.envelope.data.counts,
    cacheStatus: cacheStatus(query.data?.cache),
    isLoading: query.isLoading || (enabled && workspaceId === undefined),
    isFetching: query.isFetching,
    error: query.error,
    refetch: () => query.refetch(),
  };
}

/** Invalidates exactly the queries an invalidation of the workspace reaches. */
export function invalidateLive(queryClient: QueryClient, workspaceId: string, message: LiveInvalidation): Promise<void> {
  const keys: ReadonlyArray<readonly unknown[]> = message.scopes.flatMap((scope): ReadonlyArray<readonly unknown[]> =>
    scope === "counts" ? [contactKeys.counts(workspaceId)] : message.boards.map((board) => contactKeys.scope(workspaceId, board, scope as Filter)),
  );
  return Promise.all(keys.map((queryKey) => queryClient.invalidateQueries({ queryKey }))).then(() => undefined);
}

export interface UseLiveInvalidationOptions {
  workspaceId?: string;
  enabled?: boolean;
}

/**
 * Subscribes to the workspace's live channel while mounted: every invalidation the worker
 * applies (API, webhook, change capture) invalidates exactly the affected queries, and after a
 * reconnection every active query of the workspace is fetched again (pushes may have been
 * missed). Answers the channel's status for a live indicator.
 */
export function useLiveInvalidation(options: UseLiveInvalidationOptions = {}): LiveStatus {
  const client = useClient();
  const queryClient = useQueryClient();
  const workspaceId = useWorkspaceId(client, options.workspaceId);
  const enabled = options.enabled ?? true;
  const [status, setStatus] = useState<LiveStatus>("offline");
  useEffect(() => {
    if (!enabled || workspaceId === undefined) return;
    return client.subscribe(workspaceId, {
      onStatus: setStatus,
      onInvalidate: (message) => void invalidateLive(queryClient, workspaceId, message),
      onConnect: ({ reconnected }) => {
        if (reconnected) void queryClient.invalidateQueries({ queryKey: contactKeys.workspace(workspaceId) });
      },
    });
  }, [client, queryClient, workspaceId, enabled]);
  return status;
}
