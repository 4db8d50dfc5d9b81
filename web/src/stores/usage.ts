// Token and cost totals for today and this week (GET /api/usage/summary).
import { defineStore } from "pinia";
import { ref } from "vue";
import { sessions as api } from "@/api/client";
import type { UsageSummary } from "@/api/types";

export const useUsageStore = defineStore("usage", () => {
  const summary = ref<UsageSummary | null>(null);
  const error = ref<string | null>(null);
  let lastRead = 0;
  let trailing: ReturnType<typeof setTimeout> | null = null;

  /** Re-read now, or when it was read less than `minAgeMs` ago, once that age is reached (events can ask often;
   * the relay is asked at most that often, and the last change is never left out). */
  async function refresh(minAgeMs = 0): Promise<void> {
    const wait = lastRead + minAgeMs - Date.now();
    if (minAgeMs > 0 && wait > 0) {
      trailing ??= setTimeout(() => {
        trailing = null;
        void refresh();
      }, wait);
      return;
    }
    if (trailing) clearTimeout(trailing);
    trailing = null;
    lastRead = Date.now();
    try {
      summary.value = await api.usage();
      error.value = null;
    } catch (e) {
      error.value = e instanceof Error ? e.message : String(e);
    }
  }

  return { summary, error, refresh };
});
