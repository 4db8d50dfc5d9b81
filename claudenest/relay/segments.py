"""Session output on disk: per session, append-only segment files named by the offset of their first byte.

    relay.db.output/<session id>/<first offset, 20 digits>.seg

A file's name and size are the whole index: segment ``s`` holds bytes [s.start, s.start + size). A new segment
starts when the current one is full or when the stream jumps (bytes the agent lost: a hole, later read as a gap).
Retention drops whole segments, oldest first, once the newer ones hold at least the cap.

Plain synchronous file I/O: the relay calls it from one worker thread (output_log.py), so the event loop never
waits on the disk and writes and reads of one session are ordered. A write is in the kernel's page cache as soon
as ``os.write`` returns, so it survives the relay being killed (kill -9); not a power cut (no fsync per write,
like SQLite's synchronous=NORMAL). After a crash the files are the truth: a stream resumes at their end.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

_IOV_MAX = 1024  # buffers per writev (Linux's IOV_MAX)
_NAME = re.compile(r"(\d{20})\.seg")
_SESSION_DIR = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def segment_bytes_for(cap_bytes: int) -> int:
    """Segments small enough that retention trims in steps of about an eighth of the cap, within 64 KiB-8 MiB."""
    return max(64 << 10, min(8 << 20, cap_bytes // 8))


@dataclass
class Segment:
    start: int
    size: int
    path: Path

    @property
    def end(self) -> int:
        return self.start + self.size


@dataclass
class SessionLog:
    directory: Path
    segments: list[Segment] = field(default_factory=list)
    fd: int | None = None  # the newest segment, open for appending

    @property
    def start(self) -> int | None:
        return self.segments[0].start if self.segments else None

    @property
    def end(self) -> int | None:
        return self.segments[-1].end if self.segments else None

    @property
    def kept(self) -> int:
        return sum(s.size for s in self.segments)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class SegmentStore:
    def __init__(self, root: Path, segment_bytes: int) -> None:
        self.root = root
        self.segment_bytes = segment_bytes
        self._logs: dict[str, SessionLog] = {}
        root.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _log(self, session_id: str) -> SessionLog:
        found = self._logs.get(session_id)
        if found is None:
            directory = self.root / session_id
            segments = []
            if directory.is_dir():
                for entry in os.scandir(directory):
                    match = _NAME.fullmatch(entry.name)
                    if match:
                        segments.append(Segment(int(match.group(1)), entry.stat().st_size, Path(entry.path)))
            segments.sort(key=lambda s: s.start)
            found = self._logs[session_id] = SessionLog(directory, segments)
        return found

    # -- writing ------------------------------------------------------------------------------------------------

    def append(self, session_id: str, offset: int, chunks: list[bytes]) -> None:
        """Write contiguous ``chunks`` starting at ``offset``; bytes the log already has are skipped."""
        log = self._log(session_id)
        views = [memoryview(c) for c in chunks if c]
        end = log.end
        if end is not None and offset < end:
            skip = end - offset  # a re-send after a reconnect: keep only what is new
            while views and skip >= len(views[0]):
                skip -= len(views.pop(0))
            if views:
                views[0] = views[0][skip:]
            offset = end
        size = sum(len(v) for v in views)
        if not size:
            return
        if end is None or offset != end or log.segments[-1].size >= self.segment_bytes:
            self._start_segment(log, offset)
        elif log.fd is None:  # found on disk (a restart): go on appending to the newest segment
            log.fd = os.open(log.segments[-1].path, os.O_WRONLY | os.O_APPEND)
        assert log.fd is not None
        # One system call for the whole run, and no joined copy of it (which glibc would keep as RSS).
        while views:
            written = os.writev(log.fd, views[:_IOV_MAX])
            log.segments[-1].size += written
            while views and written >= len(views[0]):
                written -= len(views.pop(0))
            if views and written:
                views[0] = views[0][written:]

    def _start_segment(self, log: SessionLog, offset: int) -> None:
        log.close()
        log.directory.mkdir(mode=0o700, exist_ok=True)
        path = log.directory / f"{offset:020d}.seg"
        log.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        size = os.fstat(log.fd).st_size  # an empty file left by a crash right after its creation
        log.segments.append(Segment(offset, size, path))

    def trim(self, session_id: str, cap_bytes: int) -> None:
        """Drop whole segments, oldest first, while the newer ones still hold at least ``cap_bytes``."""
        log = self._log(session_id)
        while len(log.segments) > 1 and log.kept - log.segments[0].size >= cap_bytes:
            with contextlib.suppress(FileNotFoundError):
                log.segments[0].path.unlink()
            del log.segments[0]

    def delete(self, session_id: str) -> None:
        log = self._logs.pop(session_id, None)
        if log is not None:
            log.close()
        shutil.rmtree(self.root / session_id, ignore_errors=True)

    def release(self, session_id: str) -> None:
        """The session is done writing: close its file (its index is rebuilt from the directory when needed)."""
        log = self._logs.pop(session_id, None)
        if log is not None:
            log.close()

    def close(self) -> None:
        for log in self._logs.values():
            log.close()
        self._logs.clear()

    # -- reading ------------------------------------------------------------------------------------------------

    def bounds(self, session_id: str) -> tuple[int, int] | None:
        """(oldest kept offset, end) of what is on disk, or None when nothing is."""
        log = self._log(session_id)
        if log.start is None or log.end is None:
            return None
        return log.start, log.end

    def read(self, session_id: str, from_offset: int, limit: int) -> tuple[int, bytes]:
        """Up to ``limit`` contiguous bytes from ``from_offset``, or from the first kept byte after it (a gap)."""
        log = self._log(session_id)
        out = bytearray()
        start: int | None = None
        for segment in log.segments:
            if segment.end <= from_offset:
                continue
            if start is None:
                start = max(segment.start, from_offset)
            elif segment.start != start + len(out):
                break  # a hole: stop at contiguous bytes, the caller asks again from there
            at = max(start + len(out), segment.start)
            want = min(limit - len(out), segment.end - at)
            with open(segment.path, "rb") as file:
                out += os.pread(file.fileno(), want, at - segment.start)
            if len(out) >= limit:
                break
        return (from_offset, b"") if start is None else (start, bytes(out))

    def session_ids(self) -> list[str]:
        return [e.name for e in os.scandir(self.root) if e.is_dir() and _SESSION_DIR.fullmatch(e.name)]
