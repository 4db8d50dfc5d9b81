// Every session of the signed-in user, kept live: a list from GET /api/sessions, then `session_status` events from
// the one watch WebSocket (composables/useLiveSessions.ts) applied on top. Sessions the list did not have (started
// elsewhere, e.g. from the CLI) are fetched when their first event arrives.
import { defineStore } from "pinia";
import { computed, ref } from "vue";
import { sessions as api, type NewSession } from "@/api/client";
import { ApiError } from "@/api/http";
import type { ServerMessage } from "@/api/protocol";
import type { PendingPermission, Session } from "@/api/types";

export type SessionStatusEvent = Extract<ServerMessage, { type: "session_status" }>;

export const LIVE_STATES = ["running", "idle", "waiting_permission", "error"] as const;
const LIST_LIMIT = 500;

export interface SessionFilter {
  machine?: string;
  state?: string;
  project?: string;
}

export function matchesFilter(session: Session, filter: SessionFilter): boolean {
  if (filter.machine && session.machine_id !== filter.machine) return false;
  if (filter.project && session.project_id !== filter.project) return false;
  if (filter.state) {
    if (filter.state === "live") return !session.ended;
    if (filter.state === "ended") return session.ended;
    if (session.status !== filter.state) return false;
  }
  return true;
}

/** The pending request after an event: set by PermissionRequest, kept while still waiting, cleared otherwise. */
function pendingAfter(current: PendingPermission | null, event: SessionStatusEvent): PendingPermission | null {
  if (event.ended) return null;
  if (event.permission) {
    return {
      request_id: event.permission.request_id,
      tool_name: event.permission.tool_name,
      summary: event.permission.summary,
      input: event.permission.input ?? {},
    };
  }
  return event.status === "waiting_permission" ? current : null;
}

export const useSessionsStore = defineStore("sessions", () => {
  const byId = ref<Record<string, Session>>({});
  const loaded = ref(false);
  const loading = ref(false);
  const error = ref<string | null>(null);
  // Sessions whose fields changed by an event after a list request started keep the event's fields.
  let eventSeq = 0;
  const touchedAt = new Map<string, number>();
  const fetching = new Map<string, Promise<Session | null>>();
  const queued = new Map<string, SessionStatusEvent[]>();
  const refetchTimers = new Map<string, ReturnType<typeof setTimeout>>();

  const all = computed(() =>
    Object.values(byId.value).sort((a, b) => (a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : 0)),
  );
  const live = computed(() => all.value.filter((s) => !s.ended));
  const waiting = computed(() => live.value.filter((s) => s.pending_permission !== null));
  const countsByState = computed(() => {
    const counts: Record<string, number> = { running: 0, idle: 0, waiting_permission: 0, error: 0, starting: 0 };
    for (const s of live.value) counts[s.status] = (counts[s.status] ?? 0) + 1;
    return counts;
  });

  function put(session: Session): void {
    byId.value[session.id] = session;
  }

  async function refresh(): Promise<void> {
    const startedAt = eventSeq;
    loading.value = true;
    try {
      const { sessions } = await api.list({ limit: LIST_LIMIT });
      const next: Record<string, Session> = {};
      for (const fresh of sessions) {
        const mine = byId.value[fresh.id];
        const newer = (touchedAt.get(fresh.id) ?? -1) > startedAt;
        next[fresh.id] = newer && mine ? { ...fresh, ...liveFields(mine) } : fresh;
      }
      // Keep sessions that arrived by event while the list was in flight (created after it was read).
      for (const [id, session] of Object.entries(byId.value)) {
        if (!(id in next) && (touchedAt.get(id) ?? -1) > startedAt) next[id] = session;
      }
      byId.value = next;
      loaded.value = true;
      error.value = null;
    } catch (e) {
      error.value = e instanceof Error ? e.message : String(e);
      throw e;
    } finally {
      loading.value = false;
    }
  }

  function liveFields(s: Session): Partial<Session> {
    const { status, exit_code, ended, status_detail, last_event, pending_permission, output_bytes, completed_at } = s;
    return { status, exit_code, ended, status_detail, last_event, pending_permission, output_bytes, completed_at };
  }

  /** One session from the API (deduplicated while in flight); null when it is not the user's or is gone. */
  function fetchOne(id: string): Promise<Session | null> {
    const running = fetching.get(id);
    if (running) return running;
    const startedAt = eventSeq;
    const promise = api
      .get(id)
      .then(({ session }) => session)
      .catch((e: unknown) => {
        if (e instanceof ApiError && e.status === 404) return null;
        throw e;
      })
      .then((session) => {
        if (session) {
          // An event that came while the request was in flight is newer than the answer's state.
          const mine = byId.value[id];
          const newer = (touchedAt.get(id) ?? -1) > startedAt;
          put(newer && mine ? { ...session, ...liveFields(mine) } : session);
          touchedAt.set(id, ++eventSeq);
          for (const event of queued.get(id) ?? []) applyStatus(event);
        }
        return session;
      })
      .finally(() => {
        fetching.delete(id);
        queued.delete(id);
      });
    fetching.set(id, promise);
    return promise;
  }

  function applyStatus(event: SessionStatusEvent): void {
    const current = byId.value[event.session_id];
    if (!current) {
      queued.set(event.session_id, [...(queued.get(event.session_id) ?? []), event]);
      void fetchOne(event.session_id).catch(() => undefined);
      return;
    }
    touchedAt.set(event.session_id, ++eventSeq);
    put({
      ...current,
      status: event.status,
      exit_code: event.exit_code ?? current.exit_code,
      ended: current.ended || event.ended,
      output_bytes: event.end_offset ?? current.output_bytes,
      status_detail: event.reason ?? current.status_detail,
      last_event: event.event ?? current.last_event,
      pending_permission: pendingAfter(current.pending_permission, event),
    });
    // Totals, the last message and completion times are not in the event: read them once things settle.
    if (event.ended || event.event === "Stop" || event.event === "Result" || event.event === "SessionStart") {
      scheduleRefetch(event.session_id);
    }
  }

  function scheduleRefetch(id: string): void {
    clearTimeout(refetchTimers.get(id));
    refetchTimers.set(
      id,
      setTimeout(() => {
        refetchTimers.delete(id);
        void fetchOne(id).catch(() => undefined);
      }, 500),
    );
  }

  async function create(body: NewSession): Promise<Session> {
    const { session } = await api.create(body);
    put(session);
    touchedAt.set(session.id, ++eventSeq);
    return session;
  }

  async function terminate(id: string): Promise<void> {
    await api.terminate(id);
  }

  async function approve(id: string): Promise<void> {
    await api.approve(id);
  }

  async function deny(id: string, message?: string): Promise<void> {
    await api.deny(id, message?.trim() || undefined);
  }

  function get(id: string): Session | undefined {
    return byId.value[id];
  }

  return {
    byId,
    all,
    live,
    waiting,
    countsByState,
    loaded,
    loading,
    error,
    get,
    refresh,
    fetchOne,
    applyStatus,
    create,
    terminate,
    approve,
    deny,
  };
});
