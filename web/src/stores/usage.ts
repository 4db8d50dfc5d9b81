// Token and cost totals for today and this week (GET /api/usage/summary).
import { defineStore } from "pinia";
import { ref } from "vue";
import { sessions as api } from "@/api/client";
import type { UsageSummary } from "@/api/types";

export const useUsageStore = defineStore("usage", () => {
  const summary = ref<UsageSummary | null>(null);
  const error = ref<string | null>(null);
  let lastRead = 0;

  /** Re-read unless it was read less than `minAgeMs` ago (events can ask often; the relay is asked at most so). */
  async function refresh(minAgeMs = 0): Promise<void> {
    if (minAgeMs > 0 && Date.now() - lastRead < minAgeMs) return;
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
