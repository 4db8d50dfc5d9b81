"""The agent daemon: composes the session registry and the relay link, and owns their lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import platform
import socket

from claudenest.agent.claude import claude_version, locate_claude
from claudenest.agent.link import FatalLinkError, RelayLink
from claudenest.agent.sessions import LocalSession, SessionRegistry
from claudenest.config import AgentSettings
from claudenest.errors import AuthError

log = logging.getLogger(__name__)


class Agent:
    def __init__(self, relay_url: str, token: str, settings: AgentSettings) -> None:
        self.registry = SessionRegistry(
            ring_bytes=settings.ring_bytes,
            claude_path=settings.claude_path,
            on_output=self._output,
            on_ended=self._ended,
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

    def _output(self, session: LocalSession) -> None:
        self.link.output_ready(session)

    def _ended(self, session: LocalSession) -> None:
        self.link.session_ended(session)

    async def run(self) -> None:
        """Run until cancelled (graceful stop) or until the relay refuses us for good."""
        if self.claude_version:
            log.info("Claude Code %s found", self.claude_version)
        else:
            log.warning("Claude Code not found: sessions can only run other commands (--command)")
        try:
            await self.link.run()
        except FatalLinkError as exc:
            raise AuthError(str(exc)) from None
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.registry.shutdown())
