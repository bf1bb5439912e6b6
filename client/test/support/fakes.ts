// Test doubles for the browser's network: a scripted `fetch` that records what it was asked,
// and a `WebSocket` the test opens, feeds and closes by hand.

import type { ContactListResponse } from "../../src/envelope.js";

export interface Recorded {
  url: string;
  method: string;
  headers: Record<string, string>;
  body: string | undefined;
}

type Answer = Response | Error | ((call: Recorded, signal: AbortSignal | undefined) => Response | Promise<Response>);

/** A `fetch` answering from `answers` in order (the last one repeats), recording every call. */
export function fakeFetch(...answers: Answer[]) {
  const calls: Recorded[] = [];
  const fetch = async (input: RequestInfo | URL, init: RequestInit = {}): Promise<Response> => {
    const call: Recorded = {
      url: String(input),
      method: init.method ?? "GET",
      headers: Object.fromEntries([...new Headers(init.headers).entries()].map(([k, v]) => [k.toLowerCase(), v])),
      body: typeof init.body === "string" ? init.body : undefined,
    };
    calls.push(call);
    const answer = answers[Math.min(calls.length - 1, answers.length - 1)];
    if (answer instanceof Error) throw answer;
    if (typeof answer === "function") return answer(call, init.signal ?? undefined);
    return (answer as Response).clone();
  };
  return { fetch: fetch as typeof globalThis.fetch, calls };
}

/** A `fetch` answer that only ever ends by its signal aborting. */
export const never = (_call: Recorded, signal: AbortSignal | undefined) =>
  new Promise<Response>((_, reject) => signal?.addEventListener("abort", () => reject(signal.reason)));

export const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json", ...headers } });

/** A contact list envelope of `total` contacts, page `page` of `pageSize`, ids `c<n>`. */
export function listEnvelope({ page = 1, pageSize = 2, total = 5, filter = "all", name = (i: number) => `Contact ${i}` } = {}): ContactListResponse {
  const first = (page - 1) * pageSize;
  const contacts = Array.from({ length: Math.max(0, Math.min(pageSize, total - first)) }, (_, i) => ({
    id: `c${first + i + 1}`,
    name: name(first + i + 1),
    email: null,
    phone: null,
    conversation_status: "Open",
    priority: null,
    last_message_time: null,
    assigned_user_id: null,
    board_column_id: null,
    created_at: "2025-01-20T08:00:00+00:00",
  }));
  return {
    success: true,
    data: {
      contacts,
      pagination: { page, pageSize, total, totalPages: Math.ceil(total / pageSize), nextCursor: null, prevCursor: null },
      filters: { filter, search: "", assignedTo: "", columnId: "" },
      sort: { sortBy: "created_at", sortOrder: "desc" },
    },
    cached_at: "2025-01-27T10:35:00Z",
    cache_ttl: 180,
  };
}

export const hitHeaders = { "X-Cache-Status": "HIT", "X-Cache-Layer": "KV", "X-Cache-Key": "contacts:w:b:page=1", "X-Response-Time": "3ms", "X-Worker-Location": "AMS", "Age": "12", "X-Request-ID": "r1" };

/** WebSockets opened by the code under test, driven by the test. */
export class FakeSocket {
  static opened: FakeSocket[] = [];
  readyState = 0;
  sent: string[] = [];
  closedWith: { code?: number; reason?: string } | null = null;
  onopen: ((e: Event) => void) | null = null;
  onmessage: ((e: MessageEvent) => void) | null = null;
  onclose: ((e: CloseEvent) => void) | null = null;
  onerror: ((e: Event) => void) | null = null;

  constructor(
    readonly url: string,
    readonly protocols: string[],
  ) {
    FakeSocket.opened.push(this);
  }
  send(data: string) {
    this.sent.push(data);
  }
  close(code?: number, reason?: string) {
    this.closedWith = { ...(code === undefined ? {} : { code }), ...(reason === undefined ? {} : { reason }) };
    this.readyState = 3;
  }
  /** The server accepts the socket. */
  open() {
    this.readyState = 1;
    this.onopen?.(new Event("open"));
  }
  /** The server sends `message` as JSON. */
  push(message: unknown) {
    this.onmessage?.({ data: JSON.stringify(message) } as MessageEvent);
  }
  /** The connection ends (server close, network drop, refused upgrade: 1006). */
  drop(code = 1006) {
    this.readyState = 3;
    this.onclose?.({ code, reason: "", wasClean: false } as CloseEvent);
  }
  static last(): FakeSocket {
    const socket = FakeSocket.opened.at(-1);
    if (!socket) throw new Error("no socket was opened");
    return socket;
  }
}
