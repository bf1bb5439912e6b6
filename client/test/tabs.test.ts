// The live channel shared by a browser's tabs: two clients (two tabs) with Node's BroadcastChannel
// and a Web Locks stand-in hold one socket between them; the other tab hears its status and pushes,
// and takes the socket over when the holder leaves.
import { afterEach, beforeEach, expect, test, vi } from "vitest";
import { ContactListClient, type ContactScope, type LiveInvalidation, type LiveStatus } from "../src/index.js";
import { FakeSocket, fakeFetch } from "./support/fakes.js";

const SCOPE: ContactScope = { userId: "u1", workspaceId: "ws-1" };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `navigator.locks` as browsers have it, for one process: exclusive, queued, abortable while waiting. */
function fakeLocks() {
  const waiting = new Map<string, Array<() => void>>();
  const held = new Set<string>();
  const release = (name: string) => {
    held.delete(name);
    waiting.get(name)?.shift()?.();
  };
  return {
    request(name: string, options: { signal?: AbortSignal }, callback: () => Promise<void> | void): Promise<void> {
      return new Promise((resolve, reject) => {
        const run = () => {
          held.add(name);
          Promise.resolve(callback())
            .then(resolve, reject)
            .finally(() => release(name));
        };
        if (!held.has(name)) return run();
        const queue = waiting.get(name) ?? [];
        waiting.set(name, queue);
        queue.push(run);
        options.signal?.addEventListener("abort", () => {
          const at = queue.indexOf(run);
          if (at >= 0) queue.splice(at, 1);
          reject(new DOMException("aborted", "AbortError"));
        });
      });
    },
  };
}

const tab = () =>
  new ContactListClient({
    workerUrl: "https://cache.example.test",
    token: "tok",
    workspaceId: "ws-1",
    fetch: fakeFetch(new Error("unused")).fetch,
    WebSocket: FakeSocket as unknown as typeof WebSocket,
  });

beforeEach(() => {
  FakeSocket.opened = [];
  vi.stubGlobal("navigator", { locks: fakeLocks(), onLine: true });
});
afterEach(() => vi.unstubAllGlobals());

test("two tabs share one socket; the second hears status and pushes, and takes over when the first leaves", async () => {
  const [first, second] = [tab(), tab()];
  const heard: LiveInvalidation[] = [];
  const statuses: LiveStatus[] = [];
  const connects: boolean[] = [];
  const leaveFirst = first.subscribe(SCOPE, {});
  await sleep(10);
  const leaveSecond = second.subscribe(SCOPE, { onInvalidate: (m) => heard.push(m), onStatus: (s) => statuses.push(s), onConnect: ({ reconnected }) => connects.push(reconnected) });
  await sleep(10);
  expect(FakeSocket.opened).toHaveLength(1);
  expect(first.channel(SCOPE)?.leading).toBe(true);
  expect(second.channel(SCOPE)?.leading).toBe(false);

  FakeSocket.last().open();
  await sleep(20);
  expect(second.liveStatus(SCOPE)).toBe("live");
  const message: LiveInvalidation = { type: "invalidated", workspace_id: "ws-1", boards: ["b1"], scopes: ["open"], generation: "g2" };
  FakeSocket.last().push(message);
  await sleep(50);
  expect(heard).toEqual([message]);

  leaveFirst();
  await sleep(20);
  expect(FakeSocket.opened).toHaveLength(2);
  expect(FakeSocket.opened[0]?.closedWith).toEqual({ code: 1000, reason: "left" });
  expect(second.channel(SCOPE)?.leading).toBe(true);
  FakeSocket.last().open();
  await sleep(10);
  // Pushes may have been missed during the handover: the second tab reads again.
  expect(connects).toEqual([false, true]);
  expect(statuses).toEqual(["offline", "connecting", "live", "connecting", "live"]);
  leaveSecond();
});
