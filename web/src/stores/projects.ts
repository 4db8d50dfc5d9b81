// Projects: the list, and the project on screen with its instances and its activity feed (backlog, then live rows
// from the project's event stream, applied with applyActivity).
import { defineStore } from "pinia";
import { ref } from "vue";
import { projects as api } from "@/api/client";
import type { Activity, Instance, Project } from "@/api/types";

/** The text fields of a project the overview shows and edits, in this order. */
export const PROJECT_FIELDS = ["summary", "architecture", "conventions", "current_focus", "recent_changes"] as const;
export type ProjectField = (typeof PROJECT_FIELDS)[number];

export const FEED_LIMIT = 200;

export const useProjectsStore = defineStore("projects", () => {
  const list = ref<Project[]>([]);
  const listLoaded = ref(false);

  const current = ref<Project | null>(null);
  const instances = ref<Instance[]>([]);
  /** The activity feed of the current project, newest first. */
  const feed = ref<Activity[]>([]);

  async function loadList(): Promise<void> {
    list.value = (await api.list()).projects;
    listLoaded.value = true;
  }

  async function create(body: { name: string; project_path: string; summary?: string }): Promise<Project> {
    const { project } = await api.create(body);
    list.value = [...list.value.filter((p) => p.id !== project.id), project];
    return project;
  }

  /** Opens a project: clears what belonged to another one, then reads it. */
  async function open(id: string): Promise<void> {
    if (current.value?.id !== id) {
      current.value = null;
      instances.value = [];
      feed.value = [];
    }
    current.value = (await api.get(id)).project;
  }

  async function loadInstances(): Promise<void> {
    if (!current.value) return;
    const id = current.value.id;
    const found = (await api.instances(id)).instances;
    if (current.value?.id === id) instances.value = found;
  }

  /** The latest rows of the feed; returns the newest id, the cursor the live stream resumes from. */
  async function loadFeed(limit = 100): Promise<number | null> {
    if (!current.value) return null;
    const id = current.value.id;
    const rows = (await api.activity(id, limit)).activity; // oldest first
    if (current.value?.id !== id) return null;
    feed.value = mergeFeed(feed.value, rows);
    return rows.length ? rows[rows.length - 1]!.id : 0;
  }

  async function updateFields(fields: Partial<Record<ProjectField | "name" | "project_path", string>>): Promise<void> {
    if (!current.value) return;
    current.value = (await api.update(current.value.id, fields)).project;
  }

  /** A live row of the current project: into the feed, and what it changed is read again. */
  function applyActivity(row: Activity): Promise<void> {
    if (!current.value || row.project_id !== current.value.id) return Promise.resolve();
    feed.value = mergeFeed(feed.value, [row]);
    const work: Promise<unknown>[] = [];
    if (row.kind === "project_updated" || row.kind === "task_completed") {
      // A completion also rewrites recent_changes.
      const id = current.value.id;
      work.push(
        api.get(id).then(({ project }) => {
          if (current.value?.id === id) current.value = project;
        }),
      );
    }
    if (row.kind.startsWith("instance_") || row.kind === "task_claimed" || row.kind === "task_review_requested") {
      work.push(loadInstances());
    }
    return Promise.all(work).then(() => undefined);
  }

  return {
    list,
    listLoaded,
    current,
    instances,
    feed,
    loadList,
    create,
    open,
    loadInstances,
    loadFeed,
    updateFields,
    applyActivity,
  };
});

/** Rows merged by id, newest first, at most FEED_LIMIT. */
export function mergeFeed(current: Activity[], incoming: Activity[]): Activity[] {
  const byId = new Map<number, Activity>();
  for (const row of [...current, ...incoming]) byId.set(row.id, row);
  return [...byId.values()].sort((a, b) => b.id - a.id).slice(0, FEED_LIMIT);
}
