// The live channel of one workspace: a WebSocket to the worker's
// `/api/workspaces/{id}/live` that hears every invalidation applied to the workspace. The token
// travels as a WebSocket subprotocol (`bearer.<jwt>`; browsers cannot set headers on a
// WebSocket, and a query string would put it in access logs). The server closes the socket with
// 4001 when the token expires; the channel then reconnects with the provider's current token,
// which the worker checks again with the membership. Pushes sent while disconnected are lost, so
// subscribers hear `onConnect({reconnected: true})` and refetch what they show.

/** The subprotocol the worker answers with. */
export const LIVE_PROTOCOL = "contact-list-cache.v1";

/** Close code of the server when the token the socket was opened with expires. */
export const TOKEN_EXPIRED = 4001;

/** One invalidation of the workspace: which boards' lists of which filters (and `counts`). */
export interface LiveInvalidation {
  type: "invalidated";
  workspace_id: string;
  boards: string[];
  /** Filter names, and `counts` when the counts changed. */
  scopes: string[];
  generation: string;
}

export type LiveStatus = "connecting" | "live" | "offline" | "paused";

export interface LiveHandlers {
  onInvalidate?: (message: LiveInvalidation) => void;
  /** After each successful (re)connection; `reconnected` when pushes may have been missed. */
  onConnect?: (info: { reconnected: boolean }) => void;
  onStatus?: (status: LiveStatus) => void;
}

interface LiveChannelOptions {
  url: string;
  token: () => Promise<string | null>;
  WebSocket: typeof WebSocket;
  /** Called when the last subscriber left and the channel closed. */
  onIdle?: () => void;
  /** First reconnection delay in ms, doubled per failure up to `maxRetryMs` (250, 10000). */
  retryMs?: number;
  maxRetryMs?: number;
  /** Keep-alive ping interval in ms (30000). */
  pingMs?: number;
}

export class LiveChannel {
  private readonly options: LiveChannelOptions;
  private readonly subscribers = new Set<LiveHandlers>();
  private socket: WebSocket | null = null;
  private retry: ReturnType<typeof setTimeout> | null = null;
  private ping: ReturnType<typeof setInterval> | null = null;
  private failures = 0;
  private connectedOnce = false;
  private paused = false;
  private currentStatus: LiveStatus = "offline";

  constructor(options: LiveChannelOptions) {
    this.options = options;
  }

  get status(): LiveStatus {
    return this.currentStatus;
  }

  /** Adds a subscriber (connecting on the first); answers the function that removes it. */
  add(handlers: LiveHandlers): () => void {
    this.subscribers.add(handlers);
    handlers.onStatus?.(this.currentStatus);
    if (this.subscribers.size === 1 && !this.paused) void this.connect();
    return () => {
      this.subscribers.delete(handlers);
      if (this.subscribers.size === 0) {
        this.stop();
        this.options.onIdle?.();
      }
    };
  }

  /** Closes the socket and stays disconnected until `resume()` (e.g. while the tab is hidden). */
  pause(): void {
    this.paused = true;
    this.stop();
    this.setStatus("paused");
  }

  /** Connects again after `pause()`; subscribers then hear `onConnect({reconnected: true})`. */
  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    if (this.subscribers.size > 0) void this.connect();
  }

  private setStatus(status: LiveStatus): void {
    if (status === this.currentStatus) return;
    this.currentStatus = status;
    for (const s of this.subscribers) s.onStatus?.(status);
  }

  private stop(): void {
    if (this.retry) clearTimeout(this.retry);
    if (this.ping) clearInterval(this.ping);
    this.retry = null;
    this.ping = null;
    const socket = this.socket;
    this.socket = null;
    if (socket) {
      socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
      socket.close(1000, "unsubscribed");
    }
    this.setStatus("offline");
  }

  private async connect(): Promise<void> {
    if (this.socket || this.paused || this.subscribers.size === 0) return;
    this.setStatus("connecting");
    let token: string | null;
    try {
      token = await this.options.token();
    } catch {
      token = null;
    }
    if (this.socket || this.paused || this.subscribers.size === 0) return;
    if (!token) return this.reconnectLater();
    const socket = new this.options.WebSocket(this.options.url, [LIVE_PROTOCOL, `bearer.${token}`]);
    this.socket = socket;
    socket.onopen = () => {
      this.failures = 0;
      const reconnected = this.connectedOnce;
      this.connectedOnce = true;
      this.setStatus("live");
      this.ping = setInterval(() => socket.readyState === 1 && socket.send("ping"), this.options.pingMs ?? 30_000);
      for (const s of this.subscribers) s.onConnect?.({ reconnected });
    };
    socket.onmessage = (event: MessageEvent) => {
      let message: unknown;
      try {
        message = JSON.parse(String(event.data));
      } catch {
        return;
      }
      const type = (message as { type?: unknown }).type;
      if (type === "expired") return this.expired(socket);
      if (type !== "invalidated") return;
      for (const s of this.subscribers) s.onInvalidate?.(message as LiveInvalidation);
    };
    socket.onclose = (event: CloseEvent) => {
      if (this.socket !== socket) return;
      this.socket = null;
      if (this.ping) clearInterval(this.ping);
      this.ping = null;
      // An expired token is expected: reconnect at once with the current one.
      if (event.code === TOKEN_EXPIRED) this.failures = 0;
      this.reconnectLater(event.code === TOKEN_EXPIRED ? 0 : undefined);
    };
  }

  /** The token expired: leave the socket to close and reconnect at once with the current one. */
  private expired(socket: WebSocket): void {
    if (this.socket !== socket) return;
    socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
    socket.close(1000, "token expired");
    this.socket = null;
    if (this.ping) clearInterval(this.ping);
    this.ping = null;
    this.failures = 0;
    this.reconnectLater(0);
  }

  private reconnectLater(delayMs?: number): void {
    this.setStatus("offline");
    if (this.paused || this.subscribers.size === 0) return;
    const base = this.options.retryMs ?? 250;
    const delay = delayMs ?? Math.min(base * 2 ** this.failures, this.options.maxRetryMs ?? 10_000) * (0.75 + Math.random() / 2);
    this.failures += 1;
    this.retry = setTimeout(() => {
      this.retry = null;
      void this.connect();
    }, delay);
  }
}
