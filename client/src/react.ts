// @contact-list-cache/client/react: TanStack Query options factories (callable anywhere: route
// loaders, server components, prefetching for hydration) and the React hooks built on them
// (hooks.ts, a "use client" module).

export {
  contactCountsOptions,
  contactListInfiniteOptions,
  contactListOptions,
  contactRetryDelay,
  retryContactQuery,
  MAX_RETRIES,
  type ContactPageParam,
} from "./options.js";
export {
  ContactListProvider,
  invalidateLive,
  liveInvalidationKeys,
  useContactCounts,
  useContactInfiniteList,
  useContactList,
  useContactListClient,
  useContactScope,
  useLiveInvalidation,
  type ContactListCacheStatus,
  type ContactInfiniteQueryOptions,
  type ContactListProviderProps,
  type ContactQueryOptions,
  type ContactScopeState,
  type UseContactCountsResult,
  type UseContactInfiniteListResult,
  type UseContactListOptions,
  type UseContactListResult,
} from "./hooks.js";
