// Recent project activity for the dashboard: GET /api/activity (newest first, all projects), kept live by the
// SSE streams of the most recently active projects (at most MAX_STREAMS: a browser allows only six connections
// per host over HTTP/1.1) and re-read every 30 s for the others.
import { onBeforeUnmount, onMounted, ref } from "vue";
import { projects as api } from "@/api/client";
import { errorMessage } from "@/api/http";
import type { Activity } from "@/api/types";

const MAX_STREAMS = 2;
const REFRESH_MS = 30_000;

export interface ActivityRow extends Activity {
  project_name?: string;
  task_id?: string | null;
}

export function mergeActivity(current: ActivityRow[], incoming: ActivityRow[], limit: number): ActivityRow[] {
  const seen = new Set<string>();
  return [...incoming, ...current]
    .filter((row) => {
      const key = `${row.project_id}:${row.id}`;
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    })
    .sort((a, b) => (a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : 0))
    .slice(0, limit);
}

export function useRecentActivity(limit = 20) {
  const rows = ref<ActivityRow[]>([]);
  const error = ref<string | null>(null);
  const loaded = ref(false);
  const streams = new Map<string, EventSource>();
  let timer: ReturnType<typeof setInterval> | null = null;

  async function refresh(): Promise<void> {
    try {
      const { activity } = await api.recentActivity(limit);
      rows.value = mergeActivity([], activity as ActivityRow[], limit);
      error.value = null;
      follow();
    } catch (e) {
      error.value = errorMessage(e);
    } finally {
      loaded.value = true;
    }
  }

  function follow(): void {
    const names = new Map<string, string | undefined>();
    for (const row of rows.value) {
      if (names.size >= MAX_STREAMS) break;
      if (!names.has(row.project_id)) names.set(row.project_id, row.project_name);
    }
    for (const [id, source] of streams) {
      if (!names.has(id)) {
        source.close();
        streams.delete(id);
      }
    }
    for (const [id, name] of names) {
      if (streams.has(id) || typeof EventSource === "undefined") continue;
      const source = new EventSource(api.eventsUrl(id));
      source.onmessage = (event: MessageEvent<string>) => {
        try {
          const row = JSON.parse(event.data) as ActivityRow;
          rows.value = mergeActivity(rows.value, [{ project_name: name, ...row }], limit);
        } catch {
          // not a row: ignore
        }
      };
      streams.set(id, source);
    }
  }

  onMounted(() => {
    void refresh();
    timer = setInterval(() => void refresh(), REFRESH_MS);
  });
  onBeforeUnmount(() => {
    if (timer) clearInterval(timer);
    for (const source of streams.values()) source.close();
    streams.clear();
  });

  return { rows, error, loaded, refresh };
}
