"""A process on pipes instead of a PTY, for headless Claude Code (``claude -p``): its stdout is NDJSON to parse,
not a screen. Same surface as :class:`claudenest.agent.pty.PtyProcess`, so the registry treats both alike."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from claudenest.agent.pty import READ_SIZE, end_process_group
from claudenest.errors import SpawnError


class PipeProcess:
    def __init__(
        self, proc: asyncio.subprocess.Process, on_output: Callable[[bytes], None], on_eof: Callable[[], None]
    ):
        self._proc = proc
        self.pid: int = proc.pid
        self._on_output = on_output
        self._on_eof = on_eof
        self._readable = asyncio.Event()
        self._readable.set()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def spawn(
        cls,
        argv: list[str],
        *,
        cwd: str,
        env: dict[str, str],
        on_output: Callable[[bytes], None],
        on_eof: Callable[[], None],
    ) -> PipeProcess:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                cwd=cwd,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,  # an open, silent stdin makes `claude -p` wait for input
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise SpawnError(f"cannot start {argv[0]}: {exc.strerror or exc}") from None
        return cls(proc, on_output, on_eof)

    async def _read(self) -> None:
        assert self._proc.stdout is not None
        while True:
            await self._readable.wait()
            data = await self._proc.stdout.read(READ_SIZE)
            if not data:
                break
            self._on_output(data)
        self._on_eof()

    def pause_reading(self) -> None:
        self._readable.clear()

    def resume_reading(self) -> None:
        self._readable.set()

    def write(self, data: bytes) -> None:
        """Headless runs take no keyboard input."""

    def resize(self, cols: int, rows: int) -> None:
        """A pipe has no window size."""

    async def wait(self) -> int:
        return await self._proc.wait()

    async def terminate(self) -> int:
        return await end_process_group(self.pid, self._proc.wait())

    def close(self) -> None:
        self._reader.cancel()
