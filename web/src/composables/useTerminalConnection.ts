// The terminal's connection to the relay: attach with the next byte offset we have not shown, write every byte
// exactly once (OutputCursor), mark gaps, flow control from xterm's write callback (FlowControl), reconnect with
// backoff and resume after a network drop, a background tab, a laptop sleep or a relay restart.
//
// What an attach gets (docs/protocol.md "Attaching"): with a number, every byte from there that retention keeps,
// served from the relay's log at our pace, and a `gap` only for bytes retention dropped (the log has none of them
// either, so a gap is a loss, never read back). Without one (a fresh page whose log read failed), the current
// screen: a replay from a point that redraws it, so the terminal is reset first. Either way `attached.prelude`,
// the terminal modes in force where the attach starts (alternate screen, hidden cursor, bracketed paste, mouse),
// goes to the terminal before the first byte: a replay or a log tail that starts after a program switched a mode
// on then draws as the live terminal did.
//
// Scrollback on reload: a fresh page reads the persisted log's tail over HTTP (TAIL_BYTES) and attaches right
// after it, rather than keeping bytes in sessionStorage. sessionStorage holds strings only: a 512 KiB tail is
// 683 KiB of base64 to rewrite as output arrives, against a ~5 MB quota per origin shared by every terminal tab.
// The log read is two requests on load (the end offset, then the tail), measured on loopback against a relay
// with a 2 MB log on the shared 2-core box under load (load average 14): 27 ms and 34 ms p50 over 20 runs; and it
// works in a new tab too.
import { onBeforeUnmount, ref, shallowRef, type Ref } from "vue";
import { errorMessage } from "@/api/http";
import { logs, type LogChunk } from "@/api/client";
import type { ClientMessage, Frame, PermissionRequest, ServerMessage } from "@/api/protocol";
import { RelaySocket, type SocketHandlers } from "@/api/socket";
import { cleanTailStart, gapMarker, OutputCursor } from "@/components/terminal/cursor";
import { FlowControl } from "@/components/terminal/flow";

export const TAIL_BYTES = 512 << 10;
/**
 * After a long drop or a sleep the relay would send everything missed, however much. The page shows at most the
 * last CATCH_UP_BYTES of it (about what the 10,000-line scrollback holds: older lines would scroll out of it
 * anyway) and marks the rest skipped, so it is live again after parsing 2 MiB rather than, say, 50 MB. The whole
 * of it stays in the log (`claudenest sessions logs`).
 */
export const CATCH_UP_BYTES = 2 << 20;
/** Full reset (RIS): the screen, scrollback and modes, in order with the bytes written before it. */
const RESET = "\x1bc";
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 10_000;
const RESIZE_DEBOUNCE_MS = 120;
const INPUT_FRAME_BYTES = 64 << 10;
/** Hidden this long (or a timer late by this much: the machine slept), the socket may be dead without a close. */
const STALE_AFTER_MS = 20_000;

export type ConnectionState = "connecting" | "live" | "reconnecting" | "closed";

export interface SocketLike {
  readonly open: boolean;
  connect(): Promise<void>;
  send(message: ClientMessage): void;
  sendInput(sessionId: string, data: Uint8Array): boolean;
  close(): void;
}

/** Where output goes: xterm's write, whose callback fires once the bytes are parsed. */
export interface TerminalSink {
  write(data: Uint8Array | string, parsed: () => void): void;
  /** The terminal's current size, null when it is not laid out. */
  size(): { cols: number; rows: number } | null;
}

export interface ConnectionOptions {
  readOnly?: boolean;
  /** Read the persisted tail on the first attach (a fresh page). */
  restoreScrollback?: boolean;
  createSocket?: (handlers: SocketHandlers) => SocketLike;
  readLog?: (id: string, from: number, limit: number) => Promise<LogChunk>;
  /** Jitter source, replaceable in tests. */
  random?: () => number;
}

const encoder = new TextEncoder();

export class TerminalConnection {
  readonly state = ref<ConnectionState>("connecting");
  readonly status = ref<string>("");
  readonly ended = ref(false);
  readonly exitCode = ref<number | null>(null);
  readonly permission = shallowRef<PermissionRequest | null>(null);
  readonly error = ref<string>("");
  readonly readOnly: Ref<boolean>;
  /** Bytes of output lost for good since the page opened (gaps). */
  readonly lostBytes = ref(0);
  readonly attempts = ref(0);

  readonly cursor = new OutputCursor();
  readonly flow: FlowControl;

  private socket: SocketLike | null = null;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private resizeTimer: ReturnType<typeof setTimeout> | null = null;
  private lastSize: { cols: number; rows: number } | null = null;
  private stopped = false;
  private started = false;
  private connecting = false;
  private wasLive = false;
  private decided = new Set<string>();
  /** This socket already skipped ahead to the last CATCH_UP_BYTES (at most once: a flood must not loop it). */
  private skipped = false;
  /** Attached again further on: what arrives for the superseded attach, up to the new `attached`, is dropped. */
  private skipping = false;
  private readonly createSocket: (handlers: SocketHandlers) => SocketLike;
  private readonly readLog: (id: string, from: number, limit: number) => Promise<LogChunk>;
  private readonly random: () => number;

  constructor(
    readonly sessionId: string,
    private readonly sink: TerminalSink,
    private readonly options: ConnectionOptions = {},
  ) {
    this.readOnly = ref(options.readOnly ?? false);
    this.createSocket = options.createSocket ?? ((handlers) => new RelaySocket(handlers));
    this.readLog = options.readLog ?? logs.read;
    this.random = options.random ?? Math.random;
    this.flow = new FlowControl((paused) => this.socket?.send({ type: "flow", paused }));
  }

  /** Restore the scrollback (a fresh page), then connect and attach. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    if (this.options.restoreScrollback) await this.restoreScrollback();
    if (!this.stopped) void this.connect();
  }

  stop(): void {
    this.stopped = true;
    this.clearRetry();
    if (this.resizeTimer) clearTimeout(this.resizeTimer);
    this.socket?.close();
    this.socket = null;
    this.state.value = "closed";
  }

  /** Typed input (term.onData, the key bar, the compose box): UTF-8 bytes to the session. */
  sendInput(data: string): boolean {
    return this.sendBytes(encoder.encode(data));
  }

  /** Raw bytes (xterm's onBinary: mouse reports). */
  sendBytes(data: Uint8Array): boolean {
    if (this.readOnly.value || data.length === 0) return false;
    if (this.state.value !== "live" || !this.socket) return false;
    // A large paste in frames well under the relay's max_frame_bytes (1 MiB closes the socket with 1009).
    for (let start = 0; start < data.length; start += INPUT_FRAME_BYTES) {
      if (!this.socket.sendInput(this.sessionId, data.subarray(start, start + INPUT_FRAME_BYTES))) return false;
    }
    return true;
  }

  /** The terminal was fitted to a new size: tell the PTY, debounced; never from a read-only viewer. */
  resize(cols: number, rows: number): void {
    this.lastSize = { cols, rows };
    if (this.resizeTimer) clearTimeout(this.resizeTimer);
    this.resizeTimer = setTimeout(() => {
      this.resizeTimer = null;
      this.sendSize();
    }, RESIZE_DEBOUNCE_MS);
  }

  setReadOnly(readOnly: boolean): void {
    if (this.readOnly.value === readOnly) return;
    this.readOnly.value = readOnly;
    // Attaching again replaces this socket's attachment; the cursor drops whatever arrives twice meanwhile.
    if (this.state.value === "live") this.attach();
  }

  /** A decision was made here: hide the bar now, and do not show that request again from a late message. */
  markDecided(requestId: string): void {
    this.decided.add(requestId);
    if (this.permission.value?.request_id === requestId) this.permission.value = null;
  }

  /** Reconnect at once: `online`, the tab visible again, or the socket is presumed dead (after a sleep). */
  reconnectNow(force = false): void {
    if (this.stopped) return;
    if (!force && (this.state.value === "live" || this.connecting)) return;
    this.clearRetry();
    this.attempts.value = 0;
    void this.connect();
  }

  // -- internals ---------------------------------------------------------------------------------------------

  private async restoreScrollback(): Promise<void> {
    try {
      const probe = await this.readLog(this.sessionId, 0, 1);
      let position = Math.max(0, probe.endOffset - TAIL_BYTES);
      const end = probe.endOffset;
      // A log with holes comes back in contiguous pieces: ask again from where each one ends.
      for (let reads = 0; reads < 8 && position < end && !this.stopped; reads++) {
        const chunk = await this.readLog(this.sessionId, position, end - position);
        if (chunk.data.length === 0) break;
        const first = this.cursor.next === null;
        if (!first && chunk.offset > position) this.markLost(chunk.offset - position);
        const data = first ? cleanTailStart(chunk.data, chunk.offset) : chunk.data;
        this.write(data);
        this.cursor.next = chunk.offset + chunk.data.length;
        position = this.cursor.next;
      }
      if (this.cursor.next === null) this.cursor.next = end; // nothing printed yet, or the log is empty
      this.status.value = probe.status;
      this.ended.value = probe.ended;
    } catch {
      // The log is unreachable: the current screen on attach instead (from_offset null).
      this.cursor.next = null;
    }
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    this.clearRetry();
    const previous = this.socket;
    this.socket = null;
    previous?.close();
    this.skipped = false;
    this.skipping = false;
    this.state.value = this.wasLive || this.attempts.value > 0 ? "reconnecting" : "connecting";
    const socket = this.createSocket({
      message: (message) => {
        if (this.socket === socket) this.onMessage(message);
      },
      output: (frame) => {
        if (this.socket === socket) this.onOutput(frame);
      },
      close: () => {
        if (this.socket === socket) this.lost();
      },
    });
    this.socket = socket;
    this.connecting = true;
    try {
      await socket.connect();
    } catch (error) {
      if (this.socket !== socket) return;
      this.connecting = false;
      this.error.value = errorMessage(error);
      this.lost();
      return;
    }
    if (this.socket !== socket || this.stopped) return;
    this.connecting = false;
    this.attach();
  }

  private attach(): void {
    this.socket?.send({
      type: "attach",
      session_id: this.sessionId,
      from_offset: this.cursor.resumeFrom,
      read_only: this.readOnly.value,
    });
  }

  /** The network went away: close the socket (it cannot deliver) and wait to reconnect. */
  dropped(): void {
    if (this.stopped || !this.socket) return;
    const socket = this.socket;
    this.socket = null;
    socket.close();
    this.lost();
  }

  private lost(): void {
    if (this.stopped) return;
    this.socket = null;
    this.connecting = false;
    this.state.value = "reconnecting";
    this.scheduleRetry();
  }

  private scheduleRetry(): void {
    this.clearRetry();
    // Capped exponential backoff with jitter (half fixed, half random), as the agent does.
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** this.attempts.value);
    const delay = ceiling / 2 + (this.random() * ceiling) / 2;
    this.attempts.value += 1;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.connect();
    }, delay);
  }

  private clearRetry(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  private onMessage(message: ServerMessage): void {
    switch (message.type) {
      case "attached":
        if (message.session_id !== this.sessionId) return;
        if (this.skipAhead(message.from_offset, message.end_offset)) return;
        this.skipping = false;
        this.startAttach(message.from_offset, message.prelude);
        this.status.value = message.status;
        this.state.value = "live";
        this.wasLive = true;
        this.attempts.value = 0;
        this.error.value = "";
        this.flow.reconnected();
        this.sendSize();
        return;
      case "gap":
        if (message.session_id !== this.sessionId || this.skipping) return;
        this.markLost(this.cursor.gap(message.from_offset, message.to_offset));
        return;
      case "session_status":
        if (message.session_id !== this.sessionId) return;
        this.status.value = message.status;
        this.ended.value = message.ended;
        this.exitCode.value = message.exit_code;
        if (message.permission && !this.decided.has(message.permission.request_id) && !message.ended) {
          this.permission.value = message.permission;
        } else if (message.ended || message.status !== "waiting_permission") {
          // A Notification while waiting carries no request: the bar stays until the status moves on.
          this.permission.value = null;
        }
        return;
      case "error":
        if (message.session_id !== null && message.session_id !== this.sessionId) return;
        this.error.value = message.message;
        if (message.code === "not_found") this.stop();
        return;
      default:
        return;
    }
  }

  /**
   * A resume that finds more than CATCH_UP_BYTES waiting: mark the older part skipped and attach again from the
   * last CATCH_UP_BYTES. True when it did (the rest of this `attached` is for the superseded attach).
   */
  private skipAhead(fromOffset: number, endOffset: number): boolean {
    const next = this.cursor.next;
    if (next === null || this.skipped || endOffset - Math.max(next, fromOffset) <= CATCH_UP_BYTES) return false;
    this.skipped = true;
    this.skipping = true;
    this.markLost(this.cursor.gap(next, endOffset - CATCH_UP_BYTES));
    this.attach();
    return true;
  }

  /** Before the first byte of an attach: a reset for a fresh screen, then the modes in force where it starts. */
  private startAttach(fromOffset: number, prelude: string): void {
    const next = this.cursor.next;
    if (next === null) {
      this.cursor.attached(fromOffset);
      this.write(RESET + prelude);
      return;
    }
    // Bytes retention dropped: their marker goes before the prelude, where they were (the relay's `gap` for them
    // that follows finds them marked).
    if (next < fromOffset) this.markLost(this.cursor.gap(next, fromOffset));
    // Past `fromOffset` already (frames of the attach this one replaced, or a relay that lost its last bytes):
    // the terminal's modes are those of what it showed, newer than the prelude's.
    if (next <= fromOffset && prelude) this.write(prelude);
  }

  private onOutput(frame: Frame): void {
    if (frame.sessionId !== this.sessionId || this.skipping) return;
    const { data, missing } = this.cursor.accept(frame.offset, frame.payload);
    if (missing) this.markLost(missing[1] - missing[0]);
    if (data) this.write(data);
  }

  private markLost(bytes: number): void {
    if (bytes <= 0) return;
    this.lostBytes.value += bytes;
    this.write(gapMarker(bytes));
  }

  private write(data: Uint8Array | string): void {
    const size = data.length;
    this.flow.written(size);
    this.sink.write(data, () => this.flow.parsed(size));
  }

  private sendSize(): void {
    const size = this.lastSize ?? this.sink.size();
    if (!size || this.readOnly.value || this.state.value !== "live") return;
    this.socket?.send({ type: "resize", session_id: this.sessionId, cols: size.cols, rows: size.rows });
  }

  // -- page lifecycle (wired by useTerminalConnection) --------------------------------------------------------

  private hiddenAt: number | null = null;
  private lastTick = Date.now();
  private ticker: ReturnType<typeof setInterval> | null = null;

  /** Listen for the events after which a socket must be checked or replaced. Returns the cleanup. */
  watchPage(target: Window = window, doc: Document = document): () => void {
    const online = () => this.reconnectNow(true); // a new network: the old TCP connection is likely dead
    // No network: say so now rather than when the socket finally times out; retries wait for `online` or backoff.
    const offline = () => this.dropped();
    const visibility = () => {
      if (doc.visibilityState === "hidden") {
        this.hiddenAt = Date.now();
        return;
      }
      const hiddenFor = this.hiddenAt === null ? 0 : Date.now() - this.hiddenAt;
      this.hiddenAt = null;
      this.reconnectNow(hiddenFor > STALE_AFTER_MS);
    };
    const pageshow = (event: Event) => this.reconnectNow((event as PageTransitionEvent).persisted === true);
    target.addEventListener("online", online);
    target.addEventListener("offline", offline);
    doc.addEventListener("visibilitychange", visibility);
    target.addEventListener("pageshow", pageshow);
    // A laptop that slept: timers stop, the socket may look open but be dead. A tick far too late tells.
    this.lastTick = Date.now();
    this.ticker = setInterval(() => {
      const now = Date.now();
      const late = now - this.lastTick;
      this.lastTick = now;
      if (late > STALE_AFTER_MS && doc.visibilityState === "visible") this.reconnectNow(true);
    }, 2_000);
    return () => {
      target.removeEventListener("online", online);
      target.removeEventListener("offline", offline);
      doc.removeEventListener("visibilitychange", visibility);
      target.removeEventListener("pageshow", pageshow);
      if (this.ticker) clearInterval(this.ticker);
    };
  }
}

/** A connection for the component's lifetime: page events wired, everything closed on unmount. */
export function useTerminalConnection(
  sessionId: string,
  sink: TerminalSink,
  options: ConnectionOptions = {},
): TerminalConnection {
  const connection = new TerminalConnection(sessionId, sink, options);
  const unwatch = connection.watchPage();
  onBeforeUnmount(() => {
    unwatch();
    connection.stop();
  });
  return connection;
}
