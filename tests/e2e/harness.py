"""Real processes for end-to-end tests: a relay, agents paired through the real flow, and the CLI.

Time-outs are in one unit that ``CLAUDENEST_TEST_TIMEOUT_SCALE`` stretches on a slow machine.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

SCALE = float(os.environ.get("CLAUDENEST_TEST_TIMEOUT_SCALE", "1"))


def timeout(seconds: float) -> float:
    return seconds * SCALE


def wait_until(predicate: Callable[[], Any], seconds: float = 10, message: str = "condition") -> Any:
    deadline = time.monotonic() + timeout(seconds)
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout(seconds):.0f}s waiting for {message}")


def role_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAUDENEST_")}
    env.update(
        CLAUDENEST_HOME=str(home),
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


class Proc:
    """A child process whose output is collected line by line in the background."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path | None = None) -> None:
        self.argv = argv
        self.lines: list[str] = []
        self.popen = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        with self.popen.stdout:
            for line in self.popen.stdout:
                self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, seconds: float = 15) -> re.Match[str]:
        regex = re.compile(pattern)

        def found() -> re.Match[str] | None:
            for line in list(self.lines):
                match = regex.search(line)
                if match:
                    return match
            if self.popen.poll() is not None:
                raise AssertionError(f"{self.argv} exited with {self.popen.returncode}:\n{self.output}")
            return None

        return wait_until(found, seconds, f"{pattern!r} from {self.argv[2:4]}")  # type: ignore[no-any-return]

    def send_signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, sig)

    def wait(self, seconds: float = 15) -> int:
        code = self.popen.wait(timeout(seconds))
        self._reader.join(timeout(5))
        return code

    def stop(self, sig: int = signal.SIGTERM, seconds: float = 15) -> int:
        self.send_signal(sig)
        try:
            code = self.popen.wait(timeout(seconds))
        except subprocess.TimeoutExpired:
            self.send_signal(signal.SIGKILL)
            code = self.popen.wait(timeout(5))
        self._reader.join(timeout(5))
        return code


def claudenest(*args: str) -> list[str]:
    return [sys.executable, "-m", "claudenest", *args]


def cli(
    home: Path,
    *args: str,
    input: str | None = None,
    check: bool = True,
    seconds: float = 30,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        claudenest(*args),
        env=role_env(home, **(env or {})),
        capture_output=True,
        text=True,
        input=input,
        timeout=timeout(seconds),
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"claudenest {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return result


@dataclass
class Relay:
    home: Path
    port: int = 0
    proc: Proc | None = None
    url: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)

    def start(self) -> Relay:
        self.proc = Proc(claudenest("relay", "serve", "--port", str(self.port)), role_env(self.home, **self.extra_env))
        match = self.proc.wait_for(r"listening on (http://\S+)")
        self.url = match.group(1)
        self.port = int(self.url.rsplit(":", 1)[1])
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None:
            self.proc.stop(sig)
            self.proc = None

    def restart(self, sig: int = signal.SIGTERM) -> None:
        self.stop(sig)
        self.start()


@dataclass
class Agent:
    home: Path
    relay_url: str
    proc: Proc | None = None
    machine_id: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)

    def start(self) -> Agent:
        self.proc = Proc(claudenest("agent", "run"), role_env(self.home, **self.extra_env))
        self.proc.wait_for(r"connected to ws://")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.proc = None


@dataclass
class User:
    home: Path  # the user's CLI home (logged in)
    email: str
    token: str
    relay_url: str

    def cli(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return cli(self.home, *args, **kwargs)

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return httpx.request(method, self.relay_url + path, headers=headers, timeout=timeout(30), **kwargs)


def add_user(relay: Relay, email: str, cli_home: Path) -> User:
    created = json.loads(cli(relay.home, "relay", "user", "add", email, "--json").stdout)
    cli(cli_home, "login", "--relay", relay.url, "--token", created["token"])
    return User(home=cli_home, email=email, token=created["token"], relay_url=relay.url)


def pair_agent(relay: Relay, user: User, agent_home: Path, name: str, extra_env: dict[str, str] | None = None) -> Agent:
    """The real pairing flow: `pair` shows a code, the user approves it, the agent stores its token."""
    pairing = Proc(claudenest("pair", "--relay", relay.url, "--name", name, "--json"), role_env(agent_home))
    code = json.loads(pairing.wait_for(r'^\{"code"').string)["code"]
    approved = json.loads(user.cli("machines", "approve", code, "--json").stdout)
    done = json.loads(pairing.wait_for(r'"status": "completed"', seconds=20).string)
    assert pairing.wait(seconds=10) == 0, pairing.output
    assert done["machine_id"] == approved["machine"]["id"]
    agent = Agent(home=agent_home, relay_url=relay.url, machine_id=done["machine_id"], extra_env=extra_env or {})
    return agent.start()
