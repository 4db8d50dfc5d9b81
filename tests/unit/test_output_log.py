"""The output log on a real SQLite store and real segment files: flushes, the session row that follows them, a
failed write that loses nothing, output that older relays kept in session_logs, and orphaned directories."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from claudenest.config import RelaySettings
from claudenest.relay.output_log import OutputLog, output_directory
from claudenest.relay.streams import SessionStream
from claudenest.store import Store
from tests.unit.test_store import new_session


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(str(tmp_path / "relay.db"))
    yield opened
    await opened.close()


@pytest.fixture
async def user(store: Store) -> dict[str, Any]:
    return await store.users.create("me@example.com")


def stream_of(session_id: str) -> SessionStream:
    return SessionStream(session_id=session_id, machine_id="m", user_id="u", end=0, persisted=0, ring_limit=1024)


async def test_a_flush_writes_pending_bytes_and_the_row_follows(store: Store, user: dict[str, Any]) -> None:
    sid = await new_session(store, user["id"])
    stream = stream_of(sid)
    log = OutputLog(store, RelaySettings(log_cap_bytes=1 << 20), lambda: [stream])
    await log.start()
    try:
        for offset, data in ((0, b"hello"), (5, b" world"), (3, b"lo world, again")):  # the last one overlaps
            _, fresh, _ = stream.accept(offset, data)
            log.added(stream, len(fresh))
        assert log.unpersisted_bytes == len(b"hello world, again")
        await log.flush()
        assert log.unpersisted_bytes == 0
        assert stream.persisted == stream.end == 18
        assert await log.read(sid, 0, 100) == (0, b"hello world, again")
        assert await log.bounds(sid) == (0, 18)
    finally:
        await log.stop()  # writes the row's bounds
    session = await store.sessions.get(sid)
    assert (session["output_bytes"], session["log_start_offset"]) == (18, 0)


async def test_a_failed_write_puts_the_bytes_back_and_the_next_flush_saves_them(
    store: Store, user: dict[str, Any]
) -> None:
    sid = await new_session(store, user["id"])
    stream = stream_of(sid)
    log = OutputLog(store, RelaySettings(), lambda: [stream])
    await log.start()
    blocker = output_directory(store.path) / sid
    blocker.write_text("not a directory")  # the disk refuses: the session's directory cannot be made
    try:
        stream.accept(0, b"precious")
        log.added(stream, 8)
        with pytest.raises(FileExistsError):
            await log.flush()
        assert stream.pending == [(0, b"precious")]
        assert log.unpersisted_bytes == 8
        blocker.unlink()
        await log.flush()
        assert await log.read(sid, 0, 100) == (0, b"precious")
        assert log.unpersisted_bytes == 0
    finally:
        await log.stop()


async def test_output_kept_in_the_old_table_moves_to_segments_once(store: Store, user: dict[str, Any]) -> None:
    sid = await new_session(store, user["id"])
    async with store.write() as db:  # as a relay before segment files left it
        await db.executemany(
            "INSERT INTO session_logs (session_id, offset, data) VALUES (?, ?, ?)",
            [(sid, 0, b"old "), (sid, 4, b"output"), (sid, 20, b"after a hole")],
        )
    log = OutputLog(store, RelaySettings(), lambda: [])
    await log.start()
    try:
        assert await log.read(sid, 0, 100) == (0, b"old output")
        assert await log.read(sid, 10, 100) == (20, b"after a hole")
        assert await store.fetchall("SELECT * FROM session_logs") == []
    finally:
        await log.stop()


async def test_directories_of_sessions_that_are_gone_are_removed(store: Store, user: dict[str, Any]) -> None:
    kept = await new_session(store, user["id"])
    gone = "00000000-0000-0000-0000-00000000dead"
    root = output_directory(store.path)
    for sid in (kept, gone):
        (root / sid).mkdir(parents=True)
        (root / sid / f"{0:020d}.seg").write_bytes(b"x")
    log = OutputLog(store, RelaySettings(), lambda: [])
    await log.start()
    await log.stop()
    assert sorted(p.name for p in root.iterdir()) == [kept]
