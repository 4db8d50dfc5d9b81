"""The coordination store: projects, the task DAG and its claims, file locks with globs and fencing, instances."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from claudenest import tokens
from claudenest.errors import Conflict, InvalidField, LockConflict, NotFound
from claudenest.store import Store
from claudenest.store.activity import Actor
from claudenest.store.locks import normalize_path, overlaps

USER = Actor("owner@example.com")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "relay.db")
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def project(store: Store) -> dict[str, Any]:
    user = await store.users.create("owner@example.com", is_owner=True)
    return await store.projects.create(user["id"], name="nest", project_path="/home/me/nest")


async def instance(store: Store, project: dict[str, Any], name: str) -> dict[str, Any]:
    return await store.instances.create(
        project["id"], project["user_id"], name=name, token_hash=tokens.hash_token(tokens.new_token("ci_"))
    )


def actor(inst: dict[str, Any]) -> Actor:
    return Actor(inst["name"], inst["id"])


async def kinds(store: Store, project: dict[str, Any]) -> list[str]:
    return [a["kind"] for a in await store.activity.of_project(project["id"], limit=1000)]


# -- projects -------------------------------------------------------------------------------------------------


async def test_project_defaults_names_and_update(store: Store, project: dict[str, Any]) -> None:
    assert project["token_budget"] == 4000
    assert project["settings"] == {}
    assert project["summary"] == ""
    with pytest.raises(Conflict, match="already have a project named 'nest'"):
        await store.projects.create(project["user_id"], name="nest", project_path="/x")
    other = await store.projects.create(project["user_id"], name="other", project_path="/x")
    with pytest.raises(Conflict):
        await store.projects.update(other["id"], {"name": "nest"}, USER)
    updated = await store.projects.update(project["id"], {"summary": "a nest", "token_budget": 100}, USER)
    assert (updated["summary"], updated["token_budget"]) == ("a nest", 100)
    assert "project_updated" in await kinds(store, project)


async def test_deleting_a_project_removes_everything_of_it(store: Store, project: dict[str, Any]) -> None:
    a = await instance(store, project, "a")
    task = await store.tasks.create(project["id"], USER, title="t")
    await store.tasks.claim(project["id"], task["id"], a)
    await store.locks.acquire(project, a, "x.py", ttl_seconds=60)
    await store.projects.delete(project["id"])
    for table in ("shared_tasks", "claude_instances", "file_locks", "activity_logs", "project_fencing"):
        assert (await store.fetchone(f"SELECT COUNT(*) FROM {table}"))[0] == 0, table
    with pytest.raises(NotFound):
        await store.projects.delete(project["id"])


# -- tasks ----------------------------------------------------------------------------------------------------


async def test_claim_next_takes_priority_then_age_and_respects_dependencies(
    store: Store, project: dict[str, Any]
) -> None:
    a = await instance(store, project, "a")
    pid = project["id"]
    low = await store.tasks.create(pid, USER, title="low", priority="low")
    first = await store.tasks.create(pid, USER, title="high-1", priority="high")
    await store.tasks.create(pid, USER, title="high-2", priority="high")
    gated = await store.tasks.create(pid, USER, title="critical", priority="critical", dependencies=[low["id"]])
    order = []
    while (task := await store.tasks.claim_next(pid, a)) is not None:
        order.append(task["title"])
        assert task["assigned_to"] == a["id"]
        if task["title"] == "low":
            await store.tasks.complete(pid, task["id"], actor(a), summary="done")
            order.append("(low done)")
    assert order == ["high-1", "high-2", "low", "(low done)", "critical"]
    assert first["created_at"] <= (await store.tasks.get(pid, gated["id"]))["claimed_at"]
    assert (await store.instances.get(pid, a["id"]))["current_task_id"] == gated["id"]


async def test_illegal_transitions_name_the_state(store: Store, project: dict[str, Any]) -> None:
    a, b = await instance(store, project, "alice"), await instance(store, project, "bob")
    pid = project["id"]
    dep = await store.tasks.create(pid, USER, title="dep")
    task = await store.tasks.create(pid, USER, title="t", dependencies=[dep["id"]])
    with pytest.raises(Conflict, match=f"depends on unfinished tasks: {dep['id']} 'dep' \\(pending\\)"):
        await store.tasks.claim(pid, task["id"], a)
    with pytest.raises(Conflict, match="task is pending, not in_progress"):
        await store.tasks.complete(pid, dep["id"], actor(a), summary="x")
    with pytest.raises(Conflict, match="task is pending, not blocked"):
        await store.tasks.unblock(pid, dep["id"], USER)
    await store.tasks.claim(pid, dep["id"], a)
    with pytest.raises(Conflict, match="task is in_progress, not pending \\(assigned to alice\\)"):
        await store.tasks.claim(pid, dep["id"], b)
    with pytest.raises(Conflict, match="assigned to alice\\), not assigned to bob"):
        await store.tasks.release(pid, dep["id"], actor(b))
    with pytest.raises(Conflict, match="not assigned to bob"):
        await store.tasks.complete(pid, dep["id"], actor(b), summary="x")
    done = await store.tasks.complete(pid, dep["id"], actor(a), summary="did it", files_modified=["a.py", "a.py"])
    assert (done["status"], done["completion_summary"], done["files_modified"]) == ("done", "did it", ["a.py"])
    with pytest.raises(Conflict, match="task is done, not pending"):
        await store.tasks.claim(pid, dep["id"], b)
    with pytest.raises(Conflict, match="task is done, not in_progress"):
        await store.tasks.release(pid, dep["id"], USER)
    assert (await store.instances.get(pid, a["id"]))["tasks_completed"] == 1
    assert (await store.tasks.claim(pid, task["id"], b))["status"] == "in_progress"


async def test_review_is_decided_by_another_instance_or_the_owner(store: Store, project: dict[str, Any]) -> None:
    a, b = await instance(store, project, "alice"), await instance(store, project, "bob")
    pid = project["id"]
    task = await store.tasks.create(pid, USER, title="t")
    with pytest.raises(Conflict, match="task is pending, not in_progress"):
        await store.tasks.request_review(pid, task["id"], actor(a), summary="x")
    await store.tasks.claim(pid, task["id"], a)
    with pytest.raises(Conflict, match="not assigned to bob"):
        await store.tasks.request_review(pid, task["id"], actor(b), summary="x")
    ready = await store.tasks.request_review(pid, task["id"], actor(a), summary="first try", files_modified=["a.py"])
    assert (ready["status"], ready["assigned_to"], ready["completion_summary"]) == ("review", a["id"], "first try")
    assert (await store.instances.get(pid, a["id"]))["current_task_id"] is None  # free for other work meanwhile
    with pytest.raises(Conflict, match="own assignee cannot decide its review"):
        await store.tasks.approve(pid, task["id"], actor(a))
    with pytest.raises(Conflict, match="own assignee cannot decide its review"):
        await store.tasks.request_changes(pid, task["id"], actor(a), "no")
    with pytest.raises(Conflict, match="task is in review"):
        await store.tasks.complete(pid, task["id"], actor(a), summary="sneaking past the review")
    again = await store.tasks.request_changes(pid, task["id"], actor(b), "add a test")
    assert (again["status"], again["assigned_to"]) == ("in_progress", a["id"])
    with pytest.raises(Conflict, match="task is in_progress, not review"):
        await store.tasks.approve(pid, task["id"], actor(b))
    await store.tasks.request_review(pid, task["id"], actor(a), summary="with a test", files_modified=["t.py"])
    done = await store.tasks.approve(pid, task["id"], actor(b), "looks right")
    assert (done["status"], done["completion_summary"], done["files_modified"]) == ("done", "with a test", ["t.py"])
    assert done["completed_at"] is not None
    assert (await store.instances.get(pid, a["id"]))["tasks_completed"] == 1  # credit goes to the assignee
    assert (await store.instances.get(pid, b["id"]))["tasks_completed"] == 0
    history = await kinds(store, project)
    assert history.count("task_review_requested") == 2
    assert "task_changes_requested" in history
    assert history[-1] == "task_completed"
    # The owner (a user, not an instance) may decide a review too.
    other = await store.tasks.create(pid, USER, title="u")
    await store.tasks.claim(pid, other["id"], a)
    await store.tasks.request_review(pid, other["id"], actor(a), summary="u done")
    assert (await store.tasks.approve(pid, other["id"], USER))["status"] == "done"


async def test_block_unblock_and_release(store: Store, project: dict[str, Any]) -> None:
    a = await instance(store, project, "a")
    pid = project["id"]
    task = await store.tasks.create(pid, USER, title="t")
    await store.tasks.claim(pid, task["id"], a)
    blocked = await store.tasks.block(pid, task["id"], actor(a), "waiting for review")
    assert (blocked["status"], blocked["blocked_reason"], blocked["assigned_to"]) == (
        "blocked",
        "waiting for review",
        a["id"],
    )
    assert await store.tasks.claim_next(pid, a) is None
    back = await store.tasks.unblock(pid, task["id"], USER)
    assert (back["status"], back["assigned_to"], back["blocked_reason"]) == ("in_progress", a["id"], None)
    released = await store.tasks.release(pid, task["id"], USER)
    assert (released["status"], released["assigned_to"]) == ("pending", None)
    await store.tasks.block(pid, task["id"], USER, "no")
    assert (await store.tasks.unblock(pid, task["id"], USER))["status"] == "pending"
    assert await kinds(store, project) == [
        "instance_joined",
        "task_created",
        "task_claimed",
        "task_blocked",
        "task_unblocked",
        "task_released",
        "task_blocked",
        "task_unblocked",
    ]


async def test_dependencies_must_exist_and_never_cycle(store: Store, project: dict[str, Any]) -> None:
    pid = project["id"]
    with pytest.raises(InvalidField) as missing:
        await store.tasks.create(pid, USER, title="t", dependencies=["nope"])
    assert missing.value.field == "dependencies"
    a = await store.tasks.create(pid, USER, title="a")
    b = await store.tasks.create(pid, USER, title="b", dependencies=[a["id"], a["id"]])
    assert b["dependencies"] == [a["id"]]
    c = await store.tasks.create(pid, USER, title="c", dependencies=[b["id"]])
    with pytest.raises(InvalidField, match="cycle"):
        await store.tasks.update(pid, a["id"], {"dependencies": [c["id"]]}, USER)
    with pytest.raises(InvalidField, match="itself"):
        await store.tasks.update(pid, a["id"], {"dependencies": [a["id"]]}, USER)
    other = await store.projects.create(project["user_id"], name="other", project_path="/o")
    with pytest.raises(InvalidField):
        await store.tasks.create(other["id"], USER, title="x", dependencies=[a["id"]])
    updated = await store.tasks.update(pid, c["id"], {"dependencies": [], "priority": "high"}, USER)
    assert (updated["dependencies"], updated["priority"]) == ([], "high")


async def test_concurrent_claims_never_double_claim(store: Store, project: dict[str, Any]) -> None:
    pid = project["id"]
    racers = [await instance(store, project, f"i{n}") for n in range(8)]
    for n in range(40):
        await store.tasks.create(pid, USER, title=f"t{n}")

    async def drain(inst: dict[str, Any]) -> list[str]:
        got = []
        while (task := await store.tasks.claim_next(pid, inst)) is not None:
            got.append(task["id"])
        return got

    results = await asyncio.gather(*(drain(r) for r in racers))
    claimed = [t for got in results for t in got]
    assert len(claimed) == len(set(claimed)) == 40
    one = await store.tasks.create(pid, USER, title="contested")
    outcomes = await asyncio.gather(*(store.tasks.claim(pid, one["id"], r) for r in racers), return_exceptions=True)
    assert sum(isinstance(o, dict) for o in outcomes) == 1
    assert all(isinstance(o, Conflict) for o in outcomes if not isinstance(o, dict))


# -- locks ----------------------------------------------------------------------------------------------------


def test_lock_paths_are_relative_and_normal() -> None:
    assert normalize_path("/home/me/nest/src//a.py", "/home/me/nest") == "src/a.py"
    assert normalize_path("./src/a.py") == "src/a.py"
    assert normalize_path("src/*.py ") == "src/*.py"
    with pytest.raises(InvalidField):
        normalize_path("  ")
    with pytest.raises(InvalidField):
        normalize_path("/home/me/nest/", "/home/me/nest")


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("src/a.py", "src/a.py", True),
        ("src/a.py", "src/b.py", False),
        ("src/*.py", "src/a.py", True),
        ("src/a.py", "src/*.py", True),
        ("src/*", "src/deep/a.py", True),
        ("src/*", "docs/a.md", False),
        ("src/*", "src/*.py", True),
        ("*.md", "README.md", True),
        ("src/?.py", "src/ab.py", False),
    ],
)
def test_overlap(a: str, b: str, expected: bool) -> None:
    assert overlaps(a, b) is expected


@given(st.text(alphabet="ab/.*?", min_size=1, max_size=8), st.text(alphabet="ab/.*?", min_size=1, max_size=8))
def test_overlap_is_symmetric(a: str, b: str) -> None:
    assert overlaps(a, b) == overlaps(b, a)
    assert overlaps(a, a)


async def test_locks_conflict_renew_release_and_fence(store: Store, project: dict[str, Any]) -> None:
    a, b = await instance(store, project, "alice"), await instance(store, project, "bob")
    first = await store.locks.acquire(project, a, "/home/me/nest/src/*.py", reason="refactor", ttl_seconds=60)
    assert (first["path"], first["holder_name"], first["fencing"]) == ("src/*.py", "alice", 1)
    with pytest.raises(LockConflict) as refused:
        await store.locks.acquire(project, b, "src/app.py", ttl_seconds=60)
    assert str(refused.value) == f"locked by alice until {first['expires_at']} (lock on src/*.py)"
    assert refused.value.holder == {"id": a["id"], "name": "alice"}
    mine = await store.locks.acquire(project, b, "docs/x.md", ttl_seconds=60)
    with pytest.raises(LockConflict, match="locked by bob"):
        await store.locks.acquire(project, a, "docs/*", ttl_seconds=60)
    again = await store.locks.acquire(project, a, "src/*.py", ttl_seconds=120)
    assert (again["id"], again["fencing"]) == (first["id"], mine["fencing"] + 1)
    renewed = await store.locks.renew(project, a, "src/*.py", ttl_seconds=300)
    assert renewed["fencing"] == again["fencing"] + 1
    assert renewed["expires_at"] > again["expires_at"]
    with pytest.raises(LockConflict):
        await store.locks.renew(project, b, "src/*.py", ttl_seconds=60)
    with pytest.raises(NotFound):
        await store.locks.renew(project, b, "nothing.py", ttl_seconds=60)
    with pytest.raises(LockConflict):
        await store.locks.release(project, actor(b), "src/*.py")
    checked = await store.locks.check(project, ["src/app.py", "docs/x.md", "README.md"])
    assert checked["src/app.py"]["holder_name"] == "alice"  # type: ignore[index]
    assert checked["docs/x.md"]["holder_name"] == "bob"  # type: ignore[index]
    assert checked["README.md"] is None
    assert await store.locks.release(project, actor(a), "src/*.py") is True
    assert await store.locks.release(project, actor(a), "src/*.py") is False
    assert await store.locks.release(project, USER, "docs/x.md") is True  # the owner may break any lock
    assert await store.locks.live(project["id"]) == []


async def test_expired_locks_are_ignored_then_deleted(store: Store, project: dict[str, Any]) -> None:
    a, b = await instance(store, project, "alice"), await instance(store, project, "bob")
    await store.locks.acquire(project, a, "a.py", ttl_seconds=60)
    await store.locks.acquire(project, a, "old.py", ttl_seconds=60)
    await store.execute("UPDATE file_locks SET expires_at = '2000-01-01T00:00:00.000Z'")
    taken = await store.locks.acquire(project, b, "a.py", ttl_seconds=60)
    assert taken["holder_name"] == "bob"
    assert (await kinds(store, project)).count("lock_expired") == 2
    await store.execute("UPDATE file_locks SET expires_at = '2000-01-01T00:00:00.000Z'")
    assert await store.locks.sweep_expired() == 1
    assert await store.locks.sweep_expired() == 0


async def test_sixteen_racers_one_winner(store: Store, project: dict[str, Any]) -> None:
    racers = [await instance(store, project, f"r{n}") for n in range(16)]
    outcomes = await asyncio.gather(
        *(store.locks.acquire(project, r, "hot.py", ttl_seconds=60) for r in racers), return_exceptions=True
    )
    winners = [o for o in outcomes if isinstance(o, dict)]
    assert len(winners) == 1
    losers = [o for o in outcomes if isinstance(o, LockConflict)]
    assert len(losers) == 15
    assert all(f"locked by {winners[0]['holder_name']}" in str(o) for o in losers)


# -- instances ------------------------------------------------------------------------------------------------


async def test_stale_instances_are_disconnected_and_their_work_released(store: Store, project: dict[str, Any]) -> None:
    a, b = await instance(store, project, "alice"), await instance(store, project, "bob")
    pid = project["id"]
    task = await store.tasks.create(pid, USER, title="t")
    await store.tasks.claim(pid, task["id"], a)
    await store.locks.acquire(project, a, "a.py", ttl_seconds=600)
    await store.execute(
        "UPDATE claude_instances SET last_heartbeat_at = '2000-01-01T00:00:00.000Z' WHERE id = ?", (a["id"],)
    )
    gone = await store.instances.disconnect_stale(120)
    assert [g["id"] for g in gone] == [a["id"]]
    assert (await store.tasks.get(pid, task["id"]))["status"] == "pending"
    assert await store.locks.live(pid) == []
    assert (await store.instances.get(pid, a["id"]))["status"] == "disconnected"
    assert (await store.instances.get(pid, b["id"]))["status"] == "active"
    # Any later request of its token counts as a heartbeat and brings it back.
    back = await store.instances.touch(await store.instances.get(pid, a["id"]), 1.0)
    assert back["status"] == "active"
    assert (await kinds(store, project))[-4:] == [
        "task_released",
        "lock_released",
        "instance_disconnected",
        "instance_joined",
    ]


async def test_ending_an_instance_releases_and_revokes(store: Store, project: dict[str, Any]) -> None:
    raw = tokens.new_token("ci_")
    a = await store.instances.create(project["id"], project["user_id"], name="a", token_hash=tokens.hash_token(raw))
    found = await store.instances.by_token_with_project(tokens.hash_token(raw))
    assert found is not None
    assert (found[0]["id"], found[1]["id"]) == (a["id"], project["id"])
    assert found[1] == project
    assert "token_hash" not in a
    assert "token_hash" not in found[0]
    task = await store.tasks.create(project["id"], USER, title="t")
    await store.tasks.claim(project["id"], task["id"], a)
    ended = await store.instances.end(project["id"], a["id"], USER)
    assert (ended["status"], ended["current_task_id"]) == ("ended", None)
    assert ended["ended_at"]
    assert (await store.tasks.get(project["id"], task["id"]))["status"] == "pending"
    assert (await store.instances.end(project["id"], a["id"], USER))["ended_at"] == ended["ended_at"]
    with pytest.raises(Conflict, match="is ended"):
        await store.instances.heartbeat(project["id"], a["id"])


async def test_activity_cursor_and_listeners(store: Store, project: dict[str, Any]) -> None:
    seen: list[dict[str, Any]] = []
    store.activity.listeners.append(seen.append)
    pid = project["id"]
    first = await store.activity.record(pid, "broadcast", "hello", data={"from": "me"})
    await store.tasks.create(pid, USER, title="t")
    with pytest.raises(InvalidField):
        await store.tasks.create(pid, USER, title="never", dependencies=["missing"])
    assert [s["kind"] for s in seen] == ["broadcast", "task_created"]
    after = await store.activity.of_project(pid, after=str(first["id"]))
    assert [a["kind"] for a in after] == ["task_created"]
    assert [a["kind"] for a in await store.activity.of_project(pid, limit=1)] == ["task_created"]
    by_time = await store.activity.of_project(pid, after="2000-01-01T00:00:00.000Z")
    assert [a["id"] for a in by_time] == [first["id"], after[0]["id"]]


async def test_a_transact_decision_that_raises_leaves_nothing_behind(store: Store, project: dict[str, Any]) -> None:
    seen: list[dict[str, Any]] = []
    store.activity.listeners.append(seen.append)

    def decide(db: Any, activity: Any) -> None:
        db.execute("UPDATE shared_projects SET summary = 'changed' WHERE id = ?", (project["id"],))
        activity.add(project["id"], "broadcast", "never published")
        raise Conflict("changed my mind")

    with pytest.raises(Conflict, match="changed my mind"):
        await store.activity.transact(decide)
    assert (await store.projects.get(project["id"]))["summary"] == ""
    assert await store.activity.of_project(project["id"]) == []
    assert seen == []
    # The connection is usable and outside any transaction afterwards.
    assert (await store.activity.record(project["id"], "broadcast", "hello"))["message"] == "hello"
    assert [s["message"] for s in seen] == ["hello"]


async def test_read_modify_write_project_updates_lose_nothing(store: Store, project: dict[str, Any]) -> None:
    def append(line: str) -> Any:
        return lambda current: {"recent_changes": "\n".join(filter(None, [line, current["recent_changes"]]))}

    await asyncio.gather(*(store.projects.update(project["id"], append(f"change {n}"), USER) for n in range(20)))
    lines = (await store.projects.get(project["id"]))["recent_changes"].splitlines()
    assert sorted(lines) == sorted(f"change {n}" for n in range(20))
    with pytest.raises(TypeError):
        await store.projects.update(project["id"], {"surprise": 1}, USER)
