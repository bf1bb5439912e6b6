// The live channel of one user's workspace: a WebSocket to the worker's
// `/api/workspaces/{id}/live` that hears every invalidation applied to the workspace, and says
// truthfully whether it is up.
//
// - The token travels as a WebSocket subprotocol (`bearer.<jwt>`; browsers cannot set headers on
//   a WebSocket, and a query string would put it in access logs). The server closes the socket
//   with 4001 when the token expires; the channel then reconnects with the provider's current one.
// - Keep-alive: `ping` every `pingMs`; the server's runtime answers `pong` without waking the
//   Durable Object. No `pong` within `pongTimeoutMs` closes the socket and reconnects, so a dead
//   connection is reported `offline` within `pingMs + pongTimeoutMs`.
// - Reconnections back off (doubling from `retryMs` up to `maxRetryMs`, with jitter); the backoff
//   resets only once a connection stayed up `stableMs`, so a server that accepts and drops at once
//   is not hammered.
// - A hidden tab, or a browser that went `offline`, closes the socket (`paused`); `visible` and
//   `online` open it again and subscribers hear `onConnect({reconnected: true})`: pushes may have
//   been missed, so they read again what they show.
// - One socket per browser: where `BroadcastChannel` and Web Locks exist, the tab holding the
//   channel's lock opens the socket and relays its state and pushes to the other tabs; when it
//   closes or hides, the next tab takes over.
// - Pushes are delivered once per animation frame, duplicates dropped.

/** The subprotocol the worker answers with. */
export const LIVE_PROTOCOL = "contact-list-cache.v1";

/** Close code of the server when the token the socket was opened with expires. */
export const TOKEN_EXPIRED = 4001;

/** Close code this client uses when the server missed a `pong`. */
export const PONG_TIMEOUT = 4000;

/** One invalidation of the workspace: which boards' lists of which filters (and `counts`). */
export interface LiveInvalidation {
  type: "invalidated";
  workspace_id: string;
  boards: string[];
  /** Filter names, and `counts` when the counts changed. */
  scopes: string[];
  generation: string;
}

/**
 * - `connecting`: opening (or waiting for the tab that holds the socket);
 * - `live`: pushes arrive;
 * - `offline`: the connection failed or went silent, a reconnection is scheduled;
 * - `paused`: closed on purpose (hidden tab, browser offline, `pause()`).
 */
export type LiveStatus = "connecting" | "live" | "offline" | "paused";

export interface LiveHandlers {
  onInvalidate?: (message: LiveInvalidation) => void;
  /** After each (re)connection; `reconnected` when pushes may have been missed before it. */
  onConnect?: (info: { reconnected: boolean }) => void;
  onStatus?: (status: LiveStatus) => void;
}

/** The channel's timing and behaviour; every field has a default. */
export interface LiveOptions {
  /** First reconnection delay in ms, doubled per failure up to `maxRetryMs` (500, 15000). */
  retryMs?: number;
  maxRetryMs?: number;
  /** How long a connection must stay up before the backoff starts again from `retryMs` (10000). */
  stableMs?: number;
  /** Keep-alive ping interval in ms (15000). */
  pingMs?: number;
  /** How long to wait for the `pong` of a ping (half of `pingMs`). */
  pongTimeoutMs?: number;
  /** Share one socket between the tabs of the browser (true, where supported). */
  shareAcrossTabs?: boolean;
  /** Close the socket while the tab is hidden or the browser offline (true). */
  pauseWhenHidden?: boolean;
}

interface LiveChannelOptions extends LiveOptions {
  url: string;
  /** The channel's name among the browser's tabs (its lock and BroadcastChannel). */
  name: string;
  token: () => Promise<string | null>;
  WebSocket: typeof WebSocket;
  /** This client had the channel open before: its first connection is a reconnection. */
  missedBefore?: boolean;
  onStatus?: (status: LiveStatus) => void;
  /** Called when the last subscriber left and the channel closed. */
  onIdle?: () => void;
}

/** What tabs tell each other on the channel's BroadcastChannel. */
type TabMessage = { type: "hello" } | { type: "status"; status: LiveStatus } | { type: "invalidated"; message: LiveInvalidation };

type PauseReason = "hidden" | "offline" | "manual";

/** Where this tab stands: not running, alone with its socket, holding the shared one, or relayed. */
type Role = "idle" | "alone" | "leader" | "follower";

const nextFrame = (callback: () => void): void => {
  if (typeof requestAnimationFrame === "function") requestAnimationFrame(callback);
  else setTimeout(callback, 16);
};

const canShare = () => typeof BroadcastChannel === "function" && typeof navigator !== "undefined" && typeof navigator.locks?.request === "function";

export class LiveChannel {
  private readonly options: LiveChannelOptions;
  private readonly subscribers = new Set<LiveHandlers>();
  private currentStatus: LiveStatus = "offline";
  private role: Role = "idle";
  private readonly paused = new Set<PauseReason>();
  /** Pushes may have been missed: the next `live` is a reconnection. */
  private missed: boolean;
  // The socket, when this tab holds it.
  private socket: WebSocket | null = null;
  private retry: ReturnType<typeof setTimeout> | null = null;
  private ping: ReturnType<typeof setInterval> | null = null;
  private pong: ReturnType<typeof setTimeout> | null = null;
  private stable: ReturnType<typeof setTimeout> | null = null;
  private failures = 0;
  // Sharing between tabs.
  private bus: BroadcastChannel | null = null;
  private lockRequest: AbortController | null = null;
  private releaseLock: (() => void) | null = null;
  // Pushes waiting for the next frame.
  private pending: LiveInvalidation[] = [];
  private detachEnvironment: (() => void) | null = null;

  constructor(options: LiveChannelOptions) {
    this.options = options;
    this.missed = options.missedBefore ?? false;
  }

  get status(): LiveStatus {
    return this.currentStatus;
  }

  /** Whether this tab holds the socket others share (`false` when alone or relayed). */
  get leading(): boolean {
    return this.role === "leader";
  }

  /** Adds a subscriber (starting the channel on the first); answers the function that removes it. */
  add(handlers: LiveHandlers): () => void {
    this.subscribers.add(handlers);
    handlers.onStatus?.(this.currentStatus);
    if (this.subscribers.size === 1) this.start();
    return () => {
      if (!this.subscribers.delete(handlers) || this.subscribers.size > 0) return;
      this.detachEnvironment?.();
      this.detachEnvironment = null;
      this.leave();
      this.setStatus("offline");
      this.options.onIdle?.();
    };
  }

  /** Closes the socket and stays disconnected until `resume()`. */
  pause(): void {
    this.pauseFor("manual");
  }

  /** Connects again after `pause()`; subscribers then hear `onConnect({reconnected: true})`. */
  resume(): void {
    this.resumeFrom("manual");
  }

  private start(): void {
    if (this.options.pauseWhenHidden ?? true) this.watchEnvironment();
    if (this.paused.size > 0) return this.setStatus("paused");
    this.join();
  }

  /** Hidden tabs and an offline browser pause the channel; `visible` and `online` resume it. */
  private watchEnvironment(): void {
    if (typeof document !== "undefined" && typeof document.addEventListener === "function") {
      const visibility = () => (document.visibilityState === "hidden" ? this.pauseFor("hidden") : this.resumeFrom("hidden"));
      if (document.visibilityState === "hidden") this.paused.add("hidden");
      document.addEventListener("visibilitychange", visibility);
      this.detachEnvironment = () => document.removeEventListener("visibilitychange", visibility);
    }
    if (typeof window !== "undefined" && typeof window.addEventListener === "function") {
      const offline = () => this.pauseFor("offline");
      const online = () => this.resumeFrom("offline");
      if (typeof navigator !== "undefined" && navigator.onLine === false) this.paused.add("offline");
      window.addEventListener("offline", offline);
      window.addEventListener("online", online);
      const before = this.detachEnvironment;
      this.detachEnvironment = () => {
        before?.();
        window.removeEventListener("offline", offline);
        window.removeEventListener("online", online);
      };
    }
  }

  private pauseFor(reason: PauseReason): void {
    this.paused.add(reason);
    if (this.subscribers.size === 0) return;
    this.leave();
    this.setStatus("paused");
  }

  private resumeFrom(reason: PauseReason): void {
    if (!this.paused.delete(reason) || this.paused.size > 0 || this.subscribers.size === 0 || this.role !== "idle") return;
    this.join();
  }

  /** Opens this tab's socket, or joins the tabs sharing one. */
  private join(): void {
    if (!(this.options.shareAcrossTabs ?? true) || !canShare()) {
      this.role = "alone";
      void this.connect();
      return;
    }
    this.role = "follower";
    this.setStatus("connecting");
    const bus = new BroadcastChannel(this.options.name);
    this.bus = bus;
    bus.onmessage = (event: MessageEvent<TabMessage>) => this.heard(event.data);
    bus.postMessage({ type: "hello" } satisfies TabMessage);
    const request = new AbortController();
    this.lockRequest = request;
    navigator.locks
      .request(this.options.name, { signal: request.signal }, () => {
        if (this.lockRequest !== request) return;
        this.lockRequest = null;
        this.role = "leader";
        void this.connect();
        // Held until this tab leaves; the browser releases it if the tab goes away.
        return new Promise<void>((release) => (this.releaseLock = release));
      })
      .catch(() => undefined); // aborted: this tab left before its turn
  }

  /** A message of another tab of this channel. */
  private heard(message: TabMessage): void {
    if (message.type === "hello") {
      if (this.role === "leader") this.bus?.postMessage({ type: "status", status: this.currentStatus } satisfies TabMessage);
    } else if (this.role === "follower") {
      if (message.type === "status") this.setStatus(message.status === "paused" ? "connecting" : message.status);
      else this.queue(message.message);
    }
  }

  /** Leaves: closes the socket (telling the other tabs one of them takes over) or stops listening. */
  private leave(): void {
    const wasLeader = this.role === "leader";
    this.role = "idle";
    this.missed = true;
    this.closeSocket("left");
    if (this.retry) clearTimeout(this.retry);
    this.retry = null;
    this.lockRequest?.abort();
    this.lockRequest = null;
    if (wasLeader) this.bus?.postMessage({ type: "status", status: "connecting" } satisfies TabMessage);
    this.releaseLock?.();
    this.releaseLock = null;
    this.bus?.close();
    this.bus = null;
  }

  private holdsSocket(): boolean {
    return this.role === "alone" || this.role === "leader";
  }

  private setStatus(status: LiveStatus): void {
    if (status === this.currentStatus) return;
    this.currentStatus = status;
    if (this.role === "leader") this.bus?.postMessage({ type: "status", status } satisfies TabMessage);
    for (const s of this.subscribers) s.onStatus?.(status);
    this.options.onStatus?.(status);
    if (status === "live") {
      const reconnected = this.missed;
      this.missed = true;
      for (const s of this.subscribers) s.onConnect?.({ reconnected });
    }
  }

  /** Delivers `message` with the others of this animation frame, duplicates once. */
  private queue(message: LiveInvalidation): void {
    if (this.pending.length === 0) nextFrame(() => this.flush());
    this.pending.push(message);
  }

  private flush(): void {
    const seen = new Set<string>();
    const messages = this.pending.filter((m) => {
      const key = JSON.stringify([m.boards, m.scopes, m.generation]);
      return !seen.has(key) && seen.add(key);
    });
    this.pending = [];
    for (const message of messages) for (const s of this.subscribers) s.onInvalidate?.(message);
  }

  private async connect(): Promise<void> {
    if (this.socket || !this.holdsSocket()) return;
    this.setStatus("connecting");
    let token: string | null;
    try {
      token = await this.options.token();
    } catch {
      token = null;
    }
    if (this.socket || !this.holdsSocket()) return;
    if (!token) return this.reconnectLater();
    const socket = new this.options.WebSocket(this.options.url, [LIVE_PROTOCOL, `bearer.${token}`]);
    this.socket = socket;
    socket.onopen = () => {
      this.setStatus("live");
      const stableMs = this.options.stableMs ?? 10_000;
      this.stable = setTimeout(() => (this.failures = 0), stableMs);
      this.ping = setInterval(() => this.sendPing(socket), this.options.pingMs ?? 15_000);
    };
    socket.onmessage = (event: MessageEvent) => {
      const data = String(event.data);
      if (data === "pong") {
        if (this.pong) clearTimeout(this.pong);
        this.pong = null;
        return;
      }
      let message: unknown;
      try {
        message = JSON.parse(data);
      } catch {
        return;
      }
      const type = (message as { type?: unknown }).type;
      if (type === "expired") {
        // Expected with every token's end: reconnect at once with the current token.
        this.closeSocket("token expired");
        return this.reconnectLater(0);
      }
      if (type !== "invalidated") return;
      this.bus?.postMessage({ type: "invalidated", message: message as LiveInvalidation } satisfies TabMessage);
      this.queue(message as LiveInvalidation);
    };
    socket.onclose = (event: CloseEvent) => {
      if (this.socket !== socket) return;
      this.closeSocket();
      this.reconnectLater(event.code === TOKEN_EXPIRED ? 0 : undefined);
    };
  }

  /** Pings, and gives the socket up when its pong is late. */
  private sendPing(socket: WebSocket): void {
    if (socket !== this.socket || socket.readyState !== 1) return;
    socket.send("ping");
    if (this.pong) return;
    this.pong = setTimeout(
      () => {
        if (socket !== this.socket) return;
        this.closeSocket("pong timeout", PONG_TIMEOUT);
        this.reconnectLater();
      },
      this.options.pongTimeoutMs ?? (this.options.pingMs ?? 15_000) / 2,
    );
  }

  /** Forgets the socket and its timers; closes it (without waiting for its close) when `reason`. */
  private closeSocket(reason?: string, code = 1000): void {
    for (const timer of [this.ping, this.pong, this.stable]) if (timer) clearTimeout(timer);
    this.ping = this.pong = this.stable = null;
    const socket = this.socket;
    this.socket = null;
    if (!socket) return;
    socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
    if (reason !== undefined) socket.close(code, reason);
  }

  /** Reports `offline` and connects again after the backoff (or `delayMs`). */
  private reconnectLater(delayMs?: number): void {
    this.missed = true;
    this.setStatus("offline");
    if (!this.holdsSocket()) return;
    const base = this.options.retryMs ?? 500;
    const backoff = Math.min(base * 2 ** this.failures, this.options.maxRetryMs ?? 15_000);
    const delay = delayMs ?? backoff * (0.75 + Math.random() / 2);
    if (delayMs === undefined) this.failures += 1;
    if (this.retry) clearTimeout(this.retry);
    this.retry = setTimeout(() => {
      this.retry = null;
      void this.connect();
    }, delay);
  }
}
