"""`claudenest up`: relay and agent in one process, auto-paired to a local owner, CLI ready at once."""

from __future__ import annotations

import json
import re
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
