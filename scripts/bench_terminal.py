#!/usr/bin/env python3
"""Terminal streaming benchmark: ClaudeNest (viewer -> relay -> agent -> PTY and back) against terminado.

    python scripts/bench_terminal.py [--quick] [--json out.json] [--what-if-no-deflate]

Starts a real relay process and a real agent process (each in its own temporary CLAUDENEST_HOME, paired through the
real pairing flow) and a terminado server in a third process, all on 127.0.0.1. Then measures:

1. keystroke echo round trips (1-byte input frames to a PTY running ``stty raw -echo; exec cat``), idle and with
   50 other sessions streaming output to their own viewers;
2. the same echo through terminado (idle and under the same load);
3. bulk output throughput to 1 and 10 viewers, every byte verified (length, sha256, per-frame content, gaps);
4. peak RSS (VmHWM) and CPU seconds per GB of relay and agent;
5. relay RSS with 100 sessions x 2 viewers (fresh, and once every session has written 1 MiB), and whether that
   memory is given back when the sessions end.

Every wait is bounded; a watchdog ends the run (and every process it started) if it overruns. See
docs/benchmarks.md for the method and the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import websockets
from websockets.asyncio.client import ClientConnection

from claudenest.client import RelayClient
from claudenest.protocol import (
    Attach,
    Attached,
    Error,
    Frame,
    FrameKind,
    Gap,
    SessionStatus,
    decode_frame,
    decode_message,
    encode_frame,
    encode_message,
)

MiB = 1 << 20
CLK_TCK = os.sysconf("SC_CLK_TCK")
ENDED = ("exited", "error")


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

PRINTER_SRC = """
import os, sys, time
step = 1.0 / float(sys.argv[1])
n = 0
due = time.monotonic()
while True:
    n += 1
    os.write(1, b"busy %08d the quick brown fox jumps over the lazy dog 0123456789 abcdefghijklmnop\\n" % n)
    due += step
    delay = due - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    elif delay < -1:
        due = time.monotonic()
"""

FILL_BYTES = MiB  # what each of the 100 sessions writes in the RSS test (= the relay's per-session ring)
FILL_ARGV = [
    "sh",
    "-c",
    f"stty raw -echo; head -c 1 >/dev/null; head -c {FILL_BYTES} /dev/zero | tr '\\000' x; exec cat",
]


def writer_argv(nbytes: int) -> list[str]:
    return ["sh", "-c", 'stty raw -echo && exec "$0" -S -c "$1" "$2"', sys.executable, WRITER_SRC, str(nbytes)]


def printer_argv(lines_per_second: int) -> list[str]:
    return [sys.executable, "-S", "-c", PRINTER_SRC, str(lines_per_second)]


_pattern_cache: dict[int, bytes] = {}


def expected_stream(nbytes: int) -> bytes:
    """What a viewer of writer_argv(nbytes) must receive: the ready marker, then the pattern."""
    if nbytes not in _pattern_cache:
        scope: dict[str, Any] = {}
        exec(PATTERN_SRC, scope)
        _pattern_cache[nbytes] = b"R" + scope["pattern"](nbytes)
    return _pattern_cache[nbytes]


# ---------------------------------------------------------------------------------------------------------------
# Parameters


@dataclass(frozen=True)
class Params:
    quick: bool
    echo_keystrokes: int
    echo_warmup: int
    echo_gap_s: float  # pause between keystrokes (a closed loop otherwise)
    busy_sessions: int
    busy_lines_per_s: int
    bulk_bytes: int
    fanout_viewers: int
    rss_sessions: int
    rss_viewers_per_session: int
    # How each round of the 100-session test ends: "left" = viewers close, then the sessions end;
    # "watched" = the sessions end while their viewers are attached. Several rounds show whether memory comes back.
    rss_rounds: tuple[str, ...]
    bulk_repeats: int
    no_deflate: bool  # what-if: relay with WebSocket permessage-deflate off (not the shipped configuration)
    total_budget_s: float

    @classmethod
    def make(cls, quick: bool, no_deflate: bool = False) -> Params:
        return cls(
            quick=quick,
            echo_keystrokes=200 if quick else 1000,
            echo_warmup=20 if quick else 50,
            echo_gap_s=0.001,
            busy_sessions=50,
            busy_lines_per_s=100,
            bulk_bytes=(10 if quick else 50) * MiB,
            fanout_viewers=10,
            rss_sessions=100,
            rss_viewers_per_session=2,
            rss_rounds=("watched",) if quick else ("left", "left", "watched", "watched"),
            bulk_repeats=1 if quick else 3,
            no_deflate=no_deflate,
            total_budget_s=110 if quick else 540,
        )


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
# The ClaudeNest stack: relay process + agent process


@dataclass
class Stack:
    root: Path
    relay: Child
    agent: Child
    url: str
    token: str
    machine_id: str
    api: RelayClient
    no_deflate: bool

    async def new_session(self, command: list[str]) -> str:
        session = await self.api.create_session(machine_id=self.machine_id, command=command, cols=120, rows=40)
        if session["status"] != "running":
            raise BenchError(f"session did not start: {session}")
        return str(session["id"])

    async def terminate(self, session_id: str) -> None:
        with contextlib.suppress(Exception):
            await self.api.terminate(session_id)

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


async def start_stack(root: Path, no_deflate: bool = False) -> Stack:
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
    return Stack(root, relay, agent, url, token, done["machine_id"], RelayClient(url, token), no_deflate)


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
    from terminado import NamedTermManager, TermSocket
    from terminado.management import PtyWithClients

    class BenchTermManager(NamedTermManager):  # type: ignore[misc]
        """NamedTermManager whose command depends on the terminal's name: echo-*, bulk-<bytes>-*, busy-*."""

        def get_terminal(self, term_name: str) -> PtyWithClients:
            if term_name in self.terminals:
                return self.terminals[term_name]
            kind = term_name.split("-")[0]
            if kind == "bulk":
                argv = writer_argv(int(term_name.split("-")[1]))
            elif kind == "busy":
                argv = printer_argv(int(term_name.split("-")[1]))
            else:
                argv = ECHO_ARGV
            term = self.new_terminal(shell_command=argv, height=40, width=120)
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
# 1 + 2: keystroke echo


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


async def cn_echo_under_load(stack: Stack, params: Params) -> dict[str, Any]:
    busy: list[str] = []
    drainer: Drainer | None = None
    try:
        for _ in range(params.busy_sessions):
            busy.append(await stack.new_session(printer_argv(params.busy_lines_per_s)))
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
    names = [f"busy-{params.busy_lines_per_s}-{i}" for i in range(params.busy_sessions)]
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
        "drained_kB_per_s": round(stats["bytes"] / elapsed / 1000, 1),
        "drained_frames_per_s": round(stats["frames"] / elapsed, 0),
        "gaps": stats["gaps"],
        "viewer_failures": stats["failed"],
    }


# ---------------------------------------------------------------------------------------------------------------
# 3 + 4: bulk throughput, every byte verified


@dataclass
class Received:
    nbytes: int = 0
    frames: int = 0
    gaps: int = 0
    gap_bytes: int = 0
    mismatched_frames: int = 0
    hasher: Any = field(default_factory=hashlib.sha256)
    ready_at: float = 0.0
    last_at: float = 0.0

    def take(self, expected: bytes, offset: int, payload: bytes) -> None:
        if expected[offset : offset + len(payload)] != payload:
            self.mismatched_frames += 1
        self.hasher.update(payload)
        self.nbytes += len(payload)
        self.frames += 1
        self.last_at = time.perf_counter()

    def verdict(self, expected: bytes) -> dict[str, Any]:
        complete = (
            self.nbytes == len(expected)
            and self.gaps == 0
            and self.mismatched_frames == 0
            and self.hasher.hexdigest() == hashlib.sha256(expected).hexdigest()
        )
        return {
            "bytes": self.nbytes,
            "frames": self.frames,
            "gaps": self.gaps,
            "gap_bytes": self.gap_bytes,
            "mismatched_frames": self.mismatched_frames,
            "sha256_ok": complete,
        }


async def cn_receive(
    ws: ClientConnection, session_id: str, expected: bytes, got: Received, ready: asyncio.Event
) -> None:
    offset = 0
    end: int | None = None
    while end is None or offset < end:
        raw = await ws.recv()
        if isinstance(raw, bytes):
            frame = decode_frame(raw)
            if frame.kind is not FrameKind.OUTPUT or frame.session_id != session_id or frame.end <= offset:
                continue
            start = max(offset, frame.offset)
            if start > offset:  # a hole the relay did not announce
                got.gap_bytes += start - offset
            got.take(expected, start, frame.payload[start - frame.offset :])
            offset = frame.end
            if offset >= 1 and not ready.is_set():
                got.ready_at = time.perf_counter()
                ready.set()
        else:
            message = decode_message(raw)
            if isinstance(message, Gap) and message.to_offset > offset:
                got.gaps += 1
                got.gap_bytes += message.to_offset - max(offset, message.from_offset)
                offset = message.to_offset
            elif isinstance(message, SessionStatus) and process_ended(message):
                end = message.end_offset if message.end_offset is not None else offset


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


async def run_bulk(
    viewers: int,
    expected: bytes,
    connect: Callable[[], Awaitable[ClientConnection]],
    receive: Callable[[ClientConnection, Received, asyncio.Event], Awaitable[None]],
    go: Callable[[ClientConnection], Awaitable[None]],
    pids: dict[str, int],
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
        cpu0 = {name: proc_cpu(pid) for name, pid in pids.items()}
        started = time.perf_counter()
        await go(sockets[0])
        async with asyncio.timeout(timeout_s):
            await asyncio.gather(*tasks)
        finished = max(got.last_at for got in received)
        await asyncio.sleep(0.5)  # the relay's last batch of persistence belongs to this transfer
        cpu = {name: proc_cpu(pid) - cpu0[name] for name, pid in pids.items()}
    finally:
        for task in tasks:
            task.cancel()
        for ws in sockets:
            with contextlib.suppress(Exception):
                await ws.close()
    elapsed = finished - started
    payload = len(expected) - 1  # without the "R" marker
    verdicts = [got.verdict(expected) for got in received]
    delivered = sum(v["bytes"] - 1 for v in verdicts)  # bytes that really reached the viewers (gaps excluded)
    gb_in = payload / 1e9
    gb_out = payload * viewers / 1e9
    return {
        "viewers": viewers,
        "bytes": payload,
        "seconds": round(elapsed, 3),
        # Goodput: bytes each viewer really received per second (what a gap skips does not count).
        "MB_per_s_per_viewer": round(delivered / viewers / elapsed / 1e6, 1),
        "MB_per_s_delivered": round(delivered / elapsed / 1e6, 1),
        "MB_per_s_session": round(payload / elapsed / 1e6, 1),
        "lost_pct": round(100 * (1 - delivered / (payload * viewers)), 1),
        "all_verified": all(v["sha256_ok"] for v in verdicts),
        "gaps": sum(v["gaps"] for v in verdicts),
        "bytes_lost": sum(max(0, len(expected) - v["bytes"]) for v in verdicts),
        "gap_bytes": sum(v["gap_bytes"] for v in verdicts),
        "mismatched_frames": sum(v["mismatched_frames"] for v in verdicts),
        "frames_per_viewer": round(sum(v["frames"] for v in verdicts) / viewers),
        "cpu_s": {name: round(value, 2) for name, value in cpu.items()},
        "cpu_s_per_GB_produced": {name: round(value / gb_in, 1) for name, value in cpu.items()},
        "cpu_s_per_GB_delivered": {name: round(value / gb_out, 1) for name, value in cpu.items()},
        "per_viewer": verdicts,
    }


async def cn_bulk(stack: Stack, params: Params, viewers: int) -> dict[str, Any]:
    expected = expected_stream(params.bulk_bytes)
    session_id = await stack.new_session(writer_argv(params.bulk_bytes))

    async def go(ws: ClientConnection) -> None:
        await ws.send(encode_frame(Frame(FrameKind.INPUT, session_id, 0, b"g")))

    try:
        return await run_bulk(
            viewers,
            expected,
            lambda: cn_attach(stack, session_id, 0),
            lambda ws, got, ready: cn_receive(ws, session_id, expected, got, ready),
            go,
            {"relay": stack.relay.pid, "agent": stack.agent.pid},
            timeout_s=180,
        )
    except BaseException:
        await stack.terminate(session_id)  # only if it did not end by itself (the API on an ended one is noise)
        raise


async def td_bulk(terminado: Terminado, params: Params, viewers: int, repeat: int) -> dict[str, Any]:
    expected = expected_stream(params.bulk_bytes)
    url = terminado.url(f"bulk-{params.bulk_bytes}-{viewers}-{repeat}")

    async def go(ws: ClientConnection) -> None:
        await ws.send(json.dumps(["stdin", "g"]))

    return await run_bulk(
        viewers,
        expected,
        lambda: td_connect(url),
        lambda ws, got, ready: td_receive(ws, expected, got, ready),
        go,
        {"terminado": terminado.proc.pid},
        timeout_s=180,
    )


async def bulk_series(once: Callable[[int], Awaitable[dict[str, Any]]], repeats: int) -> dict[str, Any]:
    """The run with the median goodput, plus every run's headline numbers and the losses summed over all runs."""
    runs = [await once(i) for i in range(repeats)]
    median = dict(sorted(runs, key=lambda r: r["MB_per_s_per_viewer"])[len(runs) // 2])
    median["runs"] = [
        {
            k: r[k]
            for k in (
                "MB_per_s_per_viewer",
                "lost_pct",
                "gaps",
                "mismatched_frames",
                "seconds",
                "cpu_s_per_GB_produced",
            )
        }
        for r in runs
    ]
    median["gaps_all_runs"] = sum(r["gaps"] for r in runs)
    median["bytes_lost_all_runs"] = sum(r["bytes_lost"] for r in runs)
    median["verified_all_runs"] = all(r["all_verified"] for r in runs)
    median["mismatched_frames_all_runs"] = sum(r["mismatched_frames"] for r in runs)
    return median


# ---------------------------------------------------------------------------------------------------------------
# 5: relay memory with 100 sessions x 2 viewers


async def rss_round(stack: Stack, params: Params, label: str, ending: str) -> dict[str, Any]:
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
    for package in ("uvicorn", "websockets", "fastapi", "terminado", "tornado"):
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


def peaks(stack: Stack, terminado: Terminado | None) -> dict[str, float]:
    found = {
        "relay_VmHWM_MB": proc_status(stack.relay.pid).get("VmHWM", 0) / 1e6,
        "agent_VmHWM_MB": proc_status(stack.agent.pid).get("VmHWM", 0) / 1e6,
    }
    if terminado is not None:
        found["terminado_VmHWM_MB"] = proc_status(terminado.proc.pid).get("VmHWM", 0) / 1e6
    return {k: round(v, 1) for k, v in found.items()}


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
    log("starting relay, pairing agent, starting terminado")
    stack, terminado = await asyncio.gather(start_stack(root, params.no_deflate), start_terminado(root))
    results["peaks"]["setup"] = peaks(stack, terminado)
    other = results["other_load_pct"] = {}
    try:
        log(f"echo, idle: {params.echo_keystrokes} keystrokes each")
        window = OtherLoad()
        results["echo_idle"] = {
            "claudenest": await cn_echo(stack, params),
            "terminado": await td_echo(terminado, "echo-idle", params),
        }
        other["echo_idle"] = window.percent()

        fan, repeats = params.fanout_viewers, params.bulk_repeats
        log(f"bulk: {params.bulk_bytes // MiB} MiB to 1 and {fan} viewers, {repeats} run(s) each")
        reset_peak(stack.relay.pid, stack.agent.pid, terminado.proc.pid)
        window = OtherLoad()
        results["bulk"] = {
            "claudenest_1": await bulk_series(lambda _: cn_bulk(stack, params, 1), repeats),
            "terminado_1": await bulk_series(lambda i: td_bulk(terminado, params, 1, i), repeats),
            f"claudenest_{fan}": await bulk_series(lambda _: cn_bulk(stack, params, fan), repeats),
            f"terminado_{fan}": await bulk_series(lambda i: td_bulk(terminado, params, fan, i), repeats),
        }
        results["peaks"]["bulk"] = peaks(stack, terminado)
        other["bulk"] = window.percent()

        log(f"echo with {params.busy_sessions} busy sessions")
        reset_peak(stack.relay.pid, stack.agent.pid, terminado.proc.pid)
        window = OtherLoad()
        results["echo_loaded"] = {
            "claudenest": await cn_echo_under_load(stack, params),
            "terminado": await td_echo_under_load(terminado, params),
        }
        results["peaks"]["echo_loaded"] = peaks(stack, terminado)
        other["echo_loaded"] = window.percent()

        log("memory: restarting relay and agent for a clean baseline")
        await stack.restart()
        await asyncio.sleep(1.0)
        window = OtherLoad()
        rounds = []
        for number, ending in enumerate(params.rss_rounds, 1):
            log(
                f"memory: round {number}/{len(params.rss_rounds)}, {params.rss_sessions} sessions x 2 viewers, {ending}"
            )
            rounds.append(await rss_round(stack, params, str(number), ending))
        results["rss"] = rounds
        other["memory"] = window.percent()
        results["peaks"]["memory"] = peaks(stack, None)
    finally:
        await stack.api.close()
    log("stopping")
    results["exit_codes"] = {
        "agent": await asyncio.to_thread(stack.agent.stop, 20),
        "relay": await asyncio.to_thread(stack.relay.stop, 20),
        "terminado": await asyncio.to_thread(terminado.proc.stop, 10),
    }
    results["targets"] = evaluate(results, params)
    return results


def evaluate(results: dict[str, Any], params: Params) -> list[dict[str, Any]]:
    idle = results["echo_idle"]
    loaded = results["echo_loaded"]["claudenest"]
    bulk = results["bulk"]
    fan = params.fanout_viewers
    ratio = idle["claudenest"]["p50_us"] / idle["terminado"]["p50_us"]
    targets = [
        ("echo p50 <= 1.5x terminado (idle)", f"{ratio:.2f}x", ratio <= 1.5),
        (
            "echo p99 <= 5 ms idle",
            f"{idle['claudenest']['p99_us'] / 1000:.2f} ms",
            idle["claudenest"]["p99_us"] <= 5000,
        ),
        (
            f"echo p99 <= 10 ms with {params.busy_sessions} busy sessions",
            f"{loaded['p99_us'] / 1000:.2f} ms",
            loaded["p99_us"] <= 10000,
        ),
    ]
    for viewers in (1, fan):
        cn, td = bulk[f"claudenest_{viewers}"], bulk[f"terminado_{viewers}"]
        share = cn["MB_per_s_per_viewer"] / td["MB_per_s_per_viewer"]
        targets.append(
            (
                f"throughput >= terminado ({viewers} viewer{'s' if viewers > 1 else ''}, goodput)",
                f"{cn['MB_per_s_per_viewer']} vs {td['MB_per_s_per_viewer']} MB/s ({share:.2f}x)",
                share >= 1.0,
            )
        )
    for viewers in (1, fan):
        cn = bulk[f"claudenest_{viewers}"]
        targets.append(
            (
                f"zero bytes lost ({viewers} viewer{'s' if viewers > 1 else ''}, all runs)",
                f"{cn['bytes_lost_all_runs']} bytes in {cn['gaps_all_runs']} gaps",
                cn["bytes_lost_all_runs"] == 0 and cn["verified_all_runs"],
            )
        )
    first = results["rss"][0]
    for key, what in (("relay_rss_fresh_MB", "fresh"), ("relay_rss_filled_MB", "each wrote 1 MiB")):
        targets.append(
            (
                f"relay RSS < 200 MB, {params.rss_sessions} sessions x 2 viewers ({what})",
                f"{first[key]} MB",
                first[key] < 200,
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


def summary(results: dict[str, Any], params: Params) -> str:
    m = results["machine"]
    out = [
        f"ClaudeNest terminal benchmark ({'quick' if params.quick else 'full'}"
        f"{', WHAT-IF relay without permessage-deflate' if params.no_deflate else ''}) - "
        f"{m['nproc']} x {m['cpu_model']}, Python {m['python']}; "
        f"machine {m['busy_before_start_pct']}% busy before start",
        "",
        f"Keystroke echo round trip, microseconds ({params.echo_keystrokes} keystrokes after "
        f"{params.echo_warmup} warm-up, {params.echo_gap_s * 1000:.0f} ms apart)",
    ]
    rows = []
    for label, data in (
        ("claudenest, idle", results["echo_idle"]["claudenest"]),
        ("terminado, idle", results["echo_idle"]["terminado"]),
        (f"claudenest, {params.busy_sessions} busy", results["echo_loaded"]["claudenest"]),
        (f"terminado, {params.busy_sessions} busy", results["echo_loaded"]["terminado"]),
    ):
        rows.append([label, data["p50_us"], data["p90_us"], data["p99_us"], data["max_us"]])
    out.append(table(["", "p50", "p90", "p99", "max"], rows))
    for name in ("claudenest", "terminado"):
        loaded = results["echo_loaded"][name]
        load, cpu = loaded["load"], loaded["cpu"]
        cpu_text = ", ".join(f"{k.replace('_cpu_pct', '')} {v}%" for k, v in cpu.items() if k.endswith("_cpu_pct"))
        out.append(
            f"  load ({name}): {load['sessions']} x {load['target_lines_per_s_each']} lines/s, drained "
            f"{load['drained_kB_per_s']} kB/s in {load['drained_frames_per_s']:.0f} frames/s, gaps {load['gaps']}; "
            f"CPU {cpu_text}"
        )
    out += [
        "",
        f"Bulk output, {params.bulk_bytes // MiB} MiB, every byte checked; median of {params.bulk_repeats} run(s) "
        "(goodput = bytes really received per viewer per second)",
    ]
    rows = []
    for key, data in results["bulk"].items():
        name, viewers = key.rsplit("_", 1)
        cpu = ", ".join(f"{k} {v}" for k, v in data["cpu_s_per_GB_produced"].items())
        rows.append(
            [
                f"{name} x{viewers}",
                data["MB_per_s_per_viewer"],
                " ".join(str(r["MB_per_s_per_viewer"]) for r in data["runs"]),
                data["MB_per_s_delivered"],
                f"{data['lost_pct']}%",
                data["gaps_all_runs"],
                data["mismatched_frames_all_runs"],
                "yes" if data["verified_all_runs"] else "NO",
                cpu,
            ]
        )
    out.append(
        table(
            [
                "",
                "goodput MB/s",
                "runs",
                "total MB/s",
                "lost",
                "gaps",
                "bad frames",
                "all verified",
                "CPU s per GB produced",
            ],
            rows,
        )
    )
    out += ["", "Peak RSS (VmHWM, MB) per phase"]
    out.append(
        table(
            ["phase", "relay", "agent", "terminado"],
            [
                [
                    phase,
                    data["relay_VmHWM_MB"],
                    data["agent_VmHWM_MB"],
                    data.get("terminado_VmHWM_MB", "-"),
                ]
                for phase, data in results["peaks"].items()
            ],
        )
    )
    out += ["", f"Memory with {params.rss_sessions} sessions x {params.rss_viewers_per_session} viewers (VmRSS, MB)"]
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
    noisy = {phase: pct for phase, pct in results["other_load_pct"].items() if pct > 5}
    out += [
        "",
        "Other processes' share of the machine during each phase: "
        + ", ".join(f"{phase} {pct}%" for phase, pct in results["other_load_pct"].items())
        + (f"  <- WARNING: a noisy machine skews {', '.join(noisy)}" if noisy else " (quiet)"),
    ]
    out += ["", "Targets"]
    out.append(
        table(
            ["target", "measured", "met"],
            [[t["target"], t["measured"], "met" if t["met"] else "MISSED"] for t in results["targets"]],
        )
    )
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer keystrokes, 10 MiB bulk, one memory round")
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

    params = Params.make(args.quick, args.what_if_no_deflate)
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
        print(f"bench_terminal: failed: {exc}", file=sys.stderr)
        for child in Child.registry:
            if child.name in ("relay", "agent"):
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
