// ContactListClient: the worker's API for a browser app. Reads come back as the typed envelope
// plus what the cache said about them (the X-Cache-* headers); failures as ContactListError.
// Tokens and the workspace come from providers called per request, so a Supabase session that
// refreshes its token (`auth.getSession()`) is always asked for the current one.

import type { ContactListResponse, CountsResponse, ErrorBody, Filter, SortBy, SortOrder } from "./envelope.js";
import { ContactListError, parseRetryAfter, providerError } from "./errors.js";
import { normalizeParams } from "./keys.js";
import { LiveChannel, type LiveHandlers, type LiveOptions, type LiveStatus } from "./live.js";

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
  /**
   * Where to continue a list (the `nextCursor` of the previous page), for APIs that answer one;
   * infinite lists use it instead of `page` when the answer carries it.
   */
  cursor?: string;
}

/** The values of `X-Cache-Status`: `CacheStatus::as_str` in crates/core/src/layer.rs. */
export const CACHE_STATUSES = ["HIT", "MISS", "BYPASS", "STALE"] as const;
export type CacheStatus = (typeof CACHE_STATUSES)[number];
/** The values of `X-Cache-Layer`: `CacheLayer::as_str` (test/layer.test.ts checks both lists). */
export const CACHE_LAYERS = ["L0", "KV", "REDIS", "DATABASE", "BACKEND-FALLBACK"] as const;
export type CacheLayer = (typeof CACHE_LAYERS)[number];

/** Whose data a query holds: the signed-in user (or the client's identity) and the workspace. */
export interface ContactScope {
  userId: string;
  workspaceId: string;
}

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
  /** The generation as of which the answer is current (`X-Cache-Generation`). */
  generation: string | null;
  /**
   * Whether the answer is older than the generation the request asked for (`minGeneration`):
   * the worker could not confirm the newer one. Read again soon, like a `STALE` answer.
   */
  behind: boolean;
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
  /** `hard`: the next read is the new data; `soft`: the superseded page may be served, `STALE`, within the bound. */
  mode: "hard" | "soft";
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
  /**
   * The least generation the answer may be current as of (`minGeneration`). The client already
   * asks for the newest generation it has seen for the workspace (its own invalidations, live
   * pushes); this asks for a newer one still.
   */
  minGeneration?: string;
  /**
   * The user the answer is for (the query key's): when the signed-in user is now another one,
   * the request is not sent and fails with code `user_changed`, so one user's answer is never
   * stored under another's key.
   */
  userId?: string;
}

export interface ContactListClientOptions {
  /** The worker's origin, e.g. `https://contact-cache.example.com`. */
  workerUrl: string;
  /** The Supabase access token of the signed-in user. */
  token: Provider<string | null | undefined>;
  /** The workspace the user works in (`X-Workspace-ID`). */
  workspaceId: Provider<string>;
  /**
   * Who is signed in, for query keys (one user never sees another's cached lists). By default
   * the `sub` of the token (a Supabase JWT: `session.user.id`), `anonymous` when signed out.
   */
  userId?: Provider<string | null | undefined>;
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
  /** The live channel's timing and tab sharing (see `LiveOptions`). */
  live?: LiveOptions;
}

/** How long answers count as fresh, by the state of the workspace's live channel. */
export const FRESHNESS = {
  /** The channel is live: pushes say when something changed. */
  liveStaleMs: 5 * 60_000,
  /** Connecting or offline: pushes may be missed, so answers go stale soon and are polled. */
  unsureStaleMs: 5_000,
  unsurePollMs: 15_000,
  /** No channel at all (the app does not use live updates). */
  defaultStaleMs: 30_000,
} as const;

const resolve = async <T>(provider: Provider<T>): Promise<T> =>
  typeof provider === "function" ? await (provider as () => T | Promise<T>)() : provider;

/** A provider's value, or its failure as a `ContactListError` of kind `provider`. */
async function ask<T>(what: string, provider: Provider<T>): Promise<T> {
  try {
    return await resolve(provider);
  } catch (cause) {
    throw providerError(what, cause);
  }
}

/**
 * One signal aborting when any of `signals` does: `AbortSignal.any` where the browser has it
 * (Safari and iOS before 17.4 do not), else the same by hand.
 */
export function anySignal(signals: AbortSignal[]): AbortSignal {
  if (typeof AbortSignal.any === "function") return AbortSignal.any(signals);
  const controller = new AbortController();
  for (const signal of signals) {
    if (signal.aborted) {
      controller.abort(signal.reason);
      break;
    }
    signal.addEventListener("abort", () => controller.abort(signal.reason), { once: true, signal: controller.signal });
  }
  return controller.signal;
}

/** The `sub` claim of a JWT, read without verifying (it only names the cache's owner). */
function subject(token: string): string | null {
  const payload = token.split(".")[1];
  if (!payload) return null;
  try {
    const json = atob(payload.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(payload.length / 4) * 4, "="));
    const sub = (JSON.parse(json) as { sub?: unknown }).sub;
    return typeof sub === "string" && sub !== "" ? sub : null;
  } catch {
    return null;
  }
}

/** A short digest naming a token that is not a JWT, so keys never hold the token itself. */
function digest(text: string): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193);
  return (hash >>> 0).toString(16);
}

const number = (value: string | null): number | null => {
  if (value === null) return null;
  const parsed = Number.parseFloat(value);
  return Number.isFinite(parsed) ? parsed : null;
};

/**
 * Orders two generations as the worker does: `0`, then `<millis hex>-<random hex>` by the
 * millisecond part, then the rest. Negative when `a` is older.
 */
export function compareGenerations(a: string, b: string): number {
  const millis = (g: string) => {
    const head = g.split("-")[0] ?? "";
    return /^[0-9a-f]{1,13}$/.test(head) ? Number.parseInt(head, 16) : 0;
  };
  const [ma, mb] = [millis(a), millis(b)];
  if (ma !== mb) return ma < mb ? -1 : 1;
  return a === b ? 0 : a < b ? -1 : 1;
}

/** The newer of two generations (either may be missing). */
function newer(a: string | undefined, b: string | undefined): string | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return compareGenerations(a, b) >= 0 ? a : b;
}

function cacheInfo(headers: Headers, roundTripMs: number, source: CacheInfo["source"], asked?: string): CacheInfo {
  const generation = headers.get("X-Cache-Generation");
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
    generation,
    behind: asked !== undefined && generation !== null && compareGenerations(generation, asked) < 0,
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
  if (params.cursor) query.set("cursor", params.cursor);
  return query.toString();
}

/** The key of a user's workspace channel. */
const channelKey = (scope: ContactScope) => `${scope.userId}\n${scope.workspaceId}`;

export class ContactListClient {
  readonly workerUrl: string;
  readonly fallbackUrl: string | undefined;
  private readonly options: ContactListClientOptions;
  private readonly channels = new Map<string, LiveChannel>();
  /** Channels this client had before, so one reopened catches up on what it missed. */
  private readonly subscribedBefore = new Set<string>();
  private readonly liveListeners = new Set<() => void>();
  private readonly userListeners = new Set<() => void>();
  /**
   * The newest generation this client has seen per workspace (its own invalidations, live
   * pushes): every later read of the workspace asks for it (`minGeneration`), so it reads its
   * own writes and what a push announced, from any location, never a copy from before them.
   */
  private readonly seen = new Map<string, string>();

  constructor(options: ContactListClientOptions) {
    this.options = options;
    this.workerUrl = options.workerUrl.replace(/\/+$/, "");
    this.fallbackUrl = options.fallbackUrl?.replace(/\/+$/, "");
  }

  /** The workspace requests go to unless they name one. */
  workspaceId(): Promise<string> {
    return ask("workspace", this.options.workspaceId);
  }

  /** The current access token, or `null` when signed out. */
  async token(): Promise<string | null> {
    return (await ask("token", this.options.token)) ?? null;
  }

  /** Who is signed in: the user provider's answer, else the token's `sub`, else `anonymous`. */
  async userId(): Promise<string> {
    return this.identity(await this.token());
  }

  private async identity(token: string | null): Promise<string> {
    if (this.options.userId !== undefined) {
      const given = await ask("user", this.options.userId);
      if (given) return given;
    }
    if (!token) return "anonymous";
    return subject(token) ?? `token:${digest(token)}`;
  }

  /** Calls `listener` when a request found that another user is signed in than its key says. */
  onUserChange(listener: () => void): () => void {
    this.userListeners.add(listener);
    return () => this.userListeners.delete(listener);
  }

  /** The user and workspace the providers answer now: what query keys are scoped by. */
  async scope(): Promise<ContactScope> {
    const [userId, workspaceId] = await Promise.all([this.userId(), this.workspaceId()]);
    return { userId, workspaceId };
  }

  /**
   * The state of the live channel of `scope` (`null`: nothing subscribed to it), which query
   * freshness follows: see `staleTime` and `pollInterval`.
   */
  liveStatus(scope: ContactScope): LiveStatus | null {
    return this.channels.get(channelKey(scope))?.status ?? null;
  }

  /** Calls `listener` whenever a live channel of this client changes state. */
  onLiveStatus(listener: () => void): () => void {
    this.liveListeners.add(listener);
    return () => this.liveListeners.delete(listener);
  }

  /**
   * How long an answer of `scope` counts as fresh now: long while its channel is live, and while
   * it is paused (a hidden tab: resuming reads everything shown again, so a window focus need not).
   */
  staleTime(scope: ContactScope): number {
    const status = this.liveStatus(scope);
    if (status === null) return FRESHNESS.defaultStaleMs;
    return status === "live" || status === "paused" ? FRESHNESS.liveStaleMs : FRESHNESS.unsureStaleMs;
  }

  /** How often to read `scope`'s shown queries again: only while its channel is not live. */
  pollInterval(scope: ContactScope): number | false {
    const status = this.liveStatus(scope);
    return status === "connecting" || status === "offline" ? FRESHNESS.unsurePollMs : false;
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

  /** The newest generation this client has seen for `workspaceId`, which its reads ask for. */
  seenGeneration(workspaceId: string): string | undefined {
    return this.seen.get(workspaceId);
  }

  /** Notes a generation of `workspaceId` (an invalidation's, a push's): later reads ask for it. */
  noteGeneration(workspaceId: string, generation: string): void {
    const known = newer(this.seen.get(workspaceId), generation);
    if (known !== undefined) this.seen.set(workspaceId, known);
  }

  /**
   * Invalidates the workspace's cached lists: one filter, the scopes of change events, or all.
   * Hard unless `mode` is `soft`: this client's next reads of the workspace ask for the answer's
   * generation, so they show the new data whichever location or isolate answers.
   */
  async invalidateCache(
    workspaceId: string,
    target: InvalidateTarget = {},
    options: Pick<RequestOptions, "signal"> & { mode?: "hard" | "soft" } = {},
  ): Promise<InvalidationSummary> {
    const body: Record<string, unknown> = { workspace_id: workspaceId };
    if (target.boardId) body.board_id = target.boardId;
    if ("filter" in target) body.filter = target.filter;
    if ("events" in target) body.events = target.events;
    if (options.mode) body.mode = options.mode;
    const { envelope } = await this.request<{ success: boolean; data: InvalidationSummary }>(this.workerUrl, "/api/cache/invalidate", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Workspace-ID": workspaceId },
      body: JSON.stringify(body),
      signal: options.signal,
      source: "worker",
    });
    if (typeof envelope.data.generation === "string") this.noteGeneration(workspaceId, envelope.data.generation);
    return envelope.data;
  }

  /**
   * The live channel of a user's workspace (shared by every subscriber in this client, and by
   * the browser's tabs where it can): `handlers` hear each invalidation the worker applies to it
   * and each (re)connection. Call the returned function to unsubscribe; the channel closes with
   * its last subscriber. A channel opened again later says it reconnected (pushes were missed).
   */
  subscribe(scope: ContactScope, handlers: LiveHandlers): () => void {
    const key = channelKey(scope);
    let channel = this.channels.get(key);
    if (!channel) {
      const WebSocketImpl = this.options.WebSocket ?? globalThis.WebSocket;
      const created: LiveChannel = new LiveChannel({
        ...this.options.live,
        url: `${this.workerUrl.replace(/^http/, "ws")}/api/workspaces/${encodeURIComponent(scope.workspaceId)}/live`,
        name: `contact-list-cache:${this.workerUrl}:${key}`,
        token: () => this.token(),
        WebSocket: WebSocketImpl,
        missedBefore: this.subscribedBefore.has(key),
        onStatus: () => {
          for (const listener of this.liveListeners) listener();
        },
        onIdle: () => {
          if (this.channels.get(key) === created) this.channels.delete(key);
          for (const listener of this.liveListeners) listener();
        },
      });
      channel = created;
      this.channels.set(key, channel);
      this.subscribedBefore.add(key);
    }
    return channel.add({
      ...handlers,
      onInvalidate: (message) => {
        // Before the handlers refetch: their reads ask for the pushed generation.
        if (typeof message.generation === "string") this.noteGeneration(scope.workspaceId, message.generation);
        handlers.onInvalidate?.(message);
      },
    });
  }

  /** The live channel of a user's workspace, if anything subscribed to it. */
  channel(scope: ContactScope): LiveChannel | undefined {
    return this.channels.get(channelKey(scope));
  }

  private async read<T>(path: string, options: RequestOptions): Promise<CachedResult<T>> {
    const workspaceId = options.workspaceId ?? (await this.workspaceId());
    const token = await this.token();
    if (options.userId !== undefined) {
      const current = await this.identity(token);
      if (current !== options.userId) {
        for (const listener of this.userListeners) listener();
        throw new ContactListError("provider", `the signed-in user (${current}) is not the one this request is for (${options.userId}); scopes name the token's user`, {
          code: "user_changed",
        });
      }
    }
    const headers: Record<string, string> = { "X-Workspace-ID": workspaceId };
    if (options.fresh) headers["Cache-Control"] = "no-cache";
    const minGeneration = newer(this.seen.get(workspaceId), options.minGeneration);
    const asked = minGeneration === undefined ? path : `${path}${path.includes("?") ? "&" : "?"}minGeneration=${encodeURIComponent(minGeneration)}`;
    const init = { method: "GET", headers, signal: options.signal, token, minGeneration };
    try {
      return await this.request<T>(this.workerUrl, asked, { ...init, source: "worker" });
    } catch (err) {
      if (!this.fallbackUrl || !(err instanceof ContactListError) || !err.isUnavailable) throw err;
      return this.request<T>(this.fallbackUrl, asked, { ...init, source: "fallback" });
    }
  }

  private async request<T>(
    base: string,
    path: string,
    init: {
      method: string;
      headers: Record<string, string>;
      body?: string;
      signal: AbortSignal | undefined;
      source: CacheInfo["source"];
      token?: string | null;
      minGeneration?: string | undefined;
    },
  ): Promise<CachedResult<T>> {
    const token = init.token !== undefined ? init.token : await this.token();
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
        signal: anySignal(signals),
      });
      text = await response.text();
    } catch (cause) {
      if (cause instanceof ContactListError) throw cause;
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
      const error = (body as Partial<ErrorBody> | null)?.error;
      const retryAfterMs = parseRetryAfter(response.headers.get("Retry-After"));
      throw new ContactListError("http", error?.message ?? `HTTP ${response.status}`, {
        status: response.status,
        ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
        ...(error?.code ? { code: error.code } : {}),
        ...(error?.field ? { field: error.field } : {}),
        ...(requestId ? { requestId } : {}),
      });
    }
    return { envelope: body as T, cache: cacheInfo(response.headers, roundTripMs, init.source, init.minGeneration) };
  }
}
