"""Persisting session output: batched writes of every stream's new bytes, with backpressure on the agents.

Policy (docs/storage.md "Session output"): bytes wait in their stream's pending list and are written in one batch
every FLUSH_INTERVAL, or at once when a stream has FLUSH_BYTES pending; while more than MAX_UNPERSISTED bytes wait
in all, the relay stops reading from agents (``backpressure``), so TCP pushes back and agents stop reading their
PTYs. Nothing here knows about viewers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable

from claudenest.config import RelaySettings
from claudenest.relay.streams import SessionStream
from claudenest.store import Store

log = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.1
FLUSH_BYTES = 256 << 10
MAX_UNPERSISTED = 16 << 20


class OutputLog:
    def __init__(self, store: Store, settings: RelaySettings, streams: Callable[[], Iterable[SessionStream]]) -> None:
        self.store = store
        self.settings = settings
        self._streams = streams
        self._flush_now = asyncio.Event()
        self._flushed = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        # Sum of every stream's pending_bytes, kept as bytes come and go: checked after every agent frame, so it
        # must not cost a walk over all streams.
        self.unpersisted_bytes = 0
        self.after_flush: Callable[[], None] = lambda: None

    def start(self) -> None:
        self._flusher = asyncio.create_task(self._flush_loop(), name="output-log-flusher")

    async def stop(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.flush()

    def added(self, stream: SessionStream, nbytes: int) -> None:
        """``nbytes`` new bytes wait in ``stream``'s pending list."""
        self.unpersisted_bytes += nbytes
        if stream.pending_bytes >= FLUSH_BYTES:
            self._flush_now.set()

    def flush_soon(self) -> None:
        self._flush_now.set()

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
        """Persist every stream's pending bytes in one transaction."""
        batch: list[tuple[str, int, bytes]] = []
        snapshot: list[tuple[SessionStream, int, list[tuple[int, bytes]]]] = []
        for stream in self._streams():
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
        self.after_flush()

    async def backpressure(self) -> None:
        """Wait (not reading from the agent) while more output waits for the store than we are willing to hold."""
        while self.unpersisted_bytes > MAX_UNPERSISTED:
            self._flushed.clear()
            self._flush_now.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flushed.wait(), 1.0)

    async def read(self, session_id: str, from_offset: int, limit: int) -> tuple[int, bytes]:
        """Up to ``limit`` persisted bytes from ``from_offset`` (or from the oldest kept, if later)."""
        return await self.store.sessions.read_output(session_id, from_offset, limit)
