"""Where tokens live on this machine: the system keyring, or a 0600 file where no keyring exists.

Headless Linux servers usually have no keyring backend (``NoKeyringError``); we then fall back to
``credentials.toml`` in the config directory and say so once.
"""

from __future__ import annotations

import logging
import os
import tomllib
from typing import Literal

import keyring
import keyring.errors
import tomli_w

from claudenest.config import Paths, paths

log = logging.getLogger(__name__)

SERVICE = "claudenest"
Kind = Literal["machine", "user"]
_warned = False


def _account(kind: Kind, relay_url: str) -> str:
    return f"{kind}@{relay_url.rstrip('/')}"


def _keyring_usable() -> bool:
    try:
        backend = keyring.get_keyring()
    except Exception:
        return False
    priority = getattr(backend, "priority", 0)
    name = type(backend).__module__
    return not (name.startswith("keyring.backends.fail") or name.startswith("keyring.backends.null") or priority <= 0)


def _say_fallback(p: Paths) -> None:
    global _warned
    if not _warned:
        log.warning("no system keyring available; storing credentials in %s (mode 0600)", p.credentials_file)
        _warned = True


def save(kind: Kind, relay_url: str, token: str, p: Paths | None = None) -> str:
    """Store a token; returns where it went ("keyring" or the file path)."""
    p = (p or paths()).ensure()
    if _keyring_usable():
        try:
            keyring.set_password(SERVICE, _account(kind, relay_url), token)
            _file_delete(kind, relay_url, p)
            return "keyring"
        except keyring.errors.KeyringError as exc:
            log.warning("keyring refused the token (%s); using the credentials file", exc)
    _say_fallback(p)
    data = _file_read(p)
    data.setdefault(kind, {})[relay_url.rstrip("/")] = token
    _file_write(data, p)
    return str(p.credentials_file)


def load(kind: Kind, relay_url: str, p: Paths | None = None) -> str | None:
    p = p or paths()
    if _keyring_usable():
        try:
            found = keyring.get_password(SERVICE, _account(kind, relay_url))
            if found:
                return found
        except keyring.errors.KeyringError:
            pass
    token = _file_read(p).get(kind, {}).get(relay_url.rstrip("/"))
    return str(token) if token else None


def delete(kind: Kind, relay_url: str, p: Paths | None = None) -> None:
    p = p or paths()
    if _keyring_usable():
        try:
            keyring.delete_password(SERVICE, _account(kind, relay_url))
        except keyring.errors.KeyringError:
            pass
    _file_delete(kind, relay_url, p)


def _file_read(p: Paths) -> dict[str, dict[str, str]]:
    try:
        with p.credentials_file.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError:
        log.warning("%s is not valid TOML; ignoring it", p.credentials_file)
        return {}


def _file_write(data: dict[str, dict[str, str]], p: Paths) -> None:
    tmp = p.credentials_file.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(tomli_w.dumps(data))
    os.replace(tmp, p.credentials_file)


def _file_delete(kind: Kind, relay_url: str, p: Paths) -> None:
    data = _file_read(p)
    if data.get(kind, {}).pop(relay_url.rstrip("/"), None) is not None:
        _file_write(data, p)
