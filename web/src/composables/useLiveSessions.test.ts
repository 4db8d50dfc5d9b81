import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { SocketHandlers } from "@/api/socket";

vi.mock("@/api/socket", () => ({ RelaySocket: class {} }));
vi.mock("@/stores/sessions", () => ({ useSessionsStore: () => ({}) }));

import { LiveSessions, type LiveSocket } from "./useLiveSessions";

class FakeSocket implements LiveSocket {
  open = false;
  sent: unknown[] = [];
  fail = false;
  constructor(readonly handlers: SocketHandlers) {}
  async connect(): Promise<void> {
    if (this.fail) throw new Error("relay down");
    this.open = true;
  }
  acknowledge = true; // a relay that answers watch with watching
  send(message: { type: "watch" }): void {
    this.sent.push(message);
    if (this.acknowledge) queueMicrotask(() => this.handlers.message?.({ type: "watching" }));
  }
  close(): void {
    this.open = false;
  }
  drop(): void {
    this.open = false;
    this.handlers.close?.(1006, "");
  }
}

describe("LiveSessions", () => {
  let sockets: FakeSocket[];
  let failNext: boolean;
  const store = { applyStatus: vi.fn(), refresh: vi.fn(async () => undefined) };
  const target = new EventTarget();

  function live(): LiveSessions {
    return new LiveSessions(
      store,
      (handlers) => {
        const socket = new FakeSocket(handlers);
        socket.fail = failNext;
        sockets.push(socket);
        return socket;
      },
      target as unknown as Window,
    );
  }

  beforeEach(() => {
    vi.useFakeTimers();
    sockets = [];
    failNext = false;
    store.applyStatus.mockReset();
    store.refresh.mockClear();
  });
  afterEach(() => vi.useRealTimers());

  it("opens one socket for all users, sends watch, then reads the list", async () => {
    const sessions = live();
    sessions.acquire();
    sessions.acquire();
    await vi.waitFor(() => expect(sessions.state.value).toBe("live"));
    expect(sockets).toHaveLength(1);
    expect(sockets[0]!.sent).toEqual([{ type: "watch" }]);
    expect(store.refresh).toHaveBeenCalledTimes(1);
    sessions.release();
    expect(sockets[0]!.open).toBe(true); // still one user
    sessions.release();
    expect(sockets[0]!.open).toBe(false);
  });

  it("reads the list only once the relay says the watch is in place", async () => {
    const sessions = live();
    sessions.acquire();
    await vi.waitFor(() => expect(sockets).toHaveLength(1));
    await vi.waitFor(() => expect(store.refresh).toHaveBeenCalledTimes(1));
    expect(sockets[0]!.sent).toEqual([{ type: "watch" }]);
    sessions.release();
  });

  it("reads the list after a while from a relay that does not acknowledge watch", async () => {
    const sessions = new LiveSessions(
      store,
      (handlers) => {
        const socket = new FakeSocket(handlers);
        socket.acknowledge = false;
        sockets.push(socket);
        return socket;
      },
      target as unknown as Window,
    );
    sessions.acquire();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(store.refresh).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(5_000);
    expect(store.refresh).toHaveBeenCalledTimes(1);
    expect(sessions.state.value).toBe("live");
    sessions.release();
  });

  it("hands session_status events to the store and ignores others", async () => {
    const sessions = live();
    sessions.acquire();
    await vi.waitFor(() => expect(sessions.state.value).toBe("live"));
    const event = { type: "session_status", session_id: "a", status: "idle" };
    sockets[0]!.handlers.message?.(event as never);
    sockets[0]!.handlers.message?.({ type: "resize", session_id: "a", cols: 1, rows: 1 });
    expect(store.applyStatus).toHaveBeenCalledExactlyOnceWith(event);
    sessions.release();
  });

  it("reconnects after a drop with backoff, and at once when the network comes back", async () => {
    const sessions = live();
    sessions.acquire();
    await vi.waitFor(() => expect(sessions.state.value).toBe("live"));
    failNext = true;
    sockets[0]!.drop();
    expect(sessions.state.value).toBe("reconnecting");
    await vi.advanceTimersByTimeAsync(1_000); // first retry within a second: fails
    expect(sockets).toHaveLength(2);
    expect(sessions.state.value).toBe("reconnecting");
    failNext = false;
    target.dispatchEvent(new Event("online")); // no need to wait for the next (2 s) retry
    await vi.waitFor(() => expect(sessions.state.value).toBe("live"));
    expect(sockets).toHaveLength(3);
    expect(sockets[2]!.sent).toEqual([{ type: "watch" }]);
    expect(store.refresh).toHaveBeenCalledTimes(2); // the list is re-read after the reconnect
    sessions.release();
  });
});
