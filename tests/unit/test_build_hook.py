"""The hatch build hook that puts the dashboard into the wheel: when it builds, and what it says without npm."""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).parents[2]


def load_hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hatch_build", ROOT / "hatch_build.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class App:
    def __init__(self) -> None:
        self.said: list[str] = []

    def display_info(self, text: str) -> None:
        self.said.append(text)


def hook_for(root: Path) -> tuple[Any, App]:
    module = load_hook()
    app = App()
    hook = module.DashboardBuildHook(str(root), {}, None, None, str(root / "dist"), "wheel", app)
    return hook, app


def checkout(tmp_path: Path, *, built: bool) -> Path:
    (tmp_path / "web" / "src").mkdir(parents=True)
    (tmp_path / "web" / "package.json").write_text("{}")
    (tmp_path / "web" / "package-lock.json").write_text("{}")
    (tmp_path / "web" / "src" / "main.ts").write_text("")
    if built:
        static = tmp_path / "claudenest" / "relay" / "static"
        static.mkdir(parents=True)
        (static / "index.html").write_text("<div id=app>")
        later = time.time() + 10
        os.utime(static / "index.html", (later, later))
    return tmp_path


def test_without_npm_the_build_names_nodejs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hook, _ = hook_for(checkout(tmp_path, built=False))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("CLAUDENEST_SKIP_WEB_BUILD", raising=False)
    with pytest.raises(RuntimeError, match=r"Node\.js 20\.19\+ with npm"):
        hook.initialize("standard", {})


def test_an_up_to_date_build_is_kept_and_a_stale_one_is_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = checkout(tmp_path, built=True)
    hook, _ = hook_for(root)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # npm would be needed only to rebuild
    monkeypatch.delenv("CLAUDENEST_SKIP_WEB_BUILD", raising=False)
    hook.initialize("standard", {})  # nothing to do: no error
    later = time.time() + 20
    os.utime(root / "web" / "src" / "main.ts", (later, later))
    with pytest.raises(RuntimeError, match="Node"):
        hook.initialize("standard", {})


def test_the_build_can_be_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hook, _ = hook_for(checkout(tmp_path, built=False))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("CLAUDENEST_SKIP_WEB_BUILD", "1")
    hook.initialize("standard", {})
