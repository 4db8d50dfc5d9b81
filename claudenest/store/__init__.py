"""The relay's SQLite store: one class owns the database (see docs/storage.md)."""

from claudenest.store.connection import Store, sqlite_versions

__all__ = ["Store", "sqlite_versions"]
