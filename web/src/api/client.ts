// The relay's HTTP API as typed functions: the one module that knows its paths (checked against /openapi.json by
// tests/e2e/test_dashboard_api_paths.py). Components and stores call these; they never build URLs.
import { request } from "./http";
import type {
  Activity,
  ApiToken,
  ContextResult,
  Discovery,
  FileLock,
  Instance,
  Machine,
  PairingInfo,
  Project,
  Session,
  Task,
  UsageSummary,
  User,
  WebSession,
} from "./types";

const enc = encodeURIComponent;

// ---- auth -------------------------------------------------------------------------------------------------
export const auth = {
  me: () => request<{ user: User }>("GET", "/api/me"),
  loginWithLink: (code: string) => request<{ user: User }>("POST", "/api/auth/login-link", { code }),
  loginWithPassword: (email: string, password: string) =>
    request<{ user: User }>("POST", "/api/auth/login", { email, password }),
  loginWithToken: (token: string) => request<{ user: User }>("POST", "/api/auth/token-login", { token }),
  logout: () => request<void>("POST", "/api/auth/logout"),
  webSessions: () => request<{ sessions: WebSession[] }>("GET", "/api/auth/web-sessions"),
  endWebSession: (id: string) => request<void>("DELETE", `/api/auth/web-sessions/${enc(id)}`),
  tokens: () => request<{ tokens: ApiToken[] }>("GET", "/api/tokens"),
  createToken: (name: string, expiresInDays: number | null) =>
    request<ApiToken & { token: string }>("POST", "/api/tokens", { name, expires_in_days: expiresInDays }),
  revokeToken: (id: string) => request<void>("DELETE", `/api/tokens/${enc(id)}`),
  wsTicket: () => request<{ ticket: string; expires_in: number }>("POST", "/api/ws-ticket"),
};

// ---- machines and pairing ---------------------------------------------------------------------------------
export const machines = {
  list: () => request<{ machines: Machine[] }>("GET", "/api/machines"),
  get: (id: string) => request<{ machine: Machine }>("GET", `/api/machines/${enc(id)}`),
  discovery: (id: string) =>
    request<{ machine_id: string; discovery: Discovery | null }>("GET", `/api/machines/${enc(id)}/discovery`),
  rename: (id: string, name: string) => request<{ machine: Machine }>("PATCH", `/api/machines/${enc(id)}`, { name }),
  revoke: (id: string) => request<{ machine: Machine }>("DELETE", `/api/machines/${enc(id)}`),
  /** What asks to be paired (the fields themselves, not wrapped: routes/pairing.py). */
  pairingInfo: (code: string) => request<PairingInfo>("GET", `/api/pairing/${enc(code)}/info`),
  approvePairing: (code: string, name?: string) =>
    request<{ machine: Machine }>("POST", `/api/pairing/${enc(code)}/approve`, name ? { name } : {}),
};

// ---- sessions ---------------------------------------------------------------------------------------------
export interface NewSession {
  machine_id: string;
  cwd: string;
  mode: "interactive" | "headless";
  command?: string[] | null;
  prompt?: string | null;
  project_id?: string | null;
  cols?: number;
  rows?: number;
}

export const sessions = {
  list: (filter: { machine_id?: string; status?: string; project_id?: string; limit?: number } = {}) =>
    request<{ sessions: Session[] }>("GET", "/api/sessions", undefined, filter),
  get: (id: string) => request<{ session: Session }>("GET", `/api/sessions/${enc(id)}`),
  create: (body: NewSession) => request<{ session: Session }>("POST", "/api/sessions", body),
  terminate: (id: string) => request<unknown>("POST", `/api/sessions/${enc(id)}/terminate`),
  approve: (id: string) => request<unknown>("POST", `/api/sessions/${enc(id)}/approve`),
  deny: (id: string, message?: string) =>
    request<unknown>("POST", `/api/sessions/${enc(id)}/deny`, message ? { message } : {}),
  resize: (id: string, cols: number, rows: number) =>
    request<unknown>("POST", `/api/sessions/${enc(id)}/resize`, { cols, rows }),
  /** Today (by this browser's clock) and the last seven days. */
  usage: () =>
    request<UsageSummary>("GET", "/api/usage/summary", undefined, { tz_offset_minutes: -new Date().getTimezoneOffset() }),
};

// ---- projects, tasks, locks, instances, context, activity ----------------------------------------------------
const project = (id: string) => `/api/projects/${enc(id)}`;

export const projects = {
  list: () => request<{ projects: Project[] }>("GET", "/api/projects"),
  get: (id: string) => request<{ project: Project }>("GET", project(id)),
  create: (body: { name: string; project_path: string; summary?: string }) =>
    request<{ project: Project }>("POST", "/api/projects", body),
  update: (id: string, fields: Partial<Project>) => request<{ project: Project }>("PATCH", project(id), fields),
  instances: (id: string) => request<{ instances: Instance[] }>("GET", `${project(id)}/instances`),
  activity: (id: string, limit = 100) =>
    request<{ activity: Activity[] }>("GET", `${project(id)}/activity`, undefined, { limit }),
  recentActivity: (limit = 30) => request<{ activity: Activity[] }>("GET", "/api/activity", undefined, { limit }),
  /** The Server-Sent Events stream of a project's new activity rows (EventSource sends the cookie). */
  eventsUrl: (id: string, after?: string) => (after ? `${project(id)}/events?after=${enc(after)}` : `${project(id)}/events`),
};

export interface TaskFields {
  title?: string;
  description?: string;
  priority?: Task["priority"];
  dependencies?: string[];
  files?: string[];
  estimate?: string | null;
}

export const tasks = {
  list: (projectId: string) => request<{ tasks: Task[] }>("GET", `${project(projectId)}/tasks`),
  get: (projectId: string, id: string) => request<{ task: Task }>("GET", `${project(projectId)}/tasks/${enc(id)}`),
  create: (projectId: string, fields: TaskFields & { title: string }) =>
    request<{ task: Task }>("POST", `${project(projectId)}/tasks`, fields),
  update: (projectId: string, id: string, fields: TaskFields) =>
    request<{ task: Task }>("PATCH", `${project(projectId)}/tasks/${enc(id)}`, fields),
  /** The owner assigns a pending task to one of the project's live instances (in progress); without an instance
   * the relay answers 403 naming the live instances, or saying there is none. */
  claim: (projectId: string, id: string, instanceId?: string) =>
    request<{ task: Task }>(
      "POST",
      `${project(projectId)}/tasks/${enc(id)}/claim`,
      instanceId ? { instance_id: instanceId } : undefined,
    ),
  release: (projectId: string, id: string) =>
    request<{ task: Task }>("POST", `${project(projectId)}/tasks/${enc(id)}/release`),
  complete: (projectId: string, id: string, summary: string) =>
    request<{ task: Task }>("POST", `${project(projectId)}/tasks/${enc(id)}/complete`, { summary }),
  requestReview: (projectId: string, id: string, summary: string) =>
    request<{ task: Task }>("POST", `${project(projectId)}/tasks/${enc(id)}/review`, { summary }),
  approve: (projectId: string, id: string, note?: string) =>
    request<{ task: Task }>("POST", `${project(projectId)}/tasks/${enc(id)}/approve`, note ? { note } : {}),
  requestChanges: (projectId: string, id: string, reason: string) =>
    request<{ task: Task }>("POST", `${project(projectId)}/tasks/${enc(id)}/request-changes`, { reason }),
  block: (projectId: string, id: string, reason: string) =>
    request<{ task: Task }>("POST", `${project(projectId)}/tasks/${enc(id)}/block`, { reason }),
  unblock: (projectId: string, id: string) =>
    request<{ task: Task }>("POST", `${project(projectId)}/tasks/${enc(id)}/unblock`),
};

export const locks = {
  list: (projectId: string) => request<{ locks: FileLock[] }>("GET", `${project(projectId)}/locks`),
  /** The owner may release any instance's lock; `released` is false when no live lock was on the path. */
  release: (projectId: string, path: string) =>
    request<{ released: boolean }>("POST", `${project(projectId)}/locks/release`, { path }),
};

export const context = {
  query: (projectId: string, query: string, limit = 10, mode: "hybrid" | "vector" | "keyword" = "hybrid") =>
    request<{ results: ContextResult[] }>("POST", `${project(projectId)}/context/query`, { query, limit, mode }),
  add: (projectId: string, body: { content: string; type: string; files?: string[]; importance?: number }) =>
    request<{ chunk: ContextResult }>("POST", `${project(projectId)}/context`, body),
};

// ---- terminal: the persisted output log (section of the terminal view) --------------------------------------
import { ApiError } from "./http";

export interface LogChunk {
  /** Offset of data's first byte: later than asked when older output was dropped or a hole follows. */
  offset: number;
  /** All output so far. */
  endOffset: number;
  status: string;
  ended: boolean;
  data: Uint8Array;
}

export const logs = {
  /** Raw output bytes from `from`, at most `limit` of them (GET /api/sessions/{id}/logs). */
  read: async (id: string, from: number, limit: number): Promise<LogChunk> => {
    let response: Response;
    try {
      response = await fetch(`/api/sessions/${enc(id)}/logs?from=${from}&limit=${limit}`, {
        credentials: "same-origin",
      });
    } catch {
      throw new ApiError(0, "network", "the relay cannot be reached");
    }
    if (!response.ok) {
      let message = `${response.status} ${response.statusText}`;
      try {
        const body = (await response.json()) as { detail?: unknown };
        if (typeof body.detail === "string") message = body.detail;
      } catch {
        // not JSON: keep the status line
      }
      throw new ApiError(response.status, "http_error", message);
    }
    const data = new Uint8Array(await response.arrayBuffer());
    const offset = Number(response.headers.get("X-Offset") ?? from);
    return {
      offset,
      endOffset: Number(response.headers.get("X-End-Offset") ?? offset + data.length),
      status: response.headers.get("X-Session-Status") ?? "",
      ended: response.headers.get("X-Session-Ended") === "true",
      data,
    };
  },
};
