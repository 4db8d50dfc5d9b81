"""The agent daemon: composes the hook server, the session registry and the relay link, and owns their lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import platform
import socket
from pathlib import Path
from typing import Any

from claudenest.agent.claude import claude_version, locate_claude
from claudenest.agent.discovery import discover, fingerprint
from claudenest.agent.hooks import HookServer
from claudenest.agent.link import FatalLinkError, RelayLink
from claudenest.agent.sessions import LocalSession, SessionRegistry
from claudenest.agent.usage import transcript_path, usage_from_transcript
from claudenest.client import RelayClient
from claudenest.config import AgentSettings
from claudenest.errors import AuthError, ClaudenestError, Conflict
from claudenest.protocol import Discovery, PermissionDecision, SessionState, SessionUsage

log = logging.getLogger(__name__)

DISCOVERY_INTERVAL = 30.0


class Agent:
    def __init__(self, relay_url: str, token: str, settings: AgentSettings) -> None:
        self.settings = settings
        self.relay_url = relay_url
        self.hooks = HookServer(self._state, permission_wait=settings.permission_wait, lock_gate=self._lock_gate)
        self.registry = SessionRegistry(
            ring_bytes=settings.ring_bytes,
            claude_path=settings.claude_path,
            on_output=self._output,
            on_ended=self._ended,
            on_state=self._state,
            on_usage=self._usage,
            hooks=self.hooks,
            trust_projects=settings.trust_projects,
            relay_url=relay_url,
            on_claude_found=self._claude_found,
        )
        claude = locate_claude(settings.claude_path)
        self.claude_version = claude_version(claude) if claude else None
        self.link = RelayLink(
            relay_url,
            token,
            self.registry,
            hostname=socket.gethostname(),
            platform=f"{platform.system()} {platform.release()} {platform.machine()}",
            claude_version=self.claude_version,
            high_water=settings.link_high_water_bytes,
        )
        self.link.on_connected = self._connected
        self.link.on_permission = self._permission
        self._discovery_print = ""
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- events from sessions and hooks -------------------------------------------------------------------------

    def _output(self, session: LocalSession) -> None:
        self.link.output_ready(session)

    def _ended(self, session: LocalSession) -> None:
        self.link.session_ended(session)

    def _state(self, state: SessionState) -> None:
        self.link.send(state)
        if state.event == "Stop":
            self._spawn_task(self._transcript_usage(state.session_id))

    def _usage(self, session: LocalSession, usage: dict[str, Any]) -> None:
        self.link.send(SessionUsage(session_id=session.session_id, usage=usage))

    def _permission(self, decision: PermissionDecision) -> None:
        if not self.hooks.decide(decision.session_id, decision.request_id, decision.behavior, decision.message):
            log.info("permission answer for %s came after the request was settled", decision.session_id)

    async def _lock_gate(self, session_id: str, path: str, tool: str) -> str | None:
        """Take the file's lock for this instance; a refusal names the holder. Fail open if the relay is away."""
        session = self.registry.sessions.get(session_id)
        project = session.project if session else None
        if not project:
            return None
        body = {"path": path, "reason": f"{tool} by Claude", "ttl_seconds": 1800}
        try:
            async with RelayClient(self.relay_url, str(project["instance_token"]), timeout=10) as api:
                await api.request("POST", f"/api/projects/{project['project_id']}/locks", json=body)
        except Conflict as exc:
            return str(exc)
        except ClaudenestError as exc:
            # Documented fail-open: an unreachable relay must not freeze every edit on every machine.
            log.warning("lock check for %s failed (%s); letting the edit through", path, exc)
        return None

    def _spawn_task(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _transcript_usage(self, session_id: str) -> None:
        """Interactive sessions: totals from the transcript, deduplicated (the hook's path, else the usual one)."""
        session = self.registry.sessions.get(session_id)
        hook_session = self.hooks.sessions.get(session_id)
        if session is None or session.headless:
            return  # a headless run's result line is the authority on its cost
        path = Path(hook_session.transcript_path) if hook_session and hook_session.transcript_path else None
        if path is None:
            config_dir = Path(os.environ.get("CLAUDE_CONFIG_DIR") or Path.home() / ".claude")
            path = transcript_path(config_dir, session.cwd, session_id)
        if not path.exists():
            return
        subagents = list((path.parent / session_id / "subagents").glob("*.jsonl"))
        usage = await asyncio.to_thread(usage_from_transcript, [path, *subagents])
        self.link.send(SessionUsage(session_id=session_id, usage=usage.to_dict()))

    # -- discovery ----------------------------------------------------------------------------------------------

    def _connected(self) -> None:
        self._discovery_print = ""  # a (re)connected relay gets a fresh report
        self._spawn_task(self._report_discovery())

    async def _report_discovery(self) -> None:
        projects = {Path(s.cwd) for s in self.registry.sessions.values()}
        found = await asyncio.to_thread(discover, Path.home(), sorted(projects))
        current = fingerprint(found)
        if current != self._discovery_print:
            self._discovery_print = current
            self.link.send(Discovery(found=found))

    async def _discovery_loop(self) -> None:
        while True:
            await asyncio.sleep(DISCOVERY_INTERVAL)
            with contextlib.suppress(Exception):
                await self._report_discovery()
            claude = locate_claude(self.settings.claude_path)
            if claude is not None:
                self._claude_found(claude)

    # -- Claude Code appearing after start ------------------------------------------------------------------------

    def _claude_found(self, path: str) -> None:
        """Claude Code found at a spawn or a periodic look: if the relay was told another version (or none), it
        hears the new one (the dashboard offers Claude sessions only on machines that have it)."""
        version = claude_version(path)
        if version is None or version == self.claude_version:
            return
        log.info("Claude Code %s found at %s; telling the relay", version, path)
        self.claude_version = version
        self._spawn_task(self.link.reintroduce(version))

    # -- lifecycle ----------------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until cancelled (graceful stop) or until the relay refuses us for good."""
        if self.claude_version:
            log.info("Claude Code %s found", self.claude_version)
        else:
            log.warning("Claude Code not found: sessions can only run other commands (--command)")
        await self.hooks.start()
        discovery = asyncio.ensure_future(self._discovery_loop())
        try:
            await self.link.run()
        except FatalLinkError as exc:
            raise AuthError(str(exc)) from None
        finally:
            discovery.cancel()
            with contextlib.suppress(Exception):
                await asyncio.shield(self.registry.shutdown())
            await self.hooks.stop()
