import { describe, expect, it } from "vitest";
import { cleanTailStart, gapMarker, OutputCursor } from "./cursor";

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (data: Uint8Array | null) => (data === null ? null : new TextDecoder().decode(data));

describe("OutputCursor", () => {
  it("starts where the relay's first attach starts, then follows frame by frame", () => {
    const cursor = new OutputCursor();
    expect(cursor.resumeFrom).toBeNull();
    cursor.attached(100);
    expect(text(cursor.accept(100, bytes("hello")).data)).toBe("hello");
    expect(text(cursor.accept(105, bytes(" world")).data)).toBe(" world");
    expect(cursor.resumeFrom).toBe(111);
  });

  it("trims the overlap of a frame that starts before the next byte", () => {
    const cursor = new OutputCursor(10);
    const result = cursor.accept(7, bytes("abcdefg")); // offsets 7..13: 7, 8, 9 were shown
    expect(text(result.data)).toBe("defg");
    expect(result.missing).toBeNull();
    expect(cursor.next).toBe(14);
  });

  it("drops an exact duplicate and a frame entirely before the next byte", () => {
    const cursor = new OutputCursor(0);
    cursor.accept(0, bytes("line 1\n"));
    expect(cursor.accept(0, bytes("line 1\n")).data).toBeNull();
    expect(cursor.accept(2, bytes("ne")).data).toBeNull();
    expect(cursor.next).toBe(7);
  });

  it("reports a frame that starts past the next byte as missing bytes", () => {
    const cursor = new OutputCursor(5);
    const result = cursor.accept(9, bytes("xy"));
    expect(result.missing).toEqual([5, 9]);
    expect(text(result.data)).toBe("xy");
    expect(cursor.next).toBe(11);
  });

  it("moves on over a gap and counts only bytes we had not shown", () => {
    const cursor = new OutputCursor(50);
    expect(cursor.gap(40, 60)).toBe(10);
    expect(cursor.next).toBe(60);
    expect(cursor.gap(10, 55)).toBe(0); // old news
    expect(cursor.next).toBe(60);
    expect(text(cursor.accept(60, bytes("after")).data)).toBe("after");
  });

  it("keeps the next offset when the relay restarted behind us and resends older bytes", () => {
    // We showed 0..1000; the relay came back with 800 persisted and the agent resends from 800.
    const cursor = new OutputCursor(1000);
    cursor.attached(1000); // we asked for 1000; the relay waits for the agent to get there
    expect(cursor.accept(800, new Uint8Array(150)).data).toBeNull();
    const straddling = cursor.accept(950, new Uint8Array(100).fill(7));
    expect(straddling.data?.length).toBe(50);
    expect(cursor.next).toBe(1050);
  });

  it("a reconnect resumes from the next unshown byte, whatever was in flight", () => {
    const cursor = new OutputCursor();
    cursor.attached(0);
    cursor.accept(0, bytes("0001\n0002\n"));
    expect(cursor.resumeFrom).toBe(10);
    // The new socket replays from 10; a frame the old one delivered late is dropped.
    cursor.attached(10);
    expect(cursor.accept(5, bytes("0002\n")).data).toBeNull();
    expect(text(cursor.accept(10, bytes("0003\n")).data)).toBe("0003\n");
    expect(cursor.resumeFrom).toBe(15);
  });
});

describe("scrollback tail", () => {
  it("starts a tail from the middle of the log after its first newline", () => {
    expect(text(cleanTailStart(bytes("[1;3mtail of a line\nnext\n"), 500))).toBe("next\n");
    expect(text(cleanTailStart(bytes("whole log\n"), 0))).toBe("whole log\n");
    expect(text(cleanTailStart(bytes("no newline"), 9))).toBe("no newline");
  });

  it("marks a gap with a dim line that says how much is missing", () => {
    expect(gapMarker(3 << 20)).toContain("3.0 MiB");
    expect(gapMarker(2048)).toContain("2 KiB");
    expect(gapMarker(12)).toMatch(/^\r\n\x1b\[0;2m.*12 bytes.*\x1b\[0m\r\n$/);
  });
});
