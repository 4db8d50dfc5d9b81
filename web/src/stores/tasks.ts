// The task board of one project: its tasks, moves through the relay's transitions (the card shows in the target
// column while the call runs and goes back if the relay refuses), and live updates from the activity stream (the
// task a row names is read again).
import { defineStore } from "pinia";
import { computed, ref } from "vue";
import { tasks as api, type TaskFields } from "@/api/client";
import { ApiError } from "@/api/http";
import type { Activity, Task, TaskStatus } from "@/api/types";
import { COLUMNS, UNEXPECTED_MOVE_TEXT, type Move } from "@/lib/taskTransitions";

export interface MoveInput {
  /** The instance a claim assigns the task to; without it the relay says which instances could take it. */
  instanceId?: string;
  /** The summary (review, complete) or reason (block, request changes) the move asked for. */
  text?: string;
}

const PRIORITY_RANK: Record<Task["priority"], number> = { critical: 3, high: 2, medium: 1, low: 0 };

/** Highest priority first, then oldest: the relay's own order. */
export function boardOrder(a: Task, b: Task): number {
  return PRIORITY_RANK[b.priority] - PRIORITY_RANK[a.priority] || a.created_at.localeCompare(b.created_at);
}

export const useTasksStore = defineStore("tasks", () => {
  const projectId = ref<string | null>(null);
  const tasks = ref<Task[]>([]);
  const loaded = ref(false);
  /** Cards on their way to another column: task id -> the column it is shown in until the relay answers. */
  const moving = ref<Record<string, TaskStatus>>({});
  const inFlight = new Map<string, Promise<void>>();
  const again = new Set<string>();

  const columns = computed(() => {
    const byStatus = Object.fromEntries(COLUMNS.map((status) => [status, [] as Task[]])) as Record<TaskStatus, Task[]>;
    for (const task of tasks.value) (byStatus[moving.value[task.id] ?? task.status] ?? byStatus.pending).push(task);
    for (const status of COLUMNS) byStatus[status].sort(boardOrder);
    byStatus.done.sort((a, b) => (b.completed_at ?? "").localeCompare(a.completed_at ?? "")); // latest first
    return byStatus;
  });

  const byId = computed(() => new Map(tasks.value.map((task) => [task.id, task])));

  async function load(id: string): Promise<void> {
    if (projectId.value !== id) {
      projectId.value = id;
      tasks.value = [];
      moving.value = {};
      loaded.value = false;
    }
    const found = (await api.list(id)).tasks;
    if (projectId.value === id) {
      tasks.value = found;
      loaded.value = true;
    }
  }

  function upsert(task: Task): void {
    if (task.project_id !== projectId.value) return;
    const index = tasks.value.findIndex((t) => t.id === task.id);
    if (index === -1) tasks.value = [...tasks.value, task];
    else tasks.value = tasks.value.map((t, i) => (i === index ? task : t));
  }

  function remove(id: string): void {
    tasks.value = tasks.value.filter((task) => task.id !== id);
  }

  async function create(fields: TaskFields & { title: string }): Promise<Task> {
    if (!projectId.value) throw new Error("no project open");
    const { task } = await api.create(projectId.value, fields);
    upsert(task);
    return task;
  }

  async function update(id: string, fields: TaskFields): Promise<Task> {
    if (!projectId.value) throw new Error("no project open");
    const { task } = await api.update(projectId.value, id, fields);
    upsert(task);
    return task;
  }

  function call(pid: string, id: string, move: Move, input: MoveInput): Promise<{ task: Task }> {
    const text = input.text?.trim() || UNEXPECTED_MOVE_TEXT;
    switch (move.action) {
      case "claim":
        return api.claim(pid, id, input.instanceId);
      case "release":
        return api.release(pid, id);
      case "request_review":
        return api.requestReview(pid, id, text);
      case "approve":
        return api.approve(pid, id, input.text?.trim() || undefined);
      case "request_changes":
        return api.requestChanges(pid, id, text);
      case "complete":
        return api.complete(pid, id, text);
      case "block":
        return api.block(pid, id, text);
      case "unblock":
        return api.unblock(pid, id);
    }
  }

  /**
   * Move a card: it shows in the target column at once; the relay's answer then decides. On a refusal the card
   * is back in its column and the ApiError (its message is the relay's detail) is thrown for the board to show.
   */
  async function move(id: string, move: Move, input: MoveInput = {}): Promise<Task> {
    if (!projectId.value) throw new Error("no project open");
    const pid = projectId.value;
    moving.value = { ...moving.value, [id]: move.to };
    try {
      const { task } = await call(pid, id, move, input);
      upsert(task);
      return task;
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) remove(id);
      else void refresh(id); // the card goes back to where the relay says it is
      throw error;
    } finally {
      const { [id]: _, ...rest } = moving.value;
      moving.value = rest;
    }
  }

  /** Read one task again (coalesced: a burst of rows about one task costs at most two reads). */
  function refresh(id: string): Promise<void> {
    const running = inFlight.get(id);
    if (running) {
      again.add(id);
      return running;
    }
    const pid = projectId.value;
    if (!pid) return Promise.resolve();
    const work = api
      .get(pid, id)
      .then(({ task }) => upsert(task))
      .catch((error: unknown) => {
        if (error instanceof ApiError && error.status === 404) remove(id);
      })
      .finally(() => {
        inFlight.delete(id);
        if (again.delete(id)) void refresh(id);
      });
    inFlight.set(id, work);
    return work;
  }

  /** A live activity row: a task row makes its task be read again; an instance leaving re-reads its tasks too. */
  function applyActivity(row: Activity): Promise<void> {
    if (row.project_id !== projectId.value) return Promise.resolve();
    if (row.task_id && row.kind.startsWith("task_")) return refresh(row.task_id);
    return Promise.resolve();
  }

  return { projectId, tasks, loaded, moving, columns, byId, load, create, update, move, refresh, applyActivity };
});
