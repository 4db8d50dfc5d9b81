"""The relay's view of one session's output stream: end offset, an in-memory ring, bytes not yet persisted."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from claudenest.relay.screen import ModeTracker
from claudenest.ring import OutputRing


@dataclass
class Attachment:
    viewer: Any  # fanout.Viewer
    read_only: bool
    next_offset: int  # the next byte this viewer needs
    live: bool = True  # False while it is served from the ring and the log (fanout.py)
    held: list[Any] = field(default_factory=list)  # status messages waiting until it has caught up


@dataclass
class SessionStream:
    session_id: str
    machine_id: str
    user_id: str
    end: int  # every byte before this has been received (or declared lost by a gap)
    persisted: int  # every byte before this is in the database
    ring_limit: int
    status: str = "starting"
    cols: int = 80
    rows: int = 24
    pending: list[tuple[int, bytes]] = field(default_factory=list)
    pending_bytes: int = 0
    attachments: dict[int, Attachment] = field(default_factory=dict)
    exit_end: int | None = None  # set once the agent reported the exit; forget when persisted reaches it
    ended: bool = False  # the process is gone
    modes: ModeTracker = field(default_factory=ModeTracker)  # for replays that redraw the screen (screen.py)

    def __post_init__(self) -> None:
        self.ring = OutputRing(self.ring_limit, start=self.end)

    @property
    def ring_start(self) -> int:
        """The oldest byte the ring still holds; older ones are read from the log."""
        return self.ring.start

    def accept(self, offset: int, data: bytes) -> tuple[int, bytes, int | None]:
        """Take bytes at ``offset``. Returns the new part (offset, bytes) and the start of a gap, if one opened."""
        gap_from: int | None = None
        if offset > self.end:
            # The agent no longer had what lay between: that range is lost for good. Say so.
            gap_from = self.end
            self.end = offset
            self.ring.reset(offset)
        skip = self.end - offset
        if skip >= len(data):
            return self.end, b"", gap_from
        fresh = data[skip:] if skip else data
        start = self.end
        self.end += len(fresh)
        fresh = bytes(fresh)
        self.ring.append(fresh)
        self.pending.append((start, fresh))
        self.pending_bytes += len(fresh)
        self.modes.feed(start, fresh)
        return start, fresh, gap_from

    def ring_slice(self, start: int, limit: int | None = None) -> bytes:
        """Up to ``limit`` bytes (all, without one) from ``start``, which is at or after ring_start."""
        return self.ring.read(start, self.end - start if limit is None else limit)

    def take_pending(self) -> list[tuple[int, bytes]]:
        taken, self.pending, self.pending_bytes = self.pending, [], 0
        return taken


class Streams:
    """The streams of sessions active in this relay, loaded from their session rows on first use."""

    def __init__(self, load: Callable[[str], Awaitable[dict[str, Any]]], ring_limit: int) -> None:
        self._load = load  # the session row by id; raises NotFound
        self._ring_limit = ring_limit
        self._streams: dict[str, SessionStream] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def __len__(self) -> int:
        return len(self._streams)

    def __iter__(self) -> Iterator[SessionStream]:
        return iter(list(self._streams.values()))

    def get(self, session_id: str) -> SessionStream | None:
        return self._streams.get(session_id)

    async def open(self, session_id: str) -> SessionStream:
        found = self._streams.get(session_id)
        if found is not None:
            return found
        lock = self._locks.setdefault(session_id, asyncio.Lock())
        async with lock:
            found = self._streams.get(session_id)
            if found is None:
                session = await self._load(session_id)
                found = SessionStream(
                    session_id=session_id,
                    machine_id=session["machine_id"],
                    user_id=session["user_id"],
                    end=session["output_bytes"],
                    persisted=session["output_bytes"],
                    ring_limit=self._ring_limit,
                    status=session["status"],
                    cols=session["cols"],
                    rows=session["rows"],
                    ended=session["ended"],
                )
                self._streams[session_id] = found
        self._locks.pop(session_id, None)
        return found

    def drop(self, session_id: str) -> SessionStream | None:
        return self._streams.pop(session_id, None)
