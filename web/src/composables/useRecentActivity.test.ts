import { describe, expect, it } from "vitest";
import { mergeActivity, type ActivityRow } from "./useRecentActivity";

function row(id: number, project: string, at: string): ActivityRow {
  return { id, project_id: project, kind: "task_created", instance_id: null, message: `row ${id}`, data: {}, created_at: at };
}

describe("mergeActivity", () => {
  it("puts new rows first, drops duplicates and keeps the newest rows up to the limit", () => {
    const current = [row(2, "p", "2026-12-04T10:02:00Z"), row(1, "p", "2026-12-04T10:01:00Z")];
    const merged = mergeActivity(current, [row(3, "q", "2026-12-04T10:03:00Z"), row(2, "p", "2026-12-04T10:02:00Z")], 2);
    expect(merged.map((r) => r.id)).toEqual([3, 2]);
  });

  it("tells rows of different projects apart", () => {
    const merged = mergeActivity([row(1, "p", "2026-12-04T10:01:00Z")], [row(1, "q", "2026-12-04T10:02:00Z")], 10);
    expect(merged.map((r) => r.project_id)).toEqual(["q", "p"]);
  });
});
