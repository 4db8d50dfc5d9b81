"""One process in one pseudo-terminal. Knows nothing of networks.

Reads with ``loop.add_reader`` and keeps bytes as bytes; writes are buffered and drained with ``add_writer`` so a
slow program never blocks the event loop; the process group is ended with escalating signals.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import signal
import struct
import termios
from collections.abc import Awaitable, Callable

import ptyprocess

from claudenest.errors import SpawnError

READ_SIZE = 64 << 10
# Read until the PTY is empty, up to this much, per readable event. A cooked-mode master hands out at most ~4 KiB
# per read, and programs write in small pieces (`fold` writes 101 bytes at a time): one read per event meant an
# event-loop wake-up, an output callback and a link frame per ~1-4 KB. Draining cut readable events from ~500-850 to
# ~100 per MB of a `fold -w 100` flood. The bound keeps one flooding session from holding the loop, and flow control
# (pause_reading) is checked at least this often.
DRAIN_BYTES = 256 << 10
KILL_STEPS = ((signal.SIGHUP, 1.0), (signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0))


async def end_process_group(pid: int, exited: Awaitable[int]) -> int:
    """SIGHUP, then SIGTERM, then SIGKILL to the whole process group, waiting between steps; the exit code."""
    waiter = asyncio.ensure_future(exited)
    for sig, grace in KILL_STEPS:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        done, _ = await asyncio.wait({waiter}, timeout=grace)
        if done:
            break
    return await waiter


class PtyProcess:
    def __init__(
        self,
        argv: list[str],
        *,
        cwd: str,
        env: dict[str, str],
        cols: int,
        rows: int,
        on_output: Callable[[bytes], None],
        on_eof: Callable[[], None],
    ) -> None:
        try:
            self._proc = ptyprocess.PtyProcess.spawn(argv, cwd=cwd, env=env, dimensions=(rows, cols))
        except FileNotFoundError as exc:
            raise SpawnError(f"command not found: {argv[0]} ({exc})") from None
        except OSError as exc:
            raise SpawnError(f"cannot start {argv[0]}: {exc.strerror or exc}") from None
        except Exception as exc:  # ptyprocess re-raises the child's exec failure in the parent
            raise SpawnError(f"cannot start {argv[0]}: {exc}") from None
        self.pid: int = self._proc.pid
        self.fd: int = self._proc.fd
        os.set_blocking(self.fd, False)
        self._loop = asyncio.get_running_loop()
        self._on_output = on_output
        self._on_eof = on_eof
        self._reading = False
        self._eof = False
        self._write_buffer = bytearray()
        self._exit: asyncio.Future[int] | None = None
        self.resume_reading()

    # -- output -------------------------------------------------------------------------------------------------

    def pause_reading(self) -> None:
        if self._reading:
            self._loop.remove_reader(self.fd)
            self._reading = False

    def resume_reading(self) -> None:
        if not self._reading and not self._eof:
            self._loop.add_reader(self.fd, self._read)
            self._reading = True

    def _read(self) -> None:
        chunks: list[bytes] = []
        size = 0
        eof = False
        while size < DRAIN_BYTES:
            try:
                data = os.read(self.fd, min(READ_SIZE, DRAIN_BYTES - size))
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno != errno.EIO:  # EIO is how Linux says the other side closed
                    raise
                data = b""
            if not data:
                eof = True
                break
            chunks.append(data)
            size += len(data)
        if chunks:
            self._on_output(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        if eof:
            self._eof = True
            self.pause_reading()
            self._on_eof()

    # -- input --------------------------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self._eof:
            return
        was_empty = not self._write_buffer
        self._write_buffer += data
        if was_empty:
            self._flush_writes()

    def _flush_writes(self) -> None:
        while self._write_buffer:
            try:
                written = os.write(self.fd, self._write_buffer)
            except BlockingIOError:
                break
            except OSError:
                self._write_buffer.clear()
                break
            del self._write_buffer[:written]
        with contextlib.suppress(Exception):
            self._loop.remove_writer(self.fd)
        if self._write_buffer:
            self._loop.add_writer(self.fd, self._flush_writes)

    def resize(self, cols: int, rows: int) -> None:
        with contextlib.suppress(OSError):
            fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            os.killpg(self.pid, signal.SIGWINCH)

    # -- exit ---------------------------------------------------------------------------------------------------

    async def wait(self) -> int:
        """Reap the child. Exit code as subprocess does it: negative means killed by that signal."""
        if self._exit is None:
            self._exit = asyncio.ensure_future(asyncio.to_thread(self._wait_blocking))
        return await self._exit

    def _wait_blocking(self) -> int:
        while True:
            try:
                _, status = os.waitpid(self.pid, 0)
                break
            except InterruptedError:
                continue
            except ChildProcessError:
                return -1
        if os.WIFSIGNALED(status):
            return -os.WTERMSIG(status)
        return os.WEXITSTATUS(status)

    async def terminate(self) -> int:
        return await end_process_group(self.pid, self.wait())

    def close(self) -> None:
        self.pause_reading()
        with contextlib.suppress(Exception):
            self._loop.remove_writer(self.fd)
        with contextlib.suppress(OSError):
            self._proc.fileobj.close()  # closes the PTY fd
        self._proc.closed = True  # we reaped the child ourselves; stop ptyprocess's __del__ from trying again
