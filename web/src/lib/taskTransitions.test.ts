import { describe, expect, it } from "vitest";
import type { TaskStatus } from "@/api/types";
import { COLUMNS, moveFor, promptFor, type TaskAction } from "./taskTransitions";

// Every ordered pair of columns: [from, to, action, what it asks, allowed by the state machine].
const TABLE: [TaskStatus, TaskStatus, TaskAction, string, boolean][] = [
  ["pending", "in_progress", "claim", "instance", true],
  ["pending", "review", "request_review", "none", false],
  ["pending", "done", "complete", "none", false],
  ["pending", "blocked", "block", "reason", true],
  ["in_progress", "pending", "release", "none", true],
  ["in_progress", "review", "request_review", "summary", true],
  ["in_progress", "done", "complete", "summary", true],
  ["in_progress", "blocked", "block", "reason", true],
  ["review", "pending", "release", "none", true],
  ["review", "in_progress", "request_changes", "reason", true],
  ["review", "done", "approve", "none", true],
  ["review", "blocked", "block", "reason", false],
  ["done", "pending", "release", "none", false],
  ["done", "in_progress", "claim", "none", false],
  ["done", "review", "request_review", "none", false],
  ["done", "blocked", "block", "reason", false],
  ["blocked", "pending", "unblock", "none", true],
  ["blocked", "in_progress", "claim", "none", false],
  ["blocked", "review", "request_review", "none", false],
  ["blocked", "done", "complete", "none", false],
];

describe("moveFor", () => {
  it("covers every ordered pair of the five columns", () => {
    const pairs = COLUMNS.flatMap((from) => COLUMNS.filter((to) => to !== from).map((to) => `${from}>${to}`));
    expect(TABLE.map(([from, to]) => `${from}>${to}`).sort()).toEqual(pairs.sort());
  });

  it.each(TABLE)("%s -> %s calls %s, asks for %s (expected: %s)", (from, to, action, input, expected) => {
    expect(moveFor(from, to)).toMatchObject({ from, to, action, input, expected });
  });

  it("a drop on the card's own column is no move", () => {
    for (const column of COLUMNS) expect(moveFor(column, column)).toBeNull();
  });

  it("any other move calls the endpoint of the target column, so the relay decides", () => {
    const byTarget: Record<TaskStatus, TaskAction> = {
      pending: "release",
      in_progress: "claim",
      review: "request_review",
      done: "complete",
      blocked: "block",
    };
    for (const [from, to, action, , expected] of TABLE) {
      if (!expected) expect(action, `${from}>${to}`).toBe(byTarget[to]);
    }
  });
});

describe("promptFor", () => {
  it("asks for what the transition needs, quoting the title as text", () => {
    const title = "<img src=x>";
    expect(promptFor(moveFor("in_progress", "done")!, title)).toBe('What was done in "<img src=x>"?');
    expect(promptFor(moveFor("in_progress", "review")!, title)).toContain("reviewer");
    expect(promptFor(moveFor("pending", "blocked")!, title)).toBe('Why is "<img src=x>" blocked?');
    expect(promptFor(moveFor("review", "in_progress")!, title)).toContain("change");
    expect(promptFor(moveFor("pending", "in_progress")!, title)).toContain("instance");
    expect(promptFor(moveFor("review", "done")!, title)).toBeNull();
    expect(promptFor(moveFor("pending", "done")!, title)).toBeNull();
  });
});
