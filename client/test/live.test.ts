import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import { ContactListClient, type ContactScope, type LiveInvalidation, type LiveOptions, type LiveStatus } from "../src/index.js";
import { LIVE_PROTOCOL, PONG_TIMEOUT, TOKEN_EXPIRED } from "../src/live.js";
import { FakeSocket, fakeFetch } from "./support/fakes.js";

const SCOPE: ContactScope = { userId: "u1", workspaceId: "ws-1" };
let tokens = 0;
const client = (live: LiveOptions = {}) =>
  new ContactListClient({
    workerUrl: "https://cache.example.test",
    token: async () => `tok-${++tokens}`,
    workspaceId: "ws-1",
    fetch: fakeFetch(new Error("unused")).fetch,
    WebSocket: FakeSocket as unknown as typeof WebSocket,
    live,
  });
const flush = () => vi.advanceTimersByTimeAsync(0);
/** Past the next animation frame (a timer of 16 ms where there are no frames). */
const frame = () => vi.advanceTimersByTimeAsync(20);
const message: LiveInvalidation = { type: "invalidated", workspace_id: "ws-1", boards: ["b1"], scopes: ["open"], generation: "g2" };

beforeEach(() => {
  vi.useFakeTimers();
  FakeSocket.opened = [];
  tokens = 0;
});
afterEach(() => {
  vi.useRealTimers();
  vi.unstubAllGlobals();
});

describe("the live channel", () => {
  test("opens one socket per user's workspace with the token as a subprotocol, and closes with its last subscriber", async () => {
    const c = client();
    const first = c.subscribe(SCOPE, {});
    const second = c.subscribe(SCOPE, {});
    await flush();
    expect(FakeSocket.opened).toHaveLength(1);
    expect(FakeSocket.last().url).toBe("wss://cache.example.test/api/workspaces/ws-1/live");
    expect(FakeSocket.last().protocols).toEqual([LIVE_PROTOCOL, "bearer.tok-1"]);
    first();
    expect(FakeSocket.last().closedWith).toBeNull();
    second();
    expect(FakeSocket.last().closedWith).toEqual({ code: 1000, reason: "left" });
    expect(c.channel(SCOPE)).toBeUndefined();
  });

  test("another user of the same workspace gets a channel of their own", async () => {
    const c = client();
    c.subscribe(SCOPE, {});
    c.subscribe({ ...SCOPE, userId: "u2" }, {});
    await flush();
    expect(FakeSocket.opened).toHaveLength(2);
  });

  test("delivers invalidations once per animation frame, duplicates once, and statuses; the first connection is not a reconnection", async () => {
    const c = client();
    const heard: LiveInvalidation[] = [];
    const statuses: LiveStatus[] = [];
    const connects: boolean[] = [];
    c.subscribe(SCOPE, { onInvalidate: (m) => heard.push(m), onStatus: (s) => statuses.push(s), onConnect: ({ reconnected }) => connects.push(reconnected) });
    await flush();
    FakeSocket.last().open();
    FakeSocket.last().push(message);
    FakeSocket.last().push(message);
    FakeSocket.last().push({ ...message, scopes: ["counts"] });
    FakeSocket.last().push({ type: "something-else" });
    FakeSocket.last().onmessage?.({ data: "not json" } as MessageEvent);
    expect(heard).toEqual([]);
    await frame();
    expect(heard).toEqual([message, { ...message, scopes: ["counts"] }]);
    expect(statuses).toEqual(["offline", "connecting", "live"]);
    expect(connects).toEqual([false]);
  });

  test("reconnects after a drop with backoff and a fresh token, and says it reconnected", async () => {
    const c = client();
    const connects: boolean[] = [];
    c.subscribe(SCOPE, { onConnect: ({ reconnected }) => connects.push(reconnected) });
    await flush();
    FakeSocket.last().open();
    FakeSocket.last().drop();
    await flush();
    expect(c.channel(SCOPE)?.status).toBe("offline");
    expect(FakeSocket.opened).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(650); // 500 ms ± 25 %
    expect(FakeSocket.opened).toHaveLength(2);
    expect(FakeSocket.last().protocols).toEqual([LIVE_PROTOCOL, "bearer.tok-2"]);
    FakeSocket.last().drop(); // refused: the next try waits longer (1000 ms ± 25 %)
    await vi.advanceTimersByTimeAsync(700);
    expect(FakeSocket.opened).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(600);
    expect(FakeSocket.opened).toHaveLength(3);
    FakeSocket.last().open();
    expect(connects).toEqual([false, true]);
  });

  test("the backoff resets only after a connection stayed up stableMs: accept-then-drop keeps backing off", async () => {
    vi.spyOn(Math, "random").mockReturnValue(0.5); // no jitter: 500, 1000, 2000, 4000 ms
    const c = client({ stableMs: 3000 });
    c.subscribe(SCOPE, {});
    await flush();
    const opens = [Date.now()];
    const acceptAndDrop = async () => {
      FakeSocket.last().open();
      await vi.advanceTimersByTimeAsync(50);
      FakeSocket.last().drop();
      const count = FakeSocket.opened.length;
      while (FakeSocket.opened.length === count) await vi.advanceTimersByTimeAsync(10);
      opens.push(Date.now());
    };
    for (let i = 0; i < 4; i++) await acceptAndDrop();
    const waits = opens.slice(1).map((at, i) => at - (opens[i] as number) - 50);
    expect(waits.map((w) => Math.round(w / 10) * 10)).toEqual([500, 1000, 2000, 4000]);
    // Up for 3 s: stable, so the next drop waits the first delay again.
    FakeSocket.last().open();
    await vi.advanceTimersByTimeAsync(3000);
    FakeSocket.last().drop();
    await vi.advanceTimersByTimeAsync(510);
    expect(FakeSocket.opened).toHaveLength(6);
    vi.restoreAllMocks();
  });

  test("a pong that is late closes the socket, reports offline within ping + pong time, and reconnects", async () => {
    const c = client({ pingMs: 1000, pongTimeoutMs: 500 });
    const statuses: LiveStatus[] = [];
    c.subscribe(SCOPE, { onStatus: (s) => statuses.push(s) });
    await flush();
    const socket = FakeSocket.last();
    socket.open();
    await vi.advanceTimersByTimeAsync(1000);
    expect(socket.sent).toEqual(["ping"]);
    socket.onmessage?.({ data: "pong" } as MessageEvent); // answered: stays
    await vi.advanceTimersByTimeAsync(1000);
    expect(socket.sent).toEqual(["ping", "ping"]);
    expect(c.channel(SCOPE)?.status).toBe("live");
    await vi.advanceTimersByTimeAsync(499);
    expect(c.channel(SCOPE)?.status).toBe("live");
    await vi.advanceTimersByTimeAsync(1); // no pong within 500 ms
    expect(socket.closedWith).toEqual({ code: PONG_TIMEOUT, reason: "pong timeout" });
    expect(c.channel(SCOPE)?.status).toBe("offline");
    await vi.advanceTimersByTimeAsync(650);
    expect(FakeSocket.opened).toHaveLength(2);
    FakeSocket.last().open();
    expect(statuses.at(-1)).toBe("live");
  });

  test("an expired token reconnects at once with the current one", async () => {
    const c = client();
    c.subscribe(SCOPE, {});
    await flush();
    FakeSocket.last().open();
    FakeSocket.last().drop(TOKEN_EXPIRED);
    await flush();
    await flush();
    expect(FakeSocket.opened).toHaveLength(2);
    expect(FakeSocket.last().protocols[1]).toBe("bearer.tok-2");
  });

  test("an expired message reconnects at once with the current token, without waiting for the close", async () => {
    const c = client();
    const connects: boolean[] = [];
    c.subscribe(SCOPE, { onConnect: ({ reconnected }) => connects.push(reconnected) });
    await flush();
    FakeSocket.last().open();
    FakeSocket.last().push({ type: "expired" });
    expect(FakeSocket.last().closedWith?.code).toBe(1000);
    await flush();
    await flush();
    expect(FakeSocket.opened).toHaveLength(2);
    expect(FakeSocket.last().protocols[1]).toBe("bearer.tok-2");
    FakeSocket.last().open();
    expect(connects).toEqual([false, true]);
  });

  test("pause closes the socket and stays away; resume reconnects and says so", async () => {
    const c = client();
    const connects: boolean[] = [];
    c.subscribe(SCOPE, { onConnect: ({ reconnected }) => connects.push(reconnected) });
    await flush();
    FakeSocket.last().open();
    c.channel(SCOPE)?.pause();
    expect(c.channel(SCOPE)?.status).toBe("paused");
    expect(FakeSocket.last().closedWith?.code).toBe(1000);
    await vi.advanceTimersByTimeAsync(30_000);
    expect(FakeSocket.opened).toHaveLength(1);
    c.channel(SCOPE)?.resume();
    await flush();
    expect(FakeSocket.opened).toHaveLength(2);
    FakeSocket.last().open();
    expect(connects).toEqual([false, true]);
  });

  test("a hidden tab and an offline browser pause the channel; visible and online resume it", async () => {
    const document = Object.assign(new EventTarget(), { visibilityState: "visible" as DocumentVisibilityState });
    const window = new EventTarget();
    vi.stubGlobal("document", document);
    vi.stubGlobal("window", window);
    const c = client();
    const connects: boolean[] = [];
    c.subscribe(SCOPE, { onConnect: ({ reconnected }) => connects.push(reconnected) });
    await flush();
    FakeSocket.last().open();
    document.visibilityState = "hidden";
    document.dispatchEvent(new Event("visibilitychange"));
    expect(c.channel(SCOPE)?.status).toBe("paused");
    expect(FakeSocket.last().readyState).toBe(3);
    document.visibilityState = "visible";
    document.dispatchEvent(new Event("visibilitychange"));
    await flush();
    expect(FakeSocket.opened).toHaveLength(2);
    FakeSocket.last().open();
    window.dispatchEvent(new Event("offline"));
    expect(c.channel(SCOPE)?.status).toBe("paused");
    await vi.advanceTimersByTimeAsync(30_000);
    expect(FakeSocket.opened).toHaveLength(2);
    window.dispatchEvent(new Event("online"));
    await flush();
    FakeSocket.last().open();
    expect(connects).toEqual([false, true, true]);
  });

  test("a channel opened again after its last subscriber left says it reconnected (pushes were missed)", async () => {
    const c = client();
    const off = c.subscribe(SCOPE, {});
    await flush();
    FakeSocket.last().open();
    off();
    const connects: boolean[] = [];
    c.subscribe(SCOPE, { onConnect: ({ reconnected }) => connects.push(reconnected) });
    await flush();
    FakeSocket.last().open();
    expect(connects).toEqual([true]);
  });

  test("freshness follows the channel: long while live or paused, short and polled while connecting or offline, the default without one", async () => {
    const c = client();
    expect(c.staleTime(SCOPE)).toBe(30_000);
    expect(c.pollInterval(SCOPE)).toBe(false);
    c.subscribe(SCOPE, {});
    await flush();
    expect(c.liveStatus(SCOPE)).toBe("connecting");
    expect(c.staleTime(SCOPE)).toBe(5_000);
    expect(c.pollInterval(SCOPE)).toBe(15_000);
    FakeSocket.last().open();
    expect(c.staleTime(SCOPE)).toBe(300_000);
    expect(c.pollInterval(SCOPE)).toBe(false);
    FakeSocket.last().drop();
    expect(c.liveStatus(SCOPE)).toBe("offline");
    expect(c.staleTime(SCOPE)).toBe(5_000);
    expect(c.pollInterval(SCOPE)).toBe(15_000);
    // Paused (a hidden tab): no polling, and no refetch on focus; resuming reads again.
    c.channel(SCOPE)?.pause();
    expect(c.staleTime(SCOPE)).toBe(300_000);
    expect(c.pollInterval(SCOPE)).toBe(false);
  });
});
