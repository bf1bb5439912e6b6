// TanStack Query keys from one factory, nested so that invalidating a prefix reaches exactly the
// queries under it: a workspace, one board, one board's lists of one filter (a live
// invalidation's unit), or the counts.

import type { ContactListParams } from "./client.js";
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

export const contactKeys = {
  all: () => [ROOT] as const,
  workspace: (workspaceId: string) => [ROOT, workspaceId] as const,
  boards: (workspaceId: string) => [ROOT, workspaceId, "board"] as const,
  board: (workspaceId: string, boardId: string) => [ROOT, workspaceId, "board", boardId] as const,
  /** One board's lists of one filter: what a generation of the worker covers. */
  scope: (workspaceId: string, boardId: string, filter: Filter) => [ROOT, workspaceId, "board", boardId, filter] as const,
  list: (workspaceId: string, boardId: string, params: ContactListParams = {}) => {
    const normalized = normalizeParams(params);
    return [ROOT, workspaceId, "board", boardId, normalized.filter, normalized] as const;
  },
  counts: (workspaceId: string) => [ROOT, workspaceId, "counts"] as const,
};
