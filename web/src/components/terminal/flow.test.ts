import { describe, expect, it } from "vitest";
import { FlowControl } from "./flow";

describe("FlowControl", () => {
  it("pauses above the high-water mark and resumes below the low mark, once each", () => {
    const signals: boolean[] = [];
    const flow = new FlowControl((paused) => signals.push(paused), 1000, 200);
    flow.written(600);
    flow.written(300);
    expect(signals).toEqual([]);
    flow.written(200); // 1100 pending
    expect(signals).toEqual([true]);
    flow.written(500); // still paused: no second signal
    expect(signals).toEqual([true]);
    flow.parsed(600);
    flow.parsed(300); // 700 pending: above the low mark
    expect(signals).toEqual([true]);
    flow.parsed(600); // 100 pending
    expect(signals).toEqual([true, false]);
    expect(flow.pending).toBe(100);
    expect(flow.paused).toBe(false);
  });

  it("never counts below zero", () => {
    const flow = new FlowControl(() => undefined, 10, 5);
    flow.parsed(50);
    expect(flow.pending).toBe(0);
  });

  it("tells a new socket again while still paused", () => {
    const signals: boolean[] = [];
    const flow = new FlowControl((paused) => signals.push(paused), 10, 5);
    flow.reconnected();
    expect(signals).toEqual([]);
    flow.written(20);
    flow.reconnected();
    expect(signals).toEqual([true, true]);
  });

  it("bounds what is outstanding in a flood when writes complete in order", () => {
    const signals: boolean[] = [];
    const flow = new FlowControl((paused) => signals.push(paused));
    const queue: number[] = [];
    let peak = 0;
    // 50 MB in 64 KiB frames; the relay stops sending while paused; the parser finishes 64 KiB per step.
    let sent = 0;
    const total = 50_000_000;
    while (sent < total || queue.length > 0) {
      if (!flow.paused && sent < total) {
        const size = Math.min(65536, total - sent);
        sent += size;
        queue.push(size);
        flow.written(size);
      } else {
        flow.parsed(queue.shift()!);
      }
      peak = Math.max(peak, flow.pending);
    }
    expect(peak).toBeLessThanOrEqual((1 << 20) + 65536);
    expect(flow.pending).toBe(0);
    expect(signals.filter((s) => s).length).toBe(signals.filter((s) => !s).length);
  });
});
