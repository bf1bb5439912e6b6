// TanStack Query keys from one factory, nested so that invalidating a prefix reaches exactly the
// queries under it: a workspace (every user's), one user's view of it, one board, one board's
// lists of one filter (a live invalidation's unit), or the counts. The user is in every key
// below the workspace: after a sign-out and sign-in on one page, the next user's queries are
// other queries, and nothing of the previous user's can show.

import type { ContactListParams, ContactScope } from "./client.js";
import type { Filter } from "./envelope.js";

const ROOT = "contact-list-cache";

/** The params as the API reads them: defaults filled in, empty values dropped. */
export function normalizeParams(params: ContactListParams = {}): Required<Pick<ContactListParams, "page" | "pageSize" | "filter" | "sortBy" | "sortOrder">> &
  Pick<ContactListParams, "search" | "assignedTo" | "columnId"> {
  const search = params.search?.trim();
  return {
    page: params.page ?? 1,
    pageSize: params.pageSize ?? 50,
    filter: params.filter ?? "all",
    sortBy: params.sortBy ?? "created_at",
    sortOrder: params.sortOrder ?? "desc",
    ...(search ? { search } : {}),
    ...(params.assignedTo ? { assignedTo: params.assignedTo } : {}),
    ...(params.columnId ? { columnId: params.columnId } : {}),
  };
}

/** The params of an infinite list: everything but where it starts. */
function listShape(params: ContactListParams): Omit<ReturnType<typeof normalizeParams>, "page"> {
  const { page: _page, ...rest } = normalizeParams(params);
  return rest;
}

export const contactKeys = {
  all: () => [ROOT] as const,
  /** Every user's queries of a workspace (what a live push concerns). */
  workspace: (workspaceId: string) => [ROOT, workspaceId] as const,
  /** One user's queries of one workspace. */
  scope: ({ workspaceId, userId }: ContactScope) => [ROOT, workspaceId, userId] as const,
  boards: (scope: ContactScope) => [...contactKeys.scope(scope), "board"] as const,
  board: (scope: ContactScope, boardId: string) => [...contactKeys.boards(scope), boardId] as const,
  /** One board's lists of one filter: what a generation of the worker covers. */
  filter: (scope: ContactScope, boardId: string, filter: Filter) => [...contactKeys.board(scope, boardId), filter] as const,
  list: (scope: ContactScope, boardId: string, params: ContactListParams = {}) => {
    const normalized = normalizeParams(params);
    return [...contactKeys.filter(scope, boardId, normalized.filter), normalized] as const;
  },
  /** An infinite list: its pages live under one key, whatever page it started at. */
  infinite: (scope: ContactScope, boardId: string, params: ContactListParams = {}) => {
    const shape = listShape(params);
    return [...contactKeys.filter(scope, boardId, shape.filter), "infinite", shape] as const;
  },
  counts: (scope: ContactScope) => [...contactKeys.scope(scope), "counts"] as const,
};
