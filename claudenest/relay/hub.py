"""The relay's live side, put together: agents, streams, fan-out, the output log and the session service.

Each part has one job (agents.py, streams.py, fanout.py, output_log.py, session_service.py); the hub owns them and
takes what an agent's socket brings: output frames go to the stream, its viewers and the log; messages go to the
session service. Routes call the hub's and its parts' public methods only. No HTTP in here.
"""

from __future__ import annotations

import logging
from typing import Any

from claudenest import __version__
from claudenest.config import RelaySettings
from claudenest.errors import Conflict, NotFound
from claudenest.protocol import PROTOCOL_VERSION, AgentHello, Error, Frame, FrameKind, Gap, Message
from claudenest.relay.agents import AgentPeer, Agents
from claudenest.relay.fanout import Fanout, Viewer, typing_viewer
from claudenest.relay.output_log import OutputLog
from claudenest.relay.session_service import SessionService
from claudenest.relay.streams import Attachment, SessionStream, Streams
from claudenest.store import Store

log = logging.getLogger(__name__)

__all__ = ["AgentPeer", "Hub", "Viewer"]


class Hub:
    def __init__(self, store: Store, settings: RelaySettings) -> None:
        self.settings = settings
        self.agents = Agents()
        self.store = store
        self.streams = Streams(self._session_row, settings.ring_bytes)
        self.output = OutputLog(store, settings, lambda: self.streams)
        self.fanout = Fanout(settings, self.output.read)
        self.sessions = SessionService(store, settings, self.agents, self.streams, self.fanout, self.output)
        self.output.after_flush = self.sessions.forget_saved

    async def _session_row(self, session_id: str) -> dict[str, Any]:
        """A session's row, with the output end its segment files have (the truth after a crash)."""
        session = await self.store.sessions.get(session_id)
        kept = await self.output.bounds(session_id)
        if kept is not None:
            session = {**session, "output_bytes": kept[1], "log_start_offset": kept[0]}
        return session

    async def start(self) -> None:
        await self.output.start()

    async def stop(self) -> None:
        await self.fanout.stop()
        await self.output.stop()
        await self.agents.stop()

    # -- what the routes ask ------------------------------------------------------------------------------------

    def online(self, machine_id: str) -> bool:
        return self.agents.online(machine_id)

    def attached(self, session_id: str) -> bool:
        """Someone is watching this session live with the right to type: notifications stay quiet."""
        return typing_viewer(self.streams.get(session_id))

    def live(self, session_id: str) -> SessionStream | None:
        """The session's stream if it is active in this relay (its end offset and status are the freshest)."""
        return self.streams.get(session_id)

    def attachment(self, viewer: Viewer, session_id: str) -> Attachment:
        stream = self.streams.get(session_id)
        attachment = stream.attachments.get(id(viewer)) if stream else None
        if attachment is None:
            raise Conflict("attach to the session first")
        return attachment

    async def disconnect_machine(self, machine_id: str, code: int, reason: str) -> None:
        await self.agents.disconnect(machine_id, code, reason)

    def metrics(self) -> dict[str, int]:
        return {
            "agents_online": len(self.agents),
            "streams": len(self.streams),
            "viewers": sum(len(s.attachments) for s in self.streams),
            "unpersisted_bytes": self.output.unpersisted_bytes,
        }

    def welcome_version(self) -> tuple[int, str]:
        return PROTOCOL_VERSION, __version__

    # -- an agent's socket --------------------------------------------------------------------------------------

    async def agent_connected(self, agent: AgentPeer, hello: AgentHello) -> None:
        await self.agents.connected(agent)
        await self.sessions.reconcile(agent, hello)

    async def agent_disconnected(self, agent: AgentPeer) -> None:
        await self.agents.disconnected(agent)

    async def agent_frame(self, agent: AgentPeer, frame: Frame, raw: bytes | None = None) -> None:
        """``raw`` is the frame as it arrived (its encoding): forwarded to viewers as is when nothing is trimmed."""
        if frame.kind is not FrameKind.OUTPUT:
            agent.outbox.put(Error(code="bad_frame", message="agents send only output frames"))
            return
        stream = self.streams.get(frame.session_id)
        if stream is None:
            try:
                stream = await self.streams.open(frame.session_id)
            except NotFound:
                stream = None
        if stream is None or stream.machine_id != agent.machine_id:
            agent.outbox.put(Error(code="unknown_session", message="no such session", session_id=frame.session_id))
            return
        self._ingest(stream, frame.offset, frame.payload, raw)

    async def after_frame(self) -> None:
        """Called before reading the agent's next frame: wait here while the disk is behind (never for a viewer)."""
        await self.output.backpressure()

    async def agent_message(self, agent: AgentPeer, message: Message) -> None:
        if isinstance(message, Gap):
            stream = await self.sessions.for_agent(agent, message.session_id)
            self._ingest(stream, message.to_offset, b"")
        else:
            await self.sessions.agent_message(agent, message)

    def _ingest(self, stream: SessionStream, offset: int, data: bytes, raw: bytes | None = None) -> None:
        start, fresh, gap_from = stream.accept(offset, data)
        # The agent's frame says exactly (session, start, fresh) only if nothing was trimmed as a duplicate.
        frame = raw if start == offset and len(fresh) == len(data) else None
        if gap_from is not None:
            log.warning(
                "session %s: bytes %d-%d were lost before reaching the relay", stream.session_id, gap_from, offset
            )
        self.fanout.deliver(stream, start, fresh, frame, gap_from)
        self.output.added(stream, len(fresh))
