"""Claude Code's workspace trust dialog, which blocks an unattended interactive start in a new folder.

Only folders the user listed in ``agent.trust_projects`` are ever pre-accepted, and each time it is logged:
trusting a folder lets its project settings (hooks, MCP servers) run, so it is never done silently.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def claude_json_path() -> Path:
    config_dir = os.environ.get("CLAUDE_CONFIG_DIR")
    return Path(config_dir) / ".claude.json" if config_dir else Path.home() / ".claude.json"


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def is_trusted(cwd: str, path: Path | None = None) -> bool:
    projects = _read(path or claude_json_path()).get("projects", {})
    entry = projects.get(str(Path(cwd).resolve())) if isinstance(projects, dict) else None
    return bool(isinstance(entry, dict) and entry.get("hasTrustDialogAccepted"))


def covered(cwd: str, trusted_roots: tuple[str, ...]) -> bool:
    target = Path(cwd).resolve()
    return any(
        target == Path(root).expanduser().resolve() or Path(root).expanduser().resolve() in target.parents
        for root in trusted_roots
    )


def pre_accept(cwd: str, trusted_roots: tuple[str, ...], path: Path | None = None) -> bool:
    """Mark ``cwd`` trusted in Claude's state file when the user opted in for it; True when it changed."""
    if not trusted_roots or not covered(cwd, trusted_roots) or is_trusted(cwd, path):
        return False
    path = path or claude_json_path()
    data = _read(path)
    projects = data.setdefault("projects", {})
    projects.setdefault(str(Path(cwd).resolve()), {})["hasTrustDialogAccepted"] = True
    tmp = path.with_suffix(".claudenest.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)
    log.warning("pre-accepted Claude Code workspace trust for %s (listed in agent.trust_projects)", cwd)
    return True
