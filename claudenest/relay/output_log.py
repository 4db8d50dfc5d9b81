"""Persisting session output: every stream's new bytes, batched, appended to its segment files (segments.py).

Policy (docs/storage.md "Session output"): bytes wait in their stream's pending list and are written in one batch
every FLUSH_INTERVAL, or at once when a stream has FLUSH_BYTES pending, by one worker thread, so the event loop
never waits on the disk. While more than MAX_UNPERSISTED bytes wait in all, the relay stops reading from agents
(``backpressure``): TCP pushes back and agents stop reading their PTYs. This is the only thing that slows an agent
down. The session rows' ``output_bytes`` and ``log_start_offset`` follow at most once a second (the files are the
truth after a crash). Nothing here knows about viewers.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from claudenest.config import RelaySettings
from claudenest.relay.segments import SegmentStore, segment_bytes_for
from claudenest.relay.streams import SessionStream
from claudenest.store import Store

log = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.05
# Larger batches cost less per byte; what waits is safe meanwhile (the agent keeps it in its ring until resumed).
FLUSH_BYTES = 1 << 20
MAX_UNPERSISTED = 16 << 20
METADATA_INTERVAL = 1.0
TRIM_INTERVAL = 1.0  # at most this often: a trim walks the heap

T = TypeVar("T")


def give_back_memory() -> None:
    """Return the heap's free pages to the kernel (glibc's malloc_trim), once a burst of output is over.

    glibc keeps freed frame buffers for reuse, so without this the relay's RSS stays at the peak of what was ever in
    flight to viewers. Fixing glibc's mmap threshold instead (every large buffer mapped and unmapped) bounded RSS too
    but doubled the CPU per MB of `up`. Measured with 100 sessions x 2 viewers each writing 1 MiB: see
    docs/benchmarks.md. A no-op without glibc.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)


def output_directory(database: str) -> Path:
    return Path(database + ".output")


class OutputLog:
    def __init__(self, store: Store, settings: RelaySettings, streams: Callable[[], Iterable[SessionStream]]) -> None:
        self.store = store
        self.settings = settings
        self._streams = streams
        self.segments = SegmentStore(output_directory(store.path), segment_bytes_for(settings.log_cap_bytes))
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="output-log")
        self._flush_now = asyncio.Event()
        self._flushed = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._flusher: asyncio.Task[None] | None = None
        # Sum of every stream's pending_bytes, kept as bytes come and go: checked after every agent frame, so it
        # must not cost a walk over all streams.
        self.unpersisted_bytes = 0
        self.after_flush: Callable[[], None] = lambda: None
        self._metadata: dict[str, tuple[int, int]] = {}  # session -> (end, oldest kept), not yet in its row
        self._metadata_at = 0.0

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def start(self) -> None:
        await self._import_table()
        await self._remove_orphans()
        self._flusher = asyncio.create_task(self._flush_loop(), name="output-log-flusher")

    async def stop(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.flush()
        await self._write_metadata()
        await self._run(self.segments.close)
        self._pool.shutdown(wait=True)

    # -- bytes in -----------------------------------------------------------------------------------------------

    def added(self, stream: SessionStream, nbytes: int) -> None:
        """``nbytes`` new bytes wait in ``stream``'s pending list."""
        self.unpersisted_bytes += nbytes
        if stream.pending_bytes >= FLUSH_BYTES:
            self._flush_now.set()

    def flush_soon(self) -> None:
        self._flush_now.set()

    async def _flush_loop(self) -> None:
        busy, trimmed_at = False, 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flush_now.wait(), FLUSH_INTERVAL)
            self._flush_now.clear()
            try:
                wrote = self.unpersisted_bytes > 0
                await self.flush()
                if busy and not wrote and time.monotonic() - trimmed_at >= TRIM_INTERVAL:
                    await self._run(give_back_memory)  # a burst of output just ended
                    trimmed_at = time.monotonic()
                busy = wrote
                if time.monotonic() - self._metadata_at >= METADATA_INTERVAL:
                    await self._write_metadata()
            except Exception:
                log.exception("could not persist session output; will retry")

    async def flush(self) -> None:
        """Write every stream's pending bytes to its segments. On failure they go back in front, nothing lost."""
        async with self._flush_lock:
            snapshot: list[tuple[SessionStream, int, list[tuple[int, bytes]]]] = []
            for stream in self._streams():
                if stream.pending:
                    self.unpersisted_bytes -= stream.pending_bytes
                    snapshot.append((stream, stream.end, stream.take_pending()))
            if snapshot:
                batch = [(s.session_id, taken) for s, _, taken in snapshot]
                try:
                    bounds = await self._run(self._write, batch)
                except BaseException:
                    for stream, _, taken in snapshot:
                        stream.pending[:0] = taken
                        back = sum(len(d) for _, d in taken)
                        stream.pending_bytes += back
                        self.unpersisted_bytes += back
                    raise
                for stream, end, _ in snapshot:
                    stream.persisted = max(stream.persisted, end)
                self._metadata.update(bounds)
            self._flushed.set()
        self.after_flush()

    def _write(self, batch: list[tuple[str, list[tuple[int, bytes]]]]) -> dict[str, tuple[int, int]]:
        """In the worker thread: append each session's chunks (contiguous runs in one write), apply retention."""
        bounds: dict[str, tuple[int, int]] = {}
        for session_id, chunks in batch:
            run_start, run = chunks[0][0], [chunks[0][1]]
            at = run_start + len(chunks[0][1])
            for offset, data in chunks[1:]:
                if offset != at:
                    self.segments.append(session_id, run_start, run)
                    run_start, run, at = offset, [], offset
                run.append(data)
                at += len(data)
            self.segments.append(session_id, run_start, run)
            self.segments.trim(session_id, self.settings.log_cap_bytes)
            kept = self.segments.bounds(session_id)
            if kept is not None:
                bounds[session_id] = (kept[1], kept[0])
        return bounds

    async def _write_metadata(self) -> None:
        self._metadata_at = time.monotonic()
        if self._metadata:
            rows, self._metadata = self._metadata, {}
            await self.store.sessions.set_output_bounds(rows)

    async def backpressure(self) -> None:
        """Wait (not reading from the agent) while more output waits for the disk than we are willing to hold."""
        while self.unpersisted_bytes > MAX_UNPERSISTED:
            self._flushed.clear()
            self._flush_now.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flushed.wait(), 1.0)

    # -- bytes out ----------------------------------------------------------------------------------------------

    async def read(self, session_id: str, from_offset: int, limit: int) -> tuple[int, bytes]:
        """Up to ``limit`` written bytes from ``from_offset``, or from the first kept byte after it, if later."""
        return await self._run(self.segments.read, session_id, from_offset, limit)

    async def bounds(self, session_id: str) -> tuple[int, int] | None:
        """(oldest kept offset, end) on disk, or None when the session has no output on disk."""
        return await self._run(self.segments.bounds, session_id)

    def release_soon(self, session_id: str) -> None:
        """The stream left memory: close its file in the worker thread, after the writes queued before."""
        self._pool.submit(self.segments.release, session_id)

    async def delete(self, session_id: str) -> None:
        self._metadata.pop(session_id, None)
        await self._run(self.segments.delete, session_id)

    # -- housekeeping -------------------------------------------------------------------------------------------

    async def _import_table(self) -> None:
        """Move output that relays before segment files kept in the session_logs table into segments, once."""
        for session_id in await self.store.sessions.with_table_output():
            rows = await self.store.sessions.table_output(session_id)
            await self._run(self._write, [(session_id, rows)])
            await self.store.sessions.drop_table_output(session_id)
            log.info("moved %d output chunks of session %s into segment files", len(rows), session_id)

    async def _remove_orphans(self) -> None:
        """Output directories of sessions that no longer exist (deleted with their user or machine)."""
        on_disk = await self._run(self.segments.session_ids)
        known = await self.store.sessions.existing(on_disk)
        for session_id in set(on_disk) - known:
            await self.delete(session_id)
