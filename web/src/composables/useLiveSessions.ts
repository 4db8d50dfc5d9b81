// One WebSocket per tab that `watch`es all of the user's sessions and feeds their `session_status` events to the
// sessions store. Shared by every view that shows sessions (reference counted); reconnects with capped backoff,
// and at once when the network comes back (`online`) or the tab is shown again (`visibilitychange`), then re-reads
// the list so nothing that happened while disconnected is missed.
import { onBeforeUnmount, onMounted, readonly, ref, type Ref } from "vue";
import { RelaySocket, type SocketHandlers } from "@/api/socket";
import { useSessionsStore } from "@/stores/sessions";

export type LiveState = "connecting" | "live" | "reconnecting";

export interface LiveSocket {
  readonly open: boolean;
  connect(): Promise<void>;
  send(message: { type: "watch" }): void;
  close(): void;
}

type SessionsStore = Pick<ReturnType<typeof useSessionsStore>, "applyStatus" | "refresh">;
type SocketFactory = (handlers: SocketHandlers) => LiveSocket;

const RETRY_MIN_MS = 1_000;
const RETRY_MAX_MS = 30_000;
// How long to wait for the relay's `watching` before reading the list anyway (a relay older than the message).
const WATCH_ACK_TIMEOUT_MS = 5_000;
const LIST_REFRESH_MS = 60_000; // totals and last messages are not in the events; never faster than every 10 s

export class LiveSessions {
  readonly state = ref<LiveState>("connecting");
  readonly lastError = ref<string | null>(null);
  private socket: LiveSocket | null = null;
  private users = 0;
  private attempt = 0;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private refreshTimer: ReturnType<typeof setInterval> | null = null;
  private connecting = false;
  private lastRefresh = 0;

  constructor(
    private readonly store: SessionsStore,
    private readonly makeSocket: SocketFactory = (handlers) => new RelaySocket(handlers),
    private readonly target: Pick<Window, "addEventListener" | "removeEventListener"> | null = window,
  ) {}

  acquire(): void {
    this.users += 1;
    if (this.users > 1) return;
    this.target?.addEventListener("online", this.onWake);
    document.addEventListener("visibilitychange", this.onVisibility);
    this.refreshTimer = setInterval(() => void this.refresh(LIST_REFRESH_MS), LIST_REFRESH_MS);
    void this.connect();
  }

  release(): void {
    this.users = Math.max(0, this.users - 1);
    if (this.users > 0) return;
    this.target?.removeEventListener("online", this.onWake);
    document.removeEventListener("visibilitychange", this.onVisibility);
    if (this.refreshTimer) clearInterval(this.refreshTimer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.refreshTimer = this.retryTimer = null;
    const socket = this.socket;
    this.socket = null;
    socket?.close();
    this.state.value = "connecting";
  }

  /** Re-read the list unless that happened less than `minAgeMs` ago. */
  async refresh(minAgeMs = 0): Promise<void> {
    if (minAgeMs > 0 && Date.now() - this.lastRefresh < minAgeMs) return;
    this.lastRefresh = Date.now();
    try {
      await this.store.refresh();
    } catch {
      // the store keeps its error for the page to show
    }
  }

  private readonly onWake = (): void => {
    if (this.users === 0) return;
    if (this.socket?.open) {
      void this.refresh(10_000);
      return;
    }
    this.attempt = 0;
    void this.connect();
  };

  private readonly onVisibility = (): void => {
    if (document.visibilityState === "visible") this.onWake();
  };

  private async connect(): Promise<void> {
    if (this.connecting || this.users === 0) return;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.connecting = true;
    let acknowledged: () => void = () => undefined;
    const watching = new Promise<void>((resolve) => {
      acknowledged = resolve;
    });
    const socket = this.makeSocket({
      message: (message) => {
        if (message.type === "session_status") this.store.applyStatus(message);
        else if (message.type === "watching") acknowledged();
      },
      close: () => {
        if (this.socket === socket) this.lost();
      },
    });
    this.socket = socket;
    try {
      await socket.connect();
      if (this.socket !== socket) return; // released meanwhile
      socket.send({ type: "watch" });
      // Read the list only once the relay says the watch is in place: from then on every change comes over the
      // socket, so the list and the events together miss nothing (read earlier, an event could fall between).
      await Promise.race([watching, new Promise<void>((resolve) => setTimeout(resolve, WATCH_ACK_TIMEOUT_MS))]);
      if (this.socket !== socket) return; // released or replaced meanwhile
      this.attempt = 0;
      this.state.value = "live";
      this.lastError.value = null;
      await this.refresh(); // whatever changed while we were away
    } catch (e) {
      this.lastError.value = e instanceof Error ? e.message : String(e);
      if (this.socket === socket) this.lost();
    } finally {
      this.connecting = false;
    }
  }

  private lost(): void {
    this.socket = null;
    if (this.users === 0) return;
    this.state.value = "reconnecting";
    const delay = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** this.attempt);
    this.attempt += 1;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => void this.connect(), delay / 2 + Math.random() * (delay / 2));
  }
}

let shared: LiveSessions | null = null;

/** Keeps the shared watch socket open while the calling component is mounted. */
export function useLiveSessions(): {
  state: Readonly<Ref<LiveState>>;
  lastError: Readonly<Ref<string | null>>;
  refresh: () => Promise<void>;
} {
  const store = useSessionsStore();
  shared ??= new LiveSessions(store);
  const live = shared;
  onMounted(() => live.acquire());
  onBeforeUnmount(() => live.release());
  return { state: readonly(live.state), lastError: readonly(live.lastError), refresh: () => live.refresh() };
}
