"""Hatch build hook: the dashboard's built assets are package data of the wheel.

``pip install .`` (and ``pip install -e .``) runs ``npm ci && npm run build`` in web/ when the built files in
claudenest/relay/static are missing or older than web/'s sources, and fails with a message naming Node.js when npm
is missing. ``CLAUDENEST_SKIP_WEB_BUILD=1`` skips it (the relay then serves a page that says how to build).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCES = (
    "src",
    "public",
    "scripts",
    "index.html",
    "package.json",
    "package-lock.json",
    "vite.config.ts",
    "tsconfig.json",
)


MIN_NODE = (20, 19)
NODE_NEEDED = "20.19+"


def node_version() -> tuple[int, int] | None:
    """The major and minor version of `node` on the PATH, or None when it cannot be asked."""
    node = shutil.which("node")
    if node is None:
        return None
    try:
        text = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    parts = text.strip().lstrip("v").split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None


def newest_mtime(paths: list[Path]) -> float:
    newest = 0.0
    for path in paths:
        if path.is_dir():
            for child in path.rglob("*"):
                if child.is_file():
                    newest = max(newest, child.stat().st_mtime)
        elif path.is_file():
            newest = max(newest, path.stat().st_mtime)
    return newest


class DashboardBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        root = Path(self.root)
        web = root / "web"
        built = root / "claudenest" / "relay" / "static" / "index.html"
        if os.environ.get("CLAUDENEST_SKIP_WEB_BUILD") == "1" or not (web / "package.json").is_file():
            return  # skipped on request, or an sdist built without web/ (it then carries the built files)
        if built.is_file() and built.stat().st_mtime >= newest_mtime([web / name for name in SOURCES]):
            return
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError(
                f"building the ClaudeNest dashboard needs Node.js {NODE_NEEDED} with npm on the PATH "
                "(https://nodejs.org); install it and retry, or set CLAUDENEST_SKIP_WEB_BUILD=1 to install without "
                "the dashboard"
            )
        found = node_version()
        if found is not None and found < MIN_NODE:
            raise RuntimeError(
                f"building the ClaudeNest dashboard needs Node.js {NODE_NEEDED} (Vite 8's minimum); this is "
                f"{'.'.join(map(str, found))}: upgrade Node.js, or set CLAUDENEST_SKIP_WEB_BUILD=1"
            )
        lock = web / "node_modules" / ".package-lock.json"
        if not lock.is_file() or lock.stat().st_mtime < (web / "package-lock.json").stat().st_mtime:
            self._run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], web)
        self._run([npm, "run", "build"], web)

    def _run(self, argv: list[str], cwd: Path) -> None:
        self.app.display_info(f"dashboard: {' '.join(argv[1:])} (in {cwd})")
        result = subprocess.run(argv, cwd=cwd)
        if result.returncode != 0:
            raise RuntimeError(f"dashboard build failed: `{' '.join(argv[1:])}` in {cwd} exited {result.returncode}")
