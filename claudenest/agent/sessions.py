"""The agent's session registry: which sessions exist, their PTYs and output rings. Holds policy, no transport."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from claudenest.agent.claude import claude_argv, claude_version, headless_argv, locate_claude, session_env
from claudenest.agent.hooks import TOKEN_ENV, HookServer, hook_settings, supports_http_hooks
from claudenest.agent.pipe import PipeProcess
from claudenest.agent.pty import PtyProcess
from claudenest.agent.trust import pre_accept
from claudenest.agent.usage import StreamJsonParser, render_event, usage_from_result
from claudenest.errors import SpawnError
from claudenest.protocol import LiveSession, SessionState, Spawn
from claudenest.ring import OutputRing

log = logging.getLogger(__name__)


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


@dataclass(eq=False)
class LocalSession:
    session_id: str
    ring: OutputRing
    command: list[str]
    cwd: str
    status: str = "starting"  # running, exited, error
    exit_code: int | None = None
    reason: str | None = None
    process: PtyProcess | PipeProcess | None = None
    headless: bool = False
    parser: StreamJsonParser | None = None
    failure: str | None = None
    project: dict[str, Any] | None = None
    reaper: asyncio.Task[None] | None = None
    paused: bool = field(default=False)

    @property
    def ended(self) -> bool:
        return self.status in ("exited", "error")

    def live(self) -> LiveSession:
        return LiveSession(
            session_id=self.session_id,
            end_offset=self.ring.end,
            status=self.status,
            pid=self.process.pid if self.process else None,
            exit_code=self.exit_code,
        )


class SessionRegistry:
    """Spawns and tracks sessions. ``on_output`` and ``on_ended`` tell the link that there is something to send."""

    def __init__(
        self,
        *,
        ring_bytes: int,
        claude_path: str,
        on_output: Callable[[LocalSession], None],
        on_ended: Callable[[LocalSession], None],
        on_state: Callable[[SessionState], None] = lambda _: None,
        on_usage: Callable[[LocalSession, dict[str, Any]], None] = lambda *_: None,
        hooks: HookServer | None = None,
        trust_projects: tuple[str, ...] = (),
        relay_url: str = "",
        on_claude_found: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.sessions: dict[str, LocalSession] = {}
        self._on_claude_found = on_claude_found
        self.ring_bytes = ring_bytes
        self.claude_path = claude_path
        self._on_output = on_output
        self._on_ended = on_ended
        self._on_state = on_state
        self._on_usage = on_usage
        self.hooks = hooks
        self.trust_projects = trust_projects
        self.relay_url = relay_url
        self.runtime_dir = Path(tempfile.mkdtemp(prefix="claudenest-agent-"))  # 0700: per-session MCP configs

    async def spawn(self, request: Spawn) -> LocalSession:
        existing = self.sessions.get(request.session_id)
        if existing is not None:
            return existing  # the relay asked twice (e.g. across a reconnect): one session only
        cwd = str(Path(request.cwd).expanduser())
        session = LocalSession(
            session_id=request.session_id,
            ring=OutputRing(self.ring_bytes),
            command=[],
            cwd=cwd,
            headless=request.mode == "headless" and not request.command,
            project=request.project,
        )
        self.sessions[request.session_id] = session
        env = session_env(request.cols, request.rows)
        try:
            session.command = self._argv(request, env)
            if not Path(cwd).is_dir():
                raise SpawnError(f"working directory {cwd} does not exist")
            if session.headless:
                session.parser = StreamJsonParser()
                session.process = await PipeProcess.spawn(
                    session.command,
                    cwd=cwd,
                    env=env,
                    on_output=lambda data: self._output(session, data),
                    on_eof=lambda: self._eof(session),
                )
            else:
                session.process = PtyProcess(
                    session.command,
                    cwd=cwd,
                    env=env,
                    cols=request.cols,
                    rows=request.rows,
                    on_output=lambda data: self._output(session, data),
                    on_eof=lambda: self._eof(session),
                )
        except SpawnError as exc:
            session.status, session.reason = "error", str(exc)
            if self.hooks is not None:
                self.hooks.forget(session.session_id)
            log.warning("session %s could not start: %s", session.session_id, exc)
            self._on_ended(session)
            return session
        session.status = "running"
        log.info("session %s started: pid %d, %s", session.session_id, session.process.pid, session.command[0])
        return session

    def _argv(self, request: Spawn, env: dict[str, str]) -> list[str]:
        if request.command:
            return list(request.command)
        claude = locate_claude(self.claude_path)
        if claude is None:
            raise SpawnError(
                "Claude Code (`claude`) was not found: install it (npm install -g @anthropic-ai/claude-code) "
                "or set agent.claude_path in config.toml"
            )
        self._on_claude_found(claude)  # looked for at every spawn: an install after the agent started is seen
        argv = (
            headless_argv(claude, request.session_id, request.prompt or "")
            if request.mode == "headless"
            else claude_argv(claude, request.session_id)
        )
        if request.mode == "interactive":
            pre_accept(str(Path(request.cwd).expanduser()), self.trust_projects)
        if request.project:
            argv += self._project_args(request, request.project)
        if self.hooks is not None:
            url, secret = self.hooks.register(
                request.session_id,
                interactive=request.mode == "interactive",
                cwd=str(Path(request.cwd).expanduser()),
                in_project=bool(request.project),
            )
            settings = hook_settings(
                url, http=supports_http_hooks(claude_version(claude)), permission_wait=self.hooks.permission_wait
            )
            argv += ["--settings", json.dumps(settings, separators=(",", ":"))]
            env[TOKEN_ENV] = secret  # in the environment, not on the command line where `ps` shows it
        return argv

    def _project_args(self, request: Spawn, project: dict[str, Any]) -> list[str]:
        """The claudenest MCP server (its token in a 0600 file, not on a command line) and the project's rules."""
        config = {
            "mcpServers": {
                "claudenest": {
                    "type": "stdio",
                    "command": sys.executable,
                    "args": ["-m", "claudenest", "mcp", "serve"],
                    "env": {
                        "CLAUDENEST_RELAY_URL": self.relay_url,
                        "CLAUDENEST_INSTANCE_TOKEN": str(project["instance_token"]),
                        "CLAUDENEST_PROJECT_ID": str(project["project_id"]),
                        "CLAUDENEST_INSTANCE_ID": str(project["instance_id"]),
                    },
                }
            }
        }
        path = self.runtime_dir / f"mcp-{request.session_id}.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(config, handle)
        args = ["--mcp-config", str(path)]
        if project.get("system_prompt"):
            args += ["--append-system-prompt", str(project["system_prompt"])]
        return args

    def _output(self, session: LocalSession, data: bytes) -> None:
        if session.parser is None:
            session.ring.append(data)
        else:
            # Headless: viewers get readable text; the result line carries the run's cost and outcome.
            for event in session.parser.feed(data):
                session.ring.append(render_event(event).encode())
                if event.get("type") == "result":
                    self._headless_result(session, event)
        self._on_output(session)

    def _headless_result(self, session: LocalSession, event: dict[str, Any]) -> None:
        self._on_usage(session, usage_from_result(event).to_dict())
        failed = bool(event.get("is_error"))  # `subtype` says "success" even for a failed login
        detail = str(event.get("result") or event.get("subtype") or "")[:2000]
        session.failure = detail if failed else None
        self._on_state(
            SessionState(
                session_id=session.session_id, event="Result", status="error" if failed else "idle", detail=detail
            )
        )

    def _eof(self, session: LocalSession) -> None:
        session.reaper = asyncio.create_task(self._reap(session))

    async def _reap(self, session: LocalSession) -> None:
        assert session.process is not None
        code = await session.process.wait()
        session.process.close()
        if session.parser is not None:
            for event in session.parser.flush():
                session.ring.append(render_event(event).encode())
                if event.get("type") == "result":
                    self._headless_result(session, event)
        if self.hooks is not None:
            self.hooks.forget(session.session_id)
        (self.runtime_dir / f"mcp-{session.session_id}.json").unlink(missing_ok=True)  # it holds a token
        # The shell's convention, 128+N for a process ended by signal N (subprocess says -N), with the signal named.
        session.exit_code = 128 - code if code < 0 else code
        killed_by = f"ended by {signal_name(-code)}" if code < 0 else None
        # A headless run whose result was an error ends as an error, with Claude's words as the reason.
        session.status, session.reason = ("error", session.failure) if session.failure else ("exited", killed_by)
        log.info("session %s exited with %d", session.session_id, session.exit_code)
        self._on_ended(session)

    def write(self, session_id: str, data: bytes) -> None:
        session = self.sessions.get(session_id)
        if session is not None and session.process is not None and not session.ended:
            session.process.write(data)

    def resize(self, session_id: str, cols: int, rows: int) -> None:
        session = self.sessions.get(session_id)
        if session is not None and session.process is not None and not session.ended:
            session.process.resize(cols, rows)

    async def kill(self, session_id: str) -> None:
        session = self.sessions.get(session_id)
        if session is not None and session.process is not None and not session.ended:
            await session.process.terminate()

    def forget(self, session_id: str) -> None:
        session = self.sessions.get(session_id)
        if session is not None and session.ended:
            del self.sessions[session_id]
            session.process = None  # break the session <-> process callback cycle so the ring is freed at once

    def live(self) -> list[LiveSession]:
        return [s.live() for s in self.sessions.values()]

    async def shutdown(self) -> None:
        """End every session's process group (daemon stopping)."""
        running = [s for s in self.sessions.values() if s.process is not None and not s.ended]
        await asyncio.gather(*(s.process.terminate() for s in running if s.process), return_exceptions=True)
        for session in running:
            if session.reaper is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(session.reaper, 2)
