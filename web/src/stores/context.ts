// A project's shared context: search (hybrid, keyword or vector) with each result's score and ranks, and adding
// a chunk.
import { defineStore } from "pinia";
import { ref } from "vue";
import { context as api } from "@/api/client";
import type { ContextChunk, ContextResult } from "@/api/types";

export type SearchMode = "hybrid" | "keyword" | "vector";
export const SEARCH_MODES: readonly SearchMode[] = ["hybrid", "keyword", "vector"];
export const CHUNK_TYPES = ["note", "decision", "file_change", "task_completion"] as const;

export interface NewChunk {
  content: string;
  type: string;
  files: string[];
  importance: number;
}

/** Files typed one a line or separated by commas, trimmed, without empties or repeats. */
export function parseFiles(text: string): string[] {
  return [...new Set(text.split(/[\n,]/).map((part) => part.trim()).filter(Boolean))];
}

export const useContextStore = defineStore("context", () => {
  const projectId = ref<string | null>(null);
  const results = ref<ContextResult[]>([]);
  const lastQuery = ref<{ query: string; mode: SearchMode } | null>(null);

  function open(id: string): void {
    if (projectId.value !== id) {
      projectId.value = id;
      results.value = [];
      lastQuery.value = null;
    }
  }

  async function search(query: string, mode: SearchMode, limit = 10): Promise<void> {
    if (!projectId.value) throw new Error("no project open");
    const id = projectId.value;
    const found = (await api.query(id, query, limit, mode)).results;
    if (projectId.value === id) {
      results.value = found;
      lastQuery.value = { query, mode };
    }
  }

  async function add(chunk: NewChunk): Promise<ContextChunk> {
    if (!projectId.value) throw new Error("no project open");
    return (await api.add(projectId.value, chunk)).chunk;
  }

  return { projectId, results, lastQuery, open, search, add };
});
