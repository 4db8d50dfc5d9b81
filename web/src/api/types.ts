// Shapes of the relay's JSON answers (see /openapi.json and docs/). Only what the dashboard reads is typed.

export type SessionStatus =
  | "starting"
  | "running"
  | "idle"
  | "waiting_permission"
  | "error"
  | "exited"
  | (string & {});

export interface User {
  id: string;
  email: string;
  is_owner?: boolean;
}

export interface Machine {
  id: string;
  name: string;
  hostname: string;
  platform: string;
  agent_version: string;
  claude_version: string | null;
  last_seen_at: string | null;
  last_ip: string | null;
  revoked_at: string | null;
  created_at: string;
  status: "online" | "offline" | "revoked";
  sessions: number;
  total_tokens: number;
  total_cost: number;
}

export interface PendingPermission {
  request_id: string;
  tool_name: string;
  summary: string;
  input: Record<string, unknown>;
}

export interface Session {
  id: string;
  machine_id: string;
  user_id: string;
  mode: "interactive" | "headless";
  command: string[] | null;
  project_path: string;
  project_id: string | null;
  initial_prompt: string | null;
  status: SessionStatus;
  status_detail: string | null;
  pid: number | null;
  exit_code: number | null;
  cols: number;
  rows: number;
  output_bytes: number;
  total_tokens: number;
  total_cost: number;
  last_event: string | null;
  last_message: string | null;
  pending_permission: PendingPermission | null;
  created_at: string;
  started_at: string | null;
  completed_at: string | null;
  ended: boolean;
}

export interface PairingInfo {
  code: string;
  hostname: string;
  platform: string;
  requested_name: string;
  agent_version?: string;
  ip: string | null;
  expires_at: string;
}

export interface DiscoveryItem {
  name: string;
  scope?: string;
  description?: string;
  path?: string;
  [key: string]: unknown;
}

export interface Discovery {
  skills: DiscoveryItem[];
  commands: DiscoveryItem[];
  agents: DiscoveryItem[];
  mcp_servers: DiscoveryItem[];
  errors?: string[];
}

export interface Project {
  id: string;
  name: string;
  project_path: string;
  summary: string;
  architecture: string;
  conventions: string;
  current_focus: string;
  recent_changes: string;
  token_budget: number;
  settings: Record<string, unknown>;
  created_at: string;
  updated_at: string;
  [key: string]: unknown;
}

export type TaskStatus = "pending" | "in_progress" | "blocked" | "review" | "done";
export type Priority = "low" | "medium" | "high" | "critical";

export interface Task {
  id: string;
  project_id: string;
  title: string;
  description: string;
  priority: Priority;
  status: TaskStatus;
  assigned_to: string | null;
  dependencies: string[];
  files: string[];
  estimate: string | null;
  completion_summary: string | null;
  files_modified: string[];
  blocked_reason: string | null;
  created_by: string;
  created_at: string;
  updated_at: string;
  claimed_at: string | null;
  completed_at: string | null;
  [key: string]: unknown;
}

export interface Instance {
  id: string;
  project_id: string;
  name: string;
  status: "active" | "disconnected" | "ended" | (string & {});
  current_task_id: string | null;
  session_id: string | null;
  machine_id: string | null;
  last_heartbeat_at: string | null;
  tasks_completed: number;
  created_at: string;
  ended_at: string | null;
  [key: string]: unknown;
}

export interface FileLock {
  id: string;
  project_id: string;
  path: string;
  holder_instance_id: string;
  holder_name: string;
  reason: string;
  fencing: number;
  expires_at: string;
  created_at: string;
}

export interface ContextChunk {
  id: string;
  project_id: string;
  content: string;
  type: string;
  files: string[];
  instance_id: string | null;
  task_id: string | null;
  importance: number;
  expires_at: string | null;
  created_at: string;
  [key: string]: unknown;
}

export interface ContextResult extends ContextChunk {
  score: number;
  keyword_rank: number | null;
  vector_rank: number | null;
  distance: number | null;
}

/** One row of a project's activity log (docs/coordination.md): `id` is its commit order. `data.by` names who
 * acted (an instance's name or the owner's email); `project_name` is there in GET /api/activity's rows only. */
export interface Activity {
  id: number;
  project_id: string;
  kind: string;
  instance_id: string | null;
  task_id?: string | null; // always sent; optional only for the dashboard's ActivityRow, which re-declares it
  message: string;
  data: Record<string, unknown>;
  created_at: string;
  project_name?: string;
  [key: string]: unknown;
}

export interface ApiToken {
  id: string;
  name: string;
  created_at: string;
  expires_at: string | null;
  last_used_at: string | null;
  revoked_at?: string | null;
}

export interface WebSession {
  id: string;
  created_at: string;
  expires_at: string;
  last_used_at: string | null;
  user_agent: string | null;
  current: boolean;
}

export interface UsageWindow {
  sessions: number;
  total_tokens: number;
  total_cost: number;
}

export interface UsageSummary {
  today: UsageWindow;
  week: UsageWindow;
}
