#!/usr/bin/env python3
"""Terminal streaming benchmark: ClaudeNest (viewer -> relay -> agent -> PTY and back) against terminado.

    python scripts/bench_terminal.py [--quick] [--runs N] [--json out.json] [--what-if-no-deflate]

Three systems run side by side in one run, all on 127.0.0.1, each in its own temporary home:

- **terminado** 0.18 in its own process (a Tornado server with ``TermSocket``), the yardstick;
- **split**: ``claudenest relay serve`` and ``claudenest agent run`` as two processes, paired by the real flow;
- **up**: ``claudenest up --port 0``, relay and agent started together (the machine is paired by ``up`` itself).

Phases (``--runs`` runs of each bulk case, 5 by default, 1 in ``--quick``; medians reported, every run listed):

1. **Echo.** 1-byte inputs to ``stty raw -echo; exec cat``, timed until the byte comes back: idle on all three, and on
   split and terminado while 50 other sessions each print 20 kB/s (100 lines/s of 200 bytes with the PTY's \\r\\n)
   to their own viewers (drained by a separate process).
2. **Bulk, one viewer**, two workloads. *Small writes*: ``head -c N /dev/zero | tr '\\0' Z | fold -w 100`` in a
   cooked-mode PTY (only ``stty -echo``), so the program makes N/100 writes of 101 bytes and the PTY sends each
   ``\\n`` as ``\\r\\n``: the stream is lines of 100 ``Z`` joined by ``\\r\\n``. *Large raw writes*: a writer putting a
   deterministic pattern into a raw PTY in 64 KiB writes. N is 50 MB (10 MB in ``--quick``). Each program writes an
   ``R``, waits for a go byte, then writes; the clock runs from the go byte to the last byte at the last viewer.
   Every viewer checks every byte: each frame's content at its offset, gaps, total length and sha256. Reported:
   goodput MB/s, CPU per MB, the longest pause between two frames at a viewer, ratios to terminado, and this
   process's own CPU (it runs every viewer: near 100% of a core, the client sets the pace).
   CPU is utime + stime read from ``/proc/PID/stat`` over the run (plus 0.5 s for the last persistence): of the
   relay and the agent process (split); of the ``up`` process and every descendant of it whose command line contains
   ``claudenest`` (so an agent that ``up`` runs in a child process counts, the PTY programs do not); of terminado's
   process (its PTY programs are children too, and not counted). Reaped children's time (cutime) is never counted.
3. **Fan-out.** The small-writes workload to 10 viewers at once: aggregate MB/s against one viewer's, bytes lost.
4. **Stalled viewer** (split, small writes). Two viewers attach from offset 0; one stops reading its socket entirely
   (a sans-I/O WebSocket client with a 32 KiB receive buffer, so nobody reads on its behalf), the other reads. Solo
   runs (one viewer) alternate with stalled runs. Reported: the reader's MB/s against the solo median, its longest
   pause, the relay's peak RSS (VmHWM) during the transfer; then the stalled viewer reads again until the session's
   end offset (or 5 s of silence) and must receive every byte (the stream stays under ``relay.log_cap_bytes``):
   bytes, gaps, content checked.
5. **Reattach after 10 MB missed** (split). A session writes 10 MB with nobody attached: (a) scrolling numbered
   lines, some wrapping, some coloured; (b) a full-screen TUI (alternate screen, hidden cursor, one clear and a
   footer drawn once, then frames repainted with ``ESC[H`` and per-line ``ESC[K``, a few absolutely positioned
   coloured cells, and a progress row that is only added to), then both idle. Five viewers in turn send ``attach``
   without an offset: the time from sending it until the viewer holds everything up to the ``end_offset`` that
   ``attached`` announced is "live" (median of 5). Correctness: ``attached.prelude`` plus the replayed bytes fed into
   a pyte Screen of the session's size give the same display and cursor (position and visibility) as a pyte Screen
   fed the whole stream from ``GET /api/sessions/{id}/logs`` (pyte runs after everything else, in 2 processes).
6. **Relay memory with 100 sessions x 2 viewers** (split, restarted first): fresh, after each session wrote 1 MiB,
   after the sessions end.

Every wait is bounded; a watchdog ends the run (and every process it started) if it overruns. Peak RSS is VmHWM,
reset per phase. A noise check reports other processes' share of the machine in each phase. See docs/benchmarks.md
for the numbers.
"""

from __future__ import annotations

import abc
import argparse
import asyncio
import contextlib
import functools
import hashlib
import json
import multiprocessing
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.client import ClientProtocol
from websockets.frames import Frame as WsFrame
from websockets.frames import Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from claudenest.client import RelayClient
from claudenest.config import RelaySettings
from claudenest.protocol import (
    Attach,
    Attached,
    ClientHello,
    Error,
    Frame,
    FrameKind,
    Gap,
    Message,
    SessionStatus,
    decode_frame,
    decode_message,
    encode_frame,
    encode_message,
)

MiB = 1 << 20
CLK_TCK = os.sysconf("SC_CLK_TCK")
ENDED = ("exited", "error")
COLS, ROWS = 120, 40  # every session's size


def process_ended(message: SessionStatus) -> bool:
    """The session's process is gone (``ended``; protocols without that field: an exited or error status)."""
    return bool(getattr(message, "ended", message.status in ENDED))


# ---------------------------------------------------------------------------------------------------------------
# What runs inside the PTYs (identical for ClaudeNest and terminado)

ECHO_ARGV = ["sh", "-c", "stty raw -echo; exec cat"]

# Deterministic, printable ASCII (so terminado's UTF-8 decoding is lossless), every line different.
PATTERN_SRC = """
def pattern(n):
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    rot = [alphabet[i:] + alphabet[:i] for i in range(64)]
    out = bytearray()
    i = 0
    while len(out) < n:
        out += b"%09d %s\\n" % (i, rot[i % 64])
        i += 1
    return bytes(out[:n])
"""

# Prepares its data, says "R", waits for one byte on stdin, then writes the data as fast as the PTY takes it.
WRITER_SRC = (
    PATTERN_SRC
    + """
import os, sys
data = pattern(int(sys.argv[1]))
os.write(1, b"R")
os.read(0, 1)
view = memoryview(data)
while view:
    view = view[os.write(1, view[:65536]):]
"""
)

# Prints argv[1] lines a second, each argv[2] bytes long once the PTY has turned its \n into \r\n.
PRINTER_SRC = """
import os, sys, time
step = 1.0 / float(sys.argv[1])
filler = b" the quick brown fox jumps over the lazy dog 0123456789 abcdefghijklmnop" * 8
width = int(sys.argv[2]) - 2
n = 0
due = time.monotonic()
while True:
    n += 1
    os.write(1, (b"busy %08d" % n + filler)[:width] + b"\\n")
    due += step
    delay = due - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    elif delay < -1:
        due = time.monotonic()
"""

FILL_BYTES = MiB  # what each of the 100 sessions writes in the RSS test
FILL_ARGV = [
    "sh",
    "-c",
    f"stty raw -echo; head -c 1 >/dev/null; head -c {FILL_BYTES} /dev/zero | tr '\\000' x; exec cat",
]

# Reattach (a): scrolling output as a program with a buffered stdout makes it: numbered lines of 29-188 columns (some
# wrap at 120), every 7th coloured, written 4 KiB at a time into a cooked PTY. Then a marker, then idle.
SCROLL_SRC = """
import os, sys, time
def put(data):
    view = memoryview(data)
    while view:
        view = view[os.write(1, view):]
total = int(sys.argv[1])
alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
written, i, chunk = 0, 0, bytearray()
while written < total:
    k = i % 62
    line = b"%08d " % i + ((alphabet[k:] + alphabet[:k]) * 4)[: 20 + (i * 37) % 160]
    if i % 7 == 0:
        line = b"\\x1b[3%dm" % (1 + i % 6) + line + b"\\x1b[0m"
    chunk += line + b"\\n"
    i += 1
    if len(chunk) >= 4096:
        put(chunk)
        written += len(chunk)
        chunk = bytearray()
put(bytes(chunk) + MARKER)
while True:
    time.sleep(3600)
"""

# Reattach (b): a full-screen TUI. Alternate screen, hidden cursor, one clear, a footer drawn once and never again;
# then frames: ESC[H, every body line repainted and ended with ESC[K, three coloured cells placed absolutely, and one
# more mark on a progress row that is only ever added to (like a TUI that updates what changed). Then idle.
TUI_SRC = """
import os, sys, time
def put(data):
    view = memoryview(data)
    while view:
        view = view[os.write(1, view):]
cols, rows, total = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
body = rows - 2
footer = b" bench TUI | this footer is drawn once, after the clear, and never repainted ".ljust(cols - 1, b"=")
head = b"\\x1b[?1049h\\x1b[?25l\\x1b[H\\x1b[2J\\x1b[%d;1H\\x1b[7m%s\\x1b[0m" % (rows, footer[: cols - 1])
put(head)
written, n = len(head), 0
while written < total:
    frame = bytearray(b"\\x1b[H")
    for r in range(body):
        k = (n + r) % 62
        text = ((alphabet[k:] + alphabet[:k]) * 2)[: 30 + (n * 7 + r * 13) % 80]
        frame += b"\\x1b[1;3%dm%06d:%02d\\x1b[0m %s\\x1b[K" % (1 + (n + r) % 7, n, r, text)
        if r < body - 1:
            frame += b"\\r\\n"
    for c in range(3):
        y, x = 1 + (n * 7 + c * 11) % body, 1 + (n * 13 + c * 29) % (cols - 12)
        frame += b"\\x1b[%d;%dH\\x1b[4%d;30m<%d:%d>\\x1b[0m" % (y, x, 1 + c, c, n % 10)
    x = 1 + n % (cols - 1)
    frame += b"\\x1b[%d;%dH\\x1b[3%dm%c\\x1b[0m" % (rows - 1, x, n % 8, alphabet[n % 62])
    put(frame)
    written += len(frame)
    n += 1
put(MARKER)
while True:
    time.sleep(3600)
"""

# The last thing both reattach programs write: a window title (harmless to a screen), so the benchmark knows when all
# 10 MB reached the relay.
DONE_MARKER = b"\x1b]2;bench-done\x07"


def writer_argv(nbytes: int) -> list[str]:
    return ["sh", "-c", 'stty raw -echo && exec "$0" -S -c "$1" "$2"', sys.executable, WRITER_SRC, str(nbytes)]


def small_writes_argv(nbytes: int) -> list[str]:
    """Cooked mode (only echo off, so the go byte is not echoed); fold writes each 100-column line on its own."""
    return [
        "sh",
        "-c",
        f"stty -echo; printf R; head -c 1 >/dev/null; head -c {nbytes} /dev/zero | tr '\\000' Z | fold -w 100",
    ]


def printer_argv(lines_per_second: int, line_bytes: int) -> list[str]:
    return [sys.executable, "-S", "-c", PRINTER_SRC, str(lines_per_second), str(line_bytes)]


def scroll_argv(nbytes: int) -> list[str]:
    return [sys.executable, "-S", "-c", f"MARKER = {DONE_MARKER!r}\n" + SCROLL_SRC, str(nbytes)]


def tui_argv(nbytes: int) -> list[str]:
    return [sys.executable, "-S", "-c", f"MARKER = {DONE_MARKER!r}\n" + TUI_SRC, str(COLS), str(ROWS), str(nbytes)]


@functools.cache
def expected_raw(nbytes: int) -> bytes:
    """What a viewer of writer_argv(nbytes) must receive: the ready marker, then the pattern."""
    scope: dict[str, Any] = {}
    exec(PATTERN_SRC, scope)
    return b"R" + bytes(scope["pattern"](nbytes))


@functools.cache
def expected_small(nbytes: int) -> bytes:
    """What a viewer of small_writes_argv(nbytes) must receive: "R", then lines of 100 Z, each \\n turned into \\r\\n by
    the PTY; the last line has none (fold's input, NUL bytes turned into Z, ends without a newline)."""
    return b"R" + b"\r\n".join([b"Z" * 100] * (nbytes // 100))


@functools.cache
def digest_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Workload:
    key: str  # "small" or "raw"; also the first part of terminado's terminal name
    nbytes: int  # what the program is asked to write (the stream is longer: "R", and \r\n for \n in cooked mode)
    go: bytes  # the byte that starts the writing, once every viewer has the "R"

    @property
    def label(self) -> str:
        return "small writes" if self.key == "small" else "large raw writes"

    def argv(self) -> list[str]:
        return small_writes_argv(self.nbytes) if self.key == "small" else writer_argv(self.nbytes)

    def expected(self) -> bytes:
        return expected_small(self.nbytes) if self.key == "small" else expected_raw(self.nbytes)


def argv_for_terminal(term_name: str) -> list[str]:
    """terminado's terminals are named after what they run: small-<bytes>-*, raw-<bytes>-*, busy-<rate>-<width>-*,
    echo-*."""
    kind, _, rest = term_name.partition("-")
    if kind == "small":
        return small_writes_argv(int(rest.split("-")[0]))
    if kind == "raw":
        return writer_argv(int(rest.split("-")[0]))
    if kind == "busy":
        rate, line = rest.split("-")[:2]
        return printer_argv(int(rate), int(line))
    return ECHO_ARGV


# ---------------------------------------------------------------------------------------------------------------
# Parameters


@dataclass(frozen=True)
class Params:
    quick: bool
    runs: int  # of every bulk, fan-out and stalled-viewer case
    echo_keystrokes: int
    echo_warmup: int
    echo_gap_s: float  # pause between keystrokes (a closed loop otherwise)
    busy_sessions: int
    busy_lines_per_s: int
    busy_line_bytes: int
    small_bytes: int  # head -c N of the small-writes workload (a multiple of 100)
    raw_bytes: int
    fanout_viewers: int
    reattach_bytes: int
    reattach_attaches: int
    rss_sessions: int
    rss_viewers_per_session: int
    # How each round of the 100-session test ends: "left" = viewers close, then the sessions end;
    # "watched" = the sessions end while their viewers are attached. Several rounds show whether memory comes back.
    rss_rounds: tuple[str, ...]
    no_deflate: bool  # what-if: relay with WebSocket permessage-deflate off (not the shipped configuration)
    total_budget_s: float

    @classmethod
    def make(cls, quick: bool, runs: int | None = None, no_deflate: bool = False) -> Params:
        runs = runs or (1 if quick else 5)
        return cls(
            quick=quick,
            runs=runs,
            echo_keystrokes=200 if quick else 1000,
            echo_warmup=20 if quick else 50,
            echo_gap_s=0.001,
            busy_sessions=50,
            busy_lines_per_s=100,
            busy_line_bytes=200,  # 20 kB/s per session, as in issue 12
            small_bytes=10_000_000 if quick else 50_000_000,
            raw_bytes=(10 if quick else 50) * MiB,
            fanout_viewers=10,
            reattach_bytes=10_000_000,
            reattach_attaches=5,
            rss_sessions=100,
            rss_viewers_per_session=2,
            rss_rounds=("watched",) if quick else ("left", "left", "watched", "watched"),
            no_deflate=no_deflate,
            total_budget_s=(100 + 30 * runs) if quick else (420 + 110 * runs),
        )

    def workloads(self) -> tuple[Workload, Workload]:
        return Workload("small", self.small_bytes, b"\n"), Workload("raw", self.raw_bytes, b"g")


class BenchError(Exception):
    pass


# ---------------------------------------------------------------------------------------------------------------
# Processes


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (bytes) from /proc/PID/status."""
    found: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0]) * 1024
    return found


def proc_cpu(pid: int) -> float:
    """utime + stime of the process itself (not its children), in seconds."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    return ""


def system_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat (steal and guest time left out)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, _steal = values
    busy = user + nice + system + irq + softirq
    return float(busy), float(busy + idle + iowait)


def process_table() -> tuple[dict[int, int], dict[int, int]]:
    """(parent pid, jiffies used incl. reaped children) of every process, from /proc/PID/stat."""
    parent: dict[int, int] = {}
    used: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        parent[int(entry.name)] = int(fields[1])
        used[int(entry.name)] = sum(int(v) for v in fields[11:15])  # utime, stime, cutime, cstime
    return parent, used


def descendants(root: int) -> list[int]:
    parent, _ = process_table()
    children: dict[int, list[int]] = {}
    for pid, ppid in parent.items():
        children.setdefault(ppid, []).append(pid)
    found: list[int] = []
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


class OtherLoad:
    """How much CPU user processes other than this benchmark and its descendants used during a phase.

    A noisy-machine check. Kernel threads are not counted (loopback softirq and writeback caused by the run itself).
    A process that ends during the phase moves its CPU time into its parent's cutime: its time from before the
    phase is taken off again, so only what was spent during the phase counts.
    """

    def __init__(self) -> None:
        self.parent, self.used = process_table()
        self.total = system_cpu()[1]

    def percent(self) -> float:
        parent, used = process_table()
        total = system_cpu()[1] - self.total
        ours = self._ours(parent) | self._ours(self.parent)
        other = 0
        for pid, jiffies in used.items():
            if pid not in ours and pid != 2 and parent[pid] != 2:
                other += jiffies - self.used.get(pid, 0)
        for pid, jiffies in self.used.items():
            if pid not in used and pid not in ours and self.parent[pid] not in ours and self.parent[pid] != 2:
                other -= jiffies  # ended during the phase; its earlier time just moved into its parent's cutime
        return round(max(0.0, 100 * other / max(total, 1)), 1)

    @staticmethod
    def _ours(parent: dict[int, int]) -> set[int]:
        children: dict[int, list[int]] = {}
        for pid, ppid in parent.items():
            children.setdefault(ppid, []).append(pid)
        ours, todo = set(), [os.getpid()]
        while todo:
            pid = todo.pop()
            ours.add(pid)
            todo.extend(children.get(pid, []))
        return ours


class Child:
    """A child process in its own process group, its merged output collected line by line."""

    registry: list[Child] = []

    def __init__(self, name: str, argv: list[str], env: dict[str, str], stdin: int | None = None) -> None:
        self.name = name
        self.lines: list[str] = []
        self.popen = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL if stdin is None else stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        Child.registry.append(self)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def _read(self) -> None:
        assert self.popen.stdout is not None
        with contextlib.suppress(ValueError, OSError):
            for line in self.popen.stdout:
                self.lines.append(line.rstrip("\n"))

    def output(self, last: int = 30) -> str:
        return "\n".join(self.lines[-last:])

    async def wait_for(self, pattern: str, seconds: float) -> re.Match[str]:
        regex = re.compile(pattern)
        deadline = time.monotonic() + seconds
        seen = 0
        while time.monotonic() < deadline:
            lines = self.lines
            for line in lines[seen:]:
                match = regex.search(line)
                if match:
                    return match
            seen = len(lines)
            if self.popen.poll() is not None:
                await asyncio.sleep(0.1)  # let the reader catch the last lines
                raise BenchError(f"{self.name} exited with {self.popen.returncode}:\n{self.output()}")
            await asyncio.sleep(0.02)
        raise BenchError(f"timed out after {seconds:.0f}s waiting for {pattern!r} from {self.name}:\n{self.output()}")

    def stop(self, grace: float = 10) -> int | None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.popen.wait(5)
        self._reader.join(2)
        return self.popen.returncode

    def kill_now(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if self.popen.poll() is None:
                os.killpg(self.popen.pid, signal.SIGKILL)

    @classmethod
    def stop_all(cls) -> None:
        for child in reversed(cls.registry):
            child.stop()
        cls.registry.clear()


def role_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAUDENEST_")}
    env.update(
        CLAUDENEST_HOME=str(home),
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
        PYTHONUNBUFFERED="1",
        NO_COLOR="1",
    )
    return env


def claudenest_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "claudenest", *args]


# What-if only (--what-if-no-deflate): the same relay, with uvicorn's permessage-deflate switched off.
NO_DEFLATE_SRC = """
import sys, uvicorn
_init = uvicorn.Config.__init__
def _no_deflate(self, *args, **kwargs):
    kwargs["ws_per_message_deflate"] = False
    _init(self, *args, **kwargs)
uvicorn.Config.__init__ = _no_deflate
from claudenest.cli.main import main
sys.argv[0] = "claudenest"
main()
"""


def relay_argv(port: int, no_deflate: bool) -> list[str]:
    args = ["relay", "serve", "--port", str(port)]
    return [sys.executable, "-c", NO_DEFLATE_SRC, *args] if no_deflate else claudenest_argv(*args)


# ---------------------------------------------------------------------------------------------------------------
# The ClaudeNest deployments: relay + agent as two processes ("split"), and `claudenest up` ("up")


@dataclass
class Stack(abc.ABC):
    """A running ClaudeNest: its URL, a user's token, the paired machine, and whose CPU and memory count."""

    name: str
    url: str
    token: str
    machine_id: str
    api: RelayClient

    async def new_session(self, command: list[str]) -> str:
        session = await self.api.create_session(machine_id=self.machine_id, command=command, cols=COLS, rows=ROWS)
        if session["status"] != "running":
            raise BenchError(f"session did not start: {session}")
        return str(session["id"])

    async def terminate(self, session_id: str) -> None:
        with contextlib.suppress(Exception):
            await self.api.terminate(session_id)

    @abc.abstractmethod
    def cpu(self) -> dict[str, float]:
        """CPU seconds used so far, by part (never the PTY programs)."""

    @abc.abstractmethod
    def relay_pid(self) -> int:
        """The process that serves the relay (for its RSS)."""

    @abc.abstractmethod
    def memory_pids(self) -> dict[str, int]:
        """Every process whose memory counts, by part."""

    @abc.abstractmethod
    async def stop(self) -> dict[str, int | None]:
        """Stop every process of the deployment; their exit codes, by part."""


@dataclass
class SplitStack(Stack):
    root: Path
    relay: Child
    agent: Child
    no_deflate: bool

    def cpu(self) -> dict[str, float]:
        return {"relay": proc_cpu(self.relay.pid), "agent": proc_cpu(self.agent.pid)}

    def relay_pid(self) -> int:
        return self.relay.pid

    def memory_pids(self) -> dict[str, int]:
        return {"relay": self.relay.pid, "agent": self.agent.pid}

    async def stop(self) -> dict[str, int | None]:
        await self.api.close()
        return {
            "agent": await asyncio.to_thread(self.agent.stop, 20),
            "relay": await asyncio.to_thread(self.relay.stop, 20),
        }

    async def restart(self) -> None:
        """Fresh relay and agent processes (same database, same port, same pairing): a clean memory baseline."""
        await asyncio.to_thread(self.agent.stop, 20)
        await asyncio.to_thread(self.relay.stop, 20)
        await self.api.close()
        port = int(self.url.rsplit(":", 1)[1])
        self.relay = Child("relay", relay_argv(port, self.no_deflate), role_env(self.root / "relay"))
        await self.relay.wait_for(r"listening on (http://\S+)", 30)
        self.api = RelayClient(self.url, self.token)
        self.agent = Child("agent", claudenest_argv("agent", "run"), role_env(self.root / "agent"))
        await self.agent.wait_for(r"connected to ws://", 30)


def counted_in_up(pid: int) -> bool:
    """The rule for `up`'s CPU: a descendant counts when its command line names claudenest (an agent or relay
    process of its own), so the PTY programs (sh, head, tr, fold, cat, python -c ...) do not."""
    return "claudenest" in proc_cmdline(pid)


@dataclass
class UpStack(Stack):
    proc: Child

    def cpu(self) -> dict[str, float]:
        children = sum(proc_cpu(pid) for pid in descendants(self.proc.pid) if counted_in_up(pid))
        return {"up": proc_cpu(self.proc.pid), "up_children": children}

    def census(self) -> list[dict[str, Any]]:
        """Every descendant of the up process, and whether its CPU counts."""
        return [
            {"pid": pid, "cmdline": proc_cmdline(pid)[:100], "counted": counted_in_up(pid)}
            for pid in descendants(self.proc.pid)
        ]

    def relay_pid(self) -> int:
        return self.proc.pid

    def memory_pids(self) -> dict[str, int]:
        found = {"up": self.proc.pid}
        for number, pid in enumerate(p for p in descendants(self.proc.pid) if counted_in_up(p)):
            found[f"up_child{number + 1}"] = pid
        return found

    async def stop(self) -> dict[str, int | None]:
        await self.api.close()
        return {"up": await asyncio.to_thread(self.proc.stop, 20)}


async def start_split(root: Path, no_deflate: bool = False) -> SplitStack:
    relay_home, agent_home = root / "relay", root / "agent"
    relay = Child("relay", relay_argv(0, no_deflate), role_env(relay_home))
    url = (await relay.wait_for(r"listening on (http://\S+)", 30)).group(1)
    added = await asyncio.to_thread(
        subprocess.run,
        claudenest_argv("relay", "user", "add", "bench@example.com", "--json"),
        env=role_env(relay_home),
        capture_output=True,
        text=True,
        timeout=60,
    )
    if added.returncode != 0:
        raise BenchError(f"relay user add failed: {added.stdout}\n{added.stderr}")
    token = json.loads(added.stdout)["token"]

    pairing = Child("pair", claudenest_argv("pair", "--relay", url, "--name", "bench", "--json"), role_env(agent_home))
    code = json.loads((await pairing.wait_for(r'^\{"code"', 30)).string)["code"]
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        approved = await http.post(
            f"/api/pairing/{code}/approve", headers={"Authorization": f"Bearer {token}"}, json={"name": "bench"}
        )
        if approved.status_code != 200:
            raise BenchError(f"pairing approval failed: {approved.status_code} {approved.text}")
    done = json.loads((await pairing.wait_for(r'"status": "completed"', 30)).string)
    pairing.stop()

    agent = Child("agent", claudenest_argv("agent", "run"), role_env(agent_home))
    await agent.wait_for(r"connected to ws://", 30)
    api = RelayClient(url, token)
    return SplitStack("split", url, token, done["machine_id"], api, root, relay, agent, no_deflate)


async def start_up(root: Path) -> UpStack:
    """`claudenest up --port 0` in its own home: it creates the owner, the CLI token and this machine, and pairs it."""
    home = root / "up"
    proc = Child("up", claudenest_argv("up", "--port", "0"), role_env(home))
    url = (await proc.wait_for(r"ClaudeNest is up at (http://\S+)", 60)).group(1)
    credentials = tomllib.loads((home / "config" / "credentials.toml").read_text())
    token = str(credentials["user"][url])
    api = RelayClient(url, token)
    deadline = time.monotonic() + 30
    while True:
        online = [m for m in await api.machines() if m.get("status") == "online"]
        if online:
            return UpStack("up", url, token, str(online[0]["id"]), api, proc)
        if time.monotonic() > deadline:
            raise BenchError(f"up's agent is not online after 30 s:\n{proc.output()}")
        await asyncio.sleep(0.1)


async def cn_attach(stack: Stack, session_id: str, from_offset: int | None = 0) -> ClientConnection:
    ws = await stack.api.connect_viewer()
    await ws.send(encode_message(Attach(session_id=session_id, from_offset=from_offset)))
    async with asyncio.timeout(15):
        while True:
            raw = await ws.recv()
            if isinstance(raw, str):
                message = decode_message(raw)
                if isinstance(message, Attached):
                    return ws
                if isinstance(message, Error):
                    raise BenchError(f"attach refused: {message.message}")


# ---------------------------------------------------------------------------------------------------------------
# terminado, in its own process (this script with --internal terminado-server)


def terminado_server_main() -> None:
    import tornado.httpserver
    import tornado.netutil
    import tornado.web
    from terminado.management import NamedTermManager, PtyWithClients
    from terminado.websocket import TermSocket

    class BenchTermManager(NamedTermManager):
        """NamedTermManager whose command depends on the terminal's name (argv_for_terminal)."""

        def get_terminal(self, term_name: Any = None) -> PtyWithClients:
            if term_name in self.terminals:
                return self.terminals[term_name]
            term = self.new_terminal(shell_command=argv_for_terminal(str(term_name)), height=ROWS, width=COLS)
            term.term_name = term_name
            self.terminals[term_name] = term
            self.start_reading(term)
            return term

        def client_disconnected(self, websocket: TermSocket) -> None:
            # Like UniqueTermManager: the last client gone ends the terminal (the busy printers must stop).
            terminal = websocket.terminal
            if terminal is not None and not terminal.clients:
                with contextlib.suppress(Exception):
                    terminal.killpg(signal.SIGHUP)

    async def main() -> None:
        manager = BenchTermManager(shell_command=ECHO_ARGV)
        app = tornado.web.Application([(r"/named/([A-Za-z0-9_-]+)", TermSocket, {"term_manager": manager})])
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        server = tornado.httpserver.HTTPServer(app)
        server.add_sockets(sockets)
        print(f"terminado listening on {sockets[0].getsockname()[1]}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        server.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(manager.shutdown(), 5)

    asyncio.run(main())


@dataclass
class Terminado:
    proc: Child
    port: int

    def url(self, name: str) -> str:
        return f"ws://127.0.0.1:{self.port}/named/{name}"

    def cpu(self) -> dict[str, float]:
        return {"terminado": proc_cpu(self.proc.pid)}


async def start_terminado(root: Path) -> Terminado:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAUDENEST_")}
    env.update(PYTHONUNBUFFERED="1", HOME=str(root))
    proc = Child("terminado", [sys.executable, __file__, "--internal", "terminado-server"], env)
    port = int((await proc.wait_for(r"terminado listening on (\d+)", 30)).group(1))
    return Terminado(proc, port)


async def td_connect(url: str) -> ClientConnection:
    ws = await websockets.connect(url, max_size=None, ping_interval=None)
    async with asyncio.timeout(15):
        while True:  # ["setup", {}] first
            message = json.loads(await ws.recv())
            if message[0] == "setup":
                return ws


# ---------------------------------------------------------------------------------------------------------------
# 1: keystroke echo


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        position = q * (len(ordered) - 1)
        low = int(position)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (position - low)

    return {
        "n": len(ordered),
        "p50_us": round(at(0.50), 1),
        "p90_us": round(at(0.90), 1),
        "p99_us": round(at(0.99), 1),
        "max_us": round(ordered[-1], 1),
        "mean_us": round(sum(ordered) / len(ordered), 1),
    }


async def echo_loop(
    send: Callable[[bytes], Awaitable[None]],
    receive_echo: Callable[[], Awaitable[bytes]],
    params: Params,
) -> list[float]:
    samples: list[float] = []
    for i in range(params.echo_warmup + params.echo_keystrokes):
        key = bytes([97 + i % 26])
        started = time.perf_counter_ns()
        await send(key)
        async with asyncio.timeout(10):
            got = await receive_echo()
        elapsed_us = (time.perf_counter_ns() - started) / 1000
        if got != key:
            raise BenchError(f"echo mismatch: sent {key!r}, got {got!r}")
        if i >= params.echo_warmup:
            samples.append(elapsed_us)
        if params.echo_gap_s:
            await asyncio.sleep(params.echo_gap_s)
    return samples


async def cn_echo(stack: Stack, params: Params) -> dict[str, Any]:
    session_id = await stack.new_session(ECHO_ARGV)
    ws = await cn_attach(stack, session_id)
    await asyncio.sleep(0.3)  # let `stty raw -echo` run before the first key

    async def send(key: bytes) -> None:
        await ws.send(encode_frame(Frame(FrameKind.INPUT, session_id, 0, key)))

    async def receive_echo() -> bytes:
        while True:
            raw = await ws.recv()
            if isinstance(raw, bytes):
                frame = decode_frame(raw)
                if frame.kind is FrameKind.OUTPUT and frame.session_id == session_id:
                    return frame.payload

    try:
        samples = await echo_loop(send, receive_echo, params)
    finally:
        await ws.close()
        await stack.terminate(session_id)
    return percentiles(samples)


async def td_echo(terminado: Terminado, name: str, params: Params) -> dict[str, Any]:
    ws = await td_connect(terminado.url(name))
    await asyncio.sleep(0.3)

    async def send(key: bytes) -> None:
        await ws.send(json.dumps(["stdin", key.decode()]))

    async def receive_echo() -> bytes:
        while True:
            message = json.loads(await ws.recv())
            if message[0] == "stdout":
                return str(message[1]).encode()

    try:
        samples = await echo_loop(send, receive_echo, params)
    finally:
        await ws.close()
    return percentiles(samples)


# ---------------------------------------------------------------------------------------------------------------
# Background load: N sessions printing, drained by one viewer each in a separate process
# (this script with --internal drain; reads its job as one JSON line on stdin, "stop" ends it)


def drain_main() -> None:
    job = json.loads(sys.stdin.readline())
    totals = {"bytes": 0, "frames": 0, "gaps": 0, "gap_bytes": 0}

    async def drain_cn(api: RelayClient, session_id: str, ready: asyncio.Event) -> None:
        ws = await api.connect_viewer()
        await ws.send(encode_message(Attach(session_id=session_id, from_offset=None, read_only=True)))
        async for raw in ws:
            if isinstance(raw, bytes):
                totals["frames"] += 1
                totals["bytes"] += len(raw) - 25
            else:
                message = decode_message(raw)
                if isinstance(message, Attached):
                    ready.set()
                elif isinstance(message, Gap):
                    totals["gaps"] += 1
                    totals["gap_bytes"] += message.to_offset - message.from_offset

    async def drain_td(url: str, ready: asyncio.Event) -> None:
        async with websockets.connect(url, max_size=None, ping_interval=None) as ws:
            ready.set()
            async for raw in ws:
                message = json.loads(raw)
                if message[0] == "stdout":
                    totals["frames"] += 1
                    totals["bytes"] += len(message[1])

    async def main() -> None:
        readies: list[asyncio.Event] = []
        tasks: list[asyncio.Task[None]] = []
        api = RelayClient(job["url"], job["token"]) if job["kind"] == "cn" else None
        for target in job["targets"]:
            ready = asyncio.Event()
            readies.append(ready)
            if api is not None:
                tasks.append(asyncio.create_task(drain_cn(api, target, ready)))
            else:
                tasks.append(asyncio.create_task(drain_td(target, ready)))
        async with asyncio.timeout(60):
            await asyncio.gather(*(r.wait() for r in readies))
        await asyncio.sleep(1.0)  # past the attach backlog
        for key in totals:
            totals[key] = 0
        started = time.monotonic()
        print(json.dumps({"ready": len(tasks)}), flush=True)
        await asyncio.to_thread(sys.stdin.readline)  # "stop" or EOF
        elapsed = time.monotonic() - started
        print(json.dumps({**totals, "elapsed": elapsed, "failed": sum(t.done() for t in tasks)}), flush=True)
        for task in tasks:
            task.cancel()
        if api is not None:
            await api.close()

    asyncio.run(main())


class Drainer:
    def __init__(self, job: dict[str, Any]) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = Child("drain", [sys.executable, __file__, "--internal", "drain"], env, stdin=subprocess.PIPE)
        assert self.proc.popen.stdin is not None
        self.proc.popen.stdin.write(json.dumps(job) + "\n")
        self.proc.popen.stdin.flush()

    async def ready(self) -> None:
        await self.proc.wait_for(r'^\{"ready"', 90)

    async def stop(self) -> dict[str, Any]:
        assert self.proc.popen.stdin is not None
        with contextlib.suppress(OSError):
            self.proc.popen.stdin.write("stop\n")
            self.proc.popen.stdin.close()
        stats = json.loads((await self.proc.wait_for(r'^\{"bytes"', 30)).string)
        await asyncio.to_thread(self.proc.stop, 5)
        return dict(stats)


async def with_window(pids: dict[str, int], work: Callable[[], Awaitable[Any]]) -> tuple[Any, dict[str, Any]]:
    """Run ``work`` and report each process's CPU use (percent of one core) and the machine's, over that window."""
    cpu0 = {name: proc_cpu(pid) for name, pid in pids.items()}
    busy0, total0 = system_cpu()
    started = time.monotonic()
    result = await work()
    elapsed = time.monotonic() - started
    busy1, total1 = system_cpu()
    usage = {f"{name}_cpu_pct": round(100 * (proc_cpu(pid) - cpu0[name]) / elapsed, 1) for name, pid in pids.items()}
    usage["machine_cpu_pct"] = round(100 * (busy1 - busy0) / max(total1 - total0, 1), 1)
    usage["window_s"] = round(elapsed, 2)
    return result, usage


async def cn_echo_under_load(stack: SplitStack, params: Params) -> dict[str, Any]:
    busy: list[str] = []
    drainer: Drainer | None = None
    try:
        for _ in range(params.busy_sessions):
            busy.append(await stack.new_session(printer_argv(params.busy_lines_per_s, params.busy_line_bytes)))
        drainer = Drainer({"kind": "cn", "url": stack.url, "token": stack.token, "targets": busy})
        await drainer.ready()
        await asyncio.sleep(1.0)
        pids = {"relay": stack.relay.pid, "agent": stack.agent.pid, "drain": drainer.proc.pid}
        echo, usage = await with_window(pids, lambda: cn_echo(stack, params))
        load = await drainer.stop()
        drainer = None
    finally:
        if drainer is not None:
            drainer.proc.stop(5)
        await asyncio.gather(*(stack.terminate(s) for s in busy))
    return {**echo, "load": describe_load(load, params), "cpu": usage}


async def td_echo_under_load(terminado: Terminado, params: Params) -> dict[str, Any]:
    names = [f"busy-{params.busy_lines_per_s}-{params.busy_line_bytes}-{i}" for i in range(params.busy_sessions)]
    drainer = Drainer({"kind": "terminado", "targets": [terminado.url(n) for n in names]})
    try:
        await drainer.ready()
        await asyncio.sleep(1.0)
        pids = {"terminado": terminado.proc.pid, "drain": drainer.proc.pid}
        echo, usage = await with_window(pids, lambda: td_echo(terminado, "echo-loaded", params))
        load = await drainer.stop()
    finally:
        drainer.proc.stop(5)  # its viewers leave, so BenchTermManager ends the printers
    return {**echo, "load": describe_load(load, params), "cpu": usage}


def describe_load(stats: dict[str, Any], params: Params) -> dict[str, Any]:
    elapsed = max(float(stats["elapsed"]), 1e-9)
    return {
        "sessions": params.busy_sessions,
        "target_lines_per_s_each": params.busy_lines_per_s,
        "line_bytes": params.busy_line_bytes,
        "drained_kB_per_s": round(stats["bytes"] / elapsed / 1000, 1),
        "drained_frames_per_s": round(stats["frames"] / elapsed, 0),
        "gaps": stats["gaps"],
        "viewer_failures": stats["failed"],
    }


# ---------------------------------------------------------------------------------------------------------------
# 2 + 3: bulk output to 1 or 10 viewers, every byte verified


@dataclass
class Received:
    nbytes: int = 0
    frames: int = 0
    gaps: int = 0  # gap messages
    gap_bytes: int = 0  # bytes skipped by gaps, and by holes nobody announced
    mismatched_frames: int = 0
    hasher: Any = field(default_factory=hashlib.sha256)
    ready_at: float = 0.0
    last_at: float = 0.0
    go_at: float = 0.0  # when the go byte was sent: pauses count between frames after it
    max_pause: float = 0.0

    def take(self, expected: bytes, offset: int, payload: bytes) -> None:
        now = time.perf_counter()
        if self.go_at and self.last_at >= self.go_at:
            self.max_pause = max(self.max_pause, now - self.last_at)
        if memoryview(expected)[offset : offset + len(payload)] != payload:
            self.mismatched_frames += 1
        self.hasher.update(payload)
        self.nbytes += len(payload)
        self.frames += 1
        self.last_at = now

    def verdict(self, expected: bytes) -> dict[str, Any]:
        complete = (
            self.nbytes == len(expected)
            and self.gaps == 0
            and self.gap_bytes == 0
            and self.mismatched_frames == 0
            and self.hasher.hexdigest() == digest_of(expected)
        )
        return {
            "bytes": self.nbytes,
            "frames": self.frames,
            "gaps": self.gaps,
            "gap_bytes": self.gap_bytes,
            "mismatched_frames": self.mismatched_frames,
            "max_pause_ms": round(self.max_pause * 1000, 1),
            "sha256_ok": complete,
        }


@dataclass
class Follower:
    """One ClaudeNest viewer's position in a session's stream: the next offset it lacks, and what it got."""

    session_id: str
    expected: bytes
    got: Received
    offset: int = 0
    end: int | None = None  # the session's end offset, once it ended

    @property
    def done(self) -> bool:
        return self.end is not None and self.offset >= self.end

    def on_binary(self, raw: bytes) -> None:
        frame = decode_frame(raw)
        if frame.kind is not FrameKind.OUTPUT or frame.session_id != self.session_id or frame.end <= self.offset:
            return
        start = max(self.offset, frame.offset)
        if start > self.offset:  # a hole the relay did not announce
            self.got.gap_bytes += start - self.offset
        self.got.take(self.expected, start, frame.payload[start - frame.offset :])
        self.offset = frame.end

    def on_text(self, raw: str | bytes) -> Message:
        message = decode_message(raw)
        if isinstance(message, Gap) and message.session_id == self.session_id and message.to_offset > self.offset:
            self.got.gaps += 1
            self.got.gap_bytes += message.to_offset - max(self.offset, message.from_offset)
            self.offset = message.to_offset
        elif isinstance(message, SessionStatus) and message.session_id == self.session_id and process_ended(message):
            self.end = message.end_offset if message.end_offset is not None else self.offset
        return message


async def cn_receive(
    ws: ClientConnection, session_id: str, expected: bytes, got: Received, ready: asyncio.Event
) -> None:
    follower = Follower(session_id, expected, got)
    while not follower.done:
        raw = await ws.recv()
        if isinstance(raw, bytes):
            follower.on_binary(raw)
            if follower.offset >= 1 and not ready.is_set():
                got.ready_at = time.perf_counter()
                ready.set()
        else:
            follower.on_text(raw)


async def td_receive(ws: ClientConnection, expected: bytes, got: Received, ready: asyncio.Event) -> None:
    with contextlib.suppress(websockets.ConnectionClosed):
        async for raw in ws:
            message = json.loads(raw)
            if message[0] == "stdout":
                payload = str(message[1]).encode()
                got.take(expected, got.nbytes, payload)
                if not ready.is_set():
                    got.ready_at = time.perf_counter()
                    ready.set()
            elif message[0] == "disconnect":
                break


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: after[name] - before.get(name, 0.0) for name in after}


async def run_bulk(
    viewers: int,
    expected: bytes,
    connect: Callable[[], Awaitable[ClientConnection]],
    receive: Callable[[ClientConnection, Received, asyncio.Event], Coroutine[Any, Any, None]],
    go: Callable[[ClientConnection], Awaitable[None]],
    cpu: Callable[[], dict[str, float]],
    timeout_s: float,
) -> dict[str, Any]:
    sockets = [await connect() for _ in range(viewers)]
    received = [Received() for _ in sockets]
    readies = [asyncio.Event() for _ in sockets]
    tasks = [
        asyncio.create_task(receive(ws, got, ready)) for ws, got, ready in zip(sockets, received, readies, strict=True)
    ]
    try:
        async with asyncio.timeout(60):
            await asyncio.gather(*(r.wait() for r in readies))  # every viewer has the "R" marker
        cpu0 = cpu()
        client0 = os.times()
        started = time.perf_counter()
        for got in received:
            got.go_at = started
        await go(sockets[0])
        async with asyncio.timeout(timeout_s):
            await asyncio.gather(*tasks)
        finished = max(got.last_at for got in received)
        client1 = os.times()
        await asyncio.sleep(0.5)  # the relay's last batch of persistence belongs to this transfer
        used = cpu_delta(cpu0, cpu())
    finally:
        for task in tasks:
            task.cancel()
        for ws in sockets:
            with contextlib.suppress(Exception):
                await ws.close()
    elapsed = max(finished - started, 1e-9)
    payload = len(expected) - 1  # without the "R" marker
    verdicts = [got.verdict(expected) for got in received]
    delivered = sum(v["bytes"] - 1 for v in verdicts)  # bytes that really reached the viewers (gaps excluded)
    mb = payload / 1e6
    total_cpu = sum(used.values())
    return {
        "viewers": viewers,
        "bytes": payload,
        "seconds": round(elapsed, 3),
        # Goodput: bytes each viewer really received per second (what a gap skips does not count).
        "MB_per_s_per_viewer": round(delivered / viewers / elapsed / 1e6, 2),
        "MB_per_s_delivered": round(delivered / elapsed / 1e6, 2),
        "lost_pct": round(100 * (1 - delivered / (payload * viewers)), 2),
        "all_verified": all(v["sha256_ok"] for v in verdicts),
        "gaps": sum(v["gaps"] for v in verdicts),
        "bytes_lost": sum(max(0, len(expected) - v["bytes"]) for v in verdicts),
        "gap_bytes": sum(v["gap_bytes"] for v in verdicts),
        "mismatched_frames": sum(v["mismatched_frames"] for v in verdicts),
        "frames_per_viewer": round(sum(v["frames"] for v in verdicts) / viewers),
        "max_pause_ms": max(v["max_pause_ms"] for v in verdicts),
        # This process (the viewers, verifying every byte): near 100% means the client, not the server, set the pace.
        "client_cpu_pct": round(100 * (client1.user + client1.system - client0.user - client0.system) / elapsed),
        "cpu_s": {name: round(value, 3) for name, value in used.items()},
        "cpu_ms_per_MB": round(1000 * total_cpu / mb, 2),
        "cpu_ms_per_MB_by_part": {name: round(1000 * value / mb, 2) for name, value in used.items()},
        "per_viewer": verdicts,
    }


def cn_go(session_id: str, go: bytes) -> Callable[[ClientConnection], Awaitable[None]]:
    async def send(ws: ClientConnection) -> None:
        await ws.send(encode_frame(Frame(FrameKind.INPUT, session_id, 0, go)))

    return send


async def cn_bulk(stack: Stack, workload: Workload, viewers: int) -> dict[str, Any]:
    expected = workload.expected()
    session_id = await stack.new_session(workload.argv())
    try:
        return await run_bulk(
            viewers,
            expected,
            lambda: cn_attach(stack, session_id, 0),
            lambda ws, got, ready: cn_receive(ws, session_id, expected, got, ready),
            cn_go(session_id, workload.go),
            stack.cpu,
            timeout_s=180,
        )
    except BaseException:
        await stack.terminate(session_id)  # only if it did not end by itself (the API on an ended one is noise)
        raise


async def td_bulk(terminado: Terminado, workload: Workload, viewers: int, tag: str) -> dict[str, Any]:
    expected = workload.expected()
    url = terminado.url(f"{workload.key}-{workload.nbytes}-{tag}")

    async def go(ws: ClientConnection) -> None:
        await ws.send(json.dumps(["stdin", workload.go.decode()]))

    return await run_bulk(
        viewers,
        expected,
        lambda: td_connect(url),
        lambda ws, got, ready: td_receive(ws, expected, got, ready),
        go,
        terminado.cpu,
        timeout_s=180,
    )


def median_of(values: list[float]) -> float:
    return round(statistics.median(values), 2) if values else 0.0


def series(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the runs (each measure on its own), every run's headline numbers, losses summed over all runs."""
    parts = sorted({part for r in runs for part in r["cpu_ms_per_MB_by_part"]})
    return {
        "runs_count": len(runs),
        "MB_per_s_per_viewer": median_of([r["MB_per_s_per_viewer"] for r in runs]),
        "MB_per_s_delivered": median_of([r["MB_per_s_delivered"] for r in runs]),
        "cpu_ms_per_MB": median_of([r["cpu_ms_per_MB"] for r in runs]),
        "cpu_ms_per_MB_by_part": {
            part: median_of([r["cpu_ms_per_MB_by_part"].get(part, 0.0) for r in runs]) for part in parts
        },
        "max_pause_ms": median_of([r["max_pause_ms"] for r in runs]),
        "client_cpu_pct": median_of([r["client_cpu_pct"] for r in runs]),
        "gaps_all_runs": sum(r["gaps"] for r in runs),
        "bytes_lost_all_runs": sum(r["bytes_lost"] for r in runs),
        "mismatched_frames_all_runs": sum(r["mismatched_frames"] for r in runs),
        "verified_all_runs": all(r["all_verified"] for r in runs),
        "runs": [
            {
                k: r[k]
                for k in (
                    "MB_per_s_per_viewer",
                    "MB_per_s_delivered",
                    "cpu_ms_per_MB",
                    "cpu_s",
                    "max_pause_ms",
                    "client_cpu_pct",
                    "seconds",
                    "lost_pct",
                    "gaps",
                    "mismatched_frames",
                    "frames_per_viewer",
                )
            }
            for r in runs
        ],
    }


BulkCase = Callable[[Workload, int, str], Awaitable[dict[str, Any]]]


async def bulk_phase(
    systems: dict[str, BulkCase], workloads: tuple[Workload, ...], viewers: int, runs: int
) -> dict[str, dict[str, Any]]:
    """Every system on every workload, ``runs`` times, interleaved (run 1 of all, then run 2 ...), the order of the
    systems rotated from run to run so no system always goes first."""
    names = list(systems)
    collected: dict[str, dict[str, list[dict[str, Any]]]] = {w.key: {n: [] for n in names} for w in workloads}
    for number in range(runs):
        order = names[number % len(names) :] + names[: number % len(names)]
        for workload in workloads:
            for name in order:
                result = await systems[name](workload, viewers, f"{viewers}v{number}")
                collected[workload.key][name].append(result)
    return {key: {name: series(found) for name, found in by_system.items()} for key, by_system in collected.items()}


# ---------------------------------------------------------------------------------------------------------------
# 4: a stalled viewer beside a reading one


class StalledViewer:
    """A viewer that attaches from offset 0 and then stops reading its socket entirely (a phone on a dead network).

    Built on the sans-I/O protocol with a small receive buffer, so neither a client library nor the kernel's
    loopback auto-tuning reads the stream on its behalf (as in tests/e2e/test_streaming.py). Blocking: run its
    methods in a thread.
    """

    def __init__(self, relay_url: str, token: str, session_id: str, expected: bytes) -> None:
        self.follower = Follower(session_id, expected, Received())
        self.attached = False
        self.closed_by_relay = False
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 10)
        self.sock.settimeout(15)
        self.sock.connect(("127.0.0.1", int(relay_url.rsplit(":", 1)[1])))
        self.proto = ClientProtocol(parse_uri(relay_url.replace("http", "ws", 1) + "/ws/client"), max_size=None)
        request = self.proto.connect()
        request.headers["Authorization"] = f"Bearer {token}"
        self.proto.send_request(request)
        self._flush()
        while self.proto.state is not State.OPEN:
            data = self.sock.recv(65536)
            if not data or self.proto.handshake_exc is not None:
                raise BenchError(f"stalled viewer: handshake failed ({self.proto.handshake_exc})")
            self.proto.receive_data(data)
        self.proto.send_text(encode_message(ClientHello(protocol=1, client_version="bench-stalled")).encode())
        self.proto.send_text(encode_message(Attach(session_id=session_id, from_offset=0)).encode())
        self._flush()

    def _flush(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(b"".join(self.proto.data_to_send()))

    def _read_once(self) -> bool:
        """One recv and everything in it; False once the connection is gone."""
        data = self.sock.recv(1 << 20)
        if not data:
            self.proto.receive_eof()
            self.closed_by_relay = True
            return False
        self.proto.receive_data(data)
        for event in self.proto.events_received():
            if isinstance(event, WsFrame) and event.opcode is Opcode.BINARY:
                self.follower.on_binary(bytes(event.data))
            elif isinstance(event, WsFrame) and event.opcode is Opcode.TEXT:
                message = self.follower.on_text(bytes(event.data))
                if isinstance(message, Attached):
                    self.attached = True
                elif isinstance(message, Error):
                    raise BenchError(f"stalled viewer: {message.message}")
            elif isinstance(event, WsFrame) and event.opcode is Opcode.CLOSE:
                self.closed_by_relay = True
        self._flush()  # pongs, the closing handshake
        return self.proto.state is State.OPEN

    def wait_attached(self, seconds: float) -> None:
        """Read until the relay confirms the attach, then read nothing more."""
        self.sock.settimeout(seconds)
        while not self.attached:
            if not self._read_once():
                raise BenchError("stalled viewer: the relay closed the connection before attached")

    def drain(self, idle_s: float, limit_s: float) -> dict[str, Any]:
        """Read again, until the session's end offset, the relay's silence for ``idle_s``, or ``limit_s``."""
        before = self.follower.got.nbytes
        started = time.perf_counter()
        deadline = time.monotonic() + limit_s
        self.sock.settimeout(idle_s)
        with contextlib.suppress(TimeoutError, OSError):
            while not self.follower.done and time.monotonic() < deadline and self._read_once():
                pass
        got = self.follower.got
        elapsed = max(got.last_at - started, 1e-9)
        verdict = got.verdict(self.follower.expected)
        return {
            **verdict,
            "bytes_before_stall": before,
            "expected_bytes": len(self.follower.expected),
            "missing_bytes": max(0, len(self.follower.expected) - got.nbytes),
            "end_reached": self.follower.done,
            "closed_by_relay": self.closed_by_relay,
            "drain_seconds": round(elapsed, 2),
            "drain_MB_per_s": round((got.nbytes - before) / elapsed / 1e6, 1),
        }

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


async def cn_stalled(stack: SplitStack, workload: Workload) -> dict[str, Any]:
    expected = workload.expected()
    session_id = await stack.new_session(workload.argv())
    relay = stack.relay.pid
    stalled: StalledViewer | None = None
    try:
        stalled = await asyncio.to_thread(StalledViewer, stack.url, stack.token, session_id, expected)
        await asyncio.to_thread(stalled.wait_attached, 15)
        rss_before = proc_status(relay).get("VmRSS", 0)
        reset_peak(relay)
        reader = await run_bulk(
            1,
            expected,
            lambda: cn_attach(stack, session_id, 0),
            lambda ws, got, ready: cn_receive(ws, session_id, expected, got, ready),
            cn_go(session_id, workload.go),
            stack.cpu,
            timeout_s=180,
        )
        peak_stall = proc_status(relay).get("VmHWM", 0)
        reset_peak(relay)
        drained = await asyncio.to_thread(stalled.drain, 5.0, 120.0)
        peak_drain = proc_status(relay).get("VmHWM", 0)
    except BaseException:
        await stack.terminate(session_id)
        raise
    finally:
        if stalled is not None:
            stalled.close()
    return {
        "reader": reader,
        "stalled": drained,
        "relay_rss_before_MB": round(rss_before / 1e6, 1),
        "relay_peak_during_stall_MB": round(peak_stall / 1e6, 1),
        "relay_peak_during_drain_MB": round(peak_drain / 1e6, 1),
    }


def stalled_summary(solo: list[dict[str, Any]], stalled: list[dict[str, Any]]) -> dict[str, Any]:
    solo_mb = median_of([r["MB_per_s_per_viewer"] for r in solo])
    reader_mb = median_of([r["reader"]["MB_per_s_per_viewer"] for r in stalled])
    drains = [r["stalled"] for r in stalled]
    return {
        "solo": series(solo),
        "reader": series([r["reader"] for r in stalled]),
        "reader_share_of_solo": round(reader_mb / solo_mb, 3) if solo_mb else 0.0,
        "reader_max_pause_ms_worst": max(r["reader"]["max_pause_ms"] for r in stalled),
        "relay_peak_during_stall_MB_max": max(r["relay_peak_during_stall_MB"] for r in stalled),
        "relay_peak_during_drain_MB_max": max(r["relay_peak_during_drain_MB"] for r in stalled),
        "relay_rss_before_MB": stalled[0]["relay_rss_before_MB"],
        "stalled_complete_all_runs": all(d["sha256_ok"] for d in drains),
        "stalled_gaps_all_runs": sum(d["gaps"] for d in drains),
        "stalled_missing_bytes_all_runs": sum(d["missing_bytes"] for d in drains),
        "runs": stalled,
    }


# ---------------------------------------------------------------------------------------------------------------
# 5: reattach after 10 MB missed


async def end_offset(stack: Stack, session_id: str) -> int:
    _, _, end, _ = await stack.api.logs(session_id, 0, 1)
    return end


async def wait_for_marker(stack: Stack, session_id: str, seconds: float) -> int:
    """The end offset once the program's last write (DONE_MARKER) has reached the relay."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        end = await end_offset(stack, session_id)
        if end >= len(DONE_MARKER):
            start, tail, _, _ = await stack.api.logs(session_id, end - len(DONE_MARKER), len(DONE_MARKER))
            if start + len(tail) == end and tail == DONE_MARKER:
                return end
        await asyncio.sleep(0.1)
    raise BenchError(f"the reattach program did not finish writing within {seconds:.0f} s")


async def timed_attach(stack: Stack, session_id: str) -> tuple[dict[str, Any], bytes]:
    """Attach without an offset; time until the viewer holds everything up to ``attached.end_offset``.
    Returns the numbers and what a terminal would be fed: the prelude, then the replayed bytes."""
    ws = await stack.api.connect_viewer()
    attached: Attached | None = None
    replay = bytearray()
    offset = gaps = gap_bytes = frames = 0
    try:
        started = time.perf_counter()
        attached_at = started
        await ws.send(encode_message(Attach(session_id=session_id, from_offset=None)))
        async with asyncio.timeout(30):
            while attached is None or offset < attached.end_offset:
                raw = await ws.recv()
                if isinstance(raw, bytes):
                    frame = decode_frame(raw)
                    if attached is None or frame.kind is not FrameKind.OUTPUT or frame.session_id != session_id:
                        continue
                    if frame.end <= offset:
                        continue
                    start = max(offset, frame.offset)
                    gap_bytes += start - offset  # a hole nobody announced
                    replay += frame.payload[start - frame.offset :]
                    offset = frame.end
                    frames += 1
                    continue
                message = decode_message(raw)
                if isinstance(message, Attached) and message.session_id == session_id:
                    attached, attached_at, offset = message, time.perf_counter(), message.from_offset
                elif isinstance(message, Gap) and attached is not None and message.to_offset > offset:
                    gaps += 1
                    gap_bytes += message.to_offset - max(offset, message.from_offset)
                    offset = message.to_offset
                elif isinstance(message, Error):
                    raise BenchError(f"reattach refused: {message.message}")
        live_at = time.perf_counter()
    finally:
        with contextlib.suppress(Exception):
            await ws.close()
    assert attached is not None
    prelude = getattr(attached, "prelude", "") or ""
    fed = prelude.encode() + bytes(replay)
    return {
        "attached_ms": round(1000 * (attached_at - started), 1),
        "live_ms": round(1000 * (live_at - started), 1),
        "from_offset": attached.from_offset,
        "end_offset": attached.end_offset,
        "replay_bytes": len(replay),
        "frames": frames,
        "prelude": prelude,
        "gaps": gaps,
        "gap_bytes": gap_bytes,
        "sha256": hashlib.sha256(fed).hexdigest(),
    }, fed


async def read_whole_log(stack: Stack, session_id: str, end: int) -> tuple[bytes, int]:
    """Every byte of the session from offset 0 via GET /logs; also where the log really starts (0 unless dropped)."""
    chunks: list[bytes] = []
    offset, first = 0, -1
    while offset < end:
        start, data, _, _ = await stack.api.logs(session_id, offset, 4 * MiB)
        if first < 0:
            first = start
        if not data:
            break
        chunks.append(data)
        offset = start + len(data)
    return b"".join(chunks), first


async def reattach_case(stack: Stack, params: Params, case: str) -> tuple[dict[str, Any], dict[str, bytes]]:
    argv = scroll_argv(params.reattach_bytes) if case == "scroll" else tui_argv(params.reattach_bytes)
    session_id = await stack.new_session(argv)
    try:
        started = time.monotonic()
        end = await wait_for_marker(stack, session_id, 90)
        written_s = time.monotonic() - started
        attaches: list[dict[str, Any]] = []
        fed = b""
        for number in range(params.reattach_attaches):
            found, data = await timed_attach(stack, session_id)
            attaches.append(found)
            if number == 0:
                fed = data
            await asyncio.sleep(0.2)
        stream, log_start = await read_whole_log(stack, session_id, end)
    finally:
        await stack.terminate(session_id)
    first = attaches[0]
    return {
        "case": case,
        "stream_bytes": end,
        "write_seconds": round(written_s, 2),
        "log_start_offset": log_start,
        "log_bytes_read": len(stream),
        "live_ms": median_of([a["live_ms"] for a in attaches]),
        "attached_ms": median_of([a["attached_ms"] for a in attaches]),
        "replay_from_offset": first["from_offset"],
        "replay_bytes": first["replay_bytes"],
        "prelude": first["prelude"],
        "gaps": sum(a["gaps"] for a in attaches),
        "gap_bytes": sum(a["gap_bytes"] for a in attaches),
        "replays_identical": len({a["sha256"] for a in attaches}) == 1,
        "attaches": attaches,
    }, {"reference": stream, "replay": fed}


def screen_state(data: bytes, cols: int, rows: int) -> dict[str, Any]:
    """What a terminal of that size shows after ``data`` (pyte; run in a worker process: about 1 MB/s)."""
    import pyte

    screen = pyte.Screen(cols, rows)
    pyte.ByteStream(screen).feed(data)
    attrs = [
        [
            (cell.fg, cell.bg, cell.bold, cell.reverse, cell.underscore)
            for cell in (screen.buffer[y][x] for x in range(cols))
        ]
        for y in range(rows)
    ]
    return {
        "display": list(screen.display),
        "cursor": [screen.cursor.x, screen.cursor.y],
        "cursor_hidden": bool(screen.cursor.hidden),
        "attrs": attrs,
    }


def compare_screens(reference: dict[str, Any], replay: dict[str, Any]) -> dict[str, Any]:
    rows = [
        {"row": y, "reference": ref, "replay": got}
        for y, (ref, got) in enumerate(zip(reference["display"], replay["display"], strict=True))
        if ref != got
    ]
    cells = sum(
        a != b
        for ref_row, got_row in zip(reference["attrs"], replay["attrs"], strict=True)
        for a, b in zip(ref_row, got_row, strict=True)
    )
    display_same = not rows
    cursor_same = reference["cursor"] == replay["cursor"]
    hidden_same = reference["cursor_hidden"] == replay["cursor_hidden"]
    return {
        "correct": display_same and cursor_same and hidden_same,
        "display_same": display_same,
        "rows_differing": len(rows),
        "cursor_same": cursor_same,
        "cursor": {"reference": reference["cursor"], "replay": replay["cursor"]},
        "cursor_hidden_same": hidden_same,
        "cells_with_other_colours": cells,
        "first_differences": [
            {**r, "reference": r["reference"].rstrip(), "replay": r["replay"].rstrip()} for r in rows[:3]
        ],
    }


async def check_screens(feeds: dict[str, dict[str, bytes]]) -> dict[str, dict[str, Any]]:
    """Each case's replay against its whole stream, as pyte draws them (2 worker processes, after all timing)."""
    try:
        import pyte  # noqa: F401
    except ImportError:
        return {case: {"correct": None, "why": "pyte is not installed (pip install -e '.[dev]')"} for case in feeds}
    loop = asyncio.get_running_loop()
    pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"))
    try:
        jobs = {
            (case, which): loop.run_in_executor(pool, screen_state, data, COLS, ROWS)
            for case, pair in feeds.items()
            for which, data in pair.items()
        }
        async with asyncio.timeout(300):
            states = dict(zip(jobs, await asyncio.gather(*jobs.values()), strict=True))
    except Exception as exc:  # a screen we cannot draw is a result to report, not a reason to lose the run
        return {case: {"correct": None, "why": f"pyte failed: {exc!r}"[:200]} for case in feeds}
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return {case: compare_screens(states[(case, "reference")], states[(case, "replay")]) for case in feeds}


# ---------------------------------------------------------------------------------------------------------------
# 6: relay memory with 100 sessions x 2 viewers


async def rss_round(stack: SplitStack, params: Params, label: str, ending: str) -> dict[str, Any]:
    """Sessions that wait for a byte, write FILL_BYTES, then idle in cat; measured fresh, filled, and ended."""
    sessions: list[str] = []
    viewers: list[tuple[str, ClientConnection]] = []
    counts: dict[int, int] = {}
    ended: dict[int, bool] = {}
    gaps: dict[int, int] = {}
    tasks: list[asyncio.Task[None]] = []
    terminated = False

    async def drain(index: int, ws: ClientConnection) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in ws:
                if isinstance(raw, bytes):
                    counts[index] += len(raw) - 25
                else:
                    message = decode_message(raw)
                    if isinstance(message, SessionStatus) and process_ended(message):
                        ended[index] = True
                    elif isinstance(message, Gap):
                        gaps[index] += message.to_offset - message.from_offset

    result: dict[str, Any] = {"round": label, "ending": ending, "sessions": params.rss_sessions}
    result["relay_rss_before_MB"] = round(proc_status(stack.relay.pid).get("VmRSS", 0) / 1e6, 1)
    try:
        for batch in range(0, params.rss_sessions, 10):
            size = min(10, params.rss_sessions - batch)
            sessions += await asyncio.gather(*(stack.new_session(FILL_ARGV) for _ in range(size)))
        for session_id in sessions:
            opened = await asyncio.gather(
                *(cn_attach(stack, session_id, 0) for _ in range(params.rss_viewers_per_session))
            )
            viewers += [(session_id, ws) for ws in opened]
        for index, (_, ws) in enumerate(viewers):
            counts[index] = gaps[index] = 0
            ended[index] = False
            tasks.append(asyncio.create_task(drain(index, ws)))
        await asyncio.sleep(1.5)
        result["relay_rss_fresh_MB"] = round(proc_status(stack.relay.pid)["VmRSS"] / 1e6, 1)
        result["agent_rss_fresh_MB"] = round(proc_status(stack.agent.pid)["VmRSS"] / 1e6, 1)

        started = time.monotonic()
        for session_id in sessions:
            _, ws = next(v for v in viewers if v[0] == session_id)
            await ws.send(encode_frame(Frame(FrameKind.INPUT, session_id, 0, b"g")))
        async with asyncio.timeout(120):
            while min(counts[i] + gaps[i] for i in counts) < FILL_BYTES:
                await asyncio.sleep(0.05)
        result["fill_seconds"] = round(time.monotonic() - started, 2)
        await asyncio.sleep(1.5)  # persisted, queues empty
        result["viewers_complete"] = sum(counts[i] == FILL_BYTES and not gaps[i] for i in counts)
        result["gap_bytes"] = sum(gaps.values())
        result["relay_rss_filled_MB"] = round(proc_status(stack.relay.pid)["VmRSS"] / 1e6, 1)
        result["agent_rss_filled_MB"] = round(proc_status(stack.agent.pid)["VmRSS"] / 1e6, 1)

        if ending == "watched":
            # The sessions end while their viewers are attached (a user watching a session finish), then they leave.
            terminated = True
            await asyncio.gather(*(stack.terminate(s) for s in sessions))
            async with asyncio.timeout(60):
                while not all(ended.values()):
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # the exit is persisted (and the agent told to forget) while still attached
        else:
            # The viewers leave first, then the sessions end.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*(ws.close() for _, ws in viewers), return_exceptions=True)
            await asyncio.sleep(0.5)
            terminated = True
            await asyncio.gather(*(stack.terminate(s) for s in sessions))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*(ws.close() for _, ws in viewers), return_exceptions=True)
        if sessions and not terminated:
            await asyncio.gather(*(stack.terminate(s) for s in sessions))
    await asyncio.sleep(2.0)  # flushes, forgets, agent reaps
    result["relay_rss_after_end_MB"] = round(proc_status(stack.relay.pid)["VmRSS"] / 1e6, 1)
    result["agent_rss_after_end_MB"] = round(proc_status(stack.agent.pid)["VmRSS"] / 1e6, 1)
    return result


# ---------------------------------------------------------------------------------------------------------------
# The run


def machine_info() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions: dict[str, str] = {}
    for package in ("uvicorn", "websockets", "fastapi", "terminado", "tornado", "pyte"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            versions[package] = version(package)
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "packages": versions,
    }


def reset_peak(*pids: int) -> None:
    """Start a new VmHWM period (Linux >= 4.0: writing 5 to clear_refs resets the peak RSS)."""
    for pid in pids:
        with contextlib.suppress(OSError):
            Path(f"/proc/{pid}/clear_refs").write_text("5")


def watched_pids(stacks: list[Stack], terminado: Terminado | None) -> dict[str, int]:
    found: dict[str, int] = {}
    for stack in stacks:
        for name, pid in stack.memory_pids().items():
            found[name if stack.name == "up" else f"{stack.name} {name}"] = pid
    if terminado is not None:
        found["terminado"] = terminado.proc.pid
    return found


def reset_peaks(stacks: list[Stack], terminado: Terminado | None) -> None:
    reset_peak(*watched_pids(stacks, terminado).values())


def peaks(stacks: list[Stack], terminado: Terminado | None) -> dict[str, float]:
    return {
        name: round(proc_status(pid).get("VmHWM", 0) / 1e6, 1) for name, pid in watched_pids(stacks, terminado).items()
    }


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


async def run(params: Params, root: Path) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": machine_info(), "params": params.__dict__, "peaks": {}}
    # Anything else running skews every number here: note how busy the machine was before we started.
    busy0, total0 = system_cpu()
    await asyncio.sleep(2)
    busy1, total1 = system_cpu()
    results["machine"]["busy_before_start_pct"] = round(100 * (busy1 - busy0) / max(total1 - total0, 1), 1)
    if results["machine"]["busy_before_start_pct"] > 10:
        log(f"warning: the machine was {results['machine']['busy_before_start_pct']}% busy before the benchmark")
    log("starting relay + agent (split), claudenest up, terminado")
    split, up, terminado = await asyncio.gather(
        start_split(root, params.no_deflate), start_up(root), start_terminado(root)
    )
    results["up_processes"] = up.census()
    stacks: list[Stack] = [split, up]
    results["peaks"]["setup"] = peaks(stacks, terminado)
    other = results["other_load_pct"] = {}
    exits: dict[str, int | None] = {}
    feeds: dict[str, dict[str, bytes]] = {}
    small, raw = params.workloads()
    systems: dict[str, BulkCase] = {
        "terminado": lambda w, v, tag: td_bulk(terminado, w, v, tag),
        "split": lambda w, v, tag: cn_bulk(split, w, v),
        "up": lambda w, v, tag: cn_bulk(up, w, v),
    }
    try:
        log(f"echo, idle: {params.echo_keystrokes} keystrokes each")
        window = OtherLoad()
        results["echo_idle"] = {
            "split": await cn_echo(split, params),
            "up": await cn_echo(up, params),
            "terminado": await td_echo(terminado, "echo-idle", params),
        }
        other["echo_idle"] = window.percent()

        log(
            f"bulk, 1 viewer: {small.nbytes / 1e6:.0f} MB small writes, {raw.nbytes // MiB} MiB raw, "
            f"{params.runs} run(s)"
        )
        reset_peaks(stacks, terminado)
        window = OtherLoad()
        results["bulk"] = await bulk_phase(systems, (small, raw), 1, params.runs)
        results["peaks"]["bulk"] = peaks(stacks, terminado)
        other["bulk"] = window.percent()

        log(f"fan-out: {params.fanout_viewers} viewers, small writes, {params.runs} run(s)")
        reset_peaks(stacks, terminado)
        window = OtherLoad()
        results["fanout"] = (await bulk_phase(systems, (small,), params.fanout_viewers, params.runs))[small.key]
        results["peaks"]["fanout"] = peaks(stacks, terminado)
        other["fanout"] = window.percent()

        log(f"stalled viewer (split): {params.runs} solo and {params.runs} stalled run(s)")
        retention = RelaySettings().log_cap_bytes
        if len(small.expected()) >= retention:
            raise BenchError(f"the stalled-viewer stream must stay under the relay's retention ({retention} bytes)")
        window = OtherLoad()
        solo, stalled = [], []
        for _ in range(params.runs):
            solo.append(await cn_bulk(split, small, 1))
            stalled.append(await cn_stalled(split, small))
        results["stalled"] = {**stalled_summary(solo, stalled), "retention_bytes": retention}
        other["stalled"] = window.percent()

        log(f"echo with {params.busy_sessions} busy sessions (split, terminado)")
        reset_peaks(stacks, terminado)
        window = OtherLoad()
        results["echo_loaded"] = {
            "split": await cn_echo_under_load(split, params),
            "terminado": await td_echo_under_load(terminado, params),
        }
        results["peaks"]["echo_loaded"] = peaks(stacks, terminado)
        other["echo_loaded"] = window.percent()

        log(f"reattach after {params.reattach_bytes / 1e6:.0f} MB missed (split): scrolling output, full-screen TUI")
        window = OtherLoad()
        results["reattach"] = {}
        for case in ("scroll", "tui"):
            results["reattach"][case], feeds[case] = await reattach_case(split, params, case)
        other["reattach"] = window.percent()

        exits.update(await up.stop())
        exits["terminado"] = await asyncio.to_thread(terminado.proc.stop, 10)
        stacks = [split]
        log("memory: restarting relay and agent for a clean baseline")
        await split.restart()
        await asyncio.sleep(1.0)
        window = OtherLoad()
        rounds = []
        for number, ending in enumerate(params.rss_rounds, 1):
            log(
                f"memory: round {number}/{len(params.rss_rounds)}, {params.rss_sessions} sessions x 2 viewers, {ending}"
            )
            rounds.append(await rss_round(split, params, str(number), ending))
        results["rss"] = rounds
        other["memory"] = window.percent()
        results["peaks"]["memory"] = peaks(stacks, None)
    finally:
        for stack in (split, up):
            with contextlib.suppress(Exception):
                await stack.api.close()
    log("stopping")
    exits.update(await split.stop())
    results["exit_codes"] = exits
    log("checking the reattach screens with pyte (the whole stream of each case, about 1 MB/s)")
    screens = await check_screens(feeds)
    for case, verdict in screens.items():
        results["reattach"][case]["screen"] = verdict
    results["targets"] = evaluate(results, params)
    return results


def ratio(a: float, b: float) -> float:
    return round(a / b, 2) if b else float("inf")


def evaluate(results: dict[str, Any], params: Params) -> list[dict[str, Any]]:
    """Every target of issue 12, with what this run measured (ratios to terminado from this same run)."""
    targets: list[tuple[str, str, bool]] = []
    bulk, fan = results["bulk"], results["fanout"]
    for key, label in (("small", "small writes"), ("raw", "large raw writes")):
        td = bulk[key]["terminado"]
        for deployment in ("up", "split"):
            cn = bulk[key][deployment]
            share = ratio(cn["MB_per_s_per_viewer"], td["MB_per_s_per_viewer"])
            targets.append(
                (
                    f"bulk 1 viewer >= 1.0x terminado ({label}, {deployment})",
                    f"{cn['MB_per_s_per_viewer']} vs {td['MB_per_s_per_viewer']} MB/s ({share}x)",
                    share >= 1.0,
                )
            )
            cpu = ratio(cn["cpu_ms_per_MB"], td["cpu_ms_per_MB"])
            targets.append(
                (
                    f"CPU per MB <= 1.5x terminado ({label}, {deployment})",
                    f"{cn['cpu_ms_per_MB']} vs {td['cpu_ms_per_MB']} ms/MB ({cpu}x)",
                    cpu <= 1.5,
                )
            )
    for deployment in ("up", "split"):
        lost = sum(bulk[k][deployment]["bytes_lost_all_runs"] for k in bulk)
        gaps = sum(bulk[k][deployment]["gaps_all_runs"] for k in bulk)
        verified = all(bulk[k][deployment]["verified_all_runs"] for k in bulk)
        targets.append(
            (
                f"bulk: 0 bytes lost, all verified ({deployment}, all runs)",
                f"{lost} bytes, {gaps} gaps",
                not lost and verified,
            )
        )
    idle = results["echo_idle"]
    for deployment in ("split", "up"):
        for pct, limit in (("p50", 1.3), ("p99", 1.5)):
            cn, td = idle[deployment][f"{pct}_us"], idle["terminado"][f"{pct}_us"]
            share = ratio(cn, td)
            targets.append(
                (
                    f"echo {pct} <= {limit}x terminado (idle, {deployment})",
                    f"{cn / 1000:.2f} vs {td / 1000:.2f} ms ({share}x)",
                    share <= limit,
                )
            )
    loaded = results["echo_loaded"]["split"]
    rate = loaded["load"]["drained_kB_per_s"] / params.busy_sessions
    targets.append(
        (
            f"echo p99 <= 10 ms with {params.busy_sessions} sessions printing ~20 kB/s each (split)",
            f"{loaded['p99_us'] / 1000:.2f} ms (drained {rate:.1f} kB/s each)",
            loaded["p99_us"] <= 10000,
        )
    )
    viewers = params.fanout_viewers
    for deployment in ("up", "split"):
        one = bulk["small"][deployment]["MB_per_s_per_viewer"]
        many = fan[deployment]
        times = ratio(many["MB_per_s_delivered"], one)
        targets.append(
            (
                f"fan-out: {viewers} viewers aggregate >= 8x one viewer ({deployment})",
                f"{many['MB_per_s_delivered']} vs {one} MB/s ({times}x)",
                times >= 8,
            )
        )
        targets.append(
            (
                f"fan-out: 0 bytes lost ({deployment}, all runs)",
                f"{many['bytes_lost_all_runs']} bytes, {many['gaps_all_runs']} gaps",
                many["bytes_lost_all_runs"] == 0 and many["verified_all_runs"],
            )
        )
    stall = results["stalled"]
    targets += [
        (
            "stalled viewer: the other keeps >= 90% of its solo MB/s",
            f"{stall['reader']['MB_per_s_per_viewer']} vs {stall['solo']['MB_per_s_per_viewer']} MB/s "
            f"({100 * stall['reader_share_of_solo']:.0f}%)",
            stall["reader_share_of_solo"] >= 0.9,
        ),
        (
            "stalled viewer: the other's longest pause < 100 ms",
            f"{stall['reader_max_pause_ms_worst']} ms (worst run; solo {stall['solo']['max_pause_ms']} ms)",
            stall["reader_max_pause_ms_worst"] < 100,
        ),
        (
            "stalled viewer: reading again, it gets every retained byte, no gap",
            f"{stall['stalled_missing_bytes_all_runs']} bytes missing, {stall['stalled_gaps_all_runs']} gaps",
            stall["stalled_complete_all_runs"],
        ),
        (
            "stalled viewer: relay RSS bounded (peak < 150 MB, as tests/e2e asserts)",
            f"{stall['relay_peak_during_stall_MB_max']} MB stalled, "
            f"{stall['relay_peak_during_drain_MB_max']} MB draining",
            max(stall["relay_peak_during_stall_MB_max"], stall["relay_peak_during_drain_MB_max"]) < 150,
        ),
    ]
    for case, label in (("scroll", "scrolling output"), ("tui", "full-screen TUI")):
        found = results["reattach"][case]
        screen = found.get("screen", {})
        correct = screen.get("correct")
        targets.append(
            (
                f"reattach after 10 MB missed: correct screen ({label})",
                "yes" if correct else ("not checked: " + screen.get("why", "?") if correct is None else "no"),
                bool(correct),
            )
        )
        targets.append(
            (
                f"reattach after 10 MB missed: live <= 200 ms ({label}, median of {params.reattach_attaches})",
                f"{found['live_ms']} ms",
                found["live_ms"] <= 200,
            )
        )
    for case, label in (("scroll", "scrolling output"), ("tui", "full-screen TUI")):
        found = results["reattach"][case]
        whole = found["log_start_offset"] == 0 and found["log_bytes_read"] == found["stream_bytes"]
        targets.append(
            (
                f"reattach: the full history stays readable by offset ({label})",
                f"from offset {found['log_start_offset']}: {found['log_bytes_read']} of {found['stream_bytes']} bytes",
                whole,
            )
        )
    first = results["rss"][0]
    for key, what in (("relay_rss_fresh_MB", "fresh"), ("relay_rss_filled_MB", "each wrote 1 MiB")):
        targets.append(
            (
                f"relay RSS < 150 MB, {params.rss_sessions} sessions x 2 viewers ({what})",
                f"{first[key]} MB",
                first[key] < 150,
            )
        )
    return [{"target": t, "measured": m, "met": ok} for t, m, ok in targets]


# ---------------------------------------------------------------------------------------------------------------
# Report


def table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[str(c) for c in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def runs_text(found: dict[str, Any], key: str) -> str:
    return " ".join(str(r[key]) for r in found["runs"])


def losses_text(found: dict[str, Any]) -> str:
    verified = "verified" if found["verified_all_runs"] else "NOT verified"
    return f"{found['bytes_lost_all_runs']} lost, {found['gaps_all_runs']} gaps, {verified}"


def summary(results: dict[str, Any], params: Params) -> str:
    m = results["machine"]
    out = [
        f"ClaudeNest terminal benchmark ({'quick' if params.quick else 'full'}, {params.runs} run(s) per bulk case"
        f"{', WHAT-IF relay without permessage-deflate' if params.no_deflate else ''}) - "
        f"{m['nproc']} x {m['cpu_model']}, Python {m['python']}; "
        f"machine {m['busy_before_start_pct']}% busy before start",
        "split = relay + agent as two processes; up = `claudenest up` (CPU: the up process and its descendants "
        "whose command line names claudenest)",
        "",
        f"Keystroke echo round trip, microseconds ({params.echo_keystrokes} keystrokes after "
        f"{params.echo_warmup} warm-up, {params.echo_gap_s * 1000:.0f} ms apart)",
    ]
    idle, loaded = results["echo_idle"], results["echo_loaded"]
    rows = []
    for label, data in (
        ("split, idle", idle["split"]),
        ("up, idle", idle["up"]),
        ("terminado, idle", idle["terminado"]),
        (f"split, {params.busy_sessions} busy", loaded["split"]),
        (f"terminado, {params.busy_sessions} busy", loaded["terminado"]),
    ):
        td = idle["terminado"] if "idle" in label else loaded["terminado"]
        rows.append(
            [
                label,
                data["p50_us"],
                data["p90_us"],
                data["p99_us"],
                data["max_us"],
                f"{ratio(data['p50_us'], td['p50_us'])}x",
                f"{ratio(data['p99_us'], td['p99_us'])}x",
            ]
        )
    out.append(table(["", "p50", "p90", "p99", "max", "p50/td", "p99/td"], rows))
    for name in ("split", "terminado"):
        found = loaded[name]
        load, cpu = found["load"], found["cpu"]
        cpu_text = ", ".join(f"{k.replace('_cpu_pct', '')} {v}%" for k, v in cpu.items() if k.endswith("_cpu_pct"))
        out.append(
            f"  load ({name}): {load['sessions']} x {load['target_lines_per_s_each']} lines/s of "
            f"{load['line_bytes']} bytes, drained "
            f"{load['drained_kB_per_s']} kB/s in {load['drained_frames_per_s']:.0f} frames/s, gaps {load['gaps']}; "
            f"CPU {cpu_text}"
        )

    small, raw = params.workloads()
    out += [
        "",
        f"Bulk, one viewer: small writes = {small.nbytes / 1e6:.0f} MB through fold -w 100 in a cooked PTY "
        f"({len(small.expected()) / 1e6:.1f} MB stream); raw = {raw.nbytes // MiB} MiB in 64 KiB writes to a raw PTY. "
        f"Medians of {params.runs} run(s); every byte checked",
    ]
    rows = []
    for key in ("small", "raw"):
        td = results["bulk"][key]["terminado"]
        for name in ("terminado", "split", "up"):
            found = results["bulk"][key][name]
            rows.append(
                [
                    f"{key}, {name}",
                    found["MB_per_s_per_viewer"],
                    f"{ratio(found['MB_per_s_per_viewer'], td['MB_per_s_per_viewer'])}x",
                    runs_text(found, "MB_per_s_per_viewer"),
                    found["cpu_ms_per_MB"],
                    f"{ratio(found['cpu_ms_per_MB'], td['cpu_ms_per_MB'])}x",
                    ", ".join(f"{k} {v}" for k, v in found["cpu_ms_per_MB_by_part"].items()),
                    found["max_pause_ms"],
                    found["client_cpu_pct"],
                    losses_text(found),
                ]
            )
    out.append(
        table(
            ["", "MB/s", "x td", "runs", "CPU ms/MB", "x td", "CPU by part", "max pause ms", "client CPU %", "checks"],
            rows,
        )
    )

    out += ["", f"Fan-out: {params.fanout_viewers} viewers, small writes (aggregate = bytes to all viewers per second)"]
    rows = []
    for name in ("terminado", "split", "up"):
        found = results["fanout"][name]
        one = results["bulk"]["small"][name]["MB_per_s_per_viewer"]
        rows.append(
            [
                name,
                found["MB_per_s_delivered"],
                runs_text(found, "MB_per_s_delivered"),
                found["MB_per_s_per_viewer"],
                one,
                f"{ratio(found['MB_per_s_delivered'], one)}x",
                found["cpu_ms_per_MB"],
                found["client_cpu_pct"],
                losses_text(found),
            ]
        )
    headers = ["", "aggregate MB/s", "runs", "per viewer", "1 viewer", "x 1 viewer", "CPU ms/MB", "client CPU %"]
    out.append(table([*headers, "checks"], rows))
    out.append(
        "  (client CPU: this process, which runs every viewer and checks every byte, in % of one core; near 100 it "
        "sets the pace, not the server)"
    )

    stall = results["stalled"]
    out += [
        "",
        f"Stalled viewer (split, small writes, {len(small.expected()) / 1e6:.1f} MB stream; retention "
        f"{stall['retention_bytes'] / 1e6:.1f} MB): one viewer stops reading, the other reads",
        f"  reader: {stall['reader']['MB_per_s_per_viewer']} MB/s "
        f"(runs {runs_text(stall['reader'], 'MB_per_s_per_viewer')}) vs solo {stall['solo']['MB_per_s_per_viewer']} "
        f"MB/s (runs {runs_text(stall['solo'], 'MB_per_s_per_viewer')}):"
        f" {100 * stall['reader_share_of_solo']:.0f}%; longest pause {stall['reader_max_pause_ms_worst']} ms worst "
        f"(runs {runs_text(stall['reader'], 'max_pause_ms')}; solo {runs_text(stall['solo'], 'max_pause_ms')})",
        f"  relay RSS: {stall['relay_rss_before_MB']} MB before, peak {stall['relay_peak_during_stall_MB_max']} MB "
        f"while stalled, {stall['relay_peak_during_drain_MB_max']} MB while the stalled viewer drained",
    ]
    for number, found in enumerate(stall["runs"], 1):
        d = found["stalled"]
        out.append(
            f"  stalled viewer, run {number}: received {d['bytes']} of {d['expected_bytes']} bytes "
            f"({d['bytes_before_stall']} before it stopped reading), {d['gaps']} gaps ({d['gap_bytes']} bytes), "
            f"{d['mismatched_frames']} bad frames, content "
            f"{'complete and verified' if d['sha256_ok'] else 'NOT complete'}"
            f", end reached {'yes' if d['end_reached'] else 'no'}"
            f"{', closed by the relay' if d['closed_by_relay'] else ''}; drained at {d['drain_MB_per_s']} MB/s"
        )

    out += [
        "",
        f"Reattach after {params.reattach_bytes / 1e6:.0f} MB missed (split; attach without an offset, "
        f"{params.reattach_attaches} attaches each)",
    ]
    rows = []
    for case in ("scroll", "tui"):
        found = results["reattach"][case]
        screen = found.get("screen", {})
        correct = screen.get("correct")
        rows.append(
            [
                case,
                found["stream_bytes"],
                found["replay_from_offset"],
                found["replay_bytes"],
                repr(found["prelude"]),
                found["attached_ms"],
                found["live_ms"],
                " ".join(str(a["live_ms"]) for a in found["attaches"]),
                found["gaps"],
                "yes" if correct else ("n/a" if correct is None else "NO"),
                "-"
                if correct is None
                else (
                    f"display {'ok' if screen['display_same'] else str(screen['rows_differing']) + ' rows differ'}, "
                    f"cursor {'ok' if screen['cursor_same'] else screen['cursor']}, "
                    f"hidden {'ok' if screen['cursor_hidden_same'] else 'differs'}, "
                    f"{screen['cells_with_other_colours']} cells other colours"
                ),
            ]
        )
    out.append(
        table(
            [
                "",
                "stream",
                "replay from",
                "replay bytes",
                "prelude",
                "attached ms",
                "live ms",
                "runs",
                "gaps",
                "correct screen",
                "detail",
            ],
            rows,
        )
    )

    out += ["", "Peak RSS (VmHWM, MB) per phase"]
    names = sorted({name for data in results["peaks"].values() for name in data})
    out.append(
        table(
            ["phase", *names],
            [[phase, *(data.get(n, "-") for n in names)] for phase, data in results["peaks"].items()],
        )
    )
    out += [
        "",
        f"Memory with {params.rss_sessions} sessions x {params.rss_viewers_per_session} viewers (split, VmRSS, MB)",
    ]
    rows = [
        [
            r["round"],
            r["ending"],
            r["relay_rss_before_MB"],
            r["relay_rss_fresh_MB"],
            r["relay_rss_filled_MB"],
            r["relay_rss_after_end_MB"],
            r["agent_rss_fresh_MB"],
            r["agent_rss_filled_MB"],
            r["agent_rss_after_end_MB"],
            f"{r['viewers_complete']}/{params.rss_sessions * params.rss_viewers_per_session}",
        ]
        for r in results["rss"]
    ]
    out.append(
        table(
            [
                "round",
                "ending",
                "relay before",
                "fresh",
                "filled",
                "after end",
                "agent fresh",
                "filled",
                "after end",
                "viewers ok",
            ],
            rows,
        )
    )
    counted = [p["cmdline"][:60] for p in results["up_processes"] if p["counted"]]
    uncounted = [p["cmdline"][:60] for p in results["up_processes"] if not p["counted"]]
    out += ["", f"up's CPU counted the up process and {len(counted)} descendant(s) at start: {counted or 'none'}"]
    if uncounted:  # no session runs yet, so these are no PTY programs: the rule may be missing part of up
        out.append(f"  WARNING: descendants of up at start whose CPU the rule does not count: {uncounted}")
    noisy = {phase: pct for phase, pct in results["other_load_pct"].items() if pct > 5}
    out += [
        "Other processes' share of the machine during each phase: "
        + ", ".join(f"{phase} {pct}%" for phase, pct in results["other_load_pct"].items())
        + (f"  <- WARNING: a noisy machine skews {', '.join(noisy)}" if noisy else " (quiet)"),
    ]
    out += ["", "Targets (issue 12)"]
    out.append(
        table(
            ["target", "measured", "met"],
            [[t["target"], t["measured"], "met" if t["met"] else "MISSED"] for t in results["targets"]],
        )
    )
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer keystrokes, 10 MB bulk, one run, one memory round")
    parser.add_argument("--runs", type=int, help="runs of every bulk, fan-out and stalled case (5; 1 with --quick)")
    parser.add_argument("--json", metavar="FILE", help="also write every number to FILE")
    parser.add_argument("--keep", action="store_true", help="keep the temporary CLAUDENEST_HOME (for debugging)")
    parser.add_argument(
        "--what-if-no-deflate",
        action="store_true",
        help="experiment: run the relay with WebSocket permessage-deflate off (not the shipped configuration)",
    )
    parser.add_argument("--internal", choices=["terminado-server", "drain"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.internal == "terminado-server":
        terminado_server_main()
        return 0
    if args.internal == "drain":
        drain_main()
        return 0
    if args.runs is not None and args.runs < 1:
        parser.error("--runs must be at least 1")

    params = Params.make(args.quick, args.runs, args.what_if_no_deflate)
    root = Path(tempfile.mkdtemp(prefix="claudenest-bench-"))

    def overrun(*_: object) -> None:
        print(f"bench_terminal: over the {params.total_budget_s:.0f}s budget; stopping everything", file=sys.stderr)
        for child in Child.registry:
            child.kill_now()
        os._exit(3)

    def terminated(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGALRM, overrun)
    signal.signal(signal.SIGTERM, terminated)
    signal.alarm(int(params.total_budget_s + 60))
    started = time.monotonic()
    try:
        results = asyncio.run(asyncio.wait_for(run(params, root), params.total_budget_s))
    except (BenchError, TimeoutError) as exc:
        print(f"bench_terminal: failed: {exc!r}", file=sys.stderr)
        for child in Child.registry:
            if child.name in ("relay", "agent", "up"):
                print(f"--- {child.name} (last lines)\n{child.output(15)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench_terminal: interrupted; stopping every process it started", file=sys.stderr)
        return 130
    finally:
        Child.stop_all()
        signal.alarm(0)
        if args.keep:
            print(f"bench_terminal: kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    results["wall_seconds"] = round(time.monotonic() - started, 1)
    sys.stderr.flush()
    print(summary(results, params))
    print(f"\n(wall time {results['wall_seconds']} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
