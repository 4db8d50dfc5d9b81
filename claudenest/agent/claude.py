"""Finding Claude Code and building the command line and environment for a session."""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import cache
from pathlib import Path

COMMON_DIRS = ("~/.local/bin", "~/.claude/local", "~/.npm-global/bin", "/usr/local/bin", "/opt/homebrew/bin")


def locate_claude(configured: str = "") -> str | None:
    """The configured ``claude_path``, else ``claude`` on PATH, else a common install directory."""
    if configured:
        path = Path(configured).expanduser()
        return str(path) if path.is_file() and os.access(path, os.X_OK) else None
    found = shutil.which("claude")
    if found:
        return found
    for directory in COMMON_DIRS:
        candidate = Path(directory).expanduser() / "claude"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


@cache
def claude_version(path: str) -> str | None:
    """``claude --version`` prints e.g. ``2.1.197 (Claude Code)``; we keep the version number."""
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = out.stdout.strip()
    return text.split()[0] if out.returncode == 0 and text else None


def session_env(cols: int, rows: int) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("CLAUDECODE", None)  # Claude Code refuses to nest when it sees this
    env.update(TERM="xterm-256color", COLORTERM="truecolor", COLUMNS=str(cols), LINES=str(rows))
    return env


def claude_argv(claude: str, session_id: str) -> list[str]:
    return [claude, "--session-id", session_id]


def headless_argv(claude: str, session_id: str, prompt: str) -> list[str]:
    return [claude, "-p", prompt, "--output-format", "stream-json", "--verbose", "--session-id", session_id]
