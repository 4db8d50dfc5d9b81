"""Lossless streaming under faults: a cut agent link, a stalled viewer, a flood; memory stays bounded."""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import sqlite3
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
from claudenest.protocol import Attach, ClientHello, Gap, SessionStatus, decode_message, encode_message
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

    def drain(self, idle: float = 3.0) -> tuple[list[object], int]:
        """Read everything until the relay goes quiet: (control messages, output bytes)."""
        self.sock.settimeout(timeout(idle))
        messages: list[object] = []
        output = 0
        try:
            while data := self.sock.recv(1 << 20):
                self.proto.receive_data(data)
                for event in self.proto.events_received():
                    if isinstance(event, WsFrame) and event.opcode is Opcode.BINARY:
                        output += len(event.data) - 25
                    elif isinstance(event, WsFrame) and event.opcode is Opcode.TEXT:
                        messages.append(decode_message(bytes(event.data)))
                self._flush()
        except TimeoutError:
            pass
        finally:
            self.sock.close()
        return messages, output


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


async def test_a_stalled_viewer_does_not_slow_the_fast_one_and_memory_stays_bounded(tmp_path: Path) -> None:
    relay = Relay(tmp_path / "relay").start()
    user = add_user(relay, "me@example.com", tmp_path / "cli")
    agent = pair_agent(relay, user, tmp_path / "agent", "box")
    try:
        n = 300_000  # 30 MB
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
        check_lines(received.decode(), n)
        # 30 MB went through while one viewer read nothing: the relay did not buffer it all.
        assert peak < 150 * 1024, f"relay peaked at {peak} KiB"

        # The stalled viewer, when it finally reads, is told what it missed instead of getting 30 MB.
        messages, got = stalled.drain()
        gaps = [m for m in messages if isinstance(m, Gap)]
        assert len(gaps) == 1
        assert gaps[0].to_offset - gaps[0].from_offset > 10_000_000
        assert got < 12_000_000  # what sat in socket buffers before the cut-over, plus a bounded tail
        assert any(isinstance(m, SessionStatus) and m.status == "exited" for m in messages)
        await api.close()
    finally:
        agent.stop()
        relay.stop()


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
        db = tmp_path / "relay" / "data" / "relay.db"
        kept = (
            sqlite3.connect(db)
            .execute("SELECT SUM(length(data)) FROM session_logs WHERE session_id = ?", (sid,))
            .fetchone()[0]
        )
        assert kept <= (8 << 20) + (1 << 20)
    finally:
        agent.stop()
        relay.stop()
