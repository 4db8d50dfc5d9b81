"""The agent's connection to the relay: dial out, say hello, stream output by offset, reconnect.

Output is sent straight from each session's ring (no second buffer): ``sent[session]`` is the next offset to send.
After a (re)connect no session is sent until the relay's ``resume`` names the offset it has, so nothing is
doubled and nothing skipped. While the relay is behind by more than the high-water mark, the PTY is not read,
so a flood cannot grow memory; the program simply blocks on its own writes until the link drains.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI

from claudenest import __version__
from claudenest.agent.sessions import LocalSession, SessionRegistry
from claudenest.errors import ClaudenestError, ProtocolError
from claudenest.protocol import (
    PROTOCOL_VERSION,
    AgentHello,
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
    Spawn,
    Welcome,
    decode_frame,
    decode_message,
    encode_frame,
    encode_message,
)

log = logging.getLogger(__name__)

# Output frame payload limit. The sender takes everything unsent up to this, so output that piles up while a frame
# is in flight (or while the loop was busy reading) leaves as one frame: a flood of 101-byte writes went out in
# frames of ~15 KB on average. Well under the relay's max frame (relay.max_frame_bytes, 1 MiB with the header).
CHUNK = 256 << 10
BACKOFF_FIRST = 0.5
BACKOFF_CAP = 30.0
# Close codes after which retrying cannot help.
FATAL_CLOSE = {
    4000: "another agent connected with this machine's token",
    4001: "this machine's token was revoked",
    4002: "the relay refused our protocol",
}


def fatal_message(code: int, reason: str) -> str:
    """What the close means, plus the relay's own words when they add something (not the same sentence twice)."""
    meaning = FATAL_CLOSE[code]
    return meaning if not reason or reason == meaning else f"{meaning} ({reason})"


class FatalLinkError(ClaudenestError):
    """Reconnecting cannot help: the token was refused, or the protocol does not match."""


@dataclass
class Pending:
    message: Message
    after: tuple[str, int] | None = None  # send only once this session's output up to this offset is sent


class RelayLink:
    def __init__(
        self,
        url: str,
        token: str,
        registry: SessionRegistry,
        *,
        hostname: str,
        platform: str,
        claude_version: str | None,
        high_water: int,
        on_state: Callable[[str], None] | None = None,
    ) -> None:
        self.ws_url = url.rstrip("/").replace("http://", "ws://").replace("https://", "wss://") + "/ws/agent"
        self._token = token
        self.registry = registry
        self._identity = (hostname, platform, claude_version)
        self.high_water = high_water
        self.sent: dict[str, int] = {}  # next offset to send, for sessions the relay has resumed
        self.relay_has: dict[str, int] = {}  # the relay's last known end, kept across reconnects
        self._control: deque[Pending] = deque()
        self._wake = asyncio.Event()
        self._ws: ClientConnection | None = None
        self.machine_id: str | None = None
        self.state = "starting"
        self._on_state = on_state
        self.connected = asyncio.Event()
        self.on_connected: Callable[[], None] | None = None
        self.on_permission: Callable[[PermissionDecision], None] | None = None

    # -- called by the registry ---------------------------------------------------------------------------------

    def output_ready(self, session: LocalSession) -> None:
        self._check_pressure(session)
        self._wake.set()

    def session_ended(self, session: LocalSession) -> None:
        message = SessionExited(
            session_id=session.session_id,
            status="error" if session.status == "error" else "exited",
            end_offset=session.ring.end,
            exit_code=session.exit_code,
            reason=session.reason,
        )
        self._control.append(Pending(message, (session.session_id, session.ring.end)))
        self._wake.set()

    async def reintroduce(self, claude_version: str | None) -> None:
        """What the hello said about this machine changed (Claude Code installed or upgraded): reconnect, so the
        relay hears a fresh hello. Lossless like any reconnect: sessions resume from their offsets."""
        hostname, platform, _ = self._identity
        self._identity = (hostname, platform, claude_version)
        if self._ws is not None:
            await self._ws.close(1000, "re-introducing: Claude Code changed")

    def send(self, message: Message) -> None:
        """Queue a control message (state, usage, discovery). Dropped while disconnected: the next hello and
        discovery report carry what matters."""
        if self._ws is not None:
            self._control.append(Pending(message))
            self._wake.set()

    # -- connection loop ----------------------------------------------------------------------------------------

    def _set_state(self, state: str, detail: str = "") -> None:
        if state != self.state:
            self.state = state
            if state == "connected":
                log.info("connected to %s", self.ws_url)
            else:
                log.warning("relay link %s%s", state, f": {detail}" if detail else "")
            if self._on_state:
                self._on_state(state)

    async def run(self) -> None:
        """Stay connected until cancelled; raise FatalLinkError when retrying cannot help."""
        delay = BACKOFF_FIRST
        while True:
            try:
                async with websockets.connect(
                    self.ws_url,
                    additional_headers={"Authorization": f"Bearer {self._token}"},
                    ping_interval=15,
                    ping_timeout=30,
                    max_size=None,
                    open_timeout=10,
                    compression=None,  # see the relay's ws_per_message_deflate: compression costs more than it saves
                    user_agent_header=f"claudenest-agent/{__version__}",
                ) as ws:
                    delay = BACKOFF_FIRST
                    await self._connected(ws)
            except InvalidStatus as exc:
                status = exc.response.status_code
                if status in (401, 403):
                    raise FatalLinkError(f"the relay refused this machine's token ({status}); pair again") from None
                self._set_state("retrying", f"relay answered HTTP {status}")
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd else None
                if code in FATAL_CLOSE:
                    raise FatalLinkError(fatal_message(code, exc.rcvd.reason if exc.rcvd else "")) from None
                self._set_state("retrying", "connection lost")
            except InvalidURI as exc:
                raise FatalLinkError(f"bad relay URL {self.ws_url}: {exc}") from None
            except (OSError, TimeoutError, websockets.InvalidHandshake, ProtocolError) as exc:
                self._set_state("retrying", f"relay unreachable ({exc})")
            finally:
                self._ws = None
                self.connected.clear()
                self.sent.clear()
            # Capped exponential backoff with full jitter, so a fleet of agents does not reconnect in lockstep.
            await asyncio.sleep(random.uniform(delay / 2, delay))
            delay = min(delay * 2, BACKOFF_CAP)

    async def _connected(self, ws: ClientConnection) -> None:
        hostname, platform, claude_version = self._identity
        await ws.send(
            encode_message(
                AgentHello(
                    protocol=PROTOCOL_VERSION,
                    agent_version=__version__,
                    hostname=hostname,
                    platform=platform,
                    claude_version=claude_version,
                    sessions=self.registry.live(),
                )
            )
        )
        welcome = decode_message(await asyncio.wait_for(ws.recv(), 15))
        if not isinstance(welcome, Welcome):
            raise ProtocolError(f"expected welcome, got {welcome.type}")
        self.machine_id = welcome.machine_id
        self._control.clear()  # the hello told the relay every session's state; exits are re-sent on resume
        self._ws = ws
        self.connected.set()
        self._set_state("connected")
        if self.on_connected is not None:
            self.on_connected()
        sender = asyncio.create_task(self._sender(ws), name="link-sender")
        try:
            async for raw in ws:
                try:
                    if isinstance(raw, bytes):
                        self._input(decode_frame(raw))
                    else:
                        await self._dispatch(decode_message(raw))
                except ProtocolError as exc:
                    log.warning("ignored a bad message from the relay: %s", exc)
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await sender
        if ws.close_code in FATAL_CLOSE:
            raise FatalLinkError(fatal_message(ws.close_code, ws.close_reason or ""))

    def _input(self, frame: Frame) -> None:
        if frame.kind is FrameKind.INPUT:
            self.registry.write(frame.session_id, frame.payload)

    async def _dispatch(self, message: Message) -> None:
        if isinstance(message, Spawn):
            session = await self.registry.spawn(message)
            self.sent.setdefault(session.session_id, 0)
            if session.process is not None and not session.ended:
                self._control.append(
                    Pending(
                        SessionStarted(
                            session_id=session.session_id,
                            pid=session.process.pid,
                            command=session.command,
                            cwd=session.cwd,
                        )
                    )
                )
            self._wake.set()
        elif isinstance(message, Resume):
            resumed = self.registry.sessions.get(message.session_id)
            if resumed is None:
                return
            self.sent[resumed.session_id] = min(message.from_offset, resumed.ring.end)
            self.relay_has[resumed.session_id] = self.sent[resumed.session_id]
            if resumed.ended:
                self.session_ended(resumed)
            self._wake.set()
        elif isinstance(message, Resize):
            self.registry.resize(message.session_id, message.cols, message.rows)
        elif isinstance(message, Kill):
            asyncio.create_task(self.registry.kill(message.session_id))
        elif isinstance(message, Forget):
            self.registry.forget(message.session_id)
            self.sent.pop(message.session_id, None)
            self.relay_has.pop(message.session_id, None)
        elif isinstance(message, PermissionDecision):
            if self.on_permission is not None:
                self.on_permission(message)
        elif isinstance(message, Error):
            log.warning("relay reported: %s (%s)", message.message, message.code)
        else:
            log.warning("ignored unexpected %s from the relay", message.type)

    # -- sending ------------------------------------------------------------------------------------------------

    async def _sender(self, ws: ClientConnection) -> None:
        """Send whatever is pending, pass after pass, until a pass finds nothing. There is no timer: the first byte
        after idle leaves at once, and bytes that arrive during a pass join the next pass's frame."""
        while True:
            await self._wake.wait()
            busy = True
            while busy:
                self._wake.clear()  # anything that arrives from here on is seen by this pass or wakes the next
                busy = await self._send_control(ws)
                for session in list(self.registry.sessions.values()):
                    busy = await self._send_output(ws, session) or busy

    async def _send_control(self, ws: ClientConnection) -> bool:
        sent_any = False
        for pending in list(self._control):
            if pending.after is not None:
                session_id, offset = pending.after
                if self.sent.get(session_id, -1) < offset:
                    continue
            self._control.remove(pending)
            await ws.send(encode_message(pending.message))
            sent_any = True
        return sent_any

    async def _send_output(self, ws: ClientConnection, session: LocalSession) -> bool:
        offset = self.sent.get(session.session_id)
        if offset is None or offset >= session.ring.end:
            return False
        if offset < session.ring.start:
            # The ring no longer holds these bytes (only if the relay fell more than the ring behind).
            await ws.send(
                encode_message(Gap(session_id=session.session_id, from_offset=offset, to_offset=session.ring.start))
            )
            offset = session.ring.start
        chunk = session.ring.read(offset, CHUNK)
        await ws.send(encode_frame(Frame(FrameKind.OUTPUT, session.session_id, offset, chunk)))
        self.sent[session.session_id] = self.relay_has[session.session_id] = offset + len(chunk)
        self._check_pressure(session)
        return True

    def _check_pressure(self, session: LocalSession) -> None:
        """Stop reading a PTY while the relay is more than the high-water mark behind it; resume at half."""
        if session.process is None or session.ended:
            return
        behind = session.ring.end - self.relay_has.get(session.session_id, session.ring.start)
        if not session.paused and behind > self.high_water:
            session.paused = True
            session.process.pause_reading()
        elif session.paused and behind <= self.high_water // 2:
            session.paused = False
            session.process.resume_reading()
