"""A session's output as a byte stream with absolute offsets; the newest ``limit`` bytes are kept."""

from __future__ import annotations


class OutputRing:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._buffer = bytearray()
        self.start = 0  # offset of the oldest byte still held
        self.end = 0  # offset one past the newest byte

    def append(self, data: bytes) -> None:
        self._buffer += data
        self.end += len(data)
        overflow = len(self._buffer) - self.limit
        if overflow > 0:
            del self._buffer[:overflow]
            self.start += overflow

    def read(self, offset: int, limit: int) -> bytes:
        """Up to ``limit`` bytes from ``offset`` (which must be within [start, end])."""
        if not self.start <= offset <= self.end:
            raise ValueError(f"offset {offset} outside the ring [{self.start}, {self.end}]")
        position = offset - self.start
        return bytes(self._buffer[position : position + limit])
