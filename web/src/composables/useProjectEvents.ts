// The live activity of a project: one Server-Sent Events stream (GET /api/projects/{id}/events, the cookie rides
// along) shared by every view of that project that is on screen, resumed with ?after=<last id seen> whenever it
// drops, so no row is lost between the backlog a view read and the live rows (docs/coordination.md, "Events").
import { computed, getCurrentInstance, onBeforeUnmount, ref, shallowRef, type ComputedRef, type Ref } from "vue";
import { projects as api } from "@/api/client";
import type { Activity } from "@/api/types";

export type StreamState = "connecting" | "live" | "reconnecting" | "deleted";
export type ActivityHandler = (row: Activity) => void;

/** Waits before reopening a dropped stream: 1 s, 2 s, 5 s, then every 10 s (never polling faster). */
export const RETRY_DELAYS_MS = [1_000, 2_000, 5_000, 10_000];

interface Channel {
  projectId: string;
  source: EventSource | null;
  handlers: Set<ActivityHandler>;
  /** The id of the last row delivered: the cursor to resume from. */
  lastId: number | null;
  state: Ref<StreamState>;
  failures: number;
  timer: ReturnType<typeof setTimeout> | null;
}

const channels = new Map<string, Channel>();

function open(channel: Channel): void {
  if (typeof EventSource === "undefined") return;
  const after = channel.lastId === null ? undefined : String(channel.lastId);
  const source = new EventSource(api.eventsUrl(channel.projectId, after));
  channel.source = source;
  source.onopen = () => {
    channel.failures = 0;
    channel.state.value = "live";
  };
  source.onmessage = (event: MessageEvent<string>) => {
    let row: Activity;
    try {
      row = JSON.parse(event.data) as Activity;
    } catch {
      return;
    }
    const outcome = deliver(channel, row);
    if (outcome === "drop") reconnect(channel);
    else if (outcome === "end") close(channel);
  };
  // The browser would reconnect by itself with Last-Event-ID, but ?after= in the URL would win over it and
  // replay from the first cursor: close, and reopen from the last row seen.
  source.onerror = () => reconnect(channel);
}

/** Hands a row to every handler once (by id) and handles the stream's own final events. */
export function deliver(channel: Pick<Channel, "handlers" | "lastId" | "state">, row: Activity): "ok" | "drop" | "end" {
  if (row.kind === "stream_dropped" && (row.id === null || row.id === undefined)) {
    return "drop";
  }
  if (typeof row.id === "number") {
    if (channel.lastId !== null && row.id <= channel.lastId) return "ok"; // replayed twice
    channel.lastId = row.id;
  }
  for (const handler of [...channel.handlers]) {
    try {
      handler(row);
    } catch (error) {
      console.error("activity handler failed", error);
    }
  }
  if (row.kind === "project_deleted") {
    channel.state.value = "deleted";
    return "end";
  }
  return "ok";
}

function close(channel: Channel): void {
  if (channel.timer !== null) clearTimeout(channel.timer);
  channel.timer = null;
  channel.source?.close();
  channel.source = null;
}

function reconnect(channel: Channel): void {
  close(channel);
  if (channel.handlers.size === 0 || channel.state.value === "deleted") return;
  channel.state.value = "reconnecting";
  const delay = RETRY_DELAYS_MS[Math.min(channel.failures, RETRY_DELAYS_MS.length - 1)] ?? 10_000;
  channel.failures += 1;
  channel.timer = setTimeout(() => {
    channel.timer = null;
    open(channel);
  }, delay);
}

/**
 * Follow a project's activity while the calling component is mounted. `after` is the id of the last row the view
 * already has (from GET .../activity), so the stream replays what came after it; without it the stream starts live.
 * Views of the same project share one stream.
 */
export function subscribe(projectId: string, handler: ActivityHandler, after?: number | null): () => void {
  let channel = channels.get(projectId);
  if (!channel) {
    channel = {
      projectId,
      source: null,
      handlers: new Set(),
      lastId: after ?? null,
      state: ref<StreamState>("connecting"),
      failures: 0,
      timer: null,
    };
    channels.set(projectId, channel);
  } else if (after !== undefined && after !== null && (channel.lastId === null || after < channel.lastId)) {
    // A newcomer that has less than what the stream already delivered: replay to it by reopening from its cursor.
    channel.lastId = after;
    close(channel);
  }
  channel.handlers.add(handler);
  if (!channel.source && channel.timer === null && channel.state.value !== "deleted") {
    channel.state.value = "connecting";
    open(channel);
  }
  const mine = channel;
  return () => {
    mine.handlers.delete(handler);
    if (mine.handlers.size === 0) {
      close(mine);
      channels.delete(mine.projectId);
    }
  };
}

/** `subscribe` tied to the calling component's life; `state` says whether the shared stream is live. */
export function useProjectEvents(
  projectId: string,
  handler: ActivityHandler,
): { start: (after?: number | null) => void; stop: () => void; state: ComputedRef<StreamState> } {
  const current = shallowRef<Channel | null>(null);
  let unsubscribe: (() => void) | null = null;
  function stop(): void {
    unsubscribe?.();
    unsubscribe = null;
    current.value = null;
  }
  function start(after?: number | null): void {
    stop();
    unsubscribe = subscribe(projectId, handler, after);
    current.value = channels.get(projectId) ?? null;
  }
  const state = computed<StreamState>(() => current.value?.state.value ?? "connecting");
  if (getCurrentInstance()) onBeforeUnmount(stop);
  return { start, stop, state };
}
