"""Claude Code hooks, received over loopback: the agent learns a session's state without scraping its screen.

Each spawned Claude gets ``--settings`` with HTTP hooks (or, for Claude Code older than 2.1.63, command hooks
that forward stdin with ``python -m claudenest.agent.hook_command``) pointing at this server, and a per-session
secret in its environment (never on its command line). A PermissionRequest is held open until a remote user
answers or the wait runs out; then Claude's own prompt in the terminal stays the fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import secrets
import shlex
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from claudenest.protocol import SessionState

log = logging.getLogger(__name__)

TOKEN_ENV = "CLAUDENEST_HOOK_TOKEN"
EVENTS = (
    "SessionStart",
    "UserPromptSubmit",
    "PreToolUse",
    "PermissionRequest",
    "Notification",
    "Stop",
    "StopFailure",
    "SessionEnd",
)
TOOL_EVENTS = ("PreToolUse", "PermissionRequest")
HTTP_HOOKS_SINCE = (2, 1, 63)
# Claude Code runs only command hooks for these (an HTTP hook there is silently skipped; seen on 2.1.197).
COMMAND_ONLY = ("SessionStart",)
MAX_BODY = 2 << 20
DETAIL_LIMIT = 2000


EDIT_TOOLS = ("Edit", "Write", "MultiEdit", "NotebookEdit")
# (session id, project-relative path, tool) -> a deny reason, or None to let Claude's usual permissions decide.
LockGate = Callable[[str, str, str], Awaitable[str | None]]


@dataclass
class HookSession:
    session_id: str
    secret: str
    interactive: bool
    cwd: str = ""
    in_project: bool = False
    transcript_path: str | None = None
    pending: dict[str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)


def supports_http_hooks(version: str | None) -> bool:
    if not version:
        return True  # unknown: assume a current release
    try:
        parts = tuple(int(p) for p in version.split(".")[:3])
    except ValueError:
        return True
    return parts >= HTTP_HOOKS_SINCE


def hook_settings(url: str, *, http: bool, permission_wait: float) -> dict[str, Any]:
    """The ``--settings`` JSON that sends every event we use to ``url``."""
    hooks: dict[str, Any] = {}
    for event in EVENTS:
        # Claude's own hook timeout must outlast our wait, or it gives up on a request we still hold.
        timeout = int(permission_wait) + 15 if event == "PermissionRequest" else 30
        if http and event not in COMMAND_ONLY:
            handler: dict[str, Any] = {
                "type": "http",
                "url": url,
                "headers": {"Authorization": f"Bearer ${TOKEN_ENV}"},
                "allowedEnvVars": [TOKEN_ENV],
                "timeout": timeout,
            }
        else:
            handler = {
                "type": "command",
                "command": f"{shlex.quote(sys.executable)} -m claudenest.agent.hook_command {url}",
                "timeout": timeout,
            }
        entry: dict[str, Any] = {"hooks": [handler]}
        if event in TOOL_EVENTS:
            entry["matcher"] = "*"
        hooks[event] = [entry]
    return {"hooks": hooks}


def summarize(tool_name: str, tool_input: Any) -> str:
    """A one-line description of what a tool wants to do, for a phone screen."""
    if isinstance(tool_input, dict):
        for key in ("command", "file_path", "path", "url", "pattern", "prompt"):
            if key in tool_input:
                return f"{tool_name}: {str(tool_input[key])[:300]}"
        return f"{tool_name}: {json.dumps(tool_input)[:300]}"
    return tool_name


def state_for(event: str, payload: dict[str, Any], interactive: bool) -> tuple[str | None, str | None]:
    """(new status or None, detail) for a hook event. Never parses the screen."""
    if event == "SessionStart":
        return ("idle" if interactive else "running"), payload.get("source")
    if event == "UserPromptSubmit":
        return "running", _clip(payload.get("prompt"))
    if event == "PreToolUse":
        return "running", summarize(str(payload.get("tool_name", "")), payload.get("tool_input"))
    if event == "PermissionRequest":
        return "waiting_permission", summarize(str(payload.get("tool_name", "")), payload.get("tool_input"))
    if event == "Notification":
        kind = payload.get("notification_type")
        status = {"permission_prompt": "waiting_permission", "idle_prompt": "idle"}.get(str(kind))
        return status, _clip(payload.get("message"))
    if event == "Stop":
        return "idle", _clip(payload.get("last_assistant_message"))
    if event == "StopFailure":
        error = payload.get("error") or "error"
        last = payload.get("last_assistant_message")
        return "error", _clip(f"{error}: {last}" if last else str(error))
    if event == "SessionEnd":
        return None, payload.get("reason")
    return None, None


def _clip(value: Any) -> str | None:
    return None if value is None else str(value)[:DETAIL_LIMIT]


class HookServer:
    """A tiny HTTP/1.1 server on 127.0.0.1 for hook POSTs; one path per session, one secret per session."""

    def __init__(
        self,
        on_state: Callable[[SessionState], None],
        permission_wait: float = 110.0,
        lock_gate: LockGate | None = None,
    ) -> None:
        self._on_state = on_state
        self.lock_gate = lock_gate
        self.permission_wait = permission_wait
        self.sessions: dict[str, HookSession] = {}
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for hook_session in self.sessions.values():
            for waiter in hook_session.pending.values():
                if not waiter.done():
                    waiter.set_result({})
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    def register(
        self, session_id: str, *, interactive: bool, cwd: str = "", in_project: bool = False
    ) -> tuple[str, str]:
        """(hook URL, secret) for a new session. The secret goes into the child's environment."""
        secret = secrets.token_urlsafe(32)
        self.sessions[session_id] = HookSession(session_id, secret, interactive, cwd, in_project)
        return f"http://127.0.0.1:{self.port}/hook/{session_id}", secret

    def forget(self, session_id: str) -> None:
        hook_session = self.sessions.pop(session_id, None)
        if hook_session is not None:
            for waiter in hook_session.pending.values():
                if not waiter.done():
                    waiter.set_result({})

    def decide(self, session_id: str, request_id: str, behavior: str, message: str | None) -> bool:
        hook_session = self.sessions.get(session_id)
        waiter = hook_session.pending.get(request_id) if hook_session else None
        if waiter is None or waiter.done():
            return False
        decision: dict[str, Any] = {"behavior": behavior}
        if behavior == "deny" and message:
            decision["message"] = message
        waiter.set_result({"hookSpecificOutput": {"hookEventName": "PermissionRequest", "decision": decision}})
        return True

    # -- HTTP ---------------------------------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, body = await self._request(reader)
        except Exception as exc:  # a malformed request must not take the agent down
            log.debug("bad hook request: %s", exc)
            status, body = 400, {"error": "bad request"}
        payload = json.dumps(body).encode()
        writer.write(
            f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
            + payload
        )
        with contextlib.suppress(Exception):
            await writer.drain()
            writer.close()

    async def _request(self, reader: asyncio.StreamReader) -> tuple[int, dict[str, Any]]:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        length = int(headers.get("content-length", "0"))
        if method != "POST" or not path.startswith("/hook/") or length > MAX_BODY:
            return 404, {"error": "not found"}
        hook_session = self.sessions.get(path[len("/hook/") :])
        token = headers.get("authorization", "").removeprefix("Bearer ").strip()
        if hook_session is None or not hmac.compare_digest(token, hook_session.secret):
            return 401, {"error": "unknown session or wrong secret"}
        payload = json.loads(await asyncio.wait_for(reader.readexactly(length), 10) or b"{}")
        if not isinstance(payload, dict):
            return 400, {"error": "expected a JSON object"}
        return 200, await self._event(hook_session, payload)

    async def _event(self, hook_session: HookSession, payload: dict[str, Any]) -> dict[str, Any]:
        event = str(payload.get("hook_event_name", ""))
        if isinstance(payload.get("transcript_path"), str):
            hook_session.transcript_path = payload["transcript_path"]
        status, detail = state_for(event, payload, hook_session.interactive)
        if event != "PermissionRequest":
            self._on_state(SessionState(session_id=hook_session.session_id, event=event, status=status, detail=detail))
            if event == "PreToolUse" and hook_session.in_project and self.lock_gate is not None:
                return await self._lock_gate(hook_session, payload)
            return {}
        request_id = secrets.token_hex(8)
        permission = {
            "request_id": request_id,
            "tool_name": str(payload.get("tool_name", "")),
            "summary": detail,
            "input": _compact(payload.get("tool_input")),
        }
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        hook_session.pending[request_id] = waiter
        self._on_state(
            SessionState(
                session_id=hook_session.session_id, event=event, status=status, detail=detail, permission=permission
            )
        )
        try:
            return await asyncio.wait_for(waiter, self.permission_wait)
        except TimeoutError:
            return {}  # no remote answer: Claude asks in its terminal as usual
        finally:
            hook_session.pending.pop(request_id, None)

    async def _lock_gate(self, hook_session: HookSession, payload: dict[str, Any]) -> dict[str, Any]:
        """Before Claude edits a file in a shared project, take its lock; deny the edit if another instance holds it."""
        tool = str(payload.get("tool_name", ""))
        tool_input = payload.get("tool_input") or {}
        target = (
            tool_input.get("file_path") or tool_input.get("notebook_path") if isinstance(tool_input, dict) else None
        )
        if tool not in EDIT_TOOLS or not isinstance(target, str) or self.lock_gate is None:
            return {}
        reason = await self.lock_gate(hook_session.session_id, project_relative(target, hook_session.cwd), tool)
        if reason is None:
            return {}  # no decision: Claude's own permission rules still apply
        return {
            "hookSpecificOutput": {
                "hookEventName": "PreToolUse",
                "permissionDecision": "deny",
                "permissionDecisionReason": reason,
            }
        }


def project_relative(path: str, root: str) -> str:
    """Lock paths are relative to the project root, whatever form Claude used."""
    from pathlib import PurePosixPath

    candidate, base = PurePosixPath(path), PurePosixPath(root)
    if candidate.is_absolute() and root and (candidate == base or base in candidate.parents):
        return str(candidate.relative_to(base))
    return str(candidate)


def _compact(value: Any) -> Any:
    text = json.dumps(value, default=str)
    return value if len(text) <= 4000 else text[:4000]
