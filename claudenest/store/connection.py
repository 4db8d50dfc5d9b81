"""``Store.open()`` connects, sets pragmas, loads sqlite-vec, applies migrations and hands out query objects."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from claudenest.clock import now_iso
from claudenest.errors import DatabaseLocked, StoreError
from claudenest.store import sqlite
from claudenest.store.migrations import MIGRATIONS

T = TypeVar("T")
READERS = 2  # read-only connections for searches: a hybrid query runs its two halves at once


def sqlite_versions() -> dict[str, str]:
    return sqlite.versions()


class Store:
    """The relay's database. One writer: every write goes through :meth:`write`, which serialises them."""

    def __init__(self, conn: aiosqlite.Connection, path: str, lock_fd: int | None) -> None:
        self._conn = conn
        self.path = path
        self._lock_fd = lock_fd
        self._write_lock = asyncio.Lock()
        self._readers: asyncio.Queue[aiosqlite.Connection] | None = None
        self._reader_conns: list[aiosqlite.Connection] = []
        self._readers_lock = asyncio.Lock()
        from claudenest.store.activity import ActivityQueries
        from claudenest.store.context import ContextQueries
        from claudenest.store.instances import InstanceQueries
        from claudenest.store.locks import LockQueries
        from claudenest.store.machines import MachineQueries
        from claudenest.store.projects import ProjectQueries
        from claudenest.store.sessions import SessionQueries
        from claudenest.store.tasks import TaskQueries
        from claudenest.store.users import UserQueries

        self.users = UserQueries(self)
        self.machines = MachineQueries(self)
        self.sessions = SessionQueries(self)
        self.activity = ActivityQueries(self)
        self.projects = ProjectQueries(self)
        self.tasks = TaskQueries(self)
        self.locks = LockQueries(self)
        self.instances = InstanceQueries(self)
        self.context = ContextQueries(self)

    @classmethod
    async def open(cls, path: str | Path, *, exclusive: bool = False) -> Store:
        """Open (creating if needed) and migrate. ``exclusive`` takes the one-relay-per-file lock."""
        path = str(path)
        lock_fd = None
        if path != ":memory:":
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            except OSError as exc:
                raise StoreError(f"cannot create {Path(path).parent}: {exc.strerror}") from None
            if exclusive:
                lock_fd = _take_lock(path + ".lock")
        conn: aiosqlite.Connection | None = None
        try:
            conn = aiosqlite.Connection(lambda: sqlite.connect(path), iter_chunk_size=256)
            await conn
            if path != ":memory:":
                os.chmod(path, 0o600)
            store = cls(conn, path, lock_fd)
            await store._migrate()
        except Exception as exc:
            # Close the connection's thread before the error leaves: one left running calls back into an event
            # loop that asyncio.run has closed by then ("RuntimeError: Event loop is closed" on stderr).
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()
                # After a failed connect aiosqlite stops its thread without waiting for it (Connection.stop):
                # wait here, while the loop can still take the thread's last callback.
                thread = getattr(conn, "_thread", None)
                if thread is not None and thread.is_alive():
                    await asyncio.to_thread(thread.join, 5)
            _release_lock(lock_fd)
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"cannot open database {path}: {exc}") from exc
        return store

    async def close(self) -> None:
        for reader in self._reader_conns:
            await reader.close()
        self._reader_conns.clear()
        await self._conn.close()
        _release_lock(self._lock_fd)
        self._lock_fd = None

    async def _migrate(self) -> None:
        async with self.write() as db:
            await db.execute(
                "CREATE TABLE IF NOT EXISTS _migrations (id INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT)"
            )
            done = {row[0] for row in await db.fetchall("SELECT id FROM _migrations")}
            for number, name, sql in MIGRATIONS:
                if number in done:
                    continue
                for statement in _statements(sql):
                    await db.execute(statement)
                await db.execute(
                    "INSERT INTO _migrations (id, name, applied_at) VALUES (?, ?, ?)",
                    (number, name, now_iso()),
                )

    async def applied_migrations(self) -> list[int]:
        return [row[0] for row in await self.fetchall("SELECT id FROM _migrations ORDER BY id")]

    # -- plain access -------------------------------------------------------------------------------------------

    # fetchone/fetchall make one trip to the database thread (execute_fetchall), not three (execute, fetch, close).

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Any:
        rows = await self._conn.execute_fetchall(sql, tuple(params))
        return next(iter(rows), None)

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        return list(await self._conn.execute_fetchall(sql, tuple(params)))

    async def read(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        """A query on one of READERS read-only connections, opened on first use.

        For searches: they can take milliseconds, and on their own connections they neither queue behind the
        terminal log writes on the main one nor wait for each other (SQLite releases the GIL while it works, and a
        WAL reader never waits for the writer). An in-memory database has one connection, so it reads on that.
        """
        if self.path == ":memory:":
            return await self.fetchall(sql, params)
        readers = self._readers or await self._open_readers()
        reader = await readers.get()
        try:
            return list(await reader.execute_fetchall(sql, tuple(params)))
        finally:
            readers.put_nowait(reader)

    async def _open_readers(self) -> asyncio.Queue[aiosqlite.Connection]:
        async with self._readers_lock:
            if self._readers is None:
                readers: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
                for _ in range(READERS):
                    reader = aiosqlite.Connection(lambda: _reader_connection(self.path), iter_chunk_size=256)
                    await reader
                    self._reader_conns.append(reader)
                    readers.put_nowait(reader)
                self._readers = readers
            return self._readers

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Run one write statement in its own transaction; returns the number of rows changed."""
        async with self.write() as db:
            return await db.execute(sql, params)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[WriteTransaction]:
        """A ``BEGIN IMMEDIATE`` transaction: decisions made inside it cannot race another writer."""
        async with self._write_lock:
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield WriteTransaction(self._conn)
            except BaseException:
                await self._conn.execute("ROLLBACK")
                raise
            else:
                await self._conn.execute("COMMIT")

    async def transact(self, decide: Callable[[SyncTransaction], T]) -> T:
        """Run ``decide`` inside one ``BEGIN IMMEDIATE`` transaction, in the database thread, in a single trip.

        The same guarantee as :meth:`write` (serialised with every other write; rolled back when ``decide`` raises),
        but a decision made of several statements costs one hand-off to aiosqlite's thread instead of one per
        statement (a task claim: 1 instead of 5). ``decide`` is plain synchronous code: it must only run SQL and
        compute, since every other database call waits while it runs.
        """

        def run() -> T:
            conn = self._conn._conn  # the sqlite3 connection, used here only from aiosqlite's own thread
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = decide(SyncTransaction(conn))
            except BaseException:
                if conn.in_transaction:  # SQLite may already have rolled back after some errors
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        # aiosqlite has no public "run this in your thread"; _execute (untyped) is what its own methods use.
        in_thread: Callable[[Callable[[], T]], Awaitable[T]] = self._conn._execute
        async with self._write_lock:
            return await in_thread(run)


class SyncTransaction:
    """The statements of a :meth:`Store.transact` decision (synchronous, inside the database thread)."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        return int(self._conn.execute(sql, tuple(params)).rowcount)

    def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Any:
        rows = self._conn.execute(sql, tuple(params)).fetchall()  # runs the statement to its end
        return rows[0] if rows else None

    def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        return list(self._conn.execute(sql, tuple(params)).fetchall())


class WriteTransaction:
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        async with self._conn.execute(sql, tuple(params)) as cursor:
            return cursor.rowcount

    async def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        await self._conn.executemany(sql, [tuple(r) for r in rows])

    # fetchone/fetchall make one trip to the database thread (execute_fetchall), not three (execute, fetch, close).

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Any:
        rows = await self._conn.execute_fetchall(sql, tuple(params))
        return next(iter(rows), None)

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        return list(await self._conn.execute_fetchall(sql, tuple(params)))


def _reader_connection(path: str) -> Any:
    conn = sqlite.connect(path)
    conn.execute("PRAGMA query_only=1")
    # Searches scan the whole code index of a project (19 MB at 100k chunks): map the file rather than copy pages
    # into each connection's cache, so both readers share the OS's copy.
    conn.execute("PRAGMA mmap_size=1073741824")
    return conn


def _statements(sql: str) -> list[str]:
    return [s.strip() for s in sql.split(";") if s.strip()]


def _take_lock(lock_path: str) -> int:
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        holder = ""
        try:
            holder = Path(lock_path).read_text().strip()
        except OSError:
            pass
        raise DatabaseLocked(
            f"another relay (pid {holder or 'unknown'}) already owns {lock_path[: -len('.lock')]}; "
            "stop it first or point this one at another database"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def _release_lock(fd: int | None) -> None:
    if fd is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
