"""Lossless streaming under faults: a cut agent link, a stalled viewer, a flood; memory stays bounded."""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.client import ClientProtocol
from websockets.frames import Frame as WsFrame
from websockets.frames import Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from claudenest.cli.attach import OutputFollower
from claudenest.client import RelayClient
from claudenest.protocol import Attach, ClientHello, Gap, SessionStatus, decode_frame, decode_message, encode_message
from tests.e2e.harness import Relay, User, add_user, pair_agent, timeout, wait_until
from tests.e2e.proxy import CuttableProxy

PRINTER = """
import hashlib, sys, time
n, delay, start_after = {n}, {delay}, {start_after}
time.sleep(start_after)
print("BEGIN", flush=True)
digest = hashlib.sha256()
for i in range(n):
    line = f"{{i:07d}} " + "x" * 92 + "\\n"
    digest.update(line.encode())
    sys.stdout.write(line)
    if i % 100 == 0:
        sys.stdout.flush()
        time.sleep(delay)
sys.stdout.flush()
print("sha256", digest.hexdigest(), flush=True)
"""


class StalledViewer:
    """A viewer that attaches and then stops reading its socket entirely, as a phone on a dead network would.

    Built on the sans-I/O protocol with a small receive buffer, so neither a client library nor the kernel's
    loopback auto-tuning (up to 32 MiB here) reads the stream on its behalf.
    """

    def __init__(self, relay_url: str, token: str, session_id: str) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 10)
        self.sock.connect(("127.0.0.1", int(relay_url.rsplit(":", 1)[1])))
        self.proto = ClientProtocol(parse_uri(relay_url.replace("http", "ws") + "/ws/client"), max_size=None)
        request = self.proto.connect()
        request.headers["Authorization"] = f"Bearer {token}"
        self.proto.send_request(request)
        self._flush()
        while self.proto.state is not State.OPEN:
            self.proto.receive_data(self.sock.recv(65536))
        self.proto.send_text(encode_message(ClientHello(protocol=1, client_version="stalled")).encode())
        self.proto.send_text(encode_message(Attach(session_id=session_id, from_offset=0)).encode())
        self._flush()

    def _flush(self) -> None:
        self.sock.sendall(b"".join(self.proto.data_to_send()))

    def drain(self, idle: float = 3.0) -> tuple[list[object], list[tuple[int, bytes]]]:
        """Read everything until the relay goes quiet: (control messages, the output as contiguous pieces
        (offset, bytes), checked to follow each other except where a gap says so)."""
        self.sock.settimeout(timeout(idle))
        messages: list[object] = []
        pieces: list[tuple[int, bytearray]] = []
        at: int | None = None
        try:
            while data := self.sock.recv(1 << 20):
                self.proto.receive_data(data)
                for event in self.proto.events_received():
                    if isinstance(event, WsFrame) and event.opcode is Opcode.BINARY:
                        frame = decode_frame(bytes(event.data))
                        assert at is None or frame.offset == at, f"output at {frame.offset}, expected {at}"
                        if not pieces or pieces[-1][0] + len(pieces[-1][1]) != frame.offset:
                            pieces.append((frame.offset, bytearray()))
                        pieces[-1][1].extend(frame.payload)
                        at = frame.end
                    elif isinstance(event, WsFrame) and event.opcode is Opcode.TEXT:
                        message = decode_message(bytes(event.data))
                        messages.append(message)
                        if isinstance(message, Gap):
                            assert at is None or message.from_offset == at
                            at = message.to_offset
                self._flush()
        except TimeoutError:
            pass
        finally:
            self.sock.close()
        return messages, [(offset, bytes(data)) for offset, data in pieces]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def check_lines(text: str, n: int) -> None:
    lines = [line for line in text.replace("\r\n", "\n").split("\n") if line[:7].isdigit()]
    assert len(lines) == n, f"{len(lines)} of {n} lines"
    assert lines == [f"{i:07d} " + "x" * 92 for i in range(n)], "lines missing, doubled or out of order"
    digest = hashlib.sha256("".join(line + "\n" for line in lines).encode()).hexdigest()
    assert f"sha256 {digest}" in text


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[tuple[Relay, User, CuttableProxy, object]]:
    relay = Relay(tmp_path / "relay").start()
    user = add_user(relay, "me@example.com", tmp_path / "cli")
    proxy = CuttableProxy(relay.port).start()
    # The agent knows the relay only through the proxy, so cutting the proxy cuts just the agent's link.
    agent = pair_agent(Relay(relay.home, port=proxy.port, url=proxy.url), user, tmp_path / "agent", "box")
    try:
        yield relay, user, proxy, agent
    finally:
        agent.stop()
        proxy.stop()
        relay.stop()


def test_a_cut_agent_link_loses_nothing(proxied: tuple[Relay, User, CuttableProxy, object], tmp_path: Path) -> None:
    relay, user, proxy, agent = proxied
    n = 20_000  # 2 MB of numbered lines
    script = tmp_path / "printer.py"
    script.write_text(PRINTER.format(n=n, delay=0.02, start_after=1.0))
    sid = json.loads(user.cli("sessions", "new", "--command", f"{sys.executable} {script}", "--json").stdout)[
        "session"
    ]["id"]
    wait_until(lambda: "BEGIN" in user.cli("sessions", "logs", sid).stdout, message="printing started")
    proxy.cut()
    time.sleep(timeout(10))
    assert "sha256" not in user.cli("sessions", "logs", sid).stdout  # it really was cut
    proxy.restore()
    wait_until(lambda: "sha256" in user.cli("sessions", "logs", sid).stdout, seconds=60, message="all output")
    check_lines(user.cli("sessions", "logs", sid).stdout, n)


async def stalled_and_fast_viewers(
    tmp_path: Path, n: int, **relay_env: str
) -> tuple[bytes, list[object], list[tuple[int, bytes]], int]:
    """A printer of ``n`` lines, one viewer that reads nothing until the end and one that reads everything:
    (what the fast one got, the stalled one's messages and output once it reads, the relay's peak RSS in KiB)."""
    relay = Relay(tmp_path / "relay", extra_env=relay_env).start()
    user = add_user(relay, "me@example.com", tmp_path / "cli")
    agent = pair_agent(relay, user, tmp_path / "agent", "box")
    try:
        script = tmp_path / "printer.py"
        script.write_text(PRINTER.format(n=n, delay=0, start_after=1.5))
        api = RelayClient(relay.url, user.token)
        session = await api.create_session(
            machine_id=agent.machine_id, command=[sys.executable, str(script)], cols=200, rows=50
        )
        stalled = StalledViewer(relay.url, user.token, session["id"])

        received = bytearray()
        fast = OutputFollower(api, session["id"], from_offset=0, read_only=True, write=received.extend)
        relay_pid = relay.proc.popen.pid  # type: ignore[union-attr]
        peak = 0

        async def watch_memory() -> None:
            nonlocal peak
            while True:
                peak = max(peak, rss_kib(relay_pid))
                await asyncio.sleep(0.1)

        watcher = asyncio.ensure_future(watch_memory())
        try:
            result = await asyncio.wait_for(fast.run(), timeout(120))
        finally:
            watcher.cancel()
        assert result.status == "exited"
        messages, late = stalled.drain()
        await api.close()
        return bytes(received), messages, late, peak
    finally:
        agent.stop()
        relay.stop()


async def test_a_stalled_viewer_costs_the_fast_one_nothing_and_loses_nothing(tmp_path: Path) -> None:
    n = 300_000  # 30 MB, within the default retention (64 MiB)
    received, messages, late, peak = await stalled_and_fast_viewers(tmp_path, n)
    check_lines(received.decode(), n)
    # 30 MB went through while one viewer read nothing: the relay did not buffer it for that viewer.
    assert peak < 150 * 1024, f"relay peaked at {peak} KiB"
    # The stalled viewer, once it reads, is served from the log: every byte, no gap, then the exit.
    assert not [m for m in messages if isinstance(m, Gap)]
    assert [offset for offset, _ in late] == [0]
    check_lines(late[0][1].decode(), n)
    assert any(isinstance(m, SessionStatus) and m.ended for m in messages)


async def test_a_stalled_viewer_gets_a_gap_only_for_what_retention_dropped(tmp_path: Path) -> None:
    n = 300_000  # 30 MB against 8 MiB of retention
    received, messages, late, _ = await stalled_and_fast_viewers(
        tmp_path, n, CLAUDENEST_RELAY_LOG_CAP_BYTES=str(8 << 20)
    )
    check_lines(received.decode(), n)
    gaps = [m for m in messages if isinstance(m, Gap)]
    assert len(gaps) == 1, gaps
    # Before the gap: what it was sent before it stalled; after it: the newest output, at least the retention's
    # worth, contiguous to the end. Every piece is the right bytes at the right offsets.
    for offset, data in late:
        assert data == received[offset : offset + len(data)]
    tail_offset, tail = late[-1]
    assert tail_offset == gaps[0].to_offset
    assert len(tail) >= 8 << 20
    assert tail_offset + len(tail) == len(received)
    assert any(isinstance(m, SessionStatus) and m.ended for m in messages)


def test_a_flood_keeps_memory_bounded_everywhere(tmp_path: Path) -> None:
    """`yes` with nobody watching: the log is capped, and neither relay nor agent grows without bound."""
    relay = Relay(tmp_path / "relay", extra_env={"CLAUDENEST_RELAY_LOG_CAP_BYTES": str(8 << 20)}).start()
    user = add_user(relay, "me@example.com", tmp_path / "cli")
    agent = pair_agent(relay, user, tmp_path / "agent", "box")
    try:
        sid = json.loads(user.cli("sessions", "new", "--command", "yes flood-line", "--json").stdout)["session"]["id"]
        pids = {"relay": relay.proc.popen.pid, "agent": agent.proc.popen.pid}  # type: ignore[union-attr]
        peaks = dict.fromkeys(pids, 0)
        deadline = time.monotonic() + 12
        while time.monotonic() < deadline:
            for name, pid in pids.items():
                peaks[name] = max(peaks[name], rss_kib(pid))
            time.sleep(0.2)
        shown = json.loads(user.cli("sessions", "show", sid, "--json").stdout)["session"]
        assert shown["output_bytes"] > 50 << 20  # it really flooded
        assert shown["log_start_offset"] > 0  # the oldest output was dropped, and the drop recorded
        user.cli("sessions", "kill", sid)
        assert peaks["relay"] < 200 * 1024, peaks
        assert peaks["agent"] < 150 * 1024, peaks
        segments = tmp_path / "relay" / "data" / "relay.db.output" / sid
        kept = sum(f.stat().st_size for f in segments.iterdir())
        # The cap, plus at most one segment (1 MiB for this cap) and the batch being written while we looked.
        assert 8 << 20 <= kept <= (8 << 20) + (2 << 20)
    finally:
        agent.stop()
        relay.stop()
