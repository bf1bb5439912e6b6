import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import { ContactListClient, type LiveInvalidation, type LiveStatus } from "../src/index.js";
import { LIVE_PROTOCOL, TOKEN_EXPIRED } from "../src/live.js";
import { FakeSocket, fakeFetch } from "./support/fakes.js";

let tokens = 0;
const client = () =>
  new ContactListClient({
    workerUrl: "https://cache.example.test",
    token: async () => `tok-${++tokens}`,
    workspaceId: "ws-1",
    fetch: fakeFetch(new Error("unused")).fetch,
    WebSocket: FakeSocket as unknown as typeof WebSocket,
  });
const flush = () => vi.advanceTimersByTimeAsync(0);
const message: LiveInvalidation = { type: "invalidated", workspace_id: "ws-1", boards: ["b1"], scopes: ["open"], generation: "g2" };

beforeEach(() => {
  vi.useFakeTimers();
  FakeSocket.opened = [];
  tokens = 0;
});
afterEach(() => vi.useRealTimers());

describe("the live channel", () => {
  test("opens one socket per workspace with the token as a subprotocol, and closes with its last subscriber", async () => {
    const c = client();
    const first = c.subscribe("ws-1", {});
    const second = c.subscribe("ws-1", {});
    await flush();
    expect(FakeSocket.opened).toHaveLength(1);
    expect(FakeSocket.last().url).toBe("wss://cache.example.test/api/workspaces/ws-1/live");
    expect(FakeSocket.last().protocols).toEqual([LIVE_PROTOCOL, "bearer.tok-1"]);
    first();
    expect(FakeSocket.last().closedWith).toBeNull();
    second();
    expect(FakeSocket.last().closedWith).toEqual({ code: 1000, reason: "unsubscribed" });
    expect(c.channel("ws-1")).toBeUndefined();
  });

  test("delivers invalidations and statuses to every subscriber; the first connection is not a reconnection", async () => {
    const c = client();
    const heard: LiveInvalidation[] = [];
    const statuses: LiveStatus[] = [];
    const connects: boolean[] = [];
    c.subscribe("ws-1", { onInvalidate: (m) => heard.push(m), onStatus: (s) => statuses.push(s), onConnect: ({ reconnected }) => connects.push(reconnected) });
    await flush();
    FakeSocket.last().open();
    FakeSocket.last().push(message);
    FakeSocket.last().push({ type: "something-else" });
    FakeSocket.last().onmessage?.({ data: "not json" } as MessageEvent);
    expect(heard).toEqual([message]);
    expect(statuses).toEqual(["offline", "connecting", "live"]);
    expect(connects).toEqual([false]);
  });

  test("reconnects after a drop with backoff and a fresh token, and says it reconnected", async () => {
    const c = client();
    const connects: boolean[] = [];
    c.subscribe("ws-1", { onConnect: ({ reconnected }) => connects.push(reconnected) });
    await flush();
    FakeSocket.last().open();
    FakeSocket.last().drop();
    await flush();
    expect(FakeSocket.opened).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(400);
    expect(FakeSocket.opened).toHaveLength(2);
    expect(FakeSocket.last().protocols).toEqual([LIVE_PROTOCOL, "bearer.tok-2"]);
    FakeSocket.last().drop(); // refused: the next try waits longer
    await vi.advanceTimersByTimeAsync(300);
    expect(FakeSocket.opened).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(500);
    expect(FakeSocket.opened).toHaveLength(3);
    FakeSocket.last().open();
    expect(connects).toEqual([false, true]);
  });

  test("an expired token reconnects at once with the current one", async () => {
    const c = client();
    c.subscribe("ws-1", {});
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
    c.subscribe("ws-1", { onConnect: ({ reconnected }) => connects.push(reconnected) });
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

  test("pause closes the socket and stays away; resume reconnects", async () => {
    const c = client();
    const connects: boolean[] = [];
    c.subscribe("ws-1", { onConnect: ({ reconnected }) => connects.push(reconnected) });
    await flush();
    FakeSocket.last().open();
    c.channel("ws-1")?.pause();
    expect(c.channel("ws-1")?.status).toBe("paused");
    expect(FakeSocket.last().closedWith?.code).toBe(1000);
    await vi.advanceTimersByTimeAsync(30_000);
    expect(FakeSocket.opened).toHaveLength(1);
    c.channel("ws-1")?.resume();
    await flush();
    expect(FakeSocket.opened).toHaveLength(2);
    FakeSocket.last().open();
    expect(connects).toEqual([false, true]);
  });

  test("pings while open, so idle connections stay up", async () => {
    const c = client();
    c.subscribe("ws-1", {});
    await flush();
    FakeSocket.last().open();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(FakeSocket.last().sent).toEqual(["ping", "ping"]);
  });
});
