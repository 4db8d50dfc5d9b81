"""`claudenest doctor`: what this machine has, and what would stop a session from starting unattended."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import httpx
import keyring

from claudenest.agent.claude import claude_version, locate_claude
from claudenest.agent.trust import is_trusted
from claudenest.store import sqlite_versions


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


def _keyring() -> Check:
    backend = keyring.get_keyring()
    name = f"{type(backend).__module__}.{type(backend).__name__}"
    usable = not name.startswith(("keyring.backends.fail", "keyring.backends.null"))
    detail = name if usable else f"{name}: no keyring here, tokens go to a 0600 credentials.toml"
    return Check("keyring", True, detail)


def _claude(claude_path: str) -> list[Check]:
    claude = locate_claude(claude_path)
    if claude is None:
        return [Check("claude", False, "not found: npm install -g @anthropic-ai/claude-code, or set agent.claude_path")]
    checks = [Check("claude", True, f"{claude} ({claude_version(claude) or 'version unknown'})")]
    try:
        status = subprocess.run([claude, "auth", "status"], capture_output=True, text=True, timeout=30, check=False)
        logged_in = bool(json.loads(status.stdout or "{}").get("loggedIn"))
        checks.append(
            Check("claude login", logged_in, "logged in" if logged_in else "not logged in: run `claude /login`")
        )
    except (OSError, subprocess.TimeoutExpired, ValueError) as exc:
        checks.append(Check("claude login", False, f"`claude auth status` failed: {exc}"))
    return checks


def _trust(cwd: str) -> Check:
    if is_trusted(cwd):
        return Check("workspace trust", True, f"{cwd} is trusted")
    return Check(
        "workspace trust",
        False,
        f"{cwd} is not trusted: an interactive start there waits at Claude's trust dialog "
        "(attach and answer it, or list the folder in agent.trust_projects)",
    )


def _relay(url: str) -> Check:
    try:
        response = httpx.get(url.rstrip("/") + "/healthz", timeout=5)
        body = response.json()
        return Check(
            "relay", response.status_code == 200, f"{url}: {body.get('status')} (version {body.get('version')})"
        )
    except (httpx.HTTPError, ValueError) as exc:
        return Check("relay", False, f"{url}: unreachable ({exc})")


def run_checks(*, claude_path: str, cwd: str, relay_urls: list[str]) -> list[Check]:
    versions = sqlite_versions()
    checks = [
        Check("python", sys.version_info >= (3, 11), sys.version.split()[0]),
        Check(
            "sqlite", True, f"SQLite {versions['sqlite']} via {versions['driver']}, sqlite-vec {versions['sqlite_vec']}"
        ),
        _keyring(),
        *_claude(claude_path),
        _trust(cwd),
    ]
    checks += [_relay(url) for url in dict.fromkeys(u for u in relay_urls if u)]
    return checks
