"""Attaching to a running session shows its current screen at once: a full-screen TUI and plain scrolling output,
each after megabytes nobody watched. The screen a viewer draws from `attached.prelude` and the replay is compared
with the screen of a terminal that saw every byte (pyte, a terminal emulator, stands in for the viewer's)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pyte
import pytest

from claudenest.client import RelayClient
from claudenest.protocol import Attach, Attached, FrameKind, Gap, decode_frame, decode_message, encode_message
from tests.e2e.harness import Relay, add_user, pair_agent, timeout

COLS, ROWS = 100, 30

# A full-screen program: alternate screen, hidden cursor, one wipe, then frames repainted in place with cursor
# addressing and colours, until it has written TOTAL bytes; then it keeps running, idle.
TUI = """
import os, sys, time
total, cols, rows = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
os.write(1, b"\\x1b[?1049h\\x1b[?25l\\x1b[?2004h\\x1b[2J")
written, frame = 0, 0
while written < total:
    parts = [b"\\x1b[H"]
    for row in range(rows - 1):
        text = b"frame %07d row %02d " % (frame, row) + bytes([65 + (frame + row) % 26]) * (cols - 30)
        parts.append(b"\\x1b[%d;1H\\x1b[3%dm%s\\x1b[0m\\x1b[K" % (row + 1, row % 7 + 1, text))
    parts.append(b"\\x1b[%d;%dHclock %07d" % (rows, cols - 20, frame))
    chunk = b"".join(parts)
    os.write(1, chunk)
    written += len(chunk)
    frame += 1
os.write(1, b"\\x1b[%d;1HDONE" % rows)
time.sleep(3600)
"""

# Scrolling output: numbered lines of varying length, some coloured, then an idle prompt-like last line.
SCROLL = """
import os, sys, time
total = int(sys.argv[1])
written, n = 0, 0
while written < total:
    line = b"\\x1b[32mline %08d\\x1b[0m " % n + b"." * (n % 70) + b"\\n"
    os.write(1, line)
    written += len(line)
    n += 1
os.write(1, b"$ ")
time.sleep(3600)
"""


@dataclass
class Stack:
    relay: Relay
    api: RelayClient
    machine_id: str


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    relay = Relay(tmp_path / "relay").start()
    user = add_user(relay, "me@example.com", tmp_path / "cli")
    agent = pair_agent(relay, user, tmp_path / "agent", "box")
    api = RelayClient(relay.url, user.token)
    try:
        yield Stack(relay, api, agent.machine_id)
    finally:
        await api.close()
        agent.stop()
        relay.stop()


def screen_of(data: bytes) -> tuple[list[str], tuple[int, int]]:
    screen = pyte.Screen(COLS, ROWS)
    stream = pyte.ByteStream(screen)
    stream.feed(data)
    return list(screen.display), (screen.cursor.x, screen.cursor.y)


async def run_until_idle(stack: Stack, tmp_path: Path, source: str, total: int) -> str:
    """Start the program, wait until it has written ``total`` bytes and gone idle; its session id."""
    script = tmp_path / "program.py"
    script.write_text(source)
    session = await stack.api.create_session(
        machine_id=stack.machine_id,
        command=[sys.executable, str(script), str(total), str(COLS), str(ROWS)],
        cols=COLS,
        rows=ROWS,
    )
    last = -1
    deadline = asyncio.get_running_loop().time() + timeout(60)
    while asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.5)
        _, _, end, _ = await stack.api.logs(session["id"], from_offset=0, limit=1)
        if end >= total and end == last:
            return str(session["id"])
        last = end
    raise AssertionError("the program did not finish writing")


async def attach_for_screen(stack: Stack, session_id: str) -> tuple[Attached, bytes]:
    """Attach without an offset and read until we hold everything up to the end offset `attached` announced."""
    ws = await stack.api.connect_viewer()
    try:
        await ws.send(encode_message(Attach(session_id=session_id, read_only=True)))
        attached: Attached | None = None
        replay = bytearray()
        at = 0
        async with asyncio.timeout(timeout(20)):
            while attached is None or at < attached.end_offset:
                raw = await ws.recv()
                if isinstance(raw, bytes):
                    frame = decode_frame(raw)
                    assert frame.kind is FrameKind.OUTPUT
                    assert frame.offset == at
                    replay += frame.payload
                    at = frame.end
                else:
                    message = decode_message(raw)
                    assert not isinstance(message, Gap), message
                    if isinstance(message, Attached):
                        attached, at = message, message.from_offset
        assert attached is not None
        return attached, bytes(replay)
    finally:
        await ws.close()


async def full_stream(stack: Stack, session_id: str) -> bytes:
    out = bytearray()
    while True:
        start, data, end, _ = await stack.api.logs(session_id, from_offset=len(out))
        assert start == len(out)
        out += data
        if len(out) >= end:
            return bytes(out)


@pytest.mark.parametrize(
    ("program", "total"),
    [(TUI, 6 << 20), (SCROLL, 6 << 20)],
    ids=["full-screen-tui", "scrolling-output"],
)
async def test_attaching_shows_the_current_screen_after_megabytes_unwatched(
    stack: Stack, tmp_path: Path, program: str, total: int
) -> None:
    session_id = await run_until_idle(stack, tmp_path, program, total)
    attached, replay = await attach_for_screen(stack, session_id)
    everything = await full_stream(stack, session_id)
    assert len(everything) >= total
    # The replay is a small tail of the stream, not the whole history ...
    assert len(replay) <= (1 << 20) + 4096
    assert replay == everything[attached.from_offset :]
    # ... and it draws the same screen as every byte did.
    assert screen_of(attached.prelude.encode() + replay) == screen_of(everything)
    if program is TUI:
        # The program switched modes once, at its start, megabytes before the replay: the prelude carries them.
        assert attached.prelude == "\x1b[?25l\x1b[?1049h\x1b[?2004h"
        assert "DONE" in screen_of(replay)[0][ROWS - 1]
    else:
        assert attached.prelude == ""
        assert everything[attached.from_offset - 1 : attached.from_offset] == b"\n"  # it starts at a line start
