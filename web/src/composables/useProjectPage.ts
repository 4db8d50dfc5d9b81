// What every page of one project does first: read the project (for its name and tabs), say why when it cannot,
// and follow its activity stream from a cursor the page chooses.
import { computed, onMounted, ref } from "vue";
import { errorMessage } from "@/api/http";
import { useProjectsStore } from "@/stores/projects";
import { type ActivityHandler, useProjectEvents } from "./useProjectEvents";

export function useProjectPage(
  projectId: string,
  onActivity: ActivityHandler,
  load: () => Promise<number | null>,
  options: { follow?: boolean } = {},
) {
  const store = useProjectsStore();
  const error = ref<string | null>(null);
  const loading = ref(true);
  const project = computed(() => (store.current?.id === projectId ? store.current : null));
  const events = useProjectEvents(projectId, (row) => {
    onActivity(row);
  });

  async function reload(): Promise<void> {
    loading.value = true;
    try {
      await store.open(projectId);
      const cursor = await load();
      error.value = null;
      if (options.follow !== false) events.start(cursor);
    } catch (e) {
      error.value = errorMessage(e);
    } finally {
      loading.value = false;
    }
  }

  onMounted(() => void reload());
  return { project, error, loading, live: events.state, reload };
}
