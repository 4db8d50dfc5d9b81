import { beforeEach, describe, expect, it, vi } from "vitest";
import { createPinia, setActivePinia } from "pinia";
import { ApiError } from "@/api/http";
import type { Activity, Task } from "@/api/types";
import { moveFor } from "@/lib/taskTransitions";

const api = vi.hoisted(() => ({
  list: vi.fn(),
  get: vi.fn(),
  create: vi.fn(),
  update: vi.fn(),
  claim: vi.fn(),
  release: vi.fn(),
  complete: vi.fn(),
  requestReview: vi.fn(),
  approve: vi.fn(),
  requestChanges: vi.fn(),
  block: vi.fn(),
  unblock: vi.fn(),
}));
vi.mock("@/api/client", () => ({ tasks: api }));

const { useTasksStore } = await import("./tasks");

const PID = "p1";

function task(id: string, fields: Partial<Task> = {}): Task {
  return {
    id,
    project_id: PID,
    title: `task ${id}`,
    description: "",
    priority: "medium",
    status: "pending",
    assigned_to: null,
    dependencies: [],
    files: [],
    estimate: null,
    completion_summary: null,
    files_modified: [],
    blocked_reason: null,
    created_by: "me@example.com",
    created_at: `2026-12-04T12:00:0${id.length}.000Z`,
    updated_at: "2026-12-04T12:00:00.000Z",
    claimed_at: null,
    completed_at: null,
    ...fields,
  };
}

function row(id: number, kind: string, taskId: string | null, projectId = PID): Activity {
  return { id, project_id: projectId, kind, instance_id: null, task_id: taskId, message: kind, data: {}, created_at: "" };
}

function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void; reject: (error: unknown) => void } {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((yes, no) => {
    resolve = yes;
    reject = no;
  });
  return { promise, resolve, reject };
}

beforeEach(() => {
  setActivePinia(createPinia());
  for (const fn of Object.values(api)) fn.mockReset();
});

async function loaded(...tasks: Task[]) {
  api.list.mockResolvedValue({ tasks });
  const store = useTasksStore();
  await store.load(PID);
  return store;
}

describe("the tasks store applying activity", () => {
  it("reads the task a row names again and moves its card", async () => {
    const store = await loaded(task("a"), task("b"));
    api.get.mockResolvedValue({ task: task("a", { status: "in_progress", assigned_to: "i1" }) });
    await store.applyActivity(row(7, "task_claimed", "a"));
    expect(api.get).toHaveBeenCalledWith(PID, "a");
    expect(store.columns.in_progress.map((t) => t.id)).toEqual(["a"]);
    expect(store.columns.pending.map((t) => t.id)).toEqual(["b"]);
  });

  it("adds a task created elsewhere", async () => {
    const store = await loaded(task("a"));
    api.get.mockResolvedValue({ task: task("new", { title: "<img src=x onerror=alert(1)>" }) });
    await store.applyActivity(row(8, "task_created", "new"));
    expect(store.tasks.map((t) => t.id)).toEqual(["a", "new"]);
  });

  it("drops a task the relay no longer has", async () => {
    const store = await loaded(task("a"), task("b"));
    api.get.mockRejectedValue(new ApiError(404, "not_found", "no task a in this project"));
    await store.applyActivity(row(9, "task_updated", "a"));
    expect(store.tasks.map((t) => t.id)).toEqual(["b"]);
  });

  it("ignores rows of other projects and rows that are not about a task", async () => {
    const store = await loaded(task("a"));
    await store.applyActivity(row(10, "task_claimed", "a", "other"));
    await store.applyActivity(row(11, "lock_acquired", null));
    await store.applyActivity(row(12, "broadcast", null));
    expect(api.get).not.toHaveBeenCalled();
  });

  it("coalesces a burst of rows about one task into at most two reads, the last one winning", async () => {
    const store = await loaded(task("a"));
    const first = deferred<{ task: Task }>();
    api.get.mockReturnValueOnce(first.promise);
    api.get.mockResolvedValueOnce({ task: task("a", { status: "done" }) });
    const burst = [
      store.applyActivity(row(1, "task_claimed", "a")),
      store.applyActivity(row(2, "task_review_requested", "a")),
      store.applyActivity(row(3, "task_completed", "a")),
    ];
    first.resolve({ task: task("a", { status: "in_progress" }) });
    await Promise.all(burst);
    await vi.waitFor(() => expect(store.columns.done.map((t) => t.id)).toEqual(["a"]));
    expect(api.get).toHaveBeenCalledTimes(2);
  });
});

describe("moving a card", () => {
  it("shows the card in the target column while the relay decides, then where the relay put it", async () => {
    const store = await loaded(task("a"));
    const answer = deferred<{ task: Task }>();
    api.claim.mockReturnValue(answer.promise);
    const moved = store.move("a", moveFor("pending", "in_progress")!, { instanceId: "i1" });
    expect(store.columns.in_progress.map((t) => t.id)).toEqual(["a"]);
    answer.resolve({ task: task("a", { status: "in_progress", assigned_to: "i1" }) });
    await moved;
    expect(api.claim).toHaveBeenCalledWith(PID, "a", "i1");
    expect(store.columns.in_progress[0]?.assigned_to).toBe("i1");
    expect(store.moving).toEqual({});
  });

  it("snaps back and passes on the relay's 409 message", async () => {
    const store = await loaded(task("a"));
    api.complete.mockRejectedValue(new ApiError(409, "conflict", "task is pending, not in_progress"));
    api.get.mockResolvedValue({ task: task("a") });
    await expect(store.move("a", moveFor("pending", "done")!)).rejects.toThrow("task is pending, not in_progress");
    expect(store.columns.pending.map((t) => t.id)).toEqual(["a"]);
    expect(store.columns.done).toEqual([]);
  });

  it("sends what the move asked for", async () => {
    const store = await loaded(task("a", { status: "in_progress" }));
    api.requestReview.mockResolvedValue({ task: task("a", { status: "review" }) });
    await store.move("a", moveFor("in_progress", "review")!, { text: "  all green  " });
    expect(api.requestReview).toHaveBeenCalledWith(PID, "a", "all green");
    api.block.mockResolvedValue({ task: task("a", { status: "blocked" }) });
    await store.move("a", moveFor("review", "blocked")!);
    expect(api.block).toHaveBeenCalledWith(PID, "a", "moved on the dashboard's task board");
  });
});
