import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Activity } from "@/api/types";
import { RETRY_DELAYS_MS, subscribe } from "./useProjectEvents";

class FakeEventSource {
  static all: FakeEventSource[] = [];
  onopen: (() => void) | null = null;
  onmessage: ((event: MessageEvent<string>) => void) | null = null;
  onerror: (() => void) | null = null;
  closed = false;
  constructor(readonly url: string) {
    FakeEventSource.all.push(this);
  }
  close(): void {
    this.closed = true;
  }
  send(row: Partial<Activity> & { kind: string }): void {
    this.onmessage?.({ data: JSON.stringify({ project_id: "p", ...row }) } as MessageEvent<string>);
  }
  static last(): FakeEventSource {
    return FakeEventSource.all[FakeEventSource.all.length - 1]!;
  }
}

beforeEach(() => {
  FakeEventSource.all = [];
  vi.stubGlobal("EventSource", FakeEventSource);
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
  vi.unstubAllGlobals();
});

describe("a project's event stream", () => {
  it("starts after the cursor the view read, and delivers each row once", () => {
    const seen: number[] = [];
    const stop = subscribe("p", (row) => seen.push(row.id), 41);
    expect(FakeEventSource.last().url).toBe("/api/projects/p/events?after=41");
    const source = FakeEventSource.last();
    source.send({ id: 42, kind: "task_created" });
    source.send({ id: 42, kind: "task_created" }); // replayed twice
    source.send({ id: 43, kind: "task_claimed" });
    expect(seen).toEqual([42, 43]);
    stop();
    expect(source.closed).toBe(true);
  });

  it("reopens from the last row seen after an error, waiting longer each time", () => {
    const seen: number[] = [];
    const stop = subscribe("p", (row) => seen.push(row.id), 0);
    FakeEventSource.last().send({ id: 5, kind: "task_created" });
    FakeEventSource.last().onerror?.();
    expect(FakeEventSource.all).toHaveLength(1);
    vi.advanceTimersByTime(RETRY_DELAYS_MS[0]!);
    expect(FakeEventSource.last().url).toBe("/api/projects/p/events?after=5");
    FakeEventSource.last().onerror?.();
    vi.advanceTimersByTime(RETRY_DELAYS_MS[0]!);
    expect(FakeEventSource.all).toHaveLength(2); // the second wait is longer
    vi.advanceTimersByTime(RETRY_DELAYS_MS[1]! - RETRY_DELAYS_MS[0]!);
    expect(FakeEventSource.all).toHaveLength(3);
    FakeEventSource.last().onopen?.(); // live again: the next failure waits the shortest time
    FakeEventSource.last().send({ id: 6, kind: "lock_acquired" });
    expect(seen).toEqual([5, 6]);
    stop();
  });

  it("reconnects from its cursor when the relay drops it for falling behind", () => {
    const stop = subscribe("p", () => undefined, 0);
    FakeEventSource.last().send({ id: 9, kind: "task_created" });
    FakeEventSource.last().send({ id: null as unknown as number, kind: "stream_dropped" });
    expect(FakeEventSource.all[0]!.closed).toBe(true);
    vi.advanceTimersByTime(RETRY_DELAYS_MS[0]!);
    expect(FakeEventSource.last().url).toBe("/api/projects/p/events?after=9");
    stop();
  });

  it("ends for good when the project is deleted", () => {
    const kinds: string[] = [];
    const stop = subscribe("p", (row) => kinds.push(row.kind), 0);
    FakeEventSource.last().send({ id: 10, kind: "project_deleted" });
    expect(kinds).toEqual(["project_deleted"]);
    expect(FakeEventSource.last().closed).toBe(true);
    vi.advanceTimersByTime(60_000);
    expect(FakeEventSource.all).toHaveLength(1);
    stop();
  });

  it("is shared by the views of one project, and a newcomer with an older cursor gets the rows it lacks", () => {
    const first: number[] = [];
    const second: number[] = [];
    const stopFirst = subscribe("p", (row) => first.push(row.id), 10);
    FakeEventSource.last().send({ id: 11, kind: "task_created" });
    const stopSecond = subscribe("p", (row) => second.push(row.id), 11);
    expect(FakeEventSource.all).toHaveLength(1); // one stream for both
    FakeEventSource.last().send({ id: 12, kind: "task_claimed" });
    expect(first).toEqual([11, 12]);
    expect(second).toEqual([12]);
    stopFirst();
    expect(FakeEventSource.last().closed).toBe(false);
    stopSecond();
    expect(FakeEventSource.last().closed).toBe(true);
  });
});
