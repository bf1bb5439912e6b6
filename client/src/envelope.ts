// The API's JSON bodies, field for field as the worker's Rust types serialize them
// (crates/core/src/envelope.rs). test/envelope.test.ts checks them, key for key and kind for
// kind, against client/fixtures/envelope.json, which a Rust test writes from those types: a
// field changed on either side fails a test, not a user.

/** The list filters of the API, in the worker's order. */
export const FILTERS = [
  "all",
  "open",
  "closed",
  "unassigned",
  "assigned_to_me",
  "high_priority",
  "medium_priority",
  "low_priority",
  "favorites",
  "archived",
] as const;
export type Filter = (typeof FILTERS)[number];

export const SORT_FIELDS = ["created_at", "last_message_time", "name"] as const;
export type SortBy = (typeof SORT_FIELDS)[number];
export type SortOrder = "asc" | "desc";

/** One contact as listed. Timestamps are RFC 3339 text as the database wrote them. */
export interface Contact {
  id: string;
  name: string;
  email: string | null;
  phone: string | null;
  conversation_status: string;
  priority: string | null;
  last_message_time: string | null;
  assigned_user_id: string | null;
  board_column_id: string | null;
  created_at: string;
}

/** `data.pagination`. `page` is 0 for a page read by cursor. */
export interface Pagination {
  page: number;
  pageSize: number;
  total: number;
  totalPages: number;
  /** The `cursor` of the page after this one; null when none follows. */
  nextCursor: string | null;
  /** The `cursor` of the page before this one; null when none precedes it. */
  prevCursor: string | null;
}

/** `data.filters`: the filters applied, empty strings where none. */
export interface AppliedFilters {
  filter: string;
  search: string;
  assignedTo: string;
  columnId: string;
}

/** `data.sort`. */
export interface AppliedSort {
  sortBy: string;
  sortOrder: string;
}

/** `data` of a contact list answer. */
export interface ContactListData {
  contacts: Contact[];
  pagination: Pagination;
  filters: AppliedFilters;
  sort: AppliedSort;
}

/** `GET /api/boards/{boardId}/contacts`: `{success, data, cached_at, cache_ttl}`. */
export interface ContactListResponse {
  success: boolean;
  data: ContactListData;
  /** When this page was read from the database (RFC 3339). */
  cached_at: string;
  /** Seconds a cache may keep it. */
  cache_ttl: number;
}

/** `data` of a counts answer: one number per filter. */
export interface CountsData {
  workspace_id: string;
  user_id: string;
  counts: Record<string, number>;
}

/** `GET /api/workspaces/{workspaceId}/counts`. */
export interface CountsResponse {
  success: boolean;
  data: CountsData;
  cached_at: string;
  cache_ttl: number;
}

/** What went wrong: a stable `code`, a sentence for people, the request field at fault. */
export interface ErrorDetail {
  code: string;
  message: string;
  field?: string;
}

/** `{"success": false, "error": {...}}`: every error answer of the API. */
export interface ErrorBody {
  success: boolean;
  error: ErrorDetail;
}
