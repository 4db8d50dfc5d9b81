"""One writer per WebSocket peer, fed by a queue whose size in bytes is always known.

Fast path: while the peer's queue is empty and nothing is being sent to it, ``put`` sends the item at once, in the
caller's own stack, instead of queueing it and waking the writer task. A send on a writable socket completes
without waiting, so a keystroke or its echo crosses the relay in the same event-loop turn it arrived in (the
queue-and-wake path costs one more turn per hop, finding 7 in docs/benchmarks.md). Everything else is unchanged:
a send that would wait finishes in a task of its own while later items queue behind it, so order per peer holds
and a stalled peer never blocks the caller (the agent's reader, serving every other viewer).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator
from dataclasses import dataclass
from typing import Any

from claudenest.protocol import Frame, FrameKind, Gap, Message, encode_frame, encode_message

log = logging.getLogger(__name__)

# Contiguous output for one session is merged up to this size into one frame while a send is in flight.
COALESCE_LIMIT = 256 << 10


@dataclass
class Output:
    session_id: str
    offset: int
    data: bytes
    # The encoded OUTPUT frame for exactly (session_id, offset, data) when one is at hand: the agent's own frame,
    # forwarded unchanged when the relay trimmed nothing, so no viewer pays for re-encoding it.
    frame: bytes | None = None


Item = Output | Message | Frame


def start_now(coro: Coroutine[Any, Any, Any]) -> asyncio.Task[None] | None:
    """Run ``coro`` right here until it finishes (return None) or first has to wait (return a task running the rest).

    Its result is dropped. Python 3.12's eager tasks do this; 3.11 has none. Exceptions raised before the first
    wait propagate to the caller. The first step runs in the caller's task, so only use it for coroutines that do
    not depend on ``asyncio.current_task()`` (no ``asyncio.timeout``) before they first wait, as plain socket sends
    do.
    """
    try:
        waiting_on = coro.send(None)
    except StopIteration:
        return None
    rest: asyncio.Task[None] = asyncio.ensure_future(_Rest(coro, waiting_on))
    # A task cancelled before its first step never reaches _Rest: close the coroutine so its cleanup still runs.
    rest.add_done_callback(lambda _: coro.close())
    return rest


class _Rest:
    """Awaitable that goes on with a coroutine already stepped once, which is waiting on ``waiting_on``.

    The task that awaits this sees the same future (or bare yield) the coroutine yielded, and everything the task
    sends or throws in is passed on, exactly as ``await coro`` would have done from the start.
    """

    def __init__(self, coro: Coroutine[Any, Any, Any], waiting_on: Any) -> None:
        self._coro = coro
        self._waiting_on = waiting_on

    def __await__(self) -> Generator[Any, Any, None]:
        waiting_on = self._waiting_on
        while True:
            try:
                sent = yield waiting_on
            except GeneratorExit:
                self._coro.close()
                raise
            except BaseException as exc:  # cancellation included: the coroutine decides what it means
                try:
                    waiting_on = self._coro.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    waiting_on = self._coro.send(sent)
                except StopIteration:
                    return


class Outbox:
    """Items wait here while the peer is slow; ``send_text``/``send_bytes`` are the peer's own senders."""

    def __init__(
        self,
        name: str,
        send_text: Callable[[str], Awaitable[None]],
        send_bytes: Callable[[bytes], Awaitable[None]],
    ) -> None:
        self.name = name
        self._send_text = send_text
        self._send_bytes = send_bytes
        self.items: deque[Item] = deque()
        self.queued_bytes = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._parked = False  # the writer waits for items: it is not in the middle of a send
        self._in_flight: asyncio.Task[None] | None = None  # a direct send that had to wait, still going
        self.closed = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"outbox-{self.name}")

    async def stop(self) -> None:
        for task in (self._task, self._in_flight):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self.closed.set()

    def put(self, item: Item) -> None:
        # Straight out only when that cannot overtake anything: nothing queued, the writer parked, no earlier
        # direct send still going. Before start() (and after the peer failed) everything queues, as before.
        if self._parked and not self.items and self._in_flight is None and not self.closed.is_set():
            self._send_now(item)
            return
        self.items.append(item)
        self.queued_bytes += _size(item)
        self._wake.set()

    def drop_output(self, session_id: str) -> int | None:
        """Remove queued output and gap markers of one session; return the first offset the peer will now miss.

        Folding earlier gap markers in means a viewer that stays behind gets one gap, not one per cut-over.
        """
        first: int | None = None
        kept: deque[Item] = deque()
        for item in self.items:
            if isinstance(item, Output) and item.session_id == session_id:
                start = item.offset
                self.queued_bytes -= len(item.data)
            elif isinstance(item, Gap) and item.session_id == session_id:
                start = item.from_offset
            else:
                kept.append(item)
                continue
            first = start if first is None else min(first, start)
        self.items = kept
        return first

    def _send_now(self, item: Item) -> None:
        try:
            rest = start_now(self._send(item))
        except Exception as exc:
            self._failed(exc)
            return
        if rest is not None:
            # The peer is not taking bytes right now (its socket buffer is full): finish in the background and
            # queue whatever comes meanwhile behind it; the writer takes over when it is done.
            self._in_flight = rest
            rest.add_done_callback(self._landed)

    def _landed(self, task: asyncio.Task[None]) -> None:
        self._in_flight = None
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self._failed(exc)
        else:
            self._wake.set()  # the writer sends what queued while this send waited

    def _failed(self, exc: BaseException) -> None:
        # The peer went away; its reader notices and cleans up. Nothing more is sent.
        log.debug("outbox %s stopped: %s", self.name, exc)
        self.closed.set()
        self._wake.set()

    async def _send(self, item: Item) -> None:
        if isinstance(item, Output):
            await self._send_bytes(
                item.frame
                if item.frame is not None
                else encode_frame(Frame(FrameKind.OUTPUT, item.session_id, item.offset, item.data))
            )
        elif isinstance(item, Frame):
            await self._send_bytes(encode_frame(item))
        else:
            await self._send_text(encode_message(item))

    async def _run(self) -> None:
        try:
            while not self.closed.is_set():
                if not self.items or self._in_flight is not None:
                    self._wake.clear()
                    self._parked = True
                    try:
                        await self._wake.wait()
                    finally:
                        self._parked = False
                    continue
                item = self.items.popleft()
                self.queued_bytes -= _size(item)
                if isinstance(item, Output):
                    item = self._coalesce(item)
                await self._send(item)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failed(exc)
        finally:
            self.closed.set()

    def _coalesce(self, first: Output) -> Output:
        data = first.data
        while self.items and len(data) < COALESCE_LIMIT:
            nxt = self.items[0]
            if not (isinstance(nxt, Output) and nxt.session_id == first.session_id):
                break
            if nxt.offset != first.offset + len(data):
                break
            self.items.popleft()
            self.queued_bytes -= len(nxt.data)
            data += nxt.data
        return Output(first.session_id, first.offset, data) if data is not first.data else first


def _size(item: Item) -> int:
    if isinstance(item, Output):
        return len(item.data)
    if isinstance(item, Frame):
        return len(item.payload)
    return 0
