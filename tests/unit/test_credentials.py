"""Where tokens are kept: the system keyring when there is one, else a 0600 credentials.toml."""

from __future__ import annotations

import logging
import os
import stat
import tomllib
from pathlib import Path

import keyring
import keyring.core
import pytest

from claudenest.agent import credentials
from claudenest.config import paths

RELAY = "https://nest.example.com"
FAIL = "keyring.backends.fail.Keyring"
PLAINTEXT = "keyrings.alt.file.PlaintextKeyring"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Everything under tmp_path: ClaudeNest's home, keyring's data and config dirs, HOME itself."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("CLAUDENEST_HOME", str(tmp_path / "nest"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    # keyring caches its backend in a module global: put back whatever was there after the test.
    monkeypatch.setattr(keyring.core, "_keyring_backend", keyring.core._keyring_backend)
    monkeypatch.setattr(credentials, "_warned", False)
    return tmp_path


def use_backend(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", name)
    keyring.core.init_backend()
    assert f"{type(keyring.get_keyring()).__module__}.{type(keyring.get_keyring()).__name__}" == name


def file_contents() -> dict[str, object]:
    return tomllib.loads(paths().credentials_file.read_text())


def test_without_a_keyring_the_file_is_used(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_backend(monkeypatch, FAIL)
    where = credentials.save("machine", RELAY + "/", "mn_secret")
    assert where == str(env / "nest" / "config" / "credentials.toml")
    assert file_contents() == {"machine": {RELAY: "mn_secret"}}
    assert credentials.load("machine", RELAY) == "mn_secret"
    assert credentials.load("machine", RELAY + "/") == "mn_secret"
    assert credentials.load("user", RELAY) is None
    assert credentials.load("machine", "https://other.example.com") is None


def test_credentials_file_is_private(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_backend(monkeypatch, FAIL)
    old = os.umask(0)  # even a permissive umask must not widen the file
    try:
        credentials.save("user", RELAY, "cn_secret")
    finally:
        os.umask(old)
    mode = stat.S_IMODE(paths().credentials_file.stat().st_mode)
    assert mode == 0o600
    assert stat.S_IMODE(paths().config_dir.stat().st_mode) & 0o077 == 0


def test_file_keeps_kinds_and_relays_apart_and_delete_removes_one(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_backend(monkeypatch, FAIL)
    credentials.save("machine", RELAY, "mn_1")
    credentials.save("user", RELAY, "cn_1")
    credentials.save("user", "http://localhost:8700", "cn_2")
    credentials.save("user", RELAY, "cn_3")  # replaces
    assert file_contents() == {
        "machine": {RELAY: "mn_1"},
        "user": {RELAY: "cn_3", "http://localhost:8700": "cn_2"},
    }
    credentials.delete("user", RELAY + "/")
    assert credentials.load("user", RELAY) is None
    assert credentials.load("user", "http://localhost:8700") == "cn_2"
    assert credentials.load("machine", RELAY) == "mn_1"
    credentials.delete("user", RELAY)  # deleting what is gone is fine
    assert stat.S_IMODE(paths().credentials_file.stat().st_mode) == 0o600


def test_fallback_is_announced_once(
    env: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    use_backend(monkeypatch, FAIL)
    with caplog.at_level(logging.WARNING, logger=credentials.__name__):
        credentials.save("machine", RELAY, "mn_1")
        credentials.save("user", RELAY, "cn_1")
    warnings = [r for r in caplog.records if "no system keyring" in r.getMessage()]
    assert len(warnings) == 1
    assert "mn_1" not in caplog.text
    assert "cn_1" not in caplog.text


def test_unreadable_file_loads_nothing(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_backend(monkeypatch, FAIL)
    paths().ensure().credentials_file.write_text("this is [not toml")
    assert credentials.load("machine", RELAY) is None


def test_keyring_is_preferred_when_usable(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_backend(monkeypatch, PLAINTEXT)
    assert credentials.save("machine", RELAY + "/", "mn_secret") == "keyring"
    assert not paths().credentials_file.exists()
    assert keyring.get_password(credentials.SERVICE, f"machine@{RELAY}") == "mn_secret"
    keyring_file = env / "xdg-data" / "python_keyring" / "keyring_pass.cfg"
    assert keyring_file.exists()  # it really went to the keyring under tmp_path
    assert credentials.load("machine", RELAY) == "mn_secret"
    credentials.delete("machine", RELAY)
    assert credentials.load("machine", RELAY) is None
    assert keyring.get_password(credentials.SERVICE, f"machine@{RELAY}") is None


def test_saving_to_the_keyring_removes_the_file_copy(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_backend(monkeypatch, FAIL)
    credentials.save("machine", RELAY, "mn_old")
    credentials.save("user", RELAY, "cn_keep")
    use_backend(monkeypatch, PLAINTEXT)
    # a keyring that lacks the token still finds the one in the file
    assert credentials.load("machine", RELAY) == "mn_old"
    assert credentials.save("machine", RELAY, "mn_new") == "keyring"
    assert file_contents() == {"machine": {}, "user": {RELAY: "cn_keep"}}
    assert credentials.load("machine", RELAY) == "mn_new"
    assert credentials.load("user", RELAY) == "cn_keep"
