// ContactListClient: the worker's API for a browser app. Reads come back as the typed envelope
// plus what the cache said about them (the X-Cache-* headers); failures as ContactListError.
// Tokens and the workspace come from providers called per request, so a Supabase session that
// refreshes its token (`auth.getSession()`) is always asked for the current one.

import type { ContactListResponse, CountsResponse, ErrorBody, Filter, SortBy, SortOrder } from "./envelope.js";
import { ContactListError } from "./errors.js";
import { normalizeParams } from "./keys.js";
import { LiveChannel, type LiveHandlers } from "./live.js";

/** A value, or a function answering it now or later. */
export type Provider<T> = T | (() => T | Promise<T>);

/** The query parameters of `GET /api/boards/{boardId}/contacts`; unset means the API's default. */
export interface ContactListParams {
  page?: number;
  pageSize?: number;
  filter?: Filter;
  search?: string;
  assignedTo?: string;
  sortBy?: SortBy;
  sortOrder?: SortOrder;
  columnId?: string;
}

export type CacheStatus = "HIT" | "MISS" | "BYPASS" | "STALE";
export type CacheLayer = "KV" | "REDIS" | "DATABASE" | "BACKEND-FALLBACK";

/** What the answering side said about an answer; `null` where it said nothing. */
export interface CacheInfo {
  status: CacheStatus | null;
  layer: CacheLayer | null;
  /** The cache key (`X-Cache-Key`). */
  key: string | null;
  /** The worker's own time to answer, in ms (`X-Response-Time`). */
  responseTimeMs: number | null;
  /** Request to answer as this client measured it, in ms. */
  roundTripMs: number;
  /** The Cloudflare location that answered (`X-Worker-Location`). */
  location: string | null;
  /** Seconds since the page was read from the database, when a cache said so (`Age`). */
  ageSeconds: number | null;
  /** Whether the page was read for a concurrent identical request (`X-Cache-Coalesced`). */
  coalesced: boolean;
  /** `fallback` when the worker failed and the fallback URL answered. */
  source: "worker" | "fallback";
  /** The worker's `X-Request-ID`. */
  requestId: string | null;
}

/** An answer of the API with its cache information. */
export interface CachedResult<T> {
  envelope: T;
  cache: CacheInfo;
}

export type ContactListResult = CachedResult<ContactListResponse>;
export type CountsResult = CachedResult<CountsResponse>;

/** What `POST /api/cache/invalidate` changed. */
export interface InvalidationSummary {
  workspace_id: string;
  boards: string[];
  scopes: string[];
  generation: string;
  staleness_bound_ms: number;
  operations: Record<string, number>;
}

/** What to invalidate: one filter's lists, change events, or (neither) every scope. */
export type InvalidateTarget =
  | { filter: Filter; boardId?: string }
  | { events: ReadonlyArray<Record<string, unknown>>; boardId?: string }
  | { boardId?: string };

export interface RequestOptions {
  signal?: AbortSignal;
  /** The workspace for this request, instead of the client's provider. */
  workspaceId?: string;
  /** Skip the caches (`Cache-Control: no-cache`): the answer comes from the database. */
  fresh?: boolean;
}

export interface ContactListClientOptions {
  /** The worker's origin, e.g. `https://contact-cache.example.com`. */
  workerUrl: string;
  /** The Supabase access token of the signed-in user. */
  token: Provider<string | null | undefined>;
  /** The workspace the user works in (`X-Workspace-ID`). */
  workspaceId: Provider<string>;
  /**
   * The spec's fallback: a service answering the same routes with the same contract (an app
   * backend, a second deployment), asked when the worker gives no answer or a 5xx. Errors the
   * worker answered deliberately (400, 401, 403, 404) are final.
   */
  fallbackUrl?: string;
  /** Per-request time limit in ms (default 10000). */
  timeoutMs?: number;
  /** A `fetch` of your own (tests, instrumentation); the global one by default. */
  fetch?: typeof fetch;
  /** A `WebSocket` constructor for live updates; the global one by default. */
  WebSocket?: typeof WebSocket;
}

const resolve = async <T>(provider: Provider<T>): Promise<T> =>
  typeof provider === "function" ? await (provider as () => T | Promise<T>)() : provider;

const number = (value: string | null): number | null => {
  if (value === null) return null;
  const parsed = Number.parseFloat(value);
  return Number.isFinite(parsed) ? parsed : null;
};

function cacheInfo(headers: Headers, roundTripMs: number, source: CacheInfo["source"]): CacheInfo {
  return {
    status: headers.get("X-Cache-Status") as CacheStatus | null,
    layer: headers.get("X-Cache-Layer") as CacheLayer | null,
    key: headers.get("X-Cache-Key"),
    responseTimeMs: number(headers.get("X-Response-Time")),
    roundTripMs,
    location: headers.get("X-Worker-Location"),
    ageSeconds: number(headers.get("Age")),
    coalesced: headers.get("X-Cache-Coalesced") === "true",
    source,
    requestId: headers.get("X-Request-ID"),
  };
}

/** The query string the worker reads: defaults left out, so equal lists share a URL. */
export function listQuery(params: ContactListParams = {}): string {
  const n = normalizeParams(params);
  const query = new URLSearchParams();
  if (n.page !== 1) query.set("page", String(n.page));
  if (n.pageSize !== 50) query.set("pageSize", String(n.pageSize));
  if (n.filter !== "all") query.set("filter", n.filter);
  if (n.search) query.set("search", n.search);
  if (n.assignedTo) query.set("assignedTo", n.assignedTo);
  if (n.sortBy !== "created_at") query.set("sortBy", n.sortBy);
  if (n.sortOrder !== "desc") query.set("sortOrder", n.sortOrder);
  if (n.columnId) query.set("columnId", n.columnId);
  return query.toString();
}

export class ContactListClient {
  readonly workerUrl: string;
  readonly fallbackUrl: string | undefined;
  private readonly options: ContactListClientOptions;
  private readonly channels = new Map<string, LiveChannel>();

  constructor(options: ContactListClientOptions) {
    this.options = options;
    this.workerUrl = options.workerUrl.replace(/\/+$/, "");
    this.fallbackUrl = options.fallbackUrl?.replace(/\/+$/, "");
  }

  /** The workspace requests go to unless they name one. */
  workspaceId(): Promise<string> {
    return resolve(this.options.workspaceId);
  }

  /** The current access token, or `null` when signed out. */
  async token(): Promise<string | null> {
    return (await resolve(this.options.token)) ?? null;
  }

  /** One page of a board's contacts, with where it came from. */
  async getContactList(boardId: string, params: ContactListParams = {}, options: RequestOptions = {}): Promise<ContactListResult> {
    const query = listQuery(params);
    const path = `/api/boards/${encodeURIComponent(boardId)}/contacts${query ? `?${query}` : ""}`;
    return this.read<ContactListResponse>(path, options);
  }

  /** The caller's per-filter counts in the workspace (sidebar badges). */
  async getCounts(options: RequestOptions = {}): Promise<CountsResult> {
    const workspaceId = options.workspaceId ?? (await this.workspaceId());
    return this.read<CountsResponse>(`/api/workspaces/${encodeURIComponent(workspaceId)}/counts`, { ...options, workspaceId });
  }

  /** Invalidates the workspace's cached lists: one filter, the scopes of change events, or all. */
  async invalidateCache(workspaceId: string, target: InvalidateTarget = {}, options: Pick<RequestOptions, "signal"> = {}): Promise<InvalidationSummary> {
    const body: Record<string, unknown> = { workspace_id: workspaceId };
    if (target.boardId) body.board_id = target.boardId;
    if ("filter" in target) body.filter = target.filter;
    if ("events" in target) body.events = target.events;
    const { envelope } = await this.request<{ success: boolean; data: InvalidationSummary }>(this.workerUrl, "/api/cache/invalidate", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Workspace-ID": workspaceId },
      body: JSON.stringify(body),
      signal: options.signal,
      source: "worker",
    });
    return envelope.data;
  }

  /**
   * The live channel of a workspace (shared by every subscriber in this client): `handlers` hear
   * each invalidation the worker applies to it and each (re)connection. Call the returned
   * function to unsubscribe; the channel closes with its last subscriber.
   */
  subscribe(workspaceId: string, handlers: LiveHandlers): () => void {
    let channel = this.channels.get(workspaceId);
    if (!channel) {
      const WebSocketImpl = this.options.WebSocket ?? globalThis.WebSocket;
      channel = new LiveChannel({
        url: `${this.workerUrl.replace(/^http/, "ws")}/api/workspaces/${encodeURIComponent(workspaceId)}/live`,
        token: () => this.token(),
        WebSocket: WebSocketImpl,
        onIdle: () => this.channels.delete(workspaceId),
      });
      this.channels.set(workspaceId, channel);
    }
    return channel.add(handlers);
  }

  /** The live channel of a workspace, if anything subscribed to it. */
  channel(workspaceId: string): LiveChannel | undefined {
    return this.channels.get(workspaceId);
  }

  private async read<T>(path: string, options: RequestOptions): Promise<CachedResult<T>> {
    const workspaceId = options.workspaceId ?? (await this.workspaceId());
    const headers: Record<string, string> = { "X-Workspace-ID": workspaceId };
    if (options.fresh) headers["Cache-Control"] = "no-cache";
    const init = { method: "GET", headers, signal: options.signal };
    try {
      return await this.request<T>(this.workerUrl, path, { ...init, source: "worker" });
    } catch (err) {
      if (!this.fallbackUrl || !(err instanceof ContactListError) || !err.isUnavailable) throw err;
      return this.request<T>(this.fallbackUrl, path, { ...init, source: "fallback" });
    }
  }

  private async request<T>(
    base: string,
    path: string,
    init: { method: string; headers: Record<string, string>; body?: string; signal: AbortSignal | undefined; source: CacheInfo["source"] },
  ): Promise<CachedResult<T>> {
    const token = await this.token();
    const headers: Record<string, string> = { Accept: "application/json", ...init.headers };
    if (token) headers.Authorization = `Bearer ${token}`;
    const timeoutMs = this.options.timeoutMs ?? 10_000;
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), timeoutMs);
    const signals = init.signal ? [init.signal, timeout.signal] : [timeout.signal];
    const started = performance.now();
    const fetchImpl = this.options.fetch ?? globalThis.fetch;
    let response: Response;
    let text: string;
    try {
      init.signal?.throwIfAborted();
      response = await fetchImpl(`${base}${path}`, {
        method: init.method,
        headers,
        ...(init.body === undefined ? {} : { body: init.body }),
        signal: AbortSignal.any(signals),
      });
      text = await response.text();
    } catch (cause) {
      if (init.signal?.aborted) throw new ContactListError("aborted", "the request was aborted", { cause });
      if (timeout.signal.aborted) throw new ContactListError("timeout", `no answer within ${timeoutMs} ms`, { cause });
      throw new ContactListError("network", `no answer from ${base}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    } finally {
      clearTimeout(timer);
    }
    const roundTripMs = performance.now() - started;
    const requestId = response.headers.get("X-Request-ID") ?? undefined;
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (cause) {
      throw new ContactListError("invalid_response", `HTTP ${response.status}: the answer is not JSON`, { status: response.status, cause, ...(requestId ? { requestId } : {}) });
    }
    if (!response.ok) {
      const error = (body as Partial<ErrorBody>).error;
      throw new ContactListError("http", error?.message ?? `HTTP ${response.status}`, {
        status: response.status,
        ...(error?.code ? { code: error.code } : {}),
        ...(error?.field ? { field: error.field } : {}),
        ...(requestId ? { requestId } : {}),
      });
    }
    return { envelope: body as T, cache: cacheInfo(response.headers, roundTripMs, init.source) };
  }
}
