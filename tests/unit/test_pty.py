"""PtyProcess reads: a real PTY running a small Python script; every readable event drains the PTY up to a bound."""

from __future__ import annotations

import asyncio
import sys

import pytest

from claudenest.agent import pty
from claudenest.agent.pty import PtyProcess
from tests.e2e.harness import timeout


def lines_script(count: int) -> str:
    """A program that writes ``count`` numbered 100-byte lines, one os.write each (as `fold` does)."""
    return f"import os\nfor i in range({count}):\n    os.write(1, b'%06d' % i + b'.' * 93 + b'\\n')\n"


def expected(count: int) -> bytes:
    return b"".join(b"%06d" % i + b"." * 93 + b"\r\n" for i in range(count))  # the PTY's ONLCR adds the \r


class Recorder:
    """What the PTY handed over, in order: output batches, then "eof"."""

    def __init__(self) -> None:
        self.events: list[bytes | str] = []
        self.ended = asyncio.Event()

    def output(self, data: bytes) -> None:
        self.events.append(data)

    def eof(self) -> None:
        self.events.append("eof")
        self.ended.set()

    @property
    def batches(self) -> list[bytes]:
        return [event for event in self.events if isinstance(event, bytes)]


def start(script: str, recorder: Recorder) -> PtyProcess:
    return PtyProcess(
        [sys.executable, "-c", script],
        cwd="/",
        env={},
        cols=120,
        rows=40,
        on_output=recorder.output,
        on_eof=recorder.eof,
    )


async def finish(process: PtyProcess, recorder: Recorder) -> None:
    await asyncio.wait_for(recorder.ended.wait(), timeout(15))
    await asyncio.wait_for(process.wait(), timeout(15))
    process.close()


async def test_many_small_writes_arrive_complete_and_in_order_then_eof() -> None:
    recorder = Recorder()
    process = start(lines_script(20_000), recorder)
    await finish(process, recorder)
    assert b"".join(recorder.batches) == expected(20_000)
    assert recorder.events[-1] == "eof"
    assert recorder.events.count("eof") == 1


async def test_a_backlog_is_handed_over_in_one_batch_and_eof_follows_the_last_byte() -> None:
    # 60 lines (6 KB) fit in the kernel's PTY buffer, so the program can write them all and exit while nothing
    # reads; one master read returns at most ~4 KiB, so one batch means the readable event drained the PTY.
    recorder = Recorder()
    process = start(lines_script(60), recorder)
    process.pause_reading()
    assert await asyncio.wait_for(process.wait(), timeout(15)) == 0
    process.resume_reading()
    await finish(process, recorder)
    assert recorder.events == [expected(60), "eof"]


async def test_one_readable_event_reads_no_more_than_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pty, "DRAIN_BYTES", 2048)
    recorder = Recorder()
    process = start(lines_script(60), recorder)
    process.pause_reading()
    await asyncio.wait_for(process.wait(), timeout(15))
    process.resume_reading()
    await finish(process, recorder)
    assert b"".join(recorder.batches) == expected(60)
    assert recorder.batches[0] == expected(60)[:2048]  # the first event stopped at the bound
    assert max(len(batch) for batch in recorder.batches) == 2048
    assert recorder.events[-1] == "eof"
