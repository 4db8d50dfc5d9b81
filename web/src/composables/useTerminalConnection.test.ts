import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { LogChunk } from "@/api/client";
import type { ClientMessage, ServerMessage } from "@/api/protocol";
import { FrameKind } from "@/api/protocol";
import type { SocketHandlers } from "@/api/socket";
import { gapMarker } from "@/components/terminal/cursor";
import { CATCH_UP_BYTES, TAIL_BYTES, TerminalConnection, type SocketLike, type TerminalSink } from "./useTerminalConnection";

const SID = "11111111-2222-3333-4444-555555555555";
const enc = new TextEncoder();
const dec = new TextDecoder();

class FakeSocket implements SocketLike {
  open = false;
  sent: ClientMessage[] = [];
  input: string[] = [];
  closed = false;
  constructor(
    readonly handlers: SocketHandlers,
    private readonly fail: boolean,
  ) {}
  async connect(): Promise<void> {
    if (this.fail) throw new Error("the relay cannot be reached");
    this.open = true;
  }
  send(message: ClientMessage): void {
    this.sent.push(message);
  }
  sendInput(_id: string, data: Uint8Array): boolean {
    this.input.push(dec.decode(data));
    return true;
  }
  close(): void {
    this.closed = true;
    this.open = false;
  }
  // the relay's side
  deliver(message: ServerMessage): void {
    this.handlers.message?.(message);
  }
  output(offset: number, text: string): void {
    this.handlers.output?.({ kind: FrameKind.Output, sessionId: SID, offset, payload: enc.encode(text) });
  }
  drop(): void {
    this.open = false;
    this.handlers.close?.(1006, "");
  }
  attached(fromOffset: number, status = "running", more: { end?: number; prelude?: string } = {}): void {
    this.deliver({
      type: "attached",
      session_id: SID,
      status,
      from_offset: fromOffset,
      end_offset: more.end ?? fromOffset,
      cols: 80,
      rows: 24,
      read_only: false,
      prelude: more.prelude ?? "",
    });
  }
}

class FakeTerminal implements TerminalSink {
  shown = "";
  callbacks: (() => void)[] = [];
  autoParse = true;
  write(data: Uint8Array | string, parsed: () => void): void {
    this.shown += typeof data === "string" ? data : dec.decode(data);
    if (this.autoParse) parsed();
    else this.callbacks.push(parsed);
  }
  size() {
    return { cols: 100, rows: 30 };
  }
}

function setup(options: { failFirst?: number; log?: Uint8Array; readOnly?: boolean; restore?: boolean } = {}) {
  const sockets: FakeSocket[] = [];
  let failures = options.failFirst ?? 0;
  const term = new FakeTerminal();
  const readLog = vi.fn(async (_id: string, from: number, limit: number): Promise<LogChunk> => {
    const log = options.log ?? new Uint8Array();
    const data = log.subarray(from, from + limit);
    return { offset: from, endOffset: log.length, status: "idle", ended: false, data };
  });
  const connection = new TerminalConnection(SID, term, {
    readOnly: options.readOnly,
    restoreScrollback: options.restore ?? options.log !== undefined,
    readLog,
    random: () => 0.5,
    createSocket: (handlers) => {
      const socket = new FakeSocket(handlers, failures > 0);
      if (failures > 0) failures -= 1;
      sockets.push(socket);
      return socket;
    },
  });
  const last = () => sockets[sockets.length - 1]!;
  const attaches = () => sockets.flatMap((s) => s.sent.filter((m) => m.type === "attach"));
  return { connection, term, sockets, last, attaches, readLog };
}

const flush = () => vi.advanceTimersByTimeAsync(0);
const RESET = "\x1bc";
const MODES = "\x1b[?1049h\x1b[?25l\x1b[?2004h";

describe("TerminalConnection", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("attaches a fresh page for the current screen, then from the next unshown byte after a drop", async () => {
    const { connection, term, last, attaches } = setup();
    await connection.start();
    await flush();
    expect(attaches()).toEqual([{ type: "attach", session_id: SID, from_offset: null, read_only: false }]);
    last().attached(300);
    expect(connection.state.value).toBe("live");
    last().output(300, "0001\n0002\n");
    last().output(310, "0003\n");
    last().drop();
    expect(connection.state.value).toBe("reconnecting");
    await vi.advanceTimersByTimeAsync(1000);
    expect(attaches()[1]).toMatchObject({ from_offset: 315 });
    // The relay resends from earlier than we asked (a restart behind us): no line shows twice.
    last().attached(315);
    last().output(305, "0002\n0003\n0004\n");
    expect(term.shown).toBe(RESET + "0001\n0002\n0003\n0004\n");
    expect(connection.state.value).toBe("live");
  });

  it("writes a visible marker for a gap and moves past it", async () => {
    const { connection, term, last, attaches } = setup();
    await connection.start();
    await flush();
    last().attached(0);
    last().output(0, "a\n");
    last().deliver({ type: "gap", session_id: SID, from_offset: 2, to_offset: 5000 });
    last().output(5000, "b\n");
    expect(term.shown).toMatch(/^\x1bca\n\r\n\x1b\[0;2m\[… 5 KiB of output skipped.*\x1b\[0m\r\nb\n$/);
    expect(connection.lostBytes.value).toBe(4998);
    last().drop();
    await vi.advanceTimersByTimeAsync(1000);
    expect(attaches()[1]).toMatchObject({ from_offset: 5002 });
  });

  it("backs off while the relay is down and resets once attached", async () => {
    const { connection, sockets, last } = setup({ failFirst: 3 });
    await connection.start();
    await flush();
    expect(sockets).toHaveLength(1);
    expect(connection.state.value).toBe("reconnecting");
    expect(connection.error.value).toContain("cannot be reached");
    await vi.advanceTimersByTimeAsync(375); // 500 ms ceiling, half of it jittered: 375 ms
    expect(sockets).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(700);
    expect(sockets).toHaveLength(2); // the second wait is longer (750 ms)
    await vi.advanceTimersByTimeAsync(100);
    expect(sockets).toHaveLength(3);
    await vi.advanceTimersByTimeAsync(1500);
    expect(sockets).toHaveLength(4);
    last().attached(0);
    expect(connection.state.value).toBe("live");
    expect(connection.attempts.value).toBe(0);
  });

  it("reconnects at once when the network comes back, replacing a socket that may be dead", async () => {
    const { connection, sockets, last, attaches } = setup();
    const stop = connection.watchPage(window, document);
    await connection.start();
    await flush();
    last().attached(0);
    last().output(0, "x".repeat(42));
    window.dispatchEvent(new Event("online"));
    await flush();
    expect(sockets).toHaveLength(2);
    expect(sockets[0]!.closed).toBe(true);
    expect(attaches()[1]).toMatchObject({ from_offset: 42 });
    // Output still arriving on the replaced socket is ignored.
    sockets[0]!.output(42, "late");
    expect(connection.cursor.next).toBe(42);
    stop();
    connection.stop();
  });

  it("shows reconnecting as soon as the network goes away and resumes when it is back", async () => {
    const { connection, sockets, last, attaches } = setup();
    const stop = connection.watchPage(window, document);
    await connection.start();
    await flush();
    last().attached(0);
    last().output(0, "ab");
    window.dispatchEvent(new Event("offline"));
    expect(connection.state.value).toBe("reconnecting");
    expect(sockets[0]!.closed).toBe(true);
    window.dispatchEvent(new Event("online"));
    await flush();
    expect(attaches()[attaches().length - 1]).toMatchObject({ from_offset: 2 });
    last().attached(2);
    expect(connection.state.value).toBe("live");
    stop();
    connection.stop();
  });

  it("replaces the socket after a long time hidden or a sleep, not after a quick tab switch", async () => {
    const { connection, sockets, last } = setup();
    const page = Object.assign(new EventTarget(), { visibilityState: "visible" }) as unknown as Document;
    const setVisibility = (state: string) => {
      (page as unknown as { visibilityState: string }).visibilityState = state;
      page.dispatchEvent(new Event("visibilitychange"));
    };
    const stop = connection.watchPage(window, page);
    await connection.start();
    await flush();
    last().attached(0);
    setVisibility("hidden");
    await vi.advanceTimersByTimeAsync(3_000);
    setVisibility("visible");
    await flush();
    expect(sockets).toHaveLength(1); // a quick look at another tab: the socket is fine
    setVisibility("hidden");
    await vi.advanceTimersByTimeAsync(60_000);
    setVisibility("visible");
    await flush();
    expect(sockets).toHaveLength(2);
    last().attached(0);
    // A laptop sleep: the clock jumps while no timer ran.
    vi.setSystemTime(Date.now() + 120_000);
    await vi.advanceTimersByTimeAsync(2_000);
    expect(sockets).toHaveLength(3);
    stop();
    connection.stop();
  });

  it("sends resizes debounced, after attaching, and never when read-only", async () => {
    const { connection, last } = setup();
    await connection.start();
    await flush();
    last().attached(0);
    expect(last().sent.filter((m) => m.type === "resize")).toEqual([
      { type: "resize", session_id: SID, cols: 100, rows: 30 },
    ]);
    connection.resize(120, 40);
    connection.resize(121, 40);
    connection.resize(122, 41);
    await vi.advanceTimersByTimeAsync(200);
    expect(last().sent.filter((m) => m.type === "resize").slice(1)).toEqual([
      { type: "resize", session_id: SID, cols: 122, rows: 41 },
    ]);
    connection.setReadOnly(true);
    expect(last().sent[last().sent.length - 1]).toMatchObject({ type: "attach", read_only: true, from_offset: 0 });
    connection.resize(90, 20);
    await vi.advanceTimersByTimeAsync(200);
    expect(last().sent.filter((m) => m.type === "resize")).toHaveLength(2);
    expect(connection.sendInput("ls\r")).toBe(false);
    connection.setReadOnly(false);
    expect(connection.sendInput("ls\r")).toBe(true);
    expect(last().input).toEqual(["ls\r"]);
    // A 200 KiB paste goes out in frames the relay accepts (its limit is 1 MiB a frame).
    expect(connection.sendInput("p".repeat(200 << 10))).toBe(true);
    expect(last().input.slice(1).map((chunk) => chunk.length)).toEqual([65536, 65536, 65536, 8192]);
  });

  it("pauses the relay while xterm has over the high-water mark unparsed, and resumes below the low mark", async () => {
    const { connection, term, last } = setup();
    await connection.start();
    await flush();
    last().attached(0);
    term.autoParse = false;
    const chunk = "y".repeat(256 << 10);
    for (let i = 0; i < 5; i++) last().output(i * chunk.length, chunk);
    expect(last().sent.filter((m) => m.type === "flow")).toEqual([{ type: "flow", paused: true }]);
    // A reconnect while paused tells the new socket too.
    last().drop();
    await vi.advanceTimersByTimeAsync(1000);
    last().attached(5 * chunk.length);
    expect(last().sent.filter((m) => m.type === "flow")).toEqual([{ type: "flow", paused: true }]);
    term.callbacks.splice(0).forEach((done) => done());
    expect(last().sent.filter((m) => m.type === "flow")).toEqual([
      { type: "flow", paused: true },
      { type: "flow", paused: false },
    ]);
    expect(connection.flow.pending).toBe(0);
  });

  it("restores the scrollback from the log's tail and attaches right after it", async () => {
    const lines = Array.from({ length: 20000 }, (_, i) => `${String(i).padStart(6, "0")} ${"z".repeat(40)}\n`).join("");
    const log = enc.encode(lines);
    const { connection, term, attaches } = setup({ log });
    await connection.start();
    await flush();
    expect(attaches()[0]).toMatchObject({ from_offset: log.length });
    // The tail starts on a whole line, no more than TAIL_BYTES back, and ends with the last line.
    expect(term.shown.length).toBeLessThanOrEqual(TAIL_BYTES);
    expect(term.shown.length).toBeGreaterThan(TAIL_BYTES - 100);
    expect(term.shown).toMatch(/^\d{6} z+\n/);
    expect(term.shown.endsWith(`019999 ${"z".repeat(40)}\n`)).toBe(true);
    expect(connection.status.value).toBe("idle");
  });

  it("resets the terminal for the current screen and writes the prelude before the first byte", async () => {
    const { connection, term, last } = setup();
    await connection.start();
    await flush();
    term.shown = "left over";
    last().attached(9000, "running", { end: 9500, prelude: MODES });
    expect(term.shown).toBe("left over" + RESET + MODES);
    last().output(9000, "\x1b[Hscreen");
    expect(term.shown).toBe("left over" + RESET + MODES + "\x1b[Hscreen");
  });

  it("writes the prelude after a restored log tail, before live output, with no reset", async () => {
    const log = enc.encode("\x1b[Hdrawn by a TUI that switched modes on earlier\n");
    const { connection, term, last, attaches } = setup({ log });
    await connection.start();
    await flush();
    expect(attaches()[0]).toMatchObject({ from_offset: log.length });
    last().attached(log.length, "running", { prelude: MODES });
    last().output(log.length, "live");
    expect(term.shown).toBe(dec.decode(log) + MODES + "live");
  });

  it("marks bytes retention dropped before the prelude, and skips a prelude older than what is shown", async () => {
    const { connection, term, last, attaches } = setup();
    await connection.start();
    await flush();
    last().attached(0);
    last().output(0, "a\n");
    last().drop();
    await vi.advanceTimersByTimeAsync(1000);
    expect(attaches()[1]).toMatchObject({ from_offset: 2 });
    last().attached(5000, "running", { end: 5002, prelude: MODES }); // retention kept only from 5000
    last().deliver({ type: "gap", session_id: SID, from_offset: 2, to_offset: 5000 });
    last().output(5000, "b\n");
    expect(term.shown).toBe(RESET + "a\n" + gapMarker(4998) + MODES + "b\n");
    expect(connection.lostBytes.value).toBe(4998);
    // Read-only attaches again on this socket; a frame of the old attach shows before the new `attached`, whose
    // prelude describes the modes at 5002, older than what the terminal shows now.
    connection.setReadOnly(true);
    expect(attaches()[2]).toMatchObject({ from_offset: 5002, read_only: true });
    last().output(5002, "\x1b[?1049lc\n");
    last().attached(5002, "running", { end: 5008, prelude: MODES });
    last().output(5002, "\x1b[?1049lc\nd\n");
    expect(term.shown.endsWith("b\n\x1b[?1049lc\nd\n")).toBe(true);
  });

  it("takes every byte missed during a drop from the relay, without reading the log", async () => {
    const text = Array.from({ length: 40000 }, (_, i) => `l${String(i).padStart(5, "0")}\n`).join(""); // 280 KB
    const { connection, term, last, readLog } = setup({ restore: false });
    await connection.start();
    await flush();
    last().attached(0);
    last().output(0, text.slice(0, 7000)); // lines 0..999 shown, then the network went away
    last().drop();
    await vi.advanceTimersByTimeAsync(1000);
    last().attached(7000, "running", { end: text.length });
    for (let start = 7000; start < text.length; start += 65536) last().output(start, text.slice(start, start + 65536));
    last().output(text.length, "live\n");
    expect(term.shown).toBe(RESET + text + "live\n"); // every line once, in order, no marker
    expect(readLog).not.toHaveBeenCalled();
    expect(connection.lostBytes.value).toBe(0);
    expect(connection.flow.pending).toBe(0);
  });

  it("after a long absence shows the last CATCH_UP_BYTES of what it missed and marks the rest skipped", async () => {
    const { connection, term, last, attaches } = setup();
    await connection.start();
    await flush();
    last().attached(0);
    last().output(0, "a");
    last().drop();
    await vi.advanceTimersByTimeAsync(1000);
    const end = 5 << 20;
    last().attached(1, "running", { end, prelude: MODES });
    const skipTo = end - CATCH_UP_BYTES;
    expect(attaches()[attaches().length - 1]).toMatchObject({ from_offset: skipTo });
    expect(connection.state.value).toBe("reconnecting"); // live once the new attach answers
    last().output(1, "superseded"); // the old attach's first bytes, already on their way: dropped
    last().output(skipTo, "superseded too");
    last().attached(skipTo, "running", { end: end + 10, prelude: MODES });
    last().output(skipTo, "z".repeat(CATCH_UP_BYTES + 10));
    expect(connection.state.value).toBe("live");
    expect(connection.lostBytes.value).toBe(skipTo - 1);
    expect(term.shown).toBe(RESET + "a" + gapMarker(skipTo - 1) + MODES + "z".repeat(CATCH_UP_BYTES + 10));
    // A later drop finds more than CATCH_UP_BYTES again (a flood): it catches up on each new socket, once.
    last().drop();
    await vi.advanceTimersByTimeAsync(1000);
    last().attached(end + 10, "running", { end: end + 10 + (3 << 20) });
    last().attached(end + 10 + (1 << 20), "running", { end: end + 10 + (4 << 20) });
    expect(attaches().map((a) => a.from_offset).slice(-2)).toEqual([end + 10, end + 10 + (1 << 20)]);
  });

  it("shows a pending permission until the status moves on or it is decided here", async () => {
    const { connection, last } = setup();
    await connection.start();
    await flush();
    last().attached(0, "waiting_permission");
    const base = { type: "session_status" as const, session_id: SID, exit_code: null, end_offset: 0, reason: null };
    const request = { request_id: "r1", tool_name: "Bash", summary: "rm -rf build", input: { command: "rm -rf build" } };
    last().deliver({ ...base, status: "waiting_permission", ended: false, event: "PermissionRequest", permission: request });
    expect(connection.permission.value?.tool_name).toBe("Bash");
    last().deliver({ ...base, status: "waiting_permission", ended: false, event: "Notification", permission: null });
    expect(connection.permission.value?.request_id).toBe("r1");
    last().deliver({ ...base, status: "running", ended: false, event: "PostToolUse", permission: null });
    expect(connection.permission.value).toBeNull();
    last().deliver({ ...base, status: "waiting_permission", ended: false, event: "PermissionRequest", permission: { ...request, request_id: "r2" } });
    connection.markDecided("r2");
    expect(connection.permission.value).toBeNull();
    last().deliver({ ...base, status: "waiting_permission", ended: false, event: "PermissionRequest", permission: { ...request, request_id: "r2" } });
    expect(connection.permission.value).toBeNull();
    last().deliver({ ...base, status: "exited", ended: true, event: null, permission: null });
    expect(connection.ended.value).toBe(true);
    expect(connection.status.value).toBe("exited");
  });
});
