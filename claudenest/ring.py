"""A session's output as a byte stream with absolute offsets; the newest ``limit`` bytes are kept. The agent keeps
one per session (everything the relay may still ask for), the relay a smaller one (what live viewers and replays
read without touching the disk).

The bytes live in one buffer that grows to ``limit`` and is then written circularly (offset ``o`` at
``(o - origin) % limit``), so an append copies only its own bytes. Trimming the front of a growing bytearray
instead re-allocated and copied the whole ring about once per MiB appended (8 MiB copied per MiB of output):
0.6-0.8 against 0.35 ms/MB in isolation, and up to 14% of the agent's CPU in a profiled flood, where each copy
landed in freshly mapped memory.
"""

from __future__ import annotations


class OutputRing:
    def __init__(self, limit: int, start: int = 0) -> None:
        if limit <= 0:
            raise ValueError(f"ring limit must be positive, not {limit}")
        self.limit = limit
        self.reset(start)

    def reset(self, offset: int) -> None:
        """Hold nothing, and take the next byte at ``offset`` (a stream that starts there, or jumps there)."""
        self._buffer = bytearray()  # grows to ``limit``, then never changes size
        self._origin = offset  # the offset stored at buffer index 0
        self.start = offset  # offset of the oldest byte still held
        self.end = offset  # offset one past the newest byte

    def append(self, data: bytes) -> None:
        total = len(data)
        with memoryview(data) as view:
            tail = view[max(0, total - self.limit) :]  # older bytes would be overwritten at once
            position = (self.end + total - len(tail) - self._origin) % self.limit
            room = self.limit - len(self._buffer)
            if room and position == len(self._buffer):  # still growing
                self._buffer += tail[:room]
                tail = tail[room:]
                position = (position + room) % self.limit
            elif room:  # one append of more than the ring while it was still growing: it replaces everything
                self._buffer.extend(bytes(room))
            first = min(len(tail), self.limit - position)
            self._buffer[position : position + first] = tail[:first]
            self._buffer[: len(tail) - first] = tail[first:]
        self.end += total
        self.start = max(self._origin, self.end - self.limit)

    def read(self, offset: int, limit: int) -> bytes:
        """Up to ``limit`` bytes from ``offset`` (which must be within [start, end])."""
        if not self.start <= offset <= self.end:
            raise ValueError(f"offset {offset} outside the ring [{self.start}, {self.end}]")
        size = min(limit, self.end - offset)
        position = (offset - self._origin) % self.limit
        first = min(size, len(self._buffer) - position)
        with memoryview(self._buffer) as view:
            if first == size:
                return bytes(view[position : position + size])
            return b"".join((view[position:], view[: size - first]))
