"""Paths and settings.

Precedence: command-line flags > ``CLAUDENEST_*`` environment > ``config.toml`` > defaults.
``CLAUDENEST_HOME`` relocates every path (config, data, credentials, logs); every test uses it.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import platformdirs
import tomli_w

from claudenest.errors import ConfigError, StoreError

APP_NAME = "claudenest"
DEFAULT_PORT = 8700


@dataclass(frozen=True)
class Paths:
    config_dir: Path
    data_dir: Path

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.toml"

    @property
    def credentials_file(self) -> Path:
        return self.config_dir / "credentials.toml"

    @property
    def database(self) -> Path:
        return self.data_dir / "relay.db"

    def ensure(self) -> Paths:
        for directory in (self.config_dir, self.data_dir):
            try:
                directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            except OSError as exc:
                raise StoreError(
                    f"cannot create {directory}: {exc.strerror} (set CLAUDENEST_HOME to a writable directory)"
                ) from None
        return self


def paths() -> Paths:
    home = os.environ.get("CLAUDENEST_HOME")
    if home:
        root = Path(home).expanduser().resolve()
        return Paths(config_dir=root / "config", data_dir=root / "data")
    return Paths(
        config_dir=Path(platformdirs.user_config_dir(APP_NAME)),
        data_dir=Path(platformdirs.user_data_dir(APP_NAME)),
    )


@dataclass(frozen=True)
class RelaySettings:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    database: str = ""  # empty: <data dir>/relay.db
    public_origin: str = ""  # e.g. https://nest.example.com; empty: derived from host and port
    max_frame_bytes: int = 1 << 20
    ring_bytes: int = 256 << 10  # per-session output kept in relay memory; older bytes are read from the log
    log_cap_bytes: int = 64 << 20  # per-session retention on disk; oldest segments dropped first
    replay_limit_bytes: int = 256 << 10  # how far back a screen replay starts when no screen wipe is nearer
    screen_replay_bytes: int = 1 << 20  # a screen wipe at most this far back is where a screen replay starts
    viewer_queue_bytes: int = 1 << 20  # a viewer with this much queued is served from the log until it catches up
    tls_cert: str = ""
    tls_key: str = ""
    trusted_proxies: tuple[str, ...] = ()


@dataclass(frozen=True)
class AgentSettings:
    relay_url: str = ""
    name: str = ""
    claude_path: str = ""
    ring_bytes: int = 8 << 20
    link_high_water_bytes: int = 4 << 20
    permission_wait: int = 110  # seconds a PermissionRequest waits for a remote answer before Claude asks locally
    trust_projects: tuple[str, ...] = ()  # opt-in: folders whose Claude workspace trust the agent may pre-accept


@dataclass(frozen=True)
class Settings:
    relay: RelaySettings = field(default_factory=RelaySettings)
    agent: AgentSettings = field(default_factory=AgentSettings)
    # Relay the CLI talks to (set by `claudenest login` / `claudenest up`).
    cli_relay_url: str = ""
    log_format: str = "text"


_SECTIONS: dict[str, type[Any]] = {"relay": RelaySettings, "agent": AgentSettings}


def _coerce(name: str, value: Any, target: Any) -> Any:
    try:
        if isinstance(target, bool):
            return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes", "on")
        if isinstance(target, int):
            return int(value)
        if isinstance(target, tuple):
            if isinstance(value, str):
                return tuple(v.strip() for v in value.split(",") if v.strip())
            return tuple(str(v) for v in value)
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"setting {name}: {value!r} is not a valid {type(target).__name__}") from exc


def _apply(section: Any, prefix: str, values: dict[str, Any]) -> Any:
    known = {f.name: getattr(section, f.name) for f in fields(section)}
    changes = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"unknown setting {prefix}{key} in config.toml")
        changes[key] = _coerce(prefix + key, value, known[key])
    return replace(section, **changes)


def _env_overrides(section: Any, section_name: str) -> dict[str, Any]:
    found = {}
    for f in fields(section):
        env_name = f"CLAUDENEST_{section_name.upper()}_{f.name.upper()}"
        if env_name in os.environ:
            found[f.name] = os.environ[env_name]
    return found


def read_config_file(p: Paths | None = None) -> dict[str, Any]:
    p = p or paths()
    if not p.config_file.exists():
        return {}
    try:
        with p.config_file.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p.config_file}: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p.config_file} is not UTF-8 text (byte {exc.start}): save it as UTF-8") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read {p.config_file}: {exc.strerror}") from exc


def load_settings(p: Paths | None = None) -> Settings:
    """Defaults, then config.toml, then CLAUDENEST_* environment. Flags are applied by the CLI."""
    raw = read_config_file(p)
    settings = Settings()
    for name, cls in _SECTIONS.items():
        section = getattr(settings, name)
        file_values = raw.get(name, {})
        if not isinstance(file_values, dict):
            raise ConfigError(f"[{name}] in config.toml must be a table")
        section = _apply(section, f"{name}.", file_values)
        section = _apply(section, f"{name}.", _env_overrides(section, name))
        assert isinstance(section, cls)
        settings = replace(settings, **{name: section})
    cli = raw.get("cli", {})
    relay_url = os.environ.get("CLAUDENEST_RELAY_URL") or (cli.get("relay_url", "") if isinstance(cli, dict) else "")
    log_format = os.environ.get("CLAUDENEST_LOG_FORMAT") or str(raw.get("log_format", "text"))
    if log_format not in ("text", "json"):
        raise ConfigError(f"log_format must be text or json, not {log_format!r}")
    return replace(settings, cli_relay_url=relay_url, log_format=log_format)


def update_config_file(updates: dict[str, dict[str, Any]], p: Paths | None = None) -> None:
    """Merge ``{section: {key: value}}`` into config.toml, keeping everything else."""
    p = (p or paths()).ensure()
    raw = read_config_file(p)
    for section, values in updates.items():
        table = raw.setdefault(section, {})
        table.update(values)
    tmp = p.config_file.with_suffix(".tmp")
    tmp.write_text(tomli_w.dumps(raw))
    tmp.replace(p.config_file)
