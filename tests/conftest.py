"""Every test is isolated by one seam: CLAUDENEST_HOME in a temporary directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from claudenest.store import sqlite_versions


def pytest_report_header() -> list[str]:
    v = sqlite_versions()
    return [f"claudenest: SQLite {v['sqlite']} via {v['driver']}, sqlite-vec {v['sqlite_vec']}"]


@pytest.fixture(autouse=True)
def claudenest_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("CLAUDENEST_HOME", str(home))
    # Never touch a developer's real keyring; the keyring path itself is tested with keyrings.alt.
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    for name in list(os.environ):
        if name.startswith("CLAUDENEST_") and name != "CLAUDENEST_HOME" and name != "CLAUDENEST_TEST_TIMEOUT_SCALE":
            monkeypatch.delenv(name)
    return home
