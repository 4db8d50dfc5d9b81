// What dropping a task card on another column of the board means: which API transition it calls and what it must
// ask the person first. Pure (no Vue, no HTTP), so every pair of columns is tested (taskTransitions.test.ts).
//
// The moves the state machine of docs/coordination.md allows are named below. Every other move still calls the
// endpoint of the target column, so the relay (the only arbiter) decides; today it answers those with a 409
// naming the task's state, which the board shows before the card snaps back. Such a move does not ask for a summary
// first (it would be asked for nothing): it sends the text in UNEXPECTED_MOVE_TEXT instead. A drop on "blocked"
// always asks why, from any column.
import type { TaskStatus } from "@/api/types";

export const COLUMNS: readonly TaskStatus[] = ["pending", "in_progress", "review", "done", "blocked"];

export const COLUMN_TITLES: Record<TaskStatus, string> = {
  pending: "Pending",
  in_progress: "In progress",
  review: "Review",
  done: "Done",
  blocked: "Blocked",
};

export type TaskAction =
  | "claim"
  | "release"
  | "request_review"
  | "approve"
  | "request_changes"
  | "complete"
  | "block"
  | "unblock";

/** What the person is asked before the call: an instance to assign, a summary, a reason, or nothing. */
export type MoveInput = "instance" | "summary" | "reason" | "none";

export interface Move {
  from: TaskStatus;
  to: TaskStatus;
  action: TaskAction;
  input: MoveInput;
  /** True when the documented state machine allows it; false when only the relay's answer will tell. */
  expected: boolean;
  /** A short verb phrase for the prompt and the busy state ("Request review"). */
  label: string;
}

/** Sent as the summary or reason of a move the state machine does not allow (the relay refuses it with a 409). */
export const UNEXPECTED_MOVE_TEXT = "moved on the dashboard's task board";

const INPUTS: Record<TaskAction, MoveInput> = {
  claim: "instance",
  release: "none",
  request_review: "summary",
  approve: "none",
  request_changes: "reason",
  complete: "summary",
  block: "reason",
  unblock: "none",
};

const LABELS: Record<TaskAction, string> = {
  claim: "Assign to an instance",
  release: "Release",
  request_review: "Request review",
  approve: "Approve",
  request_changes: "Request changes",
  complete: "Complete",
  block: "Block",
  unblock: "Unblock",
};

/** The endpoint a drop on each column calls when the move is not one of the named ones. */
const TARGET_ACTION: Record<TaskStatus, TaskAction> = {
  pending: "release",
  in_progress: "claim",
  review: "request_review",
  done: "complete",
  blocked: "block",
};

/** The moves the state machine allows, keyed "from>to". */
const EXPECTED: Partial<Record<`${TaskStatus}>${TaskStatus}`, TaskAction>> = {
  "pending>in_progress": "claim",
  "in_progress>pending": "release",
  "review>pending": "release",
  "in_progress>review": "request_review",
  "review>done": "approve",
  "review>in_progress": "request_changes",
  "in_progress>done": "complete",
  "pending>blocked": "block",
  "in_progress>blocked": "block",
  "blocked>pending": "unblock",
};

/** The transition of dropping a card of column `from` on column `to`; null when it stays where it is. */
export function moveFor(from: TaskStatus, to: TaskStatus): Move | null {
  if (from === to) return null;
  const named = EXPECTED[`${from}>${to}`];
  const action = named ?? TARGET_ACTION[to];
  return {
    from,
    to,
    action,
    // A block always asks why (the relay needs a reason); other unexpected moves ask nothing.
    input: named || action === "block" ? INPUTS[action] : "none",
    expected: named !== undefined,
    label: LABELS[action],
  };
}

/** The question a move asks before its call, or null when it asks nothing. */
export function promptFor(move: Move, title: string): string | null {
  switch (move.input) {
    case "summary":
      return move.action === "complete" ? `What was done in "${title}"?` : `Summary of "${title}" for the reviewer`;
    case "reason":
      return move.action === "block" ? `Why is "${title}" blocked?` : `What should change in "${title}"?`;
    case "instance":
      return `Which instance works on "${title}"?`;
    case "none":
      return null;
  }
}
