// @contact-list-cache/client: the typed client of the contact-list-cache worker. React bindings
// are in "@contact-list-cache/client/react".

export {
  CACHE_LAYERS,
  CACHE_STATUSES,
  ContactListClient,
  FRESHNESS,
  compareGenerations,
  type CacheInfo,
  type CacheLayer,
  type CacheStatus,
  type CachedResult,
  type ContactListClientOptions,
  type ContactListParams,
  type ContactListResult,
  type ContactScope,
  type CountsResult,
  type InvalidateTarget,
  type InvalidationSummary,
  type Provider,
  type RequestOptions,
} from "./client.js";
export { ContactListError, type ContactListErrorKind } from "./errors.js";
export { contactKeys } from "./keys.js";
export { LiveChannel, type LiveHandlers, type LiveInvalidation, type LiveOptions, type LiveStatus } from "./live.js";
export { FILTERS, SORT_FIELDS } from "./envelope.js";
export type {
  AppliedFilters,
  AppliedSort,
  Contact,
  ContactListData,
  ContactListResponse,
  CountsData,
  CountsResponse,
  ErrorBody,
  ErrorDetail,
  Filter,
  Pagination,
  SortBy,
  SortOrder,
} from "./envelope.js";
