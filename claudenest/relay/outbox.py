"""One writer task per WebSocket peer, fed by a queue whose size in bytes is always known."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from claudenest.protocol import Frame, FrameKind, Message, encode_frame, encode_message

log = logging.getLogger(__name__)

# Contiguous output for one session is merged up to this size into one frame while a send is in flight.
COALESCE_LIMIT = 256 << 10


@dataclass
class Output:
    session_id: str
    offset: int
    # A view into ``frame`` when there is one, so a queued frame is held in memory once, not twice.
    data: bytes | memoryview
    # The encoded OUTPUT frame for exactly (session_id, offset, data) when one is at hand: the agent's own frame,
    # forwarded unchanged when the relay trimmed nothing, so no viewer pays for re-encoding it.
    frame: bytes | None = None


Item = Output | Message | Frame


class Outbox:
    """Items wait here while the peer is slow; ``send_text``/``send_bytes`` are the peer's own senders."""

    def __init__(
        self,
        name: str,
        send_text: Callable[[str], Awaitable[None]],
        send_bytes: Callable[[bytes], Awaitable[None]],
        low_water: int = 0,
    ) -> None:
        self.name = name
        self._send_text = send_text
        self._send_bytes = send_bytes
        self.items: deque[Item] = deque()
        self.queued_bytes = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()
        # For a viewer being served from the log (fanout.py): set when the queue falls to ``low_water`` or below,
        # or the outbox closes; nudged when the peer detaches. The waiter clears it before each wait and re-checks,
        # so a nudge costs one re-check, never a busy loop.
        self.low_water = low_water
        self.drained = asyncio.Event()
        # Cleared while the peer asked us to hold its output (a Flow message): items wait, and count, as they do
        # for a slow peer, so the fan-out's queue bound applies (the viewer falls back to being served from the log).
        self._flowing = asyncio.Event()
        self._flowing.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"outbox-{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self.closed.set()
        self.drained.set()

    @property
    def paused(self) -> bool:
        return not self._flowing.is_set()

    def pause(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def put(self, item: Item) -> None:
        self.items.append(item)
        self.queued_bytes += _size(item)
        self._wake.set()

    def _check_drained(self) -> None:
        if self.queued_bytes <= self.low_water:
            self.drained.set()

    async def _run(self) -> None:
        try:
            while True:
                if not self.items:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                if not self._flowing.is_set():
                    await self._flowing.wait()
                    continue
                item = self.items.popleft()
                self.queued_bytes -= _size(item)
                if isinstance(item, Output):
                    item = self._coalesce(item)
                self._check_drained()
                if isinstance(item, Output):
                    await self._send_bytes(
                        item.frame
                        if item.frame is not None
                        else encode_frame(Frame(FrameKind.OUTPUT, item.session_id, item.offset, bytes(item.data)))
                    )
                elif isinstance(item, Frame):
                    await self._send_bytes(encode_frame(item))
                else:
                    await self._send_text(encode_message(item))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the peer went away; its reader notices and cleans up
            log.debug("outbox %s stopped: %s", self.name, exc)
        finally:
            self.closed.set()
            self.drained.set()

    def _coalesce(self, first: Output) -> Output:
        parts = [first.data]
        size = len(first.data)
        while self.items and size < COALESCE_LIMIT:
            nxt = self.items[0]
            if not (isinstance(nxt, Output) and nxt.session_id == first.session_id):
                break
            if nxt.offset != first.offset + size:
                break
            self.items.popleft()
            self.queued_bytes -= len(nxt.data)
            parts.append(nxt.data)
            size += len(nxt.data)
        return Output(first.session_id, first.offset, b"".join(parts)) if len(parts) > 1 else first


def _size(item: Item) -> int:
    if isinstance(item, Output):
        return len(item.data)
    if isinstance(item, Frame):
        return len(item.payload)
    return 0
