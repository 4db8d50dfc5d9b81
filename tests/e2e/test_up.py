"""`claudenest up`: a relay and its supervised agent process, auto-paired to a local owner, CLI ready at once."""

from __future__ import annotations

import json
import os
import re
import signal
import tomllib
from pathlib import Path

import httpx

from tests.e2e.harness import Proc, Relay, User, claudenest, cli, pair_agent, role_env, timeout, wait_until


def test_up_is_a_complete_setup_on_one_machine(tmp_path: Path) -> None:
    home = tmp_path / "home"
    up = Proc(claudenest("up", "--port", "0"), role_env(home))
    try:
        url = up.wait_for(r"ClaudeNest is up at (http://\S+)").group(1)
        code = up.wait_for(r"/login#code=(\S+)").group(1)
        up.wait_for(r"connected to ws://")

        machines = json.loads(cli(home, "machines", "list", "--json").stdout)["machines"]
        assert [m["status"] for m in machines] == ["online"]
        session = json.loads(cli(home, "sessions", "new", "--command", "bash --norc", "--json").stdout)["session"]
        assert session["status"] == "running"
        cli(home, "sessions", "send", session["id"], "echo up-$((2+3))")
        wait_until(lambda: "up-5" in cli(home, "sessions", "logs", session["id"]).stdout)

        # The dashboard's address is printed; the one-time login link signs a browser in once, with an HttpOnly cookie.
        assert up.wait_for(r"Dashboard: (http://\S+)").group(1) == f"{url}/dashboard"
        assert "claudenest doctor" in up.output
        with httpx.Client(base_url=url, timeout=timeout(10), headers={"Origin": url}) as browser:
            assert browser.get("/api/me").status_code == 401
            assert '<div id="app">' in browser.get("/dashboard").text
            signed = browser.post("/api/auth/login-link", json={"code": code})
            assert signed.status_code == 200
            assert "httponly" in signed.headers["set-cookie"].lower()
            assert "samesite=strict" in signed.headers["set-cookie"].lower()
            assert browser.get("/api/me").json()["user"]["email"] == "owner@localhost"
        again = httpx.post(url + "/api/auth/login-link", json={"code": code}, timeout=timeout(10))
        assert again.status_code == 401

        # A second agent (another CLAUDENEST_HOME) pairs through the real flow and runs sessions too.
        token = tomllib.loads((home / "config" / "credentials.toml").read_text())["user"][url]
        owner = User(home=home, email="owner@localhost", token=token, relay_url=url)
        second_agent = pair_agent(Relay(home, url=url), owner, tmp_path / "second", "second")
        try:
            other = json.loads(
                cli(home, "sessions", "new", "--machine", "second", "--command", "bash --norc", "--json").stdout
            )["session"]
            assert other["machine_id"] == second_agent.machine_id
            cli(home, "sessions", "send", other["id"], "echo on-second")
            wait_until(lambda: "on-second" in cli(home, "sessions", "logs", other["id"]).stdout)
            ambiguous = cli(home, "sessions", "new", "--command", "true", check=False)
            assert ambiguous.returncode == 1
            assert "several machines are online" in ambiguous.stderr
        finally:
            second_agent.stop()

        # A second relay on the same database is refused, and says why.
        second = cli(home, "up", "--port", "0", check=False)
        assert second.returncode == 3
        assert "already owns" in second.stderr
    finally:
        assert up.stop() == 0, up.output
    assert "Traceback" not in up.output

    # Started again, it reuses the stored credentials: the CLI keeps working.
    up = Proc(claudenest("up", "--port", re.sub(r".*:", "", url)), role_env(home))
    try:
        up.wait_for(r"connected to ws://")
        sessions = json.loads(cli(home, "sessions", "list", "--json").stdout)["sessions"]
        assert session["id"] in [s["id"] for s in sessions]
        machines = json.loads(cli(home, "machines", "list", "--json").stdout)["machines"]
        assert sorted(m["status"] for m in machines) == ["offline", "online"]  # this one reused, not paired again
    finally:
        up.stop()


def parent_of(pid: int) -> int | None:
    """The parent of a live process; None once it has exited (a zombie counts as exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    state, parent = stat[stat.rindex(")") + 2 :].split()[:2]
    return None if state in ("Z", "X") else int(parent)


def agent_processes(home: Path) -> list[int]:
    """Live `claudenest agent run` processes of this CLAUDENEST_HOME."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue  # not a process, or gone meanwhile
        mine = f"CLAUDENEST_HOME={home}".encode() in environ
        if mine and b"agent" in argv and b"run" in argv and parent_of(int(entry.name)) is not None:
            found.append(int(entry.name))
    return found


def agents_started(up: Proc) -> list[int]:
    return [int(pid) for pid in re.findall(r"agent started \(pid (\d+)\)", up.output)]


def connections(up: Proc) -> int:
    return sum("connected to ws://" in line for line in up.lines)


def echo_works(home: Path, word: str) -> None:
    session = json.loads(cli(home, "sessions", "new", "--command", "bash --norc", "--json").stdout)["session"]
    cli(home, "sessions", "send", session["id"], f"echo {word}-$((20+3))")
    wait_until(lambda: f"{word}-23" in cli(home, "sessions", "logs", session["id"]).stdout)


def test_the_agent_is_a_child_process_restarted_when_it_dies_and_stopped_with_up(tmp_path: Path) -> None:
    home = tmp_path / "home"
    up = Proc(claudenest("up", "--port", "0"), role_env(home))
    try:
        up.wait_for(r"connected to ws://")
        [first] = agents_started(up)
        # Its own process (two event loops on two cores), up's child, and the only agent of this home.
        assert first != up.popen.pid
        assert parent_of(first) == up.popen.pid
        assert agent_processes(home) == [first]
        echo_works(home, "before")

        os.kill(first, signal.SIGKILL)
        up.wait_for(r"the agent \(pid \d+\) ended unexpectedly \(killed by SIGKILL\); restarting it")
        wait_until(lambda: len(agents_started(up)) == 2 and connections(up) == 2, message="the agent back")
        second = agents_started(up)[1]
        assert second != first
        assert parent_of(second) == up.popen.pid
        assert agent_processes(home) == [second]
        echo_works(home, "after")
    finally:
        code = up.stop()
    assert code == 0, up.output
    assert agent_processes(home) == []
    assert "Traceback" not in up.output


def test_an_agent_refused_by_the_relay_is_not_restarted_and_up_keeps_serving(tmp_path: Path) -> None:
    home = tmp_path / "home"
    up = Proc(claudenest("up", "--port", "0"), role_env(home))
    try:
        up.wait_for(r"connected to ws://")
        [machine] = json.loads(cli(home, "machines", "list", "--json").stdout)["machines"]
        cli(home, "machines", "revoke", machine["id"])
        # Tried again twice (a stale agent may have held the token), then left alone; the relay keeps serving.
        up.wait_for(r"the agent stopped: the relay refused this machine's token \(exit code 4\); not restarting it")
        assert len(agents_started(up)) == 3
        assert agent_processes(home) == []
        machines = json.loads(cli(home, "machines", "list", "--json").stdout)["machines"]
        assert [m["status"] for m in machines] == ["revoked"]
    finally:
        assert up.stop() == 0, up.output
