"""Pick an sqlite3 module that can load extensions (sqlite-vec).

Many Pythons (pyenv builds, macOS system Python) are built without ``enable_load_extension``; on those we use
``pysqlite3`` (the ``pysqlite3-binary`` wheel on Linux x86_64), which bundles a recent SQLite that can.
"""

from __future__ import annotations

import sqlite3
from functools import cache
from types import ModuleType
from typing import Any

from claudenest.errors import StoreError


def _can_load_extensions(module: Any) -> bool:
    try:
        conn = module.connect(":memory:")
    except Exception:
        return False
    try:
        return hasattr(conn, "enable_load_extension")
    finally:
        conn.close()


@cache
def sqlite_module() -> ModuleType:
    if _can_load_extensions(sqlite3):
        return sqlite3
    try:
        import pysqlite3.dbapi2 as pysqlite3
    except ImportError:
        raise StoreError(
            "this Python's sqlite3 cannot load extensions and pysqlite3 is not installed; "
            "run `pip install pysqlite3-binary` (Linux x86_64) or use a Python built with "
            "--enable-loadable-sqlite-extensions"
        ) from None
    if not _can_load_extensions(pysqlite3):
        raise StoreError("neither sqlite3 nor pysqlite3 can load SQLite extensions")
    module: ModuleType = pysqlite3
    return module


def connect(path: str) -> Any:
    """A new connection with sqlite-vec loaded and the pragmas every connection needs."""
    import sqlite_vec

    module = sqlite_module()
    conn = module.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    try:
        conn.enable_load_extension(True)
        sqlite_vec.load(conn)
        conn.enable_load_extension(False)
    except Exception as exc:
        conn.close()
        raise StoreError(f"cannot load sqlite-vec into SQLite {module.sqlite_version}: {exc}") from exc
    conn.row_factory = module.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def versions() -> dict[str, str]:
    module = sqlite_module()
    conn = connect(":memory:")
    try:
        vec = conn.execute("select vec_version()").fetchone()[0]
    finally:
        conn.close()
    return {"sqlite": module.sqlite_version, "sqlite_vec": vec, "driver": module.__name__.split(".")[0]}
