"""A stdio MCP server over the relay's project API, for one Claude instance in one project.

Configured by environment (the agent writes it into the MCP config it passes to Claude Code):
CLAUDENEST_RELAY_URL, CLAUDENEST_INSTANCE_TOKEN (ci_..., scoped to the project), CLAUDENEST_PROJECT_ID and
CLAUDENEST_INSTANCE_ID. Results are short text Claude can read; failures come back as tool errors that say what
went wrong ("locked by alpha until 12:30", "task is done, not pending").
"""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from claudenest import __version__
from claudenest.client import RelayClient
from claudenest.errors import ClaudenestError
from claudenest.mcp.config import INSTRUCTIONS, SERVER_NAME, McpConfig

PRIORITIES = ("low", "medium", "high", "critical")
CONTEXT_FIELDS = ("summary", "architecture", "conventions", "current_focus")


class ProjectApi:
    """The relay calls one instance makes, with errors turned into tool errors."""

    def __init__(self, config: McpConfig) -> None:
        self.config = config
        self.base = f"/api/projects/{config.project_id}"

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        async with RelayClient(self.config.relay_url, self.config.token, timeout=30) as api:
            try:
                response = await api.request(method, self.base + path, **kwargs)
            except ClaudenestError as exc:
                raise ToolError(str(exc)) from None
        return response.json() if response.content else None

    async def task_id(self, ref: str) -> str:
        """Full task ids, or a unique prefix as shown by task_list."""
        tasks = (await self.call("GET", "/tasks"))["tasks"]
        found = [t["id"] for t in tasks if t["id"] == ref or t["id"].startswith(ref)]
        if len(found) != 1:
            raise ToolError(f"no task {ref!r}" if not found else f"{ref!r} matches several tasks")
        return str(found[0])


def task_line(task: dict[str, Any]) -> str:
    who = f" @{task.get('assigned_name') or task['assigned_to'][:8]}" if task.get("assigned_to") else ""
    deps = f" after {','.join(d[:8] for d in task['dependencies'])}" if task.get("dependencies") else ""
    return f"{task['id'][:8]} [{task['priority']}] {task['status']}{who}: {task['title']}{deps}"


def task_detail(task: dict[str, Any]) -> str:
    lines = [task_line(task), f"id: {task['id']}"]
    if task.get("description"):
        lines.append(f"description: {task['description']}")
    if task.get("files"):
        lines.append(f"files: {', '.join(task['files'])}")
    if task.get("completion_summary"):
        lines.append(f"summary: {task['completion_summary']}")
    return "\n".join(lines)


def lock_line(path: str, lock: dict[str, Any] | None) -> str:
    if lock is None:
        return f"{path}: free"
    return f"{path}: locked by {lock.get('holder_name') or lock['holder_instance_id'][:8]} until {lock['expires_at']}"


def build_server(config: McpConfig) -> MCPServer:
    api = ProjectApi(config)
    server = MCPServer(
        name=SERVER_NAME,
        version=__version__,
        instructions=INSTRUCTIONS,
    )

    @server.tool(
        description="List the project's tasks, optionally of one status (pending, in_progress, blocked, review, done)."
    )
    async def task_list(status: str | None = None) -> str:
        params = {"status": status} if status else {}
        tasks = (await api.call("GET", "/tasks", params=params))["tasks"]
        return "\n".join(task_line(t) for t in tasks) or "no tasks"

    @server.tool(description="Claim the most important task whose dependencies are all done, and return it.")
    async def task_claim_next() -> str:
        task = (await api.call("POST", "/tasks/claim-next"))["task"]
        return task_detail(task) if task else "no claimable task right now"

    @server.tool(description="Claim one task by id (or id prefix).")
    async def task_claim(task_id: str) -> str:
        return task_detail((await api.call("POST", f"/tasks/{await api.task_id(task_id)}/claim"))["task"])

    @server.tool(description="Mark a task you hold done, with a summary of what changed and the files you modified.")
    async def task_complete(task_id: str, summary: str, files_modified: list[str] | None = None) -> str:
        body = {"summary": summary, "files_modified": files_modified or []}
        task = (await api.call("POST", f"/tasks/{await api.task_id(task_id)}/complete", json=body))["task"]
        return f"completed {task_line(task)}"

    @server.tool(
        description="Ask another instance to review a task you hold: it moves to review with your summary and files."
    )
    async def task_request_review(task_id: str, summary: str, files_modified: list[str] | None = None) -> str:
        body = {"summary": summary, "files_modified": files_modified or []}
        task = (await api.call("POST", f"/tasks/{await api.task_id(task_id)}/review", json=body))["task"]
        return f"in review {task_line(task)}"

    @server.tool(
        description="Decide the review of another instance's task: approve (it is done) or, with changes_needed, "
        "send it back to its assignee saying what to change."
    )
    async def task_review(task_id: str, approve: bool, changes_needed: str = "") -> str:
        tid = await api.task_id(task_id)
        if approve:
            task = (await api.call("POST", f"/tasks/{tid}/approve", json={"note": changes_needed or None}))["task"]
            return f"approved {task_line(task)}"
        if not changes_needed.strip():
            raise ToolError("say what to change in changes_needed, or approve")
        task = (await api.call("POST", f"/tasks/{tid}/request-changes", json={"reason": changes_needed}))["task"]
        return f"changes requested {task_line(task)}"

    @server.tool(description="Give a task you hold back to the queue (status pending) without finishing it.")
    async def task_release(task_id: str) -> str:
        return f"released {task_line((await api.call('POST', f'/tasks/{await api.task_id(task_id)}/release'))['task'])}"

    @server.tool(description="Create a task. priority: low|medium|high|critical; dependencies: tasks to finish first.")
    async def task_create(
        title: str,
        description: str = "",
        priority: str = "medium",
        dependencies: list[str] | None = None,
        files: list[str] | None = None,
    ) -> str:
        if priority not in PRIORITIES:
            raise ToolError(f"priority must be one of {', '.join(PRIORITIES)}")
        deps = [await api.task_id(d) for d in dependencies or []]
        body = {
            "title": title,
            "description": description,
            "priority": priority,
            "dependencies": deps,
            "files": files or [],
        }
        return f"created {task_line((await api.call('POST', '/tasks', json=body))['task'])}"

    @server.tool(
        description="Lock a file path or glob before editing it; fails, naming the holder, if another holds it."
    )
    async def lock_acquire(path: str, reason: str = "", ttl_minutes: int = 30) -> str:
        body = {"path": path, "reason": reason, "ttl_seconds": max(1, min(ttl_minutes, 1440)) * 60}
        lock = (await api.call("POST", "/locks", json=body))["lock"]
        return f"locked {path} until {lock['expires_at']} (fencing {lock['fencing']})"

    @server.tool(description="Release a file lock you hold.")
    async def lock_release(path: str) -> str:
        released = (await api.call("POST", "/locks/release", json={"path": path}))["released"]
        return f"released {path}" if released else f"you held no lock on {path}"

    @server.tool(description="Check whether files are locked, and by whom.")
    async def lock_check(paths: list[str]) -> str:
        locks = (await api.call("POST", "/locks/check", json={"paths": paths}))["locks"]
        return "\n".join(lock_line(p, locks.get(p)) for p in paths)

    @server.tool(description="Search the project's shared context (what other instances did and decided).")
    async def context_query(query: str, limit: int = 5) -> str:
        try:
            found = await api.call("POST", "/context/query", json={"query": query, "limit": limit})
        except ToolError as exc:
            raise ToolError(f"shared context is not available: {exc}") from None
        results = found.get("results", [])
        return "\n\n".join(f"[{r.get('type')}] {r.get('content')}" for r in results) or "nothing relevant found"

    @server.tool(description="Add a note, decision or summary to the project's shared context for the other instances.")
    async def context_add(content: str, type: str = "note", files: list[str] | None = None) -> str:
        try:
            await api.call("POST", "/context", json={"content": content, "type": type, "files": files or []})
        except ToolError as exc:
            raise ToolError(f"shared context is not available: {exc}") from None
        return "added to the shared context"

    @server.tool(
        description="The project's summary, architecture, conventions, focus, changes, open tasks and instances."
    )
    async def project_info() -> str:
        project = (await api.call("GET", ""))["project"]
        tasks = (await api.call("GET", "/tasks"))["tasks"]
        instances = (await api.call("GET", "/instances"))["instances"]
        lines = [f"# {project['name']} ({project['project_path']})"]
        for field in (*CONTEXT_FIELDS, "recent_changes"):
            if project.get(field):
                lines.append(f"{field}: {project[field]}")
        open_tasks = [t for t in tasks if t["status"] != "done"]
        lines.append(f"open tasks ({len(open_tasks)} of {len(tasks)}):")
        lines += [f"  {task_line(t)}" for t in open_tasks[:30]]
        lines.append("instances: " + ", ".join(f"{i['name']} ({i['status']})" for i in instances))
        return "\n".join(lines)

    @server.tool(
        description="Update one of the project's shared fields: summary, architecture, conventions or current_focus."
    )
    async def project_context_set(field: str, value: str) -> str:
        if field not in CONTEXT_FIELDS:
            raise ToolError(f"field must be one of {', '.join(CONTEXT_FIELDS)}")
        await api.call("PATCH", "", json={field: value})
        return f"{field} updated"

    @server.tool(
        description="Send a message to every instance and viewer of the project (it lands in the activity feed)."
    )
    async def broadcast_message(text: str) -> str:
        await api.call("POST", "/messages", json={"text": text})
        return "sent"

    @server.tool(description="A heartbeat: say you are still working, optionally on which task; shows your standing.")
    async def instance_status(current_task_id: str | None = None) -> str:
        body: dict[str, Any] = {"status": "active"}
        if current_task_id:
            body["current_task_id"] = await api.task_id(current_task_id)
        instance = (await api.call("POST", f"/instances/{config.instance_id}/heartbeat", json=body))["instance"]
        return f"{instance['name']}: {instance['status']}, {instance.get('tasks_completed', 0)} tasks completed"

    return server


def serve(config: McpConfig) -> None:
    build_server(config).run("stdio")
