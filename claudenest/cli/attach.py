"""A live terminal attach over the viewer WebSocket, like ``tmux attach``.

Raw mode on the local terminal; keys go in as input frames; SIGWINCH becomes a resize; output is written as
bytes, after the relay's prelude (the terminal modes in force where the replay starts). The connection resumes from
the last byte received after a drop, so a blip shows no gap and no repeat. The detach key (default Ctrl-]) leaves
the session running; on detach or exit the terminal is handed back in its usual modes (main screen, cursor shown).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import termios
import tty
from collections.abc import Callable
from dataclasses import dataclass

import websockets
from websockets.asyncio.client import ClientConnection

from claudenest.cli.terminal_modes import TerminalModes
from claudenest.client import RelayClient
from claudenest.errors import ClaudenestError, NotFound, RelayUnreachable
from claudenest.protocol import (
    Attach,
    Attached,
    Error,
    Frame,
    FrameKind,
    Gap,
    Resize,
    SessionStatus,
    decode_frame,
    decode_message,
    encode_frame,
    encode_message,
)

DEFAULT_DETACH_KEY = b"\x1d"  # Ctrl-]


@dataclass
class StreamResult:
    status: str
    exit_code: int | None
    offset: int
    detached: bool = False


class OutputFollower:
    """Receives one session's output by offset over a viewer connection; reconnects and resumes on drops."""

    def __init__(
        self,
        api: RelayClient,
        session_id: str,
        *,
        from_offset: int | None,
        read_only: bool,
        write: Callable[[bytes], None],
        on_gap: Callable[[int, int], None] | None = None,
        on_link: Callable[[str], None] | None = None,
        on_prelude: Callable[[str], None] | None = None,
    ) -> None:
        self.api = api
        self.session_id = session_id
        self.offset = from_offset
        self.read_only = read_only
        self.write = write
        self.on_gap = on_gap
        # Told "reconnecting" when the connection to the relay drops and "live" once re-attached after that, so a
        # person does not take a frozen screen for a frozen session.
        self.on_link = on_link
        # Told each attach's prelude before its first byte: a terminal writes it, `logs --follow` has no use for it
        # (its output is the log's bytes, exactly).
        self.on_prelude = on_prelude
        self._lost = False
        self.ws: ClientConnection | None = None
        self.attached = asyncio.Event()
        self.size: tuple[int, int] | None = None

    async def run(self, reconnect_for: float = 30.0) -> StreamResult:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + reconnect_for
        while True:
            try:
                self.ws = await self.api.connect_viewer()
            except RelayUnreachable:
                if loop.time() > give_up:
                    raise
                await asyncio.sleep(1)
                continue
            try:
                result = await self._follow(self.ws)
                if result is not None:
                    return result
            except websockets.ConnectionClosed:
                pass
            finally:
                self.attached.clear()
                with contextlib.suppress(Exception):
                    await self.ws.close()
                self.ws = None
            if not self._lost and self.on_link is not None:  # reached only when we are going to retry
                self.on_link("reconnecting")
            self._lost = True
            give_up = loop.time() + reconnect_for
            await asyncio.sleep(0.5)

    async def _follow(self, ws: ClientConnection) -> StreamResult | None:
        await ws.send(
            encode_message(Attach(session_id=self.session_id, from_offset=self.offset, read_only=self.read_only))
        )
        ended: SessionStatus | None = None
        async for raw in ws:
            if isinstance(raw, bytes):
                frame = decode_frame(raw)
                if frame.session_id != self.session_id or frame.kind is not FrameKind.OUTPUT:
                    continue
                start = self.offset if self.offset is not None else frame.offset
                if frame.end <= start:
                    continue
                self.write(frame.payload[max(0, start - frame.offset) :])
                self.offset = frame.end
            else:
                message = decode_message(raw)
                if isinstance(message, Attached):
                    if self.on_prelude is not None:
                        self.on_prelude(message.prelude)
                    self.offset = message.from_offset if self.offset is None else self.offset
                    self.size = (message.cols, message.rows)
                    self.attached.set()
                    if self._lost and self.on_link is not None:
                        self.on_link("live")
                    self._lost = False
                elif isinstance(message, Gap):
                    if self.on_gap:
                        self.on_gap(message.from_offset, message.to_offset)
                    self.offset = max(self.offset or 0, message.to_offset)
                elif isinstance(message, SessionStatus) and message.ended:
                    ended = message
                elif isinstance(message, Error):
                    if message.code == "not_found":
                        raise NotFound(message.message)
                    if not self.attached.is_set():
                        raise ClaudenestError(message.message)
            if ended is not None and (ended.end_offset is None or (self.offset or 0) >= ended.end_offset):
                return StreamResult(ended.status, ended.exit_code, self.offset or 0)
        return None

    async def send(self, data: bytes) -> None:
        if self.ws is not None and self.attached.is_set():
            with contextlib.suppress(websockets.ConnectionClosed):
                await self.ws.send(encode_frame(Frame(FrameKind.INPUT, self.session_id, 0, data)))

    async def resize(self, cols: int, rows: int) -> None:
        if self.ws is not None and self.attached.is_set():
            with contextlib.suppress(websockets.ConnectionClosed):
                await self.ws.send(encode_message(Resize(session_id=self.session_id, cols=cols, rows=rows)))


def _stdout_write(data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(sys.stdout.fileno(), view)
        except BlockingIOError:
            continue
        view = view[written:]


LINK_NOTES = {
    "reconnecting": "[claudenest: connection to the relay lost; reconnecting...]",
    "live": "[claudenest: reconnected; live again]",
}


def _say_link_state(state: str) -> None:
    """On stderr, one line each way (the terminal is raw, hence the explicit carriage returns)."""
    with contextlib.suppress(OSError):
        os.write(sys.stderr.fileno(), f"\r\n{LINK_NOTES[state]}\r\n".encode())


async def attach(
    api: RelayClient, session_id: str, *, read_only: bool, detach_key: bytes, banner: str = ""
) -> StreamResult:
    modes = TerminalModes()

    def show(data: bytes) -> None:
        modes.feed(data)
        _stdout_write(data)

    def show_prelude(prelude: str) -> None:
        if data := modes.prelude_to_write(prelude):
            _stdout_write(data)

    follower = OutputFollower(
        api,
        session_id,
        from_offset=None,
        read_only=read_only,
        write=show,
        on_gap=lambda a, b: _stdout_write(f"\r\n[claudenest: {b - a} older bytes not shown]\r\n".encode()),
        on_link=_say_link_state,
        on_prelude=show_prelude,
    )
    loop = asyncio.get_running_loop()
    stdin = sys.stdin.fileno()
    interactive = os.isatty(stdin)
    saved = termios.tcgetattr(stdin) if interactive else None
    detached = asyncio.Event()

    def on_key() -> None:
        try:
            data = os.read(stdin, 4096)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(stdin)
            return
        if detach_key in data:
            data = data[: data.index(detach_key)]
            detached.set()
        if data and not read_only:
            asyncio.ensure_future(follower.send(data))

    def on_winch() -> None:
        cols, rows = shutil.get_terminal_size()
        asyncio.ensure_future(follower.resize(cols, rows))

    if saved is not None:
        # Raw at once, without discarding what the user already typed: it is sent once we are attached.
        tty.setraw(stdin, termios.TCSANOW)
    follow = asyncio.ensure_future(follower.run())
    try:
        await asyncio.wait(
            {follow, asyncio.ensure_future(follower.attached.wait())}, return_when=asyncio.FIRST_COMPLETED
        )
        if follow.done():
            return follow.result()
        if banner:
            os.write(sys.stderr.fileno(), banner.encode() + b"\r\n")
        loop.add_reader(stdin, on_key)
        if interactive and not read_only:
            loop.add_signal_handler(signal.SIGWINCH, on_winch)
            on_winch()
        stop = asyncio.ensure_future(detached.wait())
        await asyncio.wait({follow, stop}, return_when=asyncio.FIRST_COMPLETED)
        if follow.done():
            return follow.result()
        return StreamResult("running", None, follower.offset or 0, detached=True)
    finally:
        with contextlib.suppress(Exception):
            loop.remove_reader(stdin)
        with contextlib.suppress(Exception):
            loop.remove_signal_handler(signal.SIGWINCH)
        follow.cancel()
        with contextlib.suppress(BaseException):
            await follow
        if os.isatty(sys.stdout.fileno()):  # after the last output byte
            with contextlib.suppress(OSError):
                _stdout_write(modes.restore())
        if saved is not None:
            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
