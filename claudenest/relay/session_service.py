"""Sessions as the relay runs them: the state machine, the spawn RPC, control of a running session, what Claude Code
reports, and what a session's end releases. Talks to agents through their outboxes; no HTTP in here."""

from __future__ import annotations

import asyncio
from typing import Any

from claudenest.clock import now_iso
from claudenest.config import RelaySettings
from claudenest.errors import Conflict, NotFound
from claudenest.protocol import (
    AgentHello,
    Attach,
    Discovery,
    Error,
    Forget,
    Frame,
    FrameKind,
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
from claudenest.relay.agents import AgentPeer, Agents
from claudenest.relay.fanout import Fanout, Viewer
from claudenest.relay.notify import Notifier, notification_for, notification_kind
from claudenest.relay.output_log import OutputLog
from claudenest.relay.screen import line_start
from claudenest.relay.streams import SessionStream, Streams
from claudenest.store import Store
from claudenest.store.activity import Actor

# How far past the replay point a line start is looked for (longer lines: the replay starts mid-line).
LINE_SEARCH = 4096


class SessionService:
    def __init__(
        self,
        store: Store,
        settings: RelaySettings,
        agents: Agents,
        streams: Streams,
        fanout: Fanout,
        output: OutputLog,
    ) -> None:
        self.store = store
        self.settings = settings
        self.agents = agents
        self.streams = streams
        self.fanout = fanout
        self.output = output
        self.notifier: Notifier | None = None
        self._spawn_waiters: dict[str, asyncio.Future[Message]] = {}

    # -- an agent (re)connects ----------------------------------------------------------------------------------

    async def reconcile(self, agent: AgentPeer, hello: AgentHello) -> None:
        """Match what the agent says it runs with what we recorded; ask it to resume each stream where we are."""
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
            stream = await self.streams.open(live.session_id)
            agent.input_offsets.setdefault(live.session_id, 0)
            agent.outbox.put(Resume(session_id=live.session_id, from_offset=stream.end))

    # -- what agents report -------------------------------------------------------------------------------------

    async def for_agent(self, agent: AgentPeer, session_id: str) -> SessionStream:
        stream = await self.streams.open(session_id)
        if stream.machine_id != agent.machine_id:
            raise NotFound(f"no session {session_id} on this machine")
        return stream

    async def agent_message(self, agent: AgentPeer, message: Message) -> None:
        if isinstance(message, SessionStarted):
            await self.for_agent(agent, message.session_id)
            await self.store.sessions.update(message.session_id, pid=message.pid, started_at=now_iso())
            await self._set_status(message.session_id, "running")
            self._resolve_spawn(message.session_id, message)
        elif isinstance(message, SessionExited):
            stream = await self.for_agent(agent, message.session_id)
            exit_fields: dict[str, Any] = {"exit_code": message.exit_code, "pending_permission": None}
            if message.reason is not None:  # keep what Claude last reported otherwise
                exit_fields["status_detail"] = message.reason
            await self._set_status(message.session_id, message.status, ended=True, **exit_fields)
            stream.exit_end = message.end_offset
            self.output.flush_soon()
            await self.store.instances.end_for_session(message.session_id, Actor("claudenest"))
            self._resolve_spawn(message.session_id, message)
        elif isinstance(message, SessionState):
            await self._claude_state(await self.for_agent(agent, message.session_id), message)
        elif isinstance(message, SessionUsage):
            await self.for_agent(agent, message.session_id)
            await self.store.sessions.update(
                message.session_id,
                usage=message.usage,
                total_tokens=int(message.usage.get("total_tokens", 0)),
                total_cost=float(message.usage.get("cost_usd", 0.0)),
            )
        elif isinstance(message, Discovery):
            await self.store.machines.set_discovery(agent.machine_id, message.found)
        else:
            agent.outbox.put(Error(code="unexpected", message=f"agents do not send {message.type}"))

    def forget_saved(self) -> None:
        """After a flush: an ended session whose every byte is saved needs nothing more from its agent."""
        for stream in self.streams:
            if stream.exit_end is not None and stream.persisted >= stream.exit_end:
                self.agents.send(stream.machine_id, Forget(session_id=stream.session_id))
                stream.exit_end = None
                self.drop_if_done(stream)

    def drop_if_done(self, stream: SessionStream) -> None:
        """An ended, fully persisted stream nobody watches needs no memory: the log has it all."""
        if stream.ended and not stream.attachments and stream.exit_end is None and not stream.pending:
            self.streams.drop(stream.session_id)
            self.output.release_soon(stream.session_id)

    def still_saving(self, session_id: str) -> bool:
        """True while an ended session's last output has not all reached the store (it must not be deleted yet)."""
        stream = self.streams.get(session_id)
        return stream is not None and (stream.exit_end is not None or bool(stream.pending))

    # -- control (called by the HTTP routes and viewers) ---------------------------------------------------------

    async def spawn(
        self, session: dict[str, Any], timeout: float, project: dict[str, Any] | None = None
    ) -> Message | None:
        """Ask the machine's agent to start the session; its answer (started or exited), or None after ``timeout``."""
        agent = self.agents.require(session["machine_id"])
        await self.streams.open(session["id"])
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

    async def _running_agent(self, session_id: str) -> tuple[SessionStream, AgentPeer]:
        stream = await self.streams.open(session_id)
        if stream.ended:
            raise Conflict(f"the session has ended ({stream.status})")
        agent = self.agents.get(stream.machine_id)
        if agent is None:
            raise Conflict("the session's machine is offline")
        return stream, agent

    async def send_input(self, session_id: str, data: bytes) -> None:
        _, agent = await self._running_agent(session_id)
        offset = agent.input_offsets.get(session_id, 0)
        agent.input_offsets[session_id] = offset + len(data)
        agent.outbox.put(Frame(FrameKind.INPUT, session_id, offset, data))

    async def resize(self, session_id: str, cols: int, rows: int) -> None:
        stream, agent = await self._running_agent(session_id)
        stream.cols, stream.rows = cols, rows
        agent.outbox.put(Resize(session_id=session_id, cols=cols, rows=rows))
        await self.store.sessions.update(session_id, cols=cols, rows=rows)

    async def kill(self, session_id: str) -> None:
        _, agent = await self._running_agent(session_id)
        agent.outbox.put(Kill(session_id=session_id))

    async def decide_permission(self, session_id: str, behavior: str, message: str | None) -> dict[str, Any]:
        """Answer the session's pending PermissionRequest through the agent's held hook request."""
        session = await self.store.sessions.get(session_id)
        pending = session["pending_permission"]
        if not pending:
            raise Conflict(f"session {session_id} is not waiting for a permission decision")
        _, agent = await self._running_agent(session_id)
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
        stream = await self.streams.open(session["id"])
        news = None
        if stream.ended or session["pending_permission"]:
            news = SessionStatus(
                session_id=stream.session_id,
                status=stream.status,
                exit_code=session["exit_code"],
                end_offset=stream.end,
                reason=session["status_detail"],
                ended=stream.ended,
                permission=session["pending_permission"],
            )
        if request.from_offset is None:
            start, prelude = await self._screen_start(stream)
        else:
            start, prelude = request.from_offset, ""
        self.fanout.attach(viewer, stream, start=start, read_only=request.read_only, prelude=prelude, news=news)

    async def _screen_start(self, stream: SessionStream) -> tuple[int, str]:
        """Where a replay that redraws the current screen starts, and the modes to set before it (screen.py)."""
        wipe = stream.modes.last_wipe
        if wipe is not None and stream.end - wipe <= self.settings.screen_replay_bytes:
            start = wipe
        else:
            around = max(stream.end - self.settings.replay_limit_bytes, 0)
            if around >= stream.ring_start:
                window = stream.ring_slice(around, LINE_SEARCH)
            else:
                around, window = await self.output.read(stream.session_id, around, LINE_SEARCH)
            start = line_start(window, around) if window else around
        return start, stream.modes.prelude(start)

    def detach(self, viewer: Viewer, session_id: str) -> None:
        stream = self.streams.get(session_id)
        self.fanout.detach(viewer, stream)
        viewer.sessions.discard(session_id)
        if stream is not None:
            self.drop_if_done(stream)

    def viewer_gone(self, viewer: Viewer) -> None:
        for session_id in list(viewer.sessions):
            self.detach(viewer, session_id)
        self.fanout.forget_viewer(viewer)

    # -- the state machine --------------------------------------------------------------------------------------

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
        self.fanout.publish(
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
        kind = notification_kind(message.event, status)
        if kind is not None and self.notifier is not None:
            machine = await self.store.machines.get(stream.machine_id)
            self.notifier.submit(notification_for(kind, message, stream.session_id, stream.user_id, machine["name"]))
