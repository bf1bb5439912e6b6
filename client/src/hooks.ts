"use client";
// React hooks on TanStack Query v5, thin over the options factories (options.ts): each takes
// TanStack's own options and answers TanStack's own result, plus `cacheStatus` (what the worker
// said about the answer). `useContactScope` says whose data to show, `useLiveInvalidation` keeps
// every query of the scope current from the live channel. They need a `ContactListProvider`
// inside a `QueryClientProvider`.

import {
  useInfiniteQuery,
  useQuery,
  useQueryClient,
  type InfiniteData,
  type QueryClient,
  type QueryKey,
  type UseInfiniteQueryOptions,
  type UseInfiniteQueryResult,
  type UseQueryOptions,
  type UseQueryResult,
} from "@tanstack/react-query";
import { createContext, createElement, useContext, useEffect, useMemo, useState, useSyncExternalStore, type ReactNode } from "react";
import type { CacheInfo, CacheLayer, CacheStatus, ContactListClient, ContactListParams, ContactListResult, ContactScope, CountsResult } from "./client.js";
import type { Filter } from "./envelope.js";
import { ContactListError, providerError } from "./errors.js";
import { contactKeys, normalizeParams } from "./keys.js";
import type { LiveInvalidation, LiveStatus } from "./live.js";
import { contactCountsOptions, contactListInfiniteOptions, contactListOptions, type ContactPageParam } from "./options.js";

interface ProviderValue {
  client: ContactListClient;
  scope: Partial<ContactScope>;
}

const ClientContext = createContext<ProviderValue | null>(null);

export interface ContactListProviderProps {
  client: ContactListClient;
  /**
   * The signed-in user, as your auth state holds it. Pass it (and `workspaceId`) as state: a
   * change shows the new user's data at once, never the previous one's. Unset: the client's
   * providers are asked (`client.scope()`).
   */
  userId?: string;
  /** The workspace shown. Unset: the client's workspace provider is asked. */
  workspaceId?: string;
  children?: ReactNode;
}

/** Makes `client` (and the user and workspace shown) available to the hooks below it. */
export function ContactListProvider({ client, userId, workspaceId, children }: ContactListProviderProps) {
  const value = useMemo<ProviderValue>(
    () => ({ client, scope: { ...(userId === undefined ? {} : { userId }), ...(workspaceId === undefined ? {} : { workspaceId }) } }),
    [client, userId, workspaceId],
  );
  return createElement(ClientContext.Provider, { value }, children);
}

function useProvided(): ProviderValue {
  const value = useContext(ClientContext);
  if (!value) throw new Error("the contact-list-cache hooks need a <ContactListProvider client={...}> above them");
  return value;
}

/** The client of the nearest `ContactListProvider`. */
export function useContactListClient(): ContactListClient {
  return useProvided().client;
}

/** Whose data to show, and whether asking the providers for it failed. */
export interface ContactScopeState {
  scope: ContactScope | undefined;
  /** A provider failed: the hooks answer this error (no endless loading). */
  error: ContactListError | null;
}

/** Distinguishes clients in the scope query's key. */
const clientIds = new WeakMap<ContactListClient, number>();
let nextClientId = 0;
function clientId(client: ContactListClient): number {
  let id = clientIds.get(client);
  if (id === undefined) clientIds.set(client, (id = ++nextClientId));
  return id;
}

/**
 * The user and workspace of the provider's props; what is not given there is asked of the
 * client's providers, again on every mount and window focus (a workspace kept in `localStorage`
 * switches when it changes there), never cached across.
 */
export function useContactScope(): ContactScopeState {
  const { client, scope } = useProvided();
  const given = scope.userId !== undefined && scope.workspaceId !== undefined ? (scope as ContactScope) : undefined;
  const asked = useQuery<ContactScope, ContactListError>({
    queryKey: [...contactKeys.all(), "scope", clientId(client), scope.userId ?? null, scope.workspaceId ?? null],
    queryFn: async () => {
      try {
        const [userId, workspaceId] = await Promise.all([scope.userId ?? client.userId(), scope.workspaceId ?? client.workspaceId()]);
        return { userId, workspaceId };
      } catch (cause) {
        throw providerError("scope", cause);
      }
    },
    enabled: given === undefined,
    staleTime: 0,
    gcTime: 0,
    retry: false,
  });
  // A request found another user signed in: ask the providers again at once.
  const refetch = asked.refetch;
  useEffect(() => (given ? undefined : client.onUserChange(() => void refetch())), [client, given, refetch]);
  if (given) return { scope: given, error: null };
  // Data of a previous answer stays usable while the providers are asked again.
  return { scope: asked.data, error: asked.data ? null : asked.error };
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

function cacheStatus(cache: CacheInfo | undefined): ContactListCacheStatus | null {
  if (!cache) return null;
  const { status, layer, key, responseTimeMs, location, ageSeconds, source } = cache;
  return { hit: status === "HIT", status, layer, key, responseTime: responseTimeMs, location, ageSeconds, source };
}

/** TanStack's options a hook passes through (the factory sets key and query function). */
export type ContactQueryOptions<T> = Omit<UseQueryOptions<T, ContactListError, T, QueryKey>, "queryKey" | "queryFn">;

export type UseContactListResult = UseQueryResult<ContactListResult, ContactListError> & { cacheStatus: ContactListCacheStatus | null };
export type UseContactCountsResult = UseQueryResult<CountsResult, ContactListError> & { cacheStatus: ContactListCacheStatus | null };
export type UseContactInfiniteListResult = UseInfiniteQueryResult<InfiniteData<ContactListResult, ContactPageParam>, ContactListError> & {
  /** Of the last page read. */
  cacheStatus: ContactListCacheStatus | null;
};

/** The scope's error in place of the query's, when asking the providers failed. */
function withScopeError<R extends { error: unknown }>(result: R, error: ContactListError | null): R {
  if (!error) return result;
  return { ...result, error, isError: true, isPending: false, isLoading: false, isLoadingError: true, status: "error", fetchStatus: "idle" };
}

/** A placeholder scope while the real one is asked for (its queries never run). */
const PENDING: ContactScope = { userId: "", workspaceId: "" };

/** Re-renders when the scope's live channel changes state, so freshness follows it. */
function useLiveStatusOf(client: ContactListClient, scope: ContactScope | undefined): LiveStatus | null {
  return useSyncExternalStore(
    (listener) => client.onLiveStatus(listener),
    () => (scope ? client.liveStatus(scope) : null),
    () => null,
  );
}

export interface UseContactListOptions extends ContactQueryOptions<ContactListResult> {
  /** Prefetch the next page once this one is shown (default true). */
  prefetchNext?: boolean;
}

/**
 * One page of a board's contacts: `useQuery(contactListOptions(...))` with the previous page of
 * the same user, workspace and board kept on screen while the next loads, and the page after
 * prefetched.
 */
export function useContactList(boardId: string, params: ContactListParams = {}, options: UseContactListOptions = {}): UseContactListResult {
  const client = useContactListClient();
  const queryClient = useQueryClient();
  const { scope, error: scopeError } = useContactScope();
  useLiveStatusOf(client, scope);
  const { prefetchNext = true, enabled = true, ...rest } = options;
  const normalized = normalizeParams(params);
  const factory = contactListOptions(client, scope ?? PENDING, boardId, normalized);
  const boardKey = contactKeys.board(scope ?? PENDING, boardId);
  const merged: UseQueryOptions<ContactListResult, ContactListError, ContactListResult, QueryKey> = {
    // The previous page stays on screen only when it is the same user's, workspace's and board's.
    placeholderData: (previous, previousQuery) => (previousQuery && boardKey.every((part, i) => previousQuery.queryKey[i] === part) ? previous : undefined),
    ...factory,
    ...rest,
    queryKey: factory.queryKey,
    enabled: scope !== undefined && boardId !== "" && enabled !== false,
  };
  const query = useQuery(merged);

  const pagination = query.data?.envelope.data.pagination;
  const shown = !query.isPlaceholderData && pagination !== undefined;
  const nextPage = shown && pagination.page < pagination.totalPages && pagination.page === normalized.page ? pagination.page + 1 : null;
  const paramsKey = JSON.stringify(normalized);
  useEffect(() => {
    if (!prefetchNext || nextPage === null || scope === undefined) return;
    void queryClient.prefetchQuery(contactListOptions(client, scope, boardId, { ...normalized, page: nextPage }));
    // `normalized` and `scope` are new objects per render; their content is in the deps.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [prefetchNext, nextPage, scope?.userId, scope?.workspaceId, boardId, paramsKey, queryClient, client]);

  return withScopeError(Object.assign(query, { cacheStatus: cacheStatus(query.data?.cache) }), scopeError);
}

/** TanStack's infinite-query options a hook passes through (the factory sets key, reader and paging). */
export type ContactInfiniteQueryOptions = Omit<
  UseInfiniteQueryOptions<ContactListResult, ContactListError, InfiniteData<ContactListResult, ContactPageParam>, QueryKey, ContactPageParam>,
  "queryKey" | "queryFn" | "initialPageParam" | "getNextPageParam"
>;

/** A board's contacts page after page: `useInfiniteQuery(contactListInfiniteOptions(...))`. */
export function useContactInfiniteList(boardId: string, params: ContactListParams = {}, options: Partial<ContactInfiniteQueryOptions> = {}): UseContactInfiniteListResult {
  const client = useContactListClient();
  const { scope, error: scopeError } = useContactScope();
  useLiveStatusOf(client, scope);
  const { enabled = true, ...rest } = options;
  const factory = contactListInfiniteOptions(client, scope ?? PENDING, boardId, params);
  const merged: UseInfiniteQueryOptions<ContactListResult, ContactListError, InfiniteData<ContactListResult, ContactPageParam>, QueryKey, ContactPageParam> = {
    ...factory,
    ...rest,
    queryKey: factory.queryKey,
    enabled: scope !== undefined && boardId !== "" && enabled !== false,
  };
  const query = useInfiniteQuery(merged);
  return withScopeError(Object.assign(query, { cacheStatus: cacheStatus(query.data?.pages.at(-1)?.cache) }), scopeError);
}

/** The caller's per-filter counts in the workspace: `useQuery(contactCountsOptions(...))`. */
export function useContactCounts(options: ContactQueryOptions<CountsResult> = {}): UseContactCountsResult {
  const client = useContactListClient();
  const { scope, error: scopeError } = useContactScope();
  useLiveStatusOf(client, scope);
  const { enabled = true, ...rest } = options;
  const factory = contactCountsOptions(client, scope ?? PENDING);
  const merged: UseQueryOptions<CountsResult, ContactListError, CountsResult, QueryKey> = {
    ...factory,
    ...rest,
    queryKey: factory.queryKey,
    enabled: scope !== undefined && enabled !== false,
  };
  const query = useQuery(merged);
  return withScopeError(Object.assign(query, { cacheStatus: cacheStatus(query.data?.cache) }), scopeError);
}

/** The query keys an invalidation of the scope's workspace reaches. */
export function liveInvalidationKeys(scope: ContactScope, message: LiveInvalidation): ReadonlyArray<readonly unknown[]> {
  return message.scopes.flatMap((filter): ReadonlyArray<readonly unknown[]> =>
    filter === "counts" ? [contactKeys.counts(scope)] : message.boards.map((board) => contactKeys.filter(scope, board, filter as Filter)),
  );
}

/** Invalidates exactly the queries an invalidation reaches. */
export function invalidateLive(queryClient: QueryClient, scope: ContactScope, message: LiveInvalidation): Promise<void> {
  return Promise.all(liveInvalidationKeys(scope, message).map((queryKey) => queryClient.invalidateQueries({ queryKey }))).then(() => undefined);
}

/**
 * Subscribes to the scope's live channel while mounted: every invalidation the worker applies
 * (API, webhook, change capture) invalidates exactly the affected queries, once per key however
 * many pushes named it in a frame; after a reconnection (or a hidden tab shown again) every query
 * of the scope is read again, since pushes may have been missed. Answers the channel's status for
 * a live indicator.
 */
export function useLiveInvalidation(options: { enabled?: boolean } = {}): LiveStatus {
  const client = useContactListClient();
  const queryClient = useQueryClient();
  const { scope } = useContactScope();
  const enabled = options.enabled ?? true;
  const [status, setStatus] = useState<LiveStatus>("offline");
  const userId = scope?.userId;
  const workspaceId = scope?.workspaceId;
  useEffect(() => {
    if (!enabled || userId === undefined || workspaceId === undefined) return;
    const current: ContactScope = { userId, workspaceId };
    // Keys named by the pushes of one frame, invalidated once each.
    const pending = new Map<string, readonly unknown[]>();
    const flush = () => {
      const keys = [...pending.values()];
      pending.clear();
      for (const queryKey of keys) void queryClient.invalidateQueries({ queryKey });
    };
    return client.subscribe(current, {
      onStatus: setStatus,
      onInvalidate: (message) => {
        if (pending.size === 0) queueMicrotask(flush);
        for (const key of liveInvalidationKeys(current, message)) pending.set(JSON.stringify(key), key);
      },
      onConnect: ({ reconnected }) => {
        if (reconnected) void queryClient.invalidateQueries({ queryKey: contactKeys.scope(current) });
      },
    });
  }, [client, queryClient, userId, workspaceId, enabled]);
  return status;
}
