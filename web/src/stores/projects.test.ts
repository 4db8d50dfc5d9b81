import { beforeEach, describe, expect, it, vi } from "vitest";
import { createPinia, setActivePinia } from "pinia";
import type { Activity, FileLock, Project } from "@/api/types";

const api = vi.hoisted(() => ({
  projects: { get: vi.fn(), activity: vi.fn(), instances: vi.fn(), list: vi.fn(), create: vi.fn(), update: vi.fn() },
  locks: { list: vi.fn(), release: vi.fn() },
}));
vi.mock("@/api/client", () => api);

const { FEED_LIMIT, mergeFeed, useProjectsStore } = await import("./projects");
const { useLocksStore } = await import("./locks");

function row(id: number, kind = "task_created", projectId = "p"): Activity {
  return { id, project_id: projectId, kind, instance_id: null, task_id: null, message: `${kind} ${id}`, data: {}, created_at: "" };
}
const project = { id: "p", name: "nest", project_path: "/n" } as Project;
const lock = (path: string): FileLock => ({
  id: path,
  project_id: "p",
  path,
  holder_instance_id: "i",
  holder_name: "alice",
  reason: "",
  fencing: 1,
  expires_at: "2026-12-04T12:30:00.000Z",
  created_at: "2026-12-04T12:00:00.000Z",
});

beforeEach(() => {
  setActivePinia(createPinia());
  for (const group of Object.values(api)) for (const fn of Object.values(group)) fn.mockReset();
});

describe("the activity feed", () => {
  it("merges rows by id, newest first, keeping at most FEED_LIMIT", () => {
    expect(mergeFeed([row(2), row(1)], [row(3), row(2)]).map((r) => r.id)).toEqual([3, 2, 1]);
    const many = Array.from({ length: FEED_LIMIT + 5 }, (_, n) => row(n + 1));
    const merged = mergeFeed([], many);
    expect(merged).toHaveLength(FEED_LIMIT);
    expect(merged[0]!.id).toBe(FEED_LIMIT + 5);
  });

  it("reads the backlog, returns its newest id as the stream's cursor, then adds live rows", async () => {
    api.projects.get.mockResolvedValue({ project });
    api.projects.activity.mockResolvedValue({ activity: [row(4), row(5)] });
    const store = useProjectsStore();
    await store.open("p");
    expect(await store.loadFeed()).toBe(5);
    await store.applyActivity(row(6));
    await store.applyActivity(row(7, "task_created", "another project"));
    expect(store.feed.map((r) => r.id)).toEqual([6, 5, 4]);
  });

  it("reads the project again when its fields change, the instances when one comes or goes", async () => {
    api.projects.get.mockResolvedValue({ project });
    api.projects.instances.mockResolvedValue({ instances: [] });
    const store = useProjectsStore();
    await store.open("p");
    api.projects.get.mockResolvedValue({ project: { ...project, current_focus: "ship" } });
    await store.applyActivity(row(8, "project_updated"));
    expect(store.current?.current_focus).toBe("ship");
    await store.applyActivity(row(9, "instance_joined"));
    expect(api.projects.instances).toHaveBeenCalledTimes(1);
  });
});

describe("the locks store", () => {
  it("reads the locks again on lock rows, once for a burst", async () => {
    api.locks.list.mockResolvedValue({ locks: [lock("a.py")] });
    const store = useLocksStore();
    await store.load("p");
    api.locks.list.mockResolvedValue({ locks: [lock("a.py"), lock("b.py")] });
    await Promise.all([store.applyActivity(row(1, "lock_acquired")), store.applyActivity(row(2, "lock_renewed"))]);
    await vi.waitFor(() => expect(store.locks.map((l) => l.path)).toEqual(["a.py", "b.py"]));
    expect(api.locks.list.mock.calls.length).toBeLessThanOrEqual(3);
    await store.applyActivity(row(3, "task_created"));
    expect(api.locks.list.mock.calls.length).toBeLessThanOrEqual(3);
  });

  it("releases a lock as the owner and drops it from the list", async () => {
    api.locks.list.mockResolvedValue({ locks: [lock("a.py"), lock("b.py")] });
    api.locks.release.mockResolvedValue({ released: true });
    const store = useLocksStore();
    await store.load("p");
    expect(await store.release("a.py")).toBe(true);
    expect(api.locks.release).toHaveBeenCalledWith("p", "a.py");
    expect(store.locks.map((l) => l.path)).toEqual(["b.py"]);
  });
});
