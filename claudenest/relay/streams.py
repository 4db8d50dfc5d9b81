"""The relay's view of one session's output stream: end offset, an in-memory ring, bytes not yet persisted."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Attachment:
    viewer: Any  # hub.Viewer
    read_only: bool
    next_offset: int  # the next byte this viewer needs


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
    ring: bytearray = field(default_factory=bytearray)
    ring_start: int = 0
    pending: list[tuple[int, bytes]] = field(default_factory=list)
    pending_bytes: int = 0
    attachments: dict[int, Attachment] = field(default_factory=dict)
    exit_end: int | None = None  # set once the agent reported the exit; forget when persisted reaches it
    ended: bool = False  # the process is gone

    def __post_init__(self) -> None:
        self.ring_start = self.end

    def accept(self, offset: int, data: bytes) -> tuple[int, bytes, int | None]:
        """Take bytes at ``offset``. Returns the new part (offset, bytes) and the start of a gap, if one opened."""
        gap_from: int | None = None
        if offset > self.end:
            # The agent no longer had what lay between: that range is lost for good. Say so.
            gap_from = self.end
            self.end = offset
            self.ring.clear()
            self.ring_start = offset
        skip = self.end - offset
        if skip >= len(data):
            return self.end, b"", gap_from
        fresh = data[skip:] if skip else data
        start = self.end
        self.end += len(fresh)
        self.ring += fresh
        overflow = len(self.ring) - self.ring_limit
        if overflow > 0:
            del self.ring[:overflow]
            self.ring_start += overflow
        self.pending.append((start, bytes(fresh)))
        self.pending_bytes += len(fresh)
        return start, fresh, gap_from

    def from_ring(self, start: int) -> bytes:
        """Bytes from ``start`` (at or after ring_start) to the end."""
        return bytes(self.ring[start - self.ring_start :])

    def take_pending(self) -> list[tuple[int, bytes]]:
        taken, self.pending, self.pending_bytes = self.pending, [], 0
        return taken
