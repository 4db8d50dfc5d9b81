"""Relay restarts (graceful and kill -9) keep sessions and lose no output; revocation stops the agent."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest

from tests.e2e.harness import Proc, Relay, User, add_user, claudenest, cli, pair_agent, role_env, wait_until

COUNTER = """
import sys, time, hashlib
digest = hashlib.sha256()
for i in range({n}):
    line = f"line {{i:05d}}\\n"
    digest.update(line.encode())
    sys.stdout.write(line)
    sys.stdout.flush()
    time.sleep({delay})
print("sha256", digest.hexdigest(), flush=True)
"""


def _logs(user: User, sid: str) -> str:
    return user.cli("sessions", "logs", sid).stdout


def _check_counter(text: str, n: int) -> None:
    import hashlib

    lines = [line for line in text.replace("\r\n", "\n").split("\n") if line.startswith("line ")]
    assert lines == [f"line {i:05d}" for i in range(n)], "lines missing or doubled"
    expected = hashlib.sha256("".join(f"{line}\n" for line in lines).encode()).hexdigest()
    assert f"sha256 {expected}" in text


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["graceful", "kill-9"])
def test_relay_restart_loses_no_output_and_keeps_the_session(tmp_path: Path, how: int) -> None:
    relay = Relay(tmp_path / "relay").start()
    user = add_user(relay, "me@example.com", tmp_path / "cli")
    agent = pair_agent(relay, user, tmp_path / "agent", "box")
    try:
        script = tmp_path / "counter.py"
        n = 600
        script.write_text(COUNTER.format(n=n, delay=0.005))
        created = json.loads(user.cli("sessions", "new", "--command", f"{sys.executable} {script}", "--json").stdout)
        sid = created["session"]["id"]
        # A viewer follows the stream across the restart: it must see every byte exactly once.
        follower = Proc(claudenest("sessions", "logs", sid, "--follow"), role_env(user.home))
        wait_until(lambda: "line 00050" in _logs(user, sid), message="output flowing")
        # The follower is past its first HTTP reads and on its WebSocket (a slow start must not meet the restart).
        wait_until(lambda: "line 00050" in follower.output, seconds=20, message="the follower following")

        relay.restart(how)
        agent.proc.wait_for(r"connected to ws://", seconds=5)  # type: ignore[union-attr]
        wait_until(lambda: "sha256" in _logs(user, sid), seconds=30, message="the program's checksum")
        text = _logs(user, sid)
        _check_counter(text, n)
        assert follower.wait(seconds=60) == 0, follower.output
        _check_counter(follower.output, n)
        wait_until(
            lambda: json.loads(user.cli("sessions", "show", sid, "--json").stdout)["session"]["status"] == "exited"
        )
        # One state change logged per outage, not one line per reconnect attempt.
        assert agent.proc.output.count("relay link retrying") == 1  # type: ignore[union-attr]
    finally:
        agent.stop()
        relay.stop()


def test_revoked_machine_agent_stops_and_says_why(tmp_path: Path) -> None:
    relay = Relay(tmp_path / "relay").start()
    user = add_user(relay, "me@example.com", tmp_path / "cli")
    agent = pair_agent(relay, user, tmp_path / "agent", "old-box")
    try:
        user.cli("machines", "revoke", "old-box")
        code = agent.proc.wait(seconds=15)  # type: ignore[union-attr]
        assert code != 0
        assert "this machine's token was revoked" in agent.proc.output  # type: ignore[union-attr]
        assert "revoked (this machine" not in agent.proc.output  # type: ignore[union-attr]  # said once
        # And it cannot come back with the same token.
        again = cli(tmp_path / "agent", "agent", "run", check=False, seconds=30)
        assert again.returncode == 4
        assert "refused this machine's token" in again.stderr
    finally:
        agent.proc = None
        relay.stop()
