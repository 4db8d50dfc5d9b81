// A project's live file locks, kept current by the lock rows of the activity stream; the owner releases any.
import { defineStore } from "pinia";
import { ref } from "vue";
import { locks as api } from "@/api/client";
import type { Activity, FileLock } from "@/api/types";

const LOCK_KINDS = new Set(["lock_acquired", "lock_renewed", "lock_released", "lock_expired"]);

export const useLocksStore = defineStore("locks", () => {
  const projectId = ref<string | null>(null);
  const locks = ref<FileLock[]>([]);
  const loaded = ref(false);
  let reading: Promise<void> | null = null;
  let readAgain = false;

  async function load(id: string): Promise<void> {
    if (projectId.value !== id) {
      projectId.value = id;
      locks.value = [];
      loaded.value = false;
    }
    const found = (await api.list(id)).locks;
    if (projectId.value === id) {
      locks.value = found;
      loaded.value = true;
    }
  }

  /** Read the list again, at most one read at a time (rows arriving meanwhile make one more read). */
  function reload(): Promise<void> {
    const id = projectId.value;
    if (!id) return Promise.resolve();
    if (reading) {
      readAgain = true;
      return reading;
    }
    reading = load(id)
      .catch(() => undefined)
      .finally(() => {
        reading = null;
        if (readAgain) {
          readAgain = false;
          void reload();
        }
      });
    return reading;
  }

  /** Release a lock as the owner; false when it was already gone. */
  async function release(path: string): Promise<boolean> {
    if (!projectId.value) throw new Error("no project open");
    const { released } = await api.release(projectId.value, path);
    locks.value = locks.value.filter((lock) => lock.path !== path);
    return released;
  }

  function applyActivity(row: Activity): Promise<void> {
    if (row.project_id !== projectId.value) return Promise.resolve();
    if (LOCK_KINDS.has(row.kind) || row.kind === "instance_left" || row.kind === "instance_disconnected") {
      return reload();
    }
    return Promise.resolve();
  }

  return { projectId, locks, loaded, load, reload, release, applyActivity };
});
