"""The agent's session registry: which sessions exist, their PTYs and output rings. Holds policy, no transport."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from claudenest.agent.claude import claude_argv, headless_argv, locate_claude, session_env
from claudenest.agent.pty import PtyProcess
from claudenest.agent.ring import OutputRing
from claudenest.errors import SpawnError
from claudenest.protocol import LiveSession, Spawn

log = logging.getLogger(__name__)


@dataclass(eq=False)
class LocalSession:
    session_id: str
    ring: OutputRing
    command: list[str]
    cwd: str
    status: str = "starting"  # running, exited, error
    exit_code: int | None = None
    reason: str | None = None
    pty: PtyProcess | None = None
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
            pid=self.pty.pid if self.pty else None,
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
    ) -> None:
        self.sessions: dict[str, LocalSession] = {}
        self.ring_bytes = ring_bytes
        self.claude_path = claude_path
        self._on_output = on_output
        self._on_ended = on_ended

    def spawn(self, request: Spawn) -> LocalSession:
        existing = self.sessions.get(request.session_id)
        if existing is not None:
            return existing  # the relay asked twice (e.g. across a reconnect): one session only
        cwd = str(Path(request.cwd).expanduser())
        session = LocalSession(session_id=request.session_id, ring=OutputRing(self.ring_bytes), command=[], cwd=cwd)
        self.sessions[request.session_id] = session
        try:
            session.command = self._argv(request)
            if not Path(cwd).is_dir():
                raise SpawnError(f"working directory {cwd} does not exist")
            session.pty = PtyProcess(
                session.command,
                cwd=cwd,
                env=session_env(request.cols, request.rows),
                cols=request.cols,
                rows=request.rows,
                on_output=lambda data: self._output(session, data),
                on_eof=lambda: self._eof(session),
            )
        except SpawnError as exc:
            session.status, session.reason = "error", str(exc)
            log.warning("session %s could not start: %s", session.session_id, exc)
            self._on_ended(session)
            return session
        session.status = "running"
        log.info("session %s started: pid %d, %s", session.session_id, session.pty.pid, session.command[0])
        return session

    def _argv(self, request: Spawn) -> list[str]:
        if request.command:
            return list(request.command)
        claude = locate_claude(self.claude_path)
        if claude is None:
            raise SpawnError(
                "Claude Code (`claude`) was not found: install it (npm install -g @anthropic-ai/claude-code) "
                "or set agent.claude_path in config.toml"
            )
        if request.mode == "headless":
            return headless_argv(claude, request.session_id, request.prompt or "")
        return claude_argv(claude, request.session_id)

    def _output(self, session: LocalSession, data: bytes) -> None:
        session.ring.append(data)
        self._on_output(session)

    def _eof(self, session: LocalSession) -> None:
        session.reaper = asyncio.create_task(self._reap(session))

    async def _reap(self, session: LocalSession) -> None:
        assert session.pty is not None
        code = await session.pty.wait()
        session.pty.close()
        session.status, session.exit_code = "exited", code
        log.info("session %s exited with %d", session.session_id, code)
        self._on_ended(session)

    def write(self, session_id: str, data: bytes) -> None:
        session = self.sessions.get(session_id)
        if session is not None and session.pty is not None and not session.ended:
            session.pty.write(data)

    def resize(self, session_id: str, cols: int, rows: int) -> None:
        session = self.sessions.get(session_id)
        if session is not None and session.pty is not None and not session.ended:
            session.pty.resize(cols, rows)

    async def kill(self, session_id: str) -> None:
        session = self.sessions.get(session_id)
        if session is not None and session.pty is not None and not session.ended:
            await session.pty.terminate()

    def forget(self, session_id: str) -> None:
        session = self.sessions.get(session_id)
        if session is not None and session.ended:
            del self.sessions[session_id]

    def live(self) -> list[LiveSession]:
        return [s.live() for s in self.sessions.values()]

    async def shutdown(self) -> None:
        """End every session's process group (daemon stopping)."""
        running = [s for s in self.sessions.values() if s.pty is not None and not s.ended]
        await asyncio.gather(*(s.pty.terminate() for s in running if s.pty), return_exceptions=True)
        for session in running:
            if session.reaper is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(session.reaper, 2)
