"""Paths and settings: CLAUDENEST_HOME, precedence env > file > defaults, validation, merging updates."""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path

import pytest

from claudenest import config
from claudenest.errors import ConfigError


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("CLAUDENEST_"):
            monkeypatch.delenv(name)
    root = tmp_path / "nest"
    monkeypatch.setenv("CLAUDENEST_HOME", str(root))
    return root


def write_config(home: Path, text: str) -> None:
    (home / "config").mkdir(parents=True, exist_ok=True)
    (home / "config" / "config.toml").write_text(text)


def test_claudenest_home_relocates_every_path(home: Path) -> None:
    p = config.paths()
    assert p.config_dir == home / "config"
    assert p.data_dir == home / "data"
    assert p.config_file == home / "config" / "config.toml"
    assert p.credentials_file == home / "config" / "credentials.toml"
    assert p.database == home / "data" / "relay.db"
    assert not home.exists()  # paths() alone creates nothing
    assert p.ensure() is p
    for directory in (p.config_dir, p.data_dir):
        assert directory.is_dir()
        assert stat.S_IMODE(directory.stat().st_mode) & 0o077 == 0


def test_claudenest_home_expands_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("CLAUDENEST_HOME", "~/elsewhere")
    assert config.paths().config_dir == tmp_path.resolve() / "elsewhere" / "config"


def test_without_home_platform_dirs_are_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLAUDENEST_HOME", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    p = config.paths()
    assert p.config_dir == tmp_path / "cfg" / "claudenest"
    assert p.data_dir == tmp_path / "share" / "claudenest"


def test_defaults_without_a_config_file(home: Path) -> None:
    settings = config.load_settings()
    assert settings == config.Settings()
    assert settings.relay.port == config.DEFAULT_PORT == 8700
    assert settings.relay.host == "127.0.0.1"
    assert settings.cli_relay_url == ""
    assert settings.log_format == "text"


def test_config_file_overrides_defaults(home: Path) -> None:
    write_config(
        home,
        """
log_format = "json"
[relay]
port = 9000
host = "0.0.0.0"
trusted_proxies = ["10.0.0.1", "10.0.0.2"]
[agent]
name = "laptop"
ring_bytes = 1024
[cli]
relay_url = "https://nest.example.com"
""",
    )
    settings = config.load_settings()
    assert settings.relay.port == 9000
    assert settings.relay.host == "0.0.0.0"
    assert settings.relay.trusted_proxies == ("10.0.0.1", "10.0.0.2")
    assert settings.relay.ring_bytes == config.RelaySettings().ring_bytes  # untouched keys keep defaults
    assert settings.agent.name == "laptop"
    assert settings.agent.ring_bytes == 1024
    assert settings.cli_relay_url == "https://nest.example.com"
    assert settings.log_format == "json"


def test_environment_overrides_config_file(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(
        home,
        '[relay]\nport = 9000\nhost = "0.0.0.0"\n[agent]\nname = "file"\n[cli]\nrelay_url = "http://f"\n',
    )
    monkeypatch.setenv("CLAUDENEST_RELAY_PORT", "9100")
    monkeypatch.setenv("CLAUDENEST_RELAY_TRUSTED_PROXIES", " 10.0.0.1, ,10.0.0.2 ")
    monkeypatch.setenv("CLAUDENEST_AGENT_NAME", "env")
    monkeypatch.setenv("CLAUDENEST_RELAY_URL", "http://env")
    monkeypatch.setenv("CLAUDENEST_LOG_FORMAT", "json")
    settings = config.load_settings()
    assert settings.relay.port == 9100
    assert isinstance(settings.relay.port, int)
    assert settings.relay.host == "0.0.0.0"  # not overridden: the file still counts
    assert settings.relay.trusted_proxies == ("10.0.0.1", "10.0.0.2")
    assert settings.agent.name == "env"
    assert settings.cli_relay_url == "http://env"
    assert settings.log_format == "json"


def test_explicit_paths_argument_is_honoured(tmp_path: Path, home: Path) -> None:
    other = config.Paths(config_dir=tmp_path / "other-cfg", data_dir=tmp_path / "other-data")
    other.config_dir.mkdir()
    other.config_file.write_text("[relay]\nport = 1234\n")
    write_config(home, "[relay]\nport = 9000\n")
    assert config.load_settings(other).relay.port == 1234
    assert config.load_settings().relay.port == 9000


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[relay]\nprot = 9000\n", "relay.prot"),
        ('[agent]\nrelay = "x"\n', "agent.relay"),
        ('[relay]\nport = "abc"\n', "relay.port"),
        ("[relay]\nport = [9000]\n", "relay.port"),
        ("[relay]\nmax_frame_bytes = {a = 1}\n", "relay.max_frame_bytes"),
        ("relay = 5\n", r"\[relay\]"),
        ("[relay\nport = 1\n", "config.toml"),
    ],
    ids=[
        "unknown relay key",
        "unknown agent key",
        "string port",
        "list port",
        "table int",
        "section not table",
        "bad toml",
    ],
)
def test_bad_config_file_is_a_config_error(home: Path, text: str, match: str) -> None:
    write_config(home, text)
    with pytest.raises(ConfigError, match=match):
        config.load_settings()


def test_a_config_file_that_is_not_utf8_is_a_config_error_naming_it(home: Path) -> None:
    write_config(home, "")
    path = config.paths().config_file
    path.write_bytes(b'[relay]\npublic_origin = "caf\xe9"\n')  # Latin-1, as an old editor saves it
    with pytest.raises(ConfigError, match=r"config\.toml is not UTF-8 text .*save it as UTF-8"):
        config.load_settings()


@pytest.mark.parametrize(("name", "value"), [("CLAUDENEST_RELAY_PORT", "abc"), ("CLAUDENEST_AGENT_RING_BYTES", "8MB")])
def test_bad_environment_value_is_a_config_error(
    home: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=value):
        config.load_settings()


def test_config_error_exit_code() -> None:
    assert ConfigError.exit_code == 2


def test_update_config_file_creates_the_file(home: Path) -> None:
    config.update_config_file({"cli": {"relay_url": "https://nest.example.com"}})
    p = config.paths()
    assert tomllib.loads(p.config_file.read_text()) == {"cli": {"relay_url": "https://nest.example.com"}}
    assert config.load_settings().cli_relay_url == "https://nest.example.com"


def test_update_config_file_merges_sections(home: Path) -> None:
    write_config(home, 'log_format = "json"\n[relay]\nport = 9000\nhost = "0.0.0.0"\n[agent]\nname = "box"\n')
    config.update_config_file({"relay": {"port": 9001, "public_origin": "https://x"}, "cli": {"relay_url": "http://r"}})
    raw = tomllib.loads(config.paths().config_file.read_text())
    assert raw == {
        "log_format": "json",
        "relay": {"port": 9001, "host": "0.0.0.0", "public_origin": "https://x"},
        "agent": {"name": "box"},
        "cli": {"relay_url": "http://r"},
    }
    settings = config.load_settings()
    assert (settings.relay.port, settings.relay.host, settings.agent.name) == (9001, "0.0.0.0", "box")
    assert sorted(f.name for f in (home / "config").iterdir()) == ["config.toml"]  # no temp file left
