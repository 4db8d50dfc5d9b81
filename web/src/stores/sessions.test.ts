import { createPinia, setActivePinia } from "pinia";
import { beforeEach, describe, expect, it, vi } from "vitest";
import type { Session } from "@/api/types";

const api = vi.hoisted(() => ({ list: vi.fn(), get: vi.fn() }));
vi.mock("@/api/client", () => ({ sessions: api }));

import { ApiError } from "@/api/http";
import { matchesFilter, useSessionsStore, type SessionStatusEvent } from "./sessions";

function session(id: string, fields: Partial<Session> = {}): Session {
  return {
    id,
    machine_id: "m1",
    user_id: "u1",
    mode: "interactive",
    command: null,
    project_path: "/work",
    project_id: null,
    initial_prompt: null,
    status: "running",
    status_detail: null,
    pid: 42,
    exit_code: null,
    cols: 120,
    rows: 40,
    output_bytes: 0,
    total_tokens: 0,
    total_cost: 0,
    last_event: null,
    last_message: null,
    pending_permission: null,
    created_at: "2026-12-04T10:00:00Z",
    started_at: "2026-12-04T10:00:01Z",
    completed_at: null,
    ended: false,
    ...fields,
  };
}

function status(sessionId: string, fields: Partial<SessionStatusEvent> = {}): SessionStatusEvent {
  return {
    type: "session_status",
    session_id: sessionId,
    status: "running",
    exit_code: null,
    end_offset: null,
    reason: null,
    ended: false,
    event: null,
    permission: null,
    ...fields,
  };
}

const ask = { request_id: "r1", tool_name: "Bash", summary: "rm -rf build", input: { command: "rm -rf build" } };

describe("sessions store", () => {
  beforeEach(() => {
    setActivePinia(createPinia());
    api.list.mockReset();
    api.get.mockReset();
  });

  it("applies status changes to a known session", async () => {
    api.list.mockResolvedValue({ sessions: [session("a", { status: "idle" })] });
    const store = useSessionsStore();
    await store.refresh();
    store.applyStatus(status("a", { status: "running", event: "UserPromptSubmit", end_offset: 120 }));
    expect(store.get("a")?.status).toBe("running");
    expect(store.get("a")?.last_event).toBe("UserPromptSubmit");
    expect(store.get("a")?.output_bytes).toBe(120);
    expect(store.countsByState.running).toBe(1);
    expect(store.countsByState.idle).toBe(0);
  });

  it("shows a pending permission when one appears and clears it when answered", async () => {
    api.list.mockResolvedValue({ sessions: [session("a")] });
    const store = useSessionsStore();
    await store.refresh();
    store.applyStatus(status("a", { status: "waiting_permission", event: "PermissionRequest", permission: ask }));
    expect(store.get("a")?.pending_permission).toEqual(ask);
    expect(store.waiting.map((s) => s.id)).toEqual(["a"]);

    // A Notification while still waiting carries no permission: the request is still pending.
    store.applyStatus(status("a", { status: "waiting_permission", event: "Notification" }));
    expect(store.get("a")?.pending_permission?.request_id).toBe("r1");

    store.applyStatus(status("a", { status: "running", event: "PostToolUse" }));
    expect(store.get("a")?.pending_permission).toBeNull();
    expect(store.waiting).toEqual([]);
  });

  it("clears a pending permission when the session ends", async () => {
    api.list.mockResolvedValue({ sessions: [session("a", { status: "waiting_permission", pending_permission: ask })] });
    api.get.mockResolvedValue({ session: session("a", { status: "exited", ended: true, exit_code: 0 }) });
    const store = useSessionsStore();
    await store.refresh();
    expect(store.waiting).toHaveLength(1);
    store.applyStatus(status("a", { status: "exited", ended: true, exit_code: 0 }));
    expect(store.get("a")?.ended).toBe(true);
    expect(store.get("a")?.exit_code).toBe(0);
    expect(store.waiting).toEqual([]);
    expect(store.live).toEqual([]);
  });

  it("fetches a session it did not know and applies the events that came meanwhile", async () => {
    api.list.mockResolvedValue({ sessions: [] });
    let answer: (value: { session: Session }) => void = () => undefined;
    api.get.mockReturnValue(new Promise((resolve) => (answer = resolve)));
    const store = useSessionsStore();
    await store.refresh();
    store.applyStatus(status("new", { status: "idle", event: "SessionStart" }));
    store.applyStatus(status("new", { status: "waiting_permission", event: "PermissionRequest", permission: ask }));
    expect(api.get).toHaveBeenCalledTimes(1); // one request for both events
    expect(store.get("new")).toBeUndefined();
    answer({ session: session("new", { status: "starting" }) });
    await vi.waitFor(() => expect(store.get("new")?.status).toBe("waiting_permission"));
    expect(store.get("new")?.pending_permission?.tool_name).toBe("Bash");
  });

  it("ignores events of a session the relay does not show (404)", async () => {
    api.list.mockResolvedValue({ sessions: [] });
    api.get.mockRejectedValue(new ApiError(404, "not_found", "no session x"));
    const store = useSessionsStore();
    await store.refresh();
    store.applyStatus(status("x"));
    await vi.waitFor(() => expect(api.get).toHaveBeenCalled());
    await Promise.resolve();
    expect(store.all).toEqual([]);
  });

  it("keeps an event's state over a list that was read before the event", async () => {
    api.list.mockResolvedValueOnce({ sessions: [session("a", { status: "idle" })] });
    const store = useSessionsStore();
    await store.refresh();
    let answer: (value: { sessions: Session[] }) => void = () => undefined;
    api.list.mockReturnValueOnce(new Promise((resolve) => (answer = resolve)));
    const refreshing = store.refresh();
    store.applyStatus(status("a", { status: "waiting_permission", event: "PermissionRequest", permission: ask }));
    answer({ sessions: [session("a", { status: "idle", total_tokens: 900 })] }); // stale status, newer totals
    await refreshing;
    expect(store.get("a")?.status).toBe("waiting_permission");
    expect(store.get("a")?.pending_permission?.request_id).toBe("r1");
    expect(store.get("a")?.total_tokens).toBe(900);
  });

  it("filters by machine, state and project", () => {
    const s = session("a", { machine_id: "m2", status: "idle", project_id: "p1" });
    expect(matchesFilter(s, {})).toBe(true);
    expect(matchesFilter(s, { machine: "m2", state: "idle", project: "p1" })).toBe(true);
    expect(matchesFilter(s, { machine: "m1" })).toBe(false);
    expect(matchesFilter(s, { state: "running" })).toBe(false);
    expect(matchesFilter(s, { state: "live" })).toBe(true);
    expect(matchesFilter(s, { state: "ended" })).toBe(false);
    expect(matchesFilter(s, { project: "p2" })).toBe(false);
  });

  it("keeps an event that came while a single session was being re-read", async () => {
    api.list.mockResolvedValue({ sessions: [session("a", { status: "running" })] });
    const store = useSessionsStore();
    await store.refresh();
    let answer: (value: { session: Session }) => void = () => undefined;
    api.get.mockReturnValue(new Promise((resolve) => (answer = resolve)));
    vi.useFakeTimers();
    store.applyStatus(status("a", { status: "idle", event: "Stop" })); // re-reads the totals shortly after
    vi.advanceTimersByTime(600);
    vi.useRealTimers();
    expect(api.get).toHaveBeenCalledTimes(1);
    store.applyStatus(status("a", { status: "waiting_permission", event: "PermissionRequest", permission: ask }));
    answer({ session: session("a", { status: "idle", total_tokens: 2340, last_message: "echo: hi" }) });
    await vi.waitFor(() => expect(store.get("a")?.total_tokens).toBe(2340));
    expect(store.get("a")?.status).toBe("waiting_permission");
    expect(store.get("a")?.pending_permission?.request_id).toBe("r1");
    expect(store.get("a")?.last_message).toBe("echo: hi");
  });
});
