import { createPinia, setActivePinia } from "pinia";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

const api = vi.hoisted(() => ({ usage: vi.fn() }));
vi.mock("@/api/client", () => ({ sessions: api }));

import { ApiError } from "@/api/http";
import { useUsageStore } from "./usage";

const summary = {
  today: { sessions: 2, total_tokens: 2340, total_cost: 0.0123 },
  week: { sessions: 9, total_tokens: 120_000, total_cost: 1.5 },
};

describe("usage store", () => {
  beforeEach(() => {
    setActivePinia(createPinia());
    vi.useFakeTimers();
    api.usage.mockReset();
  });
  afterEach(() => vi.useRealTimers());

  it("reads the summary, and asks again once the minimum age is reached, never more often", async () => {
    api.usage.mockResolvedValue(summary);
    const store = useUsageStore();
    await store.refresh();
    expect(store.summary?.today.total_tokens).toBe(2340);
    await store.refresh(10_000);
    await store.refresh(10_000);
    expect(api.usage).toHaveBeenCalledTimes(1); // too soon: one read later, not two
    await vi.advanceTimersByTimeAsync(10_001);
    expect(api.usage).toHaveBeenCalledTimes(2);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(api.usage).toHaveBeenCalledTimes(2);
    await store.refresh(10_000); // long enough ago: at once
    expect(api.usage).toHaveBeenCalledTimes(3);
  });

  it("keeps the relay's message when the summary cannot be read", async () => {
    api.usage.mockRejectedValue(new ApiError(500, "internal", "database is locked"));
    const store = useUsageStore();
    await store.refresh();
    expect(store.error).toBe("database is locked");
    expect(store.summary).toBeNull();
  });
});
