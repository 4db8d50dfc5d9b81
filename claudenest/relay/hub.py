"""Fan-out between agents and viewers. No HTTP in here.

Policy (docs/protocol.md): every byte an agent sends is kept in order by offset; a viewer gets bytes from the
offset it asks for, never an unbounded replay; the slowest viewer never stalls the session or other viewers for
longer than a bounded grace period (its queue is bounded in bytes; a viewer that stays behind past the grace, or
overflows its queue, is cut over to a gap marker and a bounded tail).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from claudenest import __version__
from claudenest.clock import now_iso
from claudenest.config import RelaySettings
from claudenest.errors import Conflict, NotFound
from claudenest.protocol import (
    PROTOCOL_VERSION,
    AgentHello,
    Attach,
    Attached,
    Discovery,
    Error,
    Forget,
    Frame,
    FrameKind,
    Gap,
    Kill,
    Message,
    PermissionDecision,
    Resize,
    Resume,
    SessionExited,
    SessionStarted,
    SessionState,
    SessionStatus,
    SessionUsage,
    Spawn,
)
from claudenest.relay.notify import EventKind, Notification, Notifier
from claudenest.relay.outbox import Outbox, Output
from claudenest.relay.streams import Attachment, SessionStream
from claudenest.store import Store
from claudenest.store.activity import Actor

log = logging.getLogger(__name__)

# Which Claude Code events are worth a push notification.
NOTIFY_ON: dict[str, EventKind] = {
    "PermissionRequest": "waiting_permission",
    "Stop": "turn_finished",
    "StopFailure": "failed",
}
NOTIFY_TITLES: dict[str, str] = {
    "waiting_permission": "Claude is waiting for your permission",
    "turn_finished": "Claude finished its turn",
    "failed": "Claude stopped with an error",
}
FLUSH_INTERVAL = 0.1
FLUSH_BYTES = 256 << 10
# Unpersisted output across all sessions above which the relay stops reading from agents until the store
# catches up; TCP then pushes back to the agent, which stops reading its PTYs. Memory stays bounded.
MAX_UNPERSISTED = 16 << 20
# Viewer backpressure (Hub.viewer_backpressure, docs/protocol.md "Flow control"): after an output frame, when a
# viewer of that session has more than half its queue (relay.viewer_queue_bytes) waiting, the relay stops reading
# that agent until the viewer's queue is down to a quarter, so TCP slows the agent and the agent stops reading the
# PTY: the program blocks instead of bytes being dropped. Never longer than VIEWER_GRACE seconds per episode; a
# viewer still behind then is cut over to a gap (as on overflow) and gets no new grace until it has caught up.
VIEWER_GRACE = 2.0


@dataclass
class AgentPeer:
    machine: dict[str, Any]
    outbox: Outbox
    close: Callable[[int, str], Awaitable[None]]
    input_offsets: dict[str, int] = field(default_factory=dict)

    @property
    def machine_id(self) -> str:
        return str(self.machine["id"])


@dataclass(eq=False)
class Viewer:
    user_id: str
    outbox: Outbox
    sessions: set[str] = field(default_factory=set)
    # Set when the viewer's grace ran out and it was cut over: the outbox's ``emptied`` count at that moment. Until
    # the writer has emptied the queue once since (the viewer caught up), nobody waits for this viewer again, so a
    # stalled viewer costs the producer one grace period, not one per refill of its queue.
    lagging_since: int | None = None


class Hub:
    def __init__(self, store: Store, settings: RelaySettings) -> None:
        self.store = store
        self.settings = settings
        self.agents: dict[str, AgentPeer] = {}
        self.streams: dict[str, SessionStream] = {}
        self._spawn_waiters: dict[str, asyncio.Future[Message]] = {}
        self._flush_now = asyncio.Event()
        self._flushed = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._stream_locks: dict[str, asyncio.Lock] = {}
        self.watchers: dict[str, set[Viewer]] = {}
        self.notifier: Notifier | None = None
        # Sum of every stream's pending_bytes, kept as bytes come and go: checked after every agent frame, so it
        # must not cost a walk over all streams.
        self.unpersisted_bytes = 0
        self.viewer_grace = VIEWER_GRACE

    # -- lifecycle ----------------------------------------------------------------------------------------------

    def start(self) -> None:
        self._flusher = asyncio.create_task(self._flush_loop(), name="hub-flusher")

    async def stop(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.flush()
        for agent in list(self.agents.values()):
            await agent.outbox.stop()

    def online(self, machine_id: str) -> bool:
        return machine_id in self.agents

    # -- streams ------------------------------------------------------------------------------------------------

    async def stream(self, session_id: str) -> SessionStream:
        found = self.streams.get(session_id)
        if found is not None:
            return found
        lock = self._stream_locks.setdefault(session_id, asyncio.Lock())
        async with lock:
            found = self.streams.get(session_id)
            if found is None:
                session = await self.store.sessions.get(session_id)
                found = SessionStream(
                    session_id=session_id,
                    machine_id=session["machine_id"],
                    user_id=session["user_id"],
                    end=session["output_bytes"],
                    persisted=session["output_bytes"],
                    ring_limit=self.settings.ring_bytes,
                    status=session["status"],
                    cols=session["cols"],
                    rows=session["rows"],
                    ended=session["ended"],
                )
                self.streams[session_id] = found
        return found

    async def _flush_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flush_now.wait(), FLUSH_INTERVAL)
            self._flush_now.clear()
            try:
                await self.flush()
            except Exception:
                log.exception("could not persist session output; will retry")

    async def flush(self) -> None:
        """Persist every stream's pending bytes in one transaction, then forget ended sessions fully kept."""
        batch: list[tuple[str, int, bytes]] = []
        snapshot: list[tuple[SessionStream, int, list[tuple[int, bytes]]]] = []
        for stream in self.streams.values():
            if stream.pending:
                self.unpersisted_bytes -= stream.pending_bytes
                taken = stream.take_pending()
                snapshot.append((stream, stream.end, taken))
                batch.extend((stream.session_id, offset, data) for offset, data in taken)
        if batch:
            try:
                await self.store.sessions.append_output(batch, self.settings.log_cap_bytes)
            except BaseException:
                for stream, _, taken in snapshot:  # put them back in front, so nothing is lost
                    stream.pending[:0] = taken
                    back = sum(len(d) for _, d in taken)
                    stream.pending_bytes += back
                    self.unpersisted_bytes += back
                raise
            for stream, end, _ in snapshot:
                stream.persisted = max(stream.persisted, end)
        self._flushed.set()
        for stream in list(self.streams.values()):
            if stream.exit_end is not None and stream.persisted >= stream.exit_end:
                agent = self.agents.get(stream.machine_id)
                if agent is not None:
                    agent.outbox.put(Forget(session_id=stream.session_id))
                stream.exit_end = None
                if not stream.attachments:
                    self.streams.pop(stream.session_id, None)
                    self.unpersisted_bytes -= stream.pending_bytes  # none expected past the exit; keep the sum true

    # -- agents -------------------------------------------------------------------------------------------------

    async def agent_connected(self, agent: AgentPeer, hello: AgentHello) -> None:
        previous = self.agents.get(agent.machine_id)
        if previous is not None:
            with contextlib.suppress(Exception):
                await previous.close(4000, "replaced by a newer connection of the same machine")
            await previous.outbox.stop()
        self.agents[agent.machine_id] = agent
        agent.outbox.start()

        announced = {s.session_id: s for s in hello.sessions}
        for lost in await self.store.sessions.live_on_machine(agent.machine_id):
            if lost["id"] not in announced:
                await self._set_status(
                    lost["id"],
                    "error",
                    ended=True,
                    status_detail="the agent no longer has this session (agent restarted?)",
                )
        for live in hello.sessions:
            session: dict[str, Any] | None
            try:
                session = await self.store.sessions.get(live.session_id)
            except NotFound:
                session = None
            if session is None or session["machine_id"] != agent.machine_id:
                agent.outbox.put(Kill(session_id=live.session_id))
                agent.outbox.put(Forget(session_id=live.session_id))
                continue
            if session["status"] == "starting" and live.status == "running":
                # Its start was announced on a connection that dropped; the hello is the news.
                await self.store.sessions.update(live.session_id, pid=live.pid, started_at=now_iso())
                await self._set_status(live.session_id, "running")
            stream = await self.stream(live.session_id)
            agent.input_offsets.setdefault(live.session_id, 0)
            agent.outbox.put(Resume(session_id=live.session_id, from_offset=stream.end))

    async def agent_disconnected(self, agent: AgentPeer) -> None:
        if self.agents.get(agent.machine_id) is agent:
            del self.agents[agent.machine_id]
        await agent.outbox.stop()

    async def agent_frame(self, agent: AgentPeer, frame: Frame, raw: bytes | None = None) -> None:
        """``raw`` is the frame as it arrived (its encoding): forwarded to viewers as is when nothing is trimmed."""
        if frame.kind is not FrameKind.OUTPUT:
            agent.outbox.put(Error(code="bad_frame", message="agents send only output frames"))
            return
        stream = self.streams.get(frame.session_id)
        if stream is None:
            try:
                stream = await self.stream(frame.session_id)
            except NotFound:
                stream = None
        if stream is None or stream.machine_id != agent.machine_id:
            agent.outbox.put(Error(code="unknown_session", message="no such session", session_id=frame.session_id))
            return
        self._ingest(stream, frame.offset, frame.payload, raw)

    def unpersisted(self) -> int:
        return self.unpersisted_bytes

    async def persistence_backpressure(self) -> None:
        """Wait (not reading from the agent) while more output waits for the store than we are willing to hold."""
        while self.unpersisted_bytes > MAX_UNPERSISTED:
            self._flushed.clear()
            self._flush_now.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flushed.wait(), 1.0)

    def viewer_low_water(self) -> int:
        """A viewer waited for is released once its queue is down to this (see VIEWER_GRACE)."""
        return self.settings.viewer_queue_bytes // 4

    def _waits_for(self, viewer: Viewer) -> bool:
        """Whether the producer should wait for this viewer: more than half its queue waiting, and not lagging."""
        outbox = viewer.outbox
        if outbox.queued_bytes <= self.settings.viewer_queue_bytes // 2 or outbox.closed.is_set():
            return False
        if viewer.lagging_since is not None:
            if outbox.emptied == viewer.lagging_since:
                return False  # cut over after its grace and not caught up since: today's overflow rule applies
            viewer.lagging_since = None
        return True

    async def viewer_backpressure(self, session_id: str) -> None:
        """After an agent frame: wait (not reading that agent) while a viewer of the session is far behind.

        Bounded: at most ``viewer_grace`` seconds per episode, over all the viewers waited for; a viewer that is
        still above the low-water mark then is cut over to a gap and the wait ends. A viewer that detaches or
        closes ends its part of the wait at once. Other sessions of the same agent wait too (one socket): that
        head-of-line pause is bounded by the same grace.
        """
        stream = self.streams.get(session_id)
        if stream is None:
            return
        behind = [a for a in stream.attachments.values() if self._waits_for(a.viewer)]
        if not behind:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.viewer_grace
        low = self.viewer_low_water()

        def waiting(attachment: Attachment) -> bool:
            outbox = attachment.viewer.outbox
            return (
                outbox.queued_bytes > low
                and not outbox.closed.is_set()
                and stream.attachments.get(id(attachment.viewer)) is attachment
            )

        for attachment in behind:
            outbox = attachment.viewer.outbox
            while waiting(attachment) and (remaining := deadline - loop.time()) > 0:
                outbox.drained.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(outbox.drained.wait(), remaining)
        for attachment in behind:
            if waiting(attachment):
                log.info(
                    "session %s: viewer %s still %d bytes behind after %.1f s; cut over to a gap",
                    stream.session_id,
                    attachment.viewer.outbox.name,
                    attachment.viewer.outbox.queued_bytes,
                    self.viewer_grace,
                )
                self._cut_over(stream, attachment)
                attachment.viewer.lagging_since = attachment.viewer.outbox.emptied

    def _ingest(self, stream: SessionStream, offset: int, data: bytes, raw: bytes | None = None) -> None:
        start, fresh, gap_from = stream.accept(offset, data)
        self.unpersisted_bytes += len(fresh)
        # The agent's frame says exactly (session, start, fresh) only if nothing was trimmed as a duplicate.
        frame = raw if start == offset and len(fresh) == len(data) else None
        if gap_from is not None:
            log.warning(
                "session %s: bytes %d-%d were lost before reaching the relay",
                stream.session_id,
                gap_from,
                offset,
            )
            for attachment in stream.attachments.values():
                self._send_gap(stream, attachment, gap_from, offset)
        if fresh:
            for attachment in list(stream.attachments.values()):
                self._deliver(stream, attachment, start, fresh, frame)
        if stream.pending_bytes >= FLUSH_BYTES:
            self._flush_now.set()

    async def agent_message(self, agent: AgentPeer, message: Message) -> None:
        if isinstance(message, SessionStarted):
            await self._for_agent_session(agent, message.session_id)
            await self.store.sessions.update(message.session_id, pid=message.pid, started_at=now_iso())
            await self._set_status(message.session_id, "running")
            self._resolve_spawn(message.session_id, message)
        elif isinstance(message, SessionExited):
            stream = await self._for_agent_session(agent, message.session_id)
            await self.store.sessions.update(message.session_id, exit_code=message.exit_code)
            exit_fields: dict[str, Any] = {"exit_code": message.exit_code, "pending_permission": None}
            if message.reason is not None:  # keep what Claude last reported otherwise
                exit_fields["status_detail"] = message.reason
            await self._set_status(message.session_id, message.status, ended=True, **exit_fields)
            stream.exit_end = message.end_offset
            self._flush_now.set()
            await self._end_instances(message.session_id)
            self._resolve_spawn(message.session_id, message)
        elif isinstance(message, SessionState):
            await self._claude_state(await self._for_agent_session(agent, message.session_id), message)
        elif isinstance(message, SessionUsage):
            await self._for_agent_session(agent, message.session_id)
            await self.store.sessions.update(
                message.session_id,
                usage=message.usage,
                total_tokens=int(message.usage.get("total_tokens", 0)),
                total_cost=float(message.usage.get("cost_usd", 0.0)),
            )
        elif isinstance(message, Discovery):
            await self.store.machines.set_discovery(agent.machine_id, message.found)
        elif isinstance(message, Gap):
            stream = await self._for_agent_session(agent, message.session_id)
            self._ingest(stream, message.to_offset, b"")
        else:
            agent.outbox.put(Error(code="unexpected", message=f"agents do not send {message.type}"))

    async def _end_instances(self, session_id: str) -> None:
        """A project session ended: its instance's token dies, its locks go, its claimed tasks return to pending."""
        rows = await self.store.fetchall(
            "SELECT project_id, id FROM claude_instances WHERE session_id = ? AND status != 'ended'", (session_id,)
        )
        for project_id, instance_id in rows:
            await self.store.instances.end(project_id, instance_id, Actor("claudenest"))

    async def _for_agent_session(self, agent: AgentPeer, session_id: str) -> SessionStream:
        stream = await self.stream(session_id)
        if stream.machine_id != agent.machine_id:
            raise NotFound(f"no session {session_id} on this machine")
        return stream

    # -- session control (called by the HTTP routes) -------------------------------------------------------------

    async def spawn(
        self, session: dict[str, Any], timeout: float, project: dict[str, Any] | None = None
    ) -> Message | None:
        agent = self.agents.get(session["machine_id"])
        if agent is None:
            raise Conflict("the machine is offline")
        await self.stream(session["id"])
        waiter: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._spawn_waiters[session["id"]] = waiter
        agent.input_offsets[session["id"]] = 0
        agent.outbox.put(
            Spawn(
                session_id=session["id"],
                cwd=session["project_path"],
                cols=session["cols"],
                rows=session["rows"],
                command=session["command"],
                mode=session["mode"],
                prompt=session["initial_prompt"],
                project=project,
            )
        )
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except TimeoutError:
            return None
        finally:
            self._spawn_waiters.pop(session["id"], None)

    def _resolve_spawn(self, session_id: str, message: Message) -> None:
        waiter = self._spawn_waiters.get(session_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(message)

    def _agent_for(self, stream: SessionStream) -> AgentPeer:
        if stream.ended:
            raise Conflict(f"the session has ended ({stream.status})")
        agent = self.agents.get(stream.machine_id)
        if agent is None:
            raise Conflict("the session's machine is offline")
        return agent

    async def send_input(self, session_id: str, data: bytes) -> None:
        stream = await self.stream(session_id)
        agent = self._agent_for(stream)
        offset = agent.input_offsets.get(session_id, 0)
        agent.input_offsets[session_id] = offset + len(data)
        agent.outbox.put(Frame(FrameKind.INPUT, session_id, offset, data))

    async def resize(self, session_id: str, cols: int, rows: int) -> None:
        stream = await self.stream(session_id)
        agent = self._agent_for(stream)
        stream.cols, stream.rows = cols, rows
        agent.outbox.put(Resize(session_id=session_id, cols=cols, rows=rows))
        await self.store.sessions.update(session_id, cols=cols, rows=rows)

    async def kill(self, session_id: str) -> None:
        stream = await self.stream(session_id)
        agent = self._agent_for(stream)
        agent.outbox.put(Kill(session_id=session_id))

    async def _set_status(
        self, session_id: str, status: str, *, ended: bool = False, event: str | None = None, **fields: Any
    ) -> None:
        if ended:
            fields["completed_at"] = now_iso()
        await self.store.sessions.update(session_id, status=status, **fields)
        stream = self.streams.get(session_id)
        if stream is None:
            return
        stream.status = status
        stream.ended = stream.ended or ended
        self._publish(
            stream,
            SessionStatus(
                session_id=session_id,
                status=status,
                exit_code=fields.get("exit_code"),
                end_offset=stream.end,
                reason=fields.get("status_detail"),
                ended=stream.ended,
                event=event,
                permission=fields.get("pending_permission"),
            ),
        )

    def _publish(self, stream: SessionStream, event: SessionStatus) -> None:
        """To every viewer of the session, and to the owner's viewers that watch all their sessions."""
        told: set[int] = set()
        for attachment in stream.attachments.values():
            attachment.viewer.outbox.put(event)
            told.add(id(attachment.viewer))
        for viewer in self.watchers.get(stream.user_id, ()):
            if id(viewer) not in told:
                viewer.outbox.put(event)

    def watch(self, viewer: Viewer) -> None:
        self.watchers.setdefault(viewer.user_id, set()).add(viewer)

    async def _claude_state(self, stream: SessionStream, message: SessionState) -> None:
        """A hook event (or a headless result) from Claude Code: record it, tell viewers, maybe notify."""
        fields: dict[str, Any] = {"last_event": message.event}
        if message.detail is not None:
            fields["status_detail"] = message.detail
        if message.event in ("Stop", "Result"):
            fields["last_message"] = message.detail
        if message.event == "PermissionRequest":
            fields["pending_permission"] = message.permission
        elif message.event not in ("Notification", "PreToolUse") or message.status not in (None, "waiting_permission"):
            fields["pending_permission"] = None  # the request was answered, here or in the terminal
        status = message.status or stream.status
        await self._set_status(stream.session_id, status, event=message.event, **fields)
        kind = NOTIFY_ON.get(message.event)
        if message.event == "Result" and status == "error":
            kind = "failed"
        if kind is not None and self.notifier is not None:
            machine = await self.store.machines.get(stream.machine_id)
            self.notifier.submit(
                Notification(
                    kind=kind,
                    session_id=stream.session_id,
                    title=f"{machine['name']}: {NOTIFY_TITLES[kind]}",
                    message=(message.detail or "")[:2000],
                    machine_name=machine["name"],
                    user_id=stream.user_id,
                    dedupe_key=f"{stream.session_id}:{kind}:{(message.permission or {}).get('request_id', now_iso())}",
                )
            )

    async def decide_permission(self, session_id: str, behavior: str, message: str | None) -> dict[str, Any]:
        """Answer the session's pending PermissionRequest through the agent's held hook request."""
        session = await self.store.sessions.get(session_id)
        pending = session["pending_permission"]
        if not pending:
            raise Conflict(f"session {session_id} is not waiting for a permission decision")
        stream = await self.stream(session_id)
        agent = self._agent_for(stream)
        agent.outbox.put(
            PermissionDecision(
                session_id=session_id,
                request_id=str(pending["request_id"]),
                behavior="allow" if behavior == "allow" else "deny",
                message=message,
            )
        )
        return dict(pending)

    # -- viewers ------------------------------------------------------------------------------------------------

    async def attach(self, viewer: Viewer, request: Attach) -> None:
        session = await self.store.sessions.get(request.session_id, viewer.user_id)  # NotFound for others' sessions
        stream = await self.stream(session["id"])
        limit = self.settings.replay_limit_bytes
        requested = max(stream.end - limit, 0) if request.from_offset is None else request.from_offset
        # Never more than the replay limit, never older than the log keeps; a viewer ahead of us waits.
        start = max(requested, stream.end - limit, session["log_start_offset"])
        early = b""
        if start < stream.ring_start:
            # Older than the ring: read the persisted log (bounded by the replay limit) before going live.
            read_from, early = await self.store.sessions.read_output(
                stream.session_id, start, stream.ring_start - start
            )
            if read_from > start:
                start = read_from
        # No awaits from here on: the ring cannot move while we line up backlog and live bytes.
        attachment = Attachment(viewer=viewer, read_only=request.read_only, next_offset=start)
        viewer.outbox.put(
            Attached(
                session_id=stream.session_id,
                status=stream.status,
                from_offset=start,
                end_offset=stream.end,
                cols=stream.cols,
                rows=stream.rows,
                read_only=request.read_only,
            )
        )
        if requested < start:
            viewer.outbox.put(Gap(session_id=stream.session_id, from_offset=requested, to_offset=start))
        if early:
            viewer.outbox.put(Output(stream.session_id, start, early))
            attachment.next_offset = start + len(early)
        if attachment.next_offset < stream.ring_start <= stream.end:
            viewer.outbox.put(
                Gap(
                    session_id=stream.session_id,
                    from_offset=attachment.next_offset,
                    to_offset=stream.ring_start,
                )
            )
            attachment.next_offset = stream.ring_start
        if attachment.next_offset < stream.end:
            viewer.outbox.put(
                Output(stream.session_id, attachment.next_offset, stream.from_ring(attachment.next_offset))
            )
            attachment.next_offset = stream.end
        stream.attachments[id(viewer)] = attachment
        viewer.sessions.add(stream.session_id)
        if stream.ended or session["pending_permission"]:
            viewer.outbox.put(
                SessionStatus(
                    session_id=stream.session_id,
                    status=stream.status,
                    exit_code=session["exit_code"],
                    end_offset=stream.end,
                    reason=session["status_detail"],
                    ended=stream.ended,
                    permission=session["pending_permission"],
                )
            )

    def detach(self, viewer: Viewer, session_id: str) -> None:
        stream = self.streams.get(session_id)
        if stream is not None:
            stream.attachments.pop(id(viewer), None)
            self._drop_if_done(stream)
        viewer.sessions.discard(session_id)
        viewer.outbox.drained.set()  # wakes a producer waiting on this viewer: it re-checks and stops waiting

    def still_saving(self, session_id: str) -> bool:
        """True while an ended session's last output has not all reached the store (it must not be deleted yet)."""
        stream = self.streams.get(session_id)
        return stream is not None and (stream.exit_end is not None or bool(stream.pending))

    def _drop_if_done(self, stream: SessionStream) -> None:
        """An ended, fully persisted stream nobody watches needs no memory: the log has it all."""
        if stream.ended and not stream.attachments and stream.exit_end is None and not stream.pending:
            self.streams.pop(stream.session_id, None)

    def viewer_gone(self, viewer: Viewer) -> None:
        for session_id in list(viewer.sessions):
            self.detach(viewer, session_id)
        self.watchers.get(viewer.user_id, set()).discard(viewer)

    def attached(self, session_id: str) -> bool:
        """Someone is watching this session live with the right to type: notifications stay quiet."""
        stream = self.streams.get(session_id)
        return stream is not None and any(not a.read_only for a in stream.attachments.values())

    def attachment(self, viewer: Viewer, session_id: str) -> Attachment:
        stream = self.streams.get(session_id)
        attachment = stream.attachments.get(id(viewer)) if stream else None
        if attachment is None:
            raise Conflict("attach to the session first")
        return attachment

    def _deliver(
        self, stream: SessionStream, attachment: Attachment, start: int, data: bytes, frame: bytes | None = None
    ) -> None:
        end = start + len(data)
        if end <= attachment.next_offset:
            return  # the viewer already has these bytes (it attached from a later offset)
        if start < attachment.next_offset:
            data = data[attachment.next_offset - start :]
            start = attachment.next_offset
            frame = None  # no longer what the agent's frame says
        outbox = attachment.viewer.outbox
        if outbox.queued_bytes + len(data) > self.settings.viewer_queue_bytes:
            self._cut_over(stream, attachment)
            return
        outbox.put(Output(stream.session_id, start, data, frame))
        attachment.next_offset = end

    def _cut_over(self, stream: SessionStream, attachment: Attachment) -> None:
        """Too far behind: drop its backlog of this session and send a gap marker plus a bounded tail instead."""
        outbox = attachment.viewer.outbox
        dropped_from = outbox.drop_output(stream.session_id)
        behind = dropped_from if dropped_from is not None else attachment.next_offset
        # Never resend what it already has: the tail starts no earlier than the first byte it was about to miss.
        tail_start = max(behind, stream.ring_start, stream.end - self.settings.replay_limit_bytes)
        self._send_gap(stream, attachment, behind, tail_start)
        if tail_start < stream.end:
            outbox.put(Output(stream.session_id, tail_start, stream.from_ring(tail_start)))
        attachment.next_offset = stream.end

    def _send_gap(self, stream: SessionStream, attachment: Attachment, from_offset: int, to_offset: int) -> None:
        if to_offset > from_offset:
            attachment.viewer.outbox.put(
                Gap(session_id=stream.session_id, from_offset=from_offset, to_offset=to_offset)
            )
        attachment.next_offset = max(attachment.next_offset, to_offset)

    def welcome_version(self) -> tuple[int, str]:
        return PROTOCOL_VERSION, __version__
