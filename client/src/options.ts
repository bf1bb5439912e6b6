// TanStack Query options factories: one place says how each query is keyed, read, retried and
// kept fresh, and the same object serves `useQuery`, `useSuspenseQuery`, `useInfiniteQuery`,
// `prefetchQuery`, `ensureQueryData` and a server's prefetch for hydration. No "use client": a
// server component or a route loader may call them.

import { infiniteQueryOptions, queryOptions, type Query, type QueryKey } from "@tanstack/react-query";
import type { CachedResult, ContactListClient, ContactListParams, ContactListResult, ContactScope, CountsResult } from "./client.js";
import { ContactListError } from "./errors.js";
import { contactKeys, normalizeParams } from "./keys.js";

/** Attempts after the first for a retryable failure. */
export const MAX_RETRIES = 3;
/** The longest wait between attempts, whatever `Retry-After` says. */
const MAX_RETRY_DELAY_MS = 30_000;

/**
 * Whether TanStack Query should ask again: only failures that may pass (no answer, a 5xx, 408 and
 * 429), at most `MAX_RETRIES` times. A 400, 401, 403 or 404 is final at once.
 */
export function retryContactQuery(failureCount: number, error: unknown): boolean {
  return failureCount < MAX_RETRIES && error instanceof ContactListError && error.retryable;
}

/** The wait before the next attempt: `Retry-After` when the answer sent one, else 1 s doubling, jittered. */
export function contactRetryDelay(failureCount: number, error: unknown): number {
  if (error instanceof ContactListError && error.retryAfterMs !== undefined) return Math.min(error.retryAfterMs, MAX_RETRY_DELAY_MS);
  return Math.min(1000 * 2 ** failureCount, MAX_RETRY_DELAY_MS) * (0.5 + Math.random() / 2);
}

/** Consecutive `STALE` answers per query, for the backoff of `STALE_RETRY_MS`. */
const staleStreaks = new WeakMap<object, { since: number }>();
/** While an answer is `STALE`, ask again after this many ms, doubling per `STALE` in a row up to 30 s. */
const STALE_RETRY_MS = 250;

/**
 * When to read a query again by itself: soon while the worker answers `STALE` (it served the
 * superseded page right after an invalidation, or a kept copy while its sources fail) or an
 * answer older than the generation asked for (`behind`), and every few seconds while the live
 * channel is not up (pushes may be missed). Never while it is live.
 */
function refetchInterval<T extends CachedResult<unknown>>(client: ContactListClient, scope: ContactScope, query: Query<T, ContactListError, T, QueryKey>): number | false {
  const data = query.state.data;
  if (data?.cache.status === "STALE" || data?.cache.behind) {
    let streak = staleStreaks.get(query);
    if (!streak) staleStreaks.set(query, (streak = { since: query.state.dataUpdateCount }));
    return Math.min(STALE_RETRY_MS * 2 ** (query.state.dataUpdateCount - streak.since), 30_000);
  }
  staleStreaks.delete(query);
  return client.pollInterval(scope);
}

/**
 * One page of a board's contacts for `scope` (from `client.scope()` or `useContactScope()`).
 * Fresh as long as the live channel says (`client.staleTime`), retried as `retryContactQuery` says.
 */
export function contactListOptions(client: ContactListClient, scope: ContactScope, boardId: string, params: ContactListParams = {}) {
  const normalized = normalizeParams(params);
  return queryOptions<ContactListResult, ContactListError, ContactListResult, QueryKey>({
    queryKey: contactKeys.list(scope, boardId, normalized),
    queryFn: ({ signal }) => client.getContactList(boardId, normalized, { signal, ...scope }),
    staleTime: () => client.staleTime(scope),
    refetchInterval: (query) => refetchInterval(client, scope, query),
    retry: retryContactQuery,
    retryDelay: contactRetryDelay,
  });
}

/** Where the next page of an infinite list starts: a page number, or the API's cursor. */
export type ContactPageParam = number | { cursor: string };

/** The `nextCursor` an answer carries (in `data.pagination` or `data`), if it does. */
function nextCursor(result: ContactListResult): string | null {
  const data = result.envelope.data as { nextCursor?: unknown; pagination: { nextCursor?: unknown } };
  const cursor = data.pagination.nextCursor ?? data.nextCursor;
  return typeof cursor === "string" && cursor !== "" ? cursor : null;
}

/**
 * A board's contacts page after page, for `useInfiniteQuery` (and `useSuspenseInfiniteQuery`,
 * `prefetchInfiniteQuery`). The next page is the answer's `nextCursor` (as `cursor=`) when it
 * carries one, else the next page number until the last.
 */
export function contactListInfiniteOptions(client: ContactListClient, scope: ContactScope, boardId: string, params: ContactListParams = {}) {
  const { page: firstPage, ...rest } = normalizeParams(params);
  return infiniteQueryOptions<ContactListResult, ContactListError, { pages: ContactListResult[]; pageParams: ContactPageParam[] }, QueryKey, ContactPageParam>({
    queryKey: contactKeys.infinite(scope, boardId, rest),
    queryFn: ({ signal, pageParam }) => {
      const at = typeof pageParam === "number" ? { page: pageParam } : { cursor: pageParam.cursor };
      return client.getContactList(boardId, { ...rest, ...at }, { signal, ...scope });
    },
    initialPageParam: firstPage,
    getNextPageParam: (last) => {
      const cursor = nextCursor(last);
      if (cursor !== null) return { cursor };
      const { page, totalPages } = last.envelope.data.pagination;
      return page < totalPages ? page + 1 : undefined;
    },
    staleTime: () => client.staleTime(scope),
    refetchInterval: () => client.pollInterval(scope),
    retry: retryContactQuery,
    retryDelay: contactRetryDelay,
  });
}

/** The caller's per-filter counts in the workspace (sidebar badges). */
export function contactCountsOptions(client: ContactListClient, scope: ContactScope) {
  return queryOptions<CountsResult, ContactListError, CountsResult, QueryKey>({
    queryKey: contactKeys.counts(scope),
    queryFn: ({ signal }) => client.getCounts({ signal, ...scope }),
    staleTime: () => client.staleTime(scope),
    refetchInterval: (query) => refetchInterval(client, scope, query),
    retry: retryContactQuery,
    retryDelay: contactRetryDelay,
  });
}
