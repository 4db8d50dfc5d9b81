"""The SQLite store: migrations, the one-relay lock, users and tokens, pairing, session output logs."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from claudenest import tokens
from claudenest.errors import Conflict, DatabaseLocked, NotFound, StoreError
from claudenest.store import Store
from claudenest.store.machines import PairingGone
from claudenest.store.migrations import MIGRATIONS

INFO = {"hostname": "box", "platform": "linux", "name": "box", "agent_version": "0.1.0"}


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "db" / "relay.db"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(db_path)
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def user(store: Store) -> dict[str, Any]:
    return await store.users.create("owner@example.com", is_owner=True)


async def new_session(store: Store, user_id: str) -> str:
    machine = await store.machines.create(user_id, name="box")
    session = await store.sessions.create(
        user_id=user_id,
        machine_id=machine["id"],
        mode="interactive",
        command=None,
        project_path="/p",
        cols=80,
        rows=24,
    )
    return str(session["id"])


# -- opening and migrating -------------------------------------------------------------------------


async def test_empty_database_is_migrated(db_path: Path) -> None:
    store = await Store.open(db_path)
    try:
        assert await store.applied_migrations() == [n for n, _, _ in MIGRATIONS]
        names = {r[0] for r in await store.fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {
            "users",
            "personal_access_tokens",
            "machines",
            "pairing_codes",
            "claude_sessions",
            "session_logs",
        } <= names
    finally:
        await store.close()
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600


async def test_reopening_a_migrated_database_keeps_data(db_path: Path) -> None:
    store = await Store.open(db_path)
    created = await store.users.create("a@example.com")
    await store.close()

    store = await Store.open(db_path)
    try:
        assert await store.applied_migrations() == [n for n, _, _ in MIGRATIONS]
        assert (await store.fetchone("SELECT COUNT(*) FROM _migrations"))[0] == len(MIGRATIONS)
        assert (await store.users.by_email("a@example.com"))["id"] == created["id"]
    finally:
        await store.close()


async def test_in_memory_store(tmp_path: Path) -> None:
    store = await Store.open(":memory:")
    try:
        await store.users.create("m@example.com")
        assert [u["email"] for u in await store.users.all()] == ["m@example.com"]
    finally:
        await store.close()
    assert list(tmp_path.iterdir()) == []


async def test_a_failed_write_rolls_back(store: Store) -> None:
    async def insert_then_fail() -> None:
        async with store.write() as db:
            await db.execute("INSERT INTO users (id, email, created_at) VALUES ('x', 'rollback@example.com', 'now')")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await insert_then_fail()
    with pytest.raises(NotFound):
        await store.users.by_email("rollback@example.com")


# -- the one-relay lock ----------------------------------------------------------------------------


async def test_exclusive_lock_refuses_a_second_relay(db_path: Path) -> None:
    first = await Store.open(db_path, exclusive=True)
    try:
        with pytest.raises(DatabaseLocked, match=str(os.getpid())) as caught:
            await Store.open(db_path, exclusive=True)
        assert isinstance(caught.value, StoreError)
        # A non-exclusive reader (e.g. the CLI) may still open it.
        reader = await Store.open(db_path)
        await reader.close()
    finally:
        await first.close()
    again = await Store.open(db_path, exclusive=True)
    await again.close()


async def test_lock_is_released_after_close_repeatedly(db_path: Path) -> None:
    for _ in range(3):
        s = await Store.open(db_path, exclusive=True)
        await s.close()


# -- users and tokens ------------------------------------------------------------------------------


async def test_duplicate_email_is_a_conflict_ignoring_case(store: Store, user: dict[str, Any]) -> None:
    assert user["is_owner"] is True
    assert "password_hash" not in user
    with pytest.raises(Conflict):
        await store.users.create("Owner@Example.com")
    assert (await store.users.owner())["id"] == user["id"]


async def test_live_token_finds_its_user_and_is_marked_used(store: Store, user: dict[str, Any]) -> None:
    raw = tokens.new_token(tokens.PAT_PREFIX)
    token = await store.users.add_token(
        user["id"], tokens.hash_token(raw), name="cli", expires_in=timedelta(days=1), abilities=["*"]
    )
    found = await store.users.user_for_token(tokens.hash_token(raw))
    assert found is not None
    assert found["email"] == "owner@example.com"
    assert found["token_id"] == token["id"]
    listed = await store.users.tokens(user["id"])
    assert [t["id"] for t in listed] == [token["id"]]
    assert listed[0]["abilities"] == ["*"]
    assert listed[0]["last_used_at"] is not None
    assert await store.users.user_for_token(tokens.hash_token(raw + "x")) is None


async def test_expired_token_finds_nobody(store: Store, user: dict[str, Any]) -> None:
    digest = tokens.hash_token(tokens.new_token("cn_"))
    await store.users.add_token(user["id"], digest, name="old", expires_in=timedelta(seconds=-1), abilities=["*"])
    assert await store.users.user_for_token(digest) is None


async def test_revoked_token_finds_nobody(store: Store, user: dict[str, Any]) -> None:
    digest = tokens.hash_token(tokens.new_token("cn_"))
    token = await store.users.add_token(user["id"], digest, name="t", expires_in=None, abilities=["*"])
    assert await store.users.user_for_token(digest) is not None
    await store.users.revoke_token(user["id"], token["id"])
    assert await store.users.user_for_token(digest) is None
    with pytest.raises(NotFound):
        await store.users.revoke_token(user["id"], token["id"])


async def test_raw_token_never_reaches_the_database_file(db_path: Path) -> None:
    store = await Store.open(db_path)
    user = await store.users.create("x@example.com")
    raw = tokens.new_token(tokens.PAT_PREFIX)
    digest = tokens.hash_token(raw)
    await store.users.add_token(user["id"], digest, name="cli", expires_in=None, abilities=["*"])
    assert await store.users.user_for_token(digest) is not None
    await store.close()
    on_disk = b"".join(f.read_bytes() for f in db_path.parent.iterdir() if f.name.startswith("relay.db"))
    assert digest.encode() in on_disk  # the scan does see what was written
    assert raw.encode() not in on_disk
    assert raw[3:].encode() not in on_disk


async def test_login_link_is_spent_once(store: Store, user: dict[str, Any]) -> None:
    digest = tokens.hash_token("link")
    await store.users.add_login_link(user["id"], digest, timedelta(minutes=5))
    assert await store.users.use_login_link(digest) == user["id"]
    assert await store.users.use_login_link(digest) is None


# -- pairing ---------------------------------------------------------------------------------------


async def test_only_one_concurrent_approval_wins(store: Store, user: dict[str, Any]) -> None:
    pairing = await store.machines.add_pairing("7KQ-MNP", "h", info=INFO, ip="10.0.0.5", ttl=timedelta(minutes=10))
    results = await asyncio.gather(
        *(store.machines.approve_pairing("7KQ-MNP", user["id"], f"name-{i}") for i in range(10)),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, dict)]
    losers = [r for r in results if not isinstance(r, dict)]
    assert len(winners) == 1
    assert len(losers) == 9
    assert all(isinstance(e, PairingGone) for e in losers)
    machines = await store.machines.for_user(user["id"])
    assert [m["id"] for m in machines] == [winners[0]["id"]]
    assert machines[0]["hostname"] == "box"
    assert machines[0]["last_ip"] == "10.0.0.5"
    row = await store.machines.pairing("7KQ-MNP")
    assert row["id"] == pairing["id"]
    assert (row["status"], row["machine_id"], row["user_id"]) == ("approved", winners[0]["id"], user["id"])


async def test_approve_unknown_or_expired_code(store: Store, user: dict[str, Any]) -> None:
    with pytest.raises(NotFound):
        await store.machines.approve_pairing("XXX-XXX", user["id"], None)
    await store.machines.add_pairing("AAA-AAA", "h", info=INFO, ip="1.2.3.4", ttl=timedelta(seconds=-1))
    with pytest.raises(PairingGone):
        await store.machines.approve_pairing("AAA-AAA", user["id"], None)
    assert await store.machines.for_user(user["id"]) == []


async def test_complete_pairing_only_once(store: Store, user: dict[str, Any]) -> None:
    pairing = await store.machines.add_pairing("CDE-FGH", "h", info=INFO, ip="1.2.3.4", ttl=timedelta(minutes=10))
    assert await store.machines.complete_pairing(pairing["id"], "early") is False  # not approved yet
    machine = await store.machines.approve_pairing("CDE-FGH", user["id"], None)
    assert machine["name"] == "box"
    digest = tokens.hash_token(tokens.new_token(tokens.MACHINE_PREFIX))
    assert await store.machines.complete_pairing(pairing["id"], digest) is True
    assert await store.machines.complete_pairing(pairing["id"], "other") is False
    assert (await store.machines.by_token(digest))["id"] == machine["id"]
    assert await store.machines.by_token("other") is None
    assert (await store.machines.pairing("CDE-FGH"))["status"] == "completed"


async def test_live_code_collides_but_spent_code_is_reused(store: Store, user: dict[str, Any]) -> None:
    first = await store.machines.add_pairing("JKM-NPQ", "h", info=INFO, ip="ip", ttl=timedelta(minutes=10))
    with pytest.raises(Conflict):
        await store.machines.add_pairing("JKM-NPQ", "h2", info=INFO, ip="ip", ttl=timedelta(minutes=10))
    await store.machines.approve_pairing("JKM-NPQ", user["id"], None)
    assert await store.machines.complete_pairing(first["id"], "hash") is True
    second = await store.machines.add_pairing("JKM-NPQ", "h3", info=INFO, ip="ip", ttl=timedelta(minutes=10))
    assert (await store.machines.pairing("JKM-NPQ"))["id"] == second["id"] != first["id"]


async def test_revoked_machine_token_stops_working(store: Store, user: dict[str, Any]) -> None:
    machine = await store.machines.create(user["id"], name="m", token_hash="mh")
    assert (await store.machines.by_token("mh"))["id"] == machine["id"]
    await store.machines.revoke(machine["id"], user["id"])
    assert await store.machines.by_token("mh") is None
    with pytest.raises(NotFound):
        await store.machines.revoke(machine["id"], user["id"])


async def test_a_session_is_live_until_completed_at_is_set(store: Store, user: dict[str, Any]) -> None:
    sid = await new_session(store, user["id"])
    machine_id = (await store.sessions.get(sid))["machine_id"]
    await store.sessions.update(sid, status="error", status_detail="authentication_failed")  # Claude's error
    assert [s["id"] for s in await store.sessions.live_on_machine(machine_id)] == [sid]
    assert (await store.sessions.get(sid))["ended"] is False
    await store.sessions.update(sid, status="exited", exit_code=0, completed_at="2026-11-25T00:00:00.000Z")
    session = await store.sessions.get(sid)
    assert session["ended"] is True
    assert await store.sessions.live_on_machine(machine_id) == []
