#!/usr/bin/env python3
"""Live bytes through uvicorn/Starlette's WebSocket path against the bare ``websockets`` server (issue 12).

    python scripts/bench_ws_paths.py [--quick] [--rounds N] [--json out.json]

The relay's hot path for live bytes is a forwarder: an agent's frames come in on ``/ws/agent`` and go out to its
viewers on ``/ws/client``, keys the other way. This script serves that shape, and nothing else, once per server
variant, each in its own process on 127.0.0.1:

- ``uvicorn-sansio``: FastAPI/Starlette WebSocket endpoints on uvicorn with ``ws="websockets-sansio"`` and
  per-message deflate off, as ``claudenest/relay/server.py`` serves them today;
- ``uvicorn-legacy``: the same app on uvicorn's older ``ws="websockets"`` implementation (websockets.legacy);
- ``uvicorn-asgi``: uvicorn-sansio with the two WebSocket paths as a bare ASGI app in front of FastAPI (the HTTP
  API would stay on the same port), so no Starlette router, middleware or WebSocket wrapper on the live path;
- ``websockets``: ``websockets.asyncio.server.serve`` directly, ``compression=None``;
- ``uvicorn-sansio+inline``, ``websockets+inline`` (and ``uvicorn-asgi+inline`` on request): as above, but the
  task that read a frame sends it on itself when the other side's queue is idle, instead of handing it to that
  side's writer task (one task hop less);
- ``websockets-tuned`` (on request, ``--variants``): websockets with a deeper receive queue and uvicorn's write
  high-water mark, to see whether its defaults hold it back.

Every variant runs the same forwarding code (per peer, a byte-counted queue drained by one writer task, as
``relay/outbox.py`` does, and reading of the producer paused while the viewer has over 1 MiB waiting), the same
socket set-up (IPPROTO_TCP, so Nagle is off) and the same limits (1 MiB frames, pings every 15 s). A producer
process (a ``websockets`` client on ``/ws/agent``) echoes what it gets and sends bulk on request; the viewer (a
``websockets`` client on ``/ws/client``) lives in this process. Measured, variants alternating within each round
(their order rotating from round to round):

1. echo: viewer -> server -> producer -> server -> viewer round trips of 1-byte frames, 1 ms apart, after a warm-up;
   p50/p99 over the round trips of every round pooled (16 x 250 by default), and the server's CPU per round trip;
2. bulk: the producer sends ``--bulk-mb`` MB in 4 KiB and in 64 KiB frames as fast as it can; MB/s at the viewer
   (every byte counted) and the server's CPU per MB (utime + stime of all its threads, from /proc/PID/schedstat
   at nanosecond resolution, /proc/PID/stat as a fallback); medians of the rounds, with their range.

Every wait is bounded, and a watchdog kills every process started here if the run overruns its budget.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import uvicorn
import websockets
from fastapi import FastAPI, WebSocket
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.server import ServerConnection, serve

VARIANTS: dict[str, str] = {
    "uvicorn-sansio": "uvicorn + Starlette, ws=websockets-sansio (the relay today)",
    "uvicorn-legacy": "uvicorn + Starlette, ws=websockets (legacy implementation)",
    "websockets": "websockets.asyncio.server.serve, compression=None",
    "websockets-tuned": "the same, max_queue 1024 frames and write_limit 64 KiB (uvicorn's write high-water)",
    "uvicorn-asgi": "uvicorn, ws=websockets-sansio, the two paths as a bare ASGI app in front of FastAPI",
    "uvicorn-sansio+inline": "uvicorn-sansio, the reader sending itself when the peer's queue is idle",
    "uvicorn-asgi+inline": "uvicorn-asgi, the reader sending itself when the peer's queue is idle",
    "websockets+inline": "websockets, the reader sending itself when the peer's queue is idle",
}
DEFAULT_VARIANTS = (
    "uvicorn-sansio",
    "uvicorn-legacy",
    "uvicorn-asgi",
    "websockets",
    "uvicorn-sansio+inline",
    "websockets+inline",
)
BASELINE = "uvicorn-sansio"
MAX_FRAME = 1 << 20
HIGH_WATER = 1 << 20  # the relay's viewer_queue_bytes / 2
LOW_WATER = 256 << 10
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """The benchmark could not measure what it set out to (a server did not start, bytes went missing)."""


@dataclass
class Params:
    rounds: int
    echo_warmup: int
    echo_count: int
    echo_gap_s: float
    bulk_bytes: int
    frame_sizes: tuple[int, ...]
    budget_s: float

    @classmethod
    def make(cls, quick: bool, rounds: int | None, bulk_mb: int | None) -> Params:
        # Many short rounds rather than a few long ones: on a shared machine the load moves within seconds, and
        # alternating often spreads it over every variant alike.
        return cls(
            rounds=rounds or (4 if quick else 16),
            echo_warmup=50,
            echo_count=250,
            echo_gap_s=0.001,
            bulk_bytes=(bulk_mb or (20 if quick else 50)) * 1_000_000,
            frame_sizes=(4 << 10, 64 << 10),
            budget_s=300 if quick else 600,
        )


# ---------------------------------------------------------------------------------------------------------------
# The forwarder (runs inside each server process)


class Peer:
    """One connected side's writer: items wait in a queue whose size in bytes is known; one task sends them."""

    def __init__(self, send_bytes: Callable[[bytes], Awaitable[None]], send_text: Callable[[str], Awaitable[None]]):
        self._send_bytes = send_bytes
        self._send_text = send_text
        self.items: deque[bytes | str] = deque()
        self.queued = 0
        self._wake = asyncio.Event()
        self.drained = asyncio.Event()
        self.drained.set()
        self.sending = False
        self._task = asyncio.create_task(self._run())

    async def send_now(self, item: bytes | str) -> None:
        """Send from the caller's task when nothing waits and nothing is being sent (no hop to the writer task);
        otherwise queue, keeping the order."""
        if self.items or self.sending:
            self.put(item)
            return
        self.sending = True
        try:
            if isinstance(item, bytes):
                await self._send_bytes(item)
            else:
                await self._send_text(item)
        finally:
            self.sending = False
            if self.items:
                self._wake.set()

    def put(self, item: bytes | str) -> None:
        self.items.append(item)
        self.queued += len(item)
        if self.queued > LOW_WATER:
            self.drained.clear()
        self._wake.set()

    async def _run(self) -> None:
        with contextlib.suppress(Exception):
            while True:
                if not self.items:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                if self.sending:  # an inline send is in flight; it wakes us when done
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                item = self.items.popleft()
                self.queued -= len(item)
                if self.queued <= LOW_WATER:
                    self.drained.set()
                self.sending = True
                try:
                    if isinstance(item, bytes):
                        await self._send_bytes(item)
                    else:
                        await self._send_text(item)
                finally:
                    self.sending = False

    def stop(self) -> None:
        self._task.cancel()
        self.drained.set()


class Forwarder:
    """One producer (``agent``) and one viewer (``client``) at a time; each one's frames go to the other."""

    def __init__(self, inline: bool = False) -> None:
        self.peers: dict[str, Peer] = {}
        self.changed = asyncio.Event()
        self.inline = inline

    async def serve(
        self,
        role: str,
        receive: Callable[[], Awaitable[bytes | str | None]],
        send_bytes: Callable[[bytes], Awaitable[None]],
        send_text: Callable[[str], Awaitable[None]],
    ) -> None:
        other_role = "client" if role == "agent" else "agent"
        me = Peer(send_bytes, send_text)
        self.peers[role] = me
        self.changed.set()
        try:
            while (item := await receive()) is not None:
                other = self.peers.get(other_role)
                while other is None:  # the viewer spoke before the producer was there: wait for it
                    self.changed.clear()
                    await asyncio.wait_for(self.changed.wait(), 10)
                    other = self.peers.get(other_role)
                if self.inline:
                    await other.send_now(item)
                else:
                    other.put(item)
                if other.queued > HIGH_WATER:  # as the relay stops reading an agent whose viewer is behind
                    await other.drained.wait()
        finally:
            me.stop()
            if self.peers.get(role) is me:
                del self.peers[role]


def bound_socket() -> socket.socket:
    # As claudenest/relay/server.py binds: proto IPPROTO_TCP, so asyncio turns Nagle off on accepted sockets.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.set_inheritable(True)
    return sock


def starlette_app(forwarder: Forwarder) -> FastAPI:
    app = FastAPI()

    def endpoint(role: str) -> Callable[[WebSocket], Awaitable[None]]:
        async def handle(websocket: WebSocket) -> None:
            await websocket.accept()

            async def receive() -> bytes | str | None:  # as relay/routes/ws.py's _receive
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return None
                if message.get("bytes") is not None:
                    return bytes(message["bytes"])
                return str(message.get("text") or "")

            with contextlib.suppress(Exception):
                await forwarder.serve(role, receive, websocket.send_bytes, websocket.send_text)

        return handle

    app.add_api_websocket_route("/ws/agent", endpoint("agent"))
    app.add_api_websocket_route("/ws/client", endpoint("client"))
    return app


def raw_asgi_app(forwarder: Forwarder, fallback: Any) -> Any:
    """The two WebSocket paths as a bare ASGI app in front of FastAPI (which would keep the HTTP API on the same
    port): no Starlette router, middleware or WebSocket wrapper on the live path."""
    roles = {"/ws/agent": "agent", "/ws/client": "client"}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        role = roles.get(scope["path"]) if scope["type"] == "websocket" else None
        if role is None:
            await fallback(scope, receive, send)
            return
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})

        async def receive_item() -> bytes | str | None:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return None
            data = message.get("bytes")
            return bytes(data) if data is not None else str(message.get("text") or "")

        async def send_bytes(data: bytes) -> None:
            await send({"type": "websocket.send", "bytes": data})

        async def send_text(text: str) -> None:
            await send({"type": "websocket.send", "text": text})

        with contextlib.suppress(Exception):
            await forwarder.serve(role, receive_item, send_bytes, send_text)

    return app


async def serve_uvicorn(sock: socket.socket, app: Any, ws_impl: str) -> None:
    config = uvicorn.Config(
        app,
        proxy_headers=False,  # as the relay without trusted proxies
        log_config=None,
        access_log=False,
        lifespan="off",
        ws=ws_impl,
        ws_max_size=MAX_FRAME,
        ws_per_message_deflate=False,
        ws_ping_interval=15,
        ws_ping_timeout=30,
    )
    await uvicorn.Server(config).serve(sockets=[sock])


async def serve_websockets(sock: socket.socket, forwarder: Forwarder, tuned: bool) -> None:
    async def handle(ws: ServerConnection) -> None:
        path = ws.request.path if ws.request is not None else ""
        role = {"/ws/agent": "agent", "/ws/client": "client"}.get(path)
        if role is None:
            await ws.close(1008, "no such endpoint")
            return

        async def receive() -> bytes | str | None:
            try:
                return await ws.recv()
            except websockets.ConnectionClosed:
                return None

        async def send(data: bytes | str) -> None:
            await ws.send(data)

        with contextlib.suppress(Exception):
            await forwarder.serve(role, receive, send, send)

    limits: dict[str, Any] = {"max_queue": (1024, 256), "write_limit": 1 << 16} if tuned else {}
    async with serve(
        handle, sock=sock, compression=None, max_size=MAX_FRAME, ping_interval=15, ping_timeout=30, **limits
    ):
        await asyncio.get_running_loop().create_future()


def server_main(variant: str, profile: str | None) -> None:
    if profile:
        # uvicorn restores this handler after its own and raises SIGTERM again once it has shut down.
        profiler = cProfile.Profile(time.thread_time)  # CPU time: a preempted call is not counted

        def dump(*_: object) -> None:
            profiler.disable()
            profiler.dump_stats(profile)
            os._exit(0)

        signal.signal(signal.SIGTERM, dump)
        profiler.enable()
    sock = bound_socket()
    sock.listen(128)
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    kind, _, option = variant.partition("+")
    forwarder = Forwarder(inline=option == "inline")
    if kind.startswith("websockets"):
        asyncio.run(serve_websockets(sock, forwarder, tuned=kind == "websockets-tuned"))
    elif kind == "uvicorn-asgi":
        app = raw_asgi_app(forwarder, FastAPI())
        asyncio.run(serve_uvicorn(sock, app, "websockets-sansio"))
    else:
        ws_impl = "websockets-sansio" if kind == "uvicorn-sansio" else "websockets"
        asyncio.run(serve_uvicorn(sock, starlette_app(forwarder), ws_impl))


# ---------------------------------------------------------------------------------------------------------------
# The producer (a child process per variant): echoes binary frames, sends bulk when asked


def producer_main(url: str) -> None:
    async def main() -> None:
        async with websockets.connect(url, compression=None, max_size=MAX_FRAME, open_timeout=10) as ws:
            async for message in ws:
                if isinstance(message, bytes):
                    await ws.send(message)
                    continue
                words = message.split()
                if words[0] == "bulk":
                    total, size = int(words[1]), int(words[2])
                    chunk = bytes((i * 7 + 13) % 256 for i in range(size))
                    sent = 0
                    while sent < total:
                        piece = chunk if total - sent >= size else chunk[: total - sent]
                        await ws.send(piece)
                        sent += len(piece)
                    await ws.send("done")
                elif words[0] == "stop":
                    return

    asyncio.run(main())


# ---------------------------------------------------------------------------------------------------------------
# Processes


class Child:
    registry: list[Child] = []

    def __init__(self, name: str, argv: list[str]) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        self.lines: deque[str] = deque(maxlen=50)
        self.port: int | None = None
        self.ready = threading.Event()
        Child.registry.append(self)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            if line.startswith("PORT ") and self.port is None:
                self.port = int(line.split()[1])
                self.ready.set()
        self.ready.set()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_port(self, seconds: float) -> int:
        self.ready.wait(seconds)
        if self.port is None:
            raise BenchError(f"{self.name} did not start:\n" + "\n".join(self.lines))
        return self.port

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill_now()

    def kill_now(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.proc.wait(5)


def this_script(*args: str) -> list[str]:
    return [sys.executable, os.path.abspath(__file__), *args]


def cpu_seconds(pid: int) -> float:
    """CPU time of every thread of ``pid`` (schedstat: ns resolution; stat's utime + stime if it is missing)."""
    total = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            total += int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[0])
        return total / 1e9
    except (OSError, ValueError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK


# ---------------------------------------------------------------------------------------------------------------
# Measurements (the viewer side, in this process)


@dataclass
class Variant:
    name: str
    server: Child
    producer: Child
    viewer: ClientConnection


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: list[float]) -> float:
    return percentile(values, 0.5)


async def measure_echo(variant: Variant, params: Params) -> dict[str, Any]:
    samples: list[float] = []
    cpu_before = 0.0
    for i in range(params.echo_warmup + params.echo_count):
        if i == params.echo_warmup:
            cpu_before = cpu_seconds(variant.server.pid)
        key = bytes([97 + i % 26])
        started = time.perf_counter_ns()
        await variant.viewer.send(key)
        async with asyncio.timeout(10):
            got = await variant.viewer.recv()
        elapsed_us = (time.perf_counter_ns() - started) / 1000
        if got != key:
            raise BenchError(f"{variant.name}: echo of {key!r} came back as {got!r}")
        if i >= params.echo_warmup:
            samples.append(elapsed_us)
        await asyncio.sleep(params.echo_gap_s)
    cpu = cpu_seconds(variant.server.pid) - cpu_before
    return {
        "samples_us": samples,
        "p50_us": round(percentile(samples, 0.5), 1),
        "p99_us": round(percentile(samples, 0.99), 1),
        "server_cpu_us_per_round_trip": round(cpu / params.echo_count * 1e6, 1),
    }


async def measure_bulk(variant: Variant, total: int, size: int) -> dict[str, Any]:
    server_before = cpu_seconds(variant.server.pid)
    producer_before = cpu_seconds(variant.producer.pid)
    started = time.perf_counter()
    await variant.viewer.send(f"bulk {total} {size}")
    received = frames = 0
    async with asyncio.timeout(120):
        while True:
            message = await variant.viewer.recv()
            if isinstance(message, str):
                if message != "done":
                    raise BenchError(f"{variant.name}: unexpected {message!r}")
                break
            received += len(message)
            frames += 1
    seconds = time.perf_counter() - started
    if received != total:
        raise BenchError(f"{variant.name}: {received} of {total} bytes arrived")
    megabytes = total / 1e6
    return {
        "frame_bytes": size,
        "frames": frames,
        "seconds": round(seconds, 3),
        "MB_s": round(megabytes / seconds, 1),
        "server_cpu_ms_per_MB": round((cpu_seconds(variant.server.pid) - server_before) / megabytes * 1e3, 3),
        "producer_cpu_ms_per_MB": round((cpu_seconds(variant.producer.pid) - producer_before) / megabytes * 1e3, 3),
    }


async def start_variant(name: str, profile_dir: str | None) -> Variant:
    profile = ["--profile", str(Path(profile_dir) / f"{name}.prof")] if profile_dir else []
    server = Child(f"server-{name}", this_script("--internal-server", name, *profile))
    port = await asyncio.to_thread(server.wait_port, 20)
    producer = Child(f"producer-{name}", this_script("--internal-producer", f"ws://127.0.0.1:{port}/ws/agent"))
    viewer = await websockets.connect(
        f"ws://127.0.0.1:{port}/ws/client", compression=None, max_size=MAX_FRAME, open_timeout=10
    )
    variant = Variant(name, server, producer, viewer)
    # Ready when an echo makes it through: the server holds it until the producer has connected.
    await viewer.send(b"?")
    async with asyncio.timeout(20):
        if await viewer.recv() != b"?":
            raise BenchError(f"{name}: the first echo came back wrong")
    return variant


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


async def run(params: Params, names: list[str], profile_dir: str | None) -> dict[str, Any]:
    results: dict[str, Any] = {
        "machine": machine_info(),
        "params": asdict(params),
        "variants": {name: VARIANTS[name] for name in names},
        "rounds": [],
        "loadavg_start": os.getloadavg(),
    }
    variants = [await start_variant(name, profile_dir) for name in names]
    try:
        for round_index in range(params.rounds):
            shift = round_index % len(variants)
            order = variants[shift:] + variants[:shift]
            this_round: dict[str, Any] = {}
            for variant in order:
                echo = await measure_echo(variant, params)
                bulks = [await measure_bulk(variant, params.bulk_bytes, size) for size in params.frame_sizes]
                this_round[variant.name] = {"echo": echo, "bulk": bulks}
                log(
                    f"round {round_index + 1}/{params.rounds} {variant.name:15} echo p50 {echo['p50_us']:7.1f} us "
                    f"p99 {echo['p99_us']:7.1f} us | "
                    + " | ".join(f"{b['frame_bytes'] >> 10} KiB {b['MB_s']:6.1f} MB/s" for b in bulks)
                )
                await asyncio.sleep(0.2)
            results["rounds"].append(this_round)
    finally:
        for variant in variants:
            with contextlib.suppress(Exception):
                await variant.viewer.send("stop")
            with contextlib.suppress(Exception):
                await variant.viewer.close()
    results["loadavg_end"] = os.getloadavg()
    results["summary"] = summarize(results, names, params)
    for round_ in results["rounds"]:  # the pooled percentiles are in the summary; keep the JSON small
        for entry in round_.values():
            del entry["echo"]["samples_us"]
    return results


def round_metrics(entry: dict[str, Any], params: Params) -> dict[str, float]:
    """One variant's numbers in one round, by the names the summary uses."""
    found = {
        "echo_p50_us": entry["echo"]["p50_us"],
        "echo_server_cpu_us": entry["echo"]["server_cpu_us_per_round_trip"],
    }
    for index, size in enumerate(params.frame_sizes):
        bulk = entry["bulk"][index]
        found[f"bulk_{size >> 10}k_MB_s"] = bulk["MB_s"]
        found[f"bulk_{size >> 10}k_server_ms_per_MB"] = bulk["server_cpu_ms_per_MB"]
    return found


def summarize(results: dict[str, Any], names: list[str], params: Params) -> dict[str, Any]:
    """Medians of the rounds and pooled echo percentiles; ratios to the baseline paired by round (the median of
    this round's ratio), which cancels load that moves between rounds better than a ratio of medians does."""
    per_round = {name: [round_metrics(r[name], params) for r in results["rounds"]] for name in names}
    summary: dict[str, Any] = {}
    for name in names:
        pooled = [s for r in results["rounds"] for s in r[name]["echo"]["samples_us"]]
        base_pooled = [s for r in results["rounds"] for s in r[BASELINE]["echo"]["samples_us"]]
        entry: dict[str, Any] = {key: round(median([m[key] for m in per_round[name]]), 2) for key in per_round[name][0]}
        entry["echo_p50_us"] = round(percentile(pooled, 0.5), 1)
        entry["echo_p99_us"] = round(percentile(pooled, 0.99), 1)
        entry["range"] = {
            key: [min(m[key] for m in per_round[name]), max(m[key] for m in per_round[name])]
            for key in per_round[name][0]
        }
        ratios = {
            key: round(median([m[key] / b[key] for m, b in zip(per_round[name], per_round[BASELINE], strict=True)]), 2)
            for key in per_round[name][0]
        }
        ratios["echo_p99_us"] = round(percentile(pooled, 0.99) / percentile(base_pooled, 0.99), 2)
        entry["paired_ratio_to_" + BASELINE] = ratios
        summary[name] = entry
    return summary


def machine_info() -> dict[str, Any]:
    from importlib.metadata import version

    return {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "packages": {p: version(p) for p in ("uvicorn", "websockets", "starlette", "fastapi")},
    }


def table(results: dict[str, Any], names: list[str], params: Params) -> str:
    summary = results["summary"]
    columns = ["echo_p50_us", "echo_p99_us", "echo_server_cpu_us"]
    for size in params.frame_sizes:
        columns += [f"bulk_{size >> 10}k_MB_s", f"bulk_{size >> 10}k_server_ms_per_MB"]
    headers = [
        "variant",
        "echo p50 us",
        "echo p99 us",
        "srv CPU us/rt",
        *(h for size in params.frame_sizes for h in (f"{size >> 10} KiB MB/s", f"{size >> 10} KiB srv ms/MB")),
    ]
    rows = [[name, *(summary[name][c] for c in columns)] for name in names]
    rows += [
        [f"{name} / {BASELINE}", *(summary[name]["paired_ratio_to_" + BASELINE][c] for c in columns)]
        for name in names
        if name != BASELINE
    ]
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    lines = [
        "  ".join(str(cell).rjust(widths[i]) if i else str(cell).ljust(widths[i]) for i, cell in enumerate(row))
        for row in [headers, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))

    def span(name: str, key: str) -> str:
        low, high = summary[name]["range"][key]
        return f"{low:.0f}-{high:.0f}"

    ranges = "; ".join(
        f"{name}: echo p50 {span(name, 'echo_p50_us')} us, "
        + ", ".join(f"{size >> 10} KiB {span(name, f'bulk_{size >> 10}k_MB_s')} MB/s" for size in params.frame_sizes)
        for name in names
    )
    load = f"load average {results['loadavg_start'][0]:.2f} at the start, {results['loadavg_end'][0]:.2f} at the end"
    return (
        "\n".join(lines)
        + f"\n\n{params.rounds} rounds, variants alternating; echo: {params.echo_count} round trips per round, "
        f"pooled; bulk: {params.bulk_bytes // 1_000_000} MB per run, medians of the rounds; ratios: medians of each "
        f"round's ratio (p99: of the pooled p99s); {load}\n"
        f"range over the rounds: {ranges}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="4 rounds of 250 echoes and 20 MB bulk runs")
    parser.add_argument("--rounds", type=int, help="rounds (each runs every variant once)")
    parser.add_argument("--bulk-mb", type=int, help="MB per bulk run (default 50, 20 with --quick)")
    parser.add_argument(
        "--variants", default=",".join(DEFAULT_VARIANTS), help="comma-separated, from: " + ", ".join(VARIANTS)
    )
    parser.add_argument("--json", metavar="FILE", help="also write every number to FILE")
    parser.add_argument("--profile", metavar="DIR", help="write a cProfile of each server to DIR/VARIANT.prof (slower)")
    parser.add_argument("--internal-server", choices=list(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--internal-producer", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.internal_server:
        server_main(args.internal_server, args.profile)
        return 0
    if args.internal_producer:
        producer_main(args.internal_producer)
        return 0

    names = [name for name in args.variants.split(",") if name]
    unknown = set(names) - set(VARIANTS)
    if unknown or BASELINE not in names:
        parser.error(f"variants come from {', '.join(VARIANTS)} and include {BASELINE}")
    params = Params.make(args.quick, args.rounds, args.bulk_mb)

    def overrun(*_: object) -> None:
        print(f"bench_ws_paths: over the {params.budget_s:.0f}s budget; stopping everything", file=sys.stderr)
        for child in Child.registry:
            child.kill_now()
        os._exit(3)

    def terminated(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGALRM, overrun)
    signal.signal(signal.SIGTERM, terminated)
    signal.alarm(int(params.budget_s + 30))
    started = time.monotonic()
    try:
        results = asyncio.run(asyncio.wait_for(run(params, names, args.profile), params.budget_s))
    except (BenchError, TimeoutError, OSError, websockets.WebSocketException) as exc:
        print(f"bench_ws_paths: failed: {exc!r}", file=sys.stderr)
        for child in Child.registry:
            print(f"--- {child.name} (last lines)\n" + "\n".join(child.lines), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench_ws_paths: interrupted; stopping every process it started", file=sys.stderr)
        return 130
    finally:
        for child in Child.registry:
            child.stop()
        signal.alarm(0)
    results["wall_seconds"] = round(time.monotonic() - started, 1)
    print(table(results, names, params))
    print(f"(wall time {results['wall_seconds']} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
