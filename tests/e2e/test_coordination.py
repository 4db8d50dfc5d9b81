"""Multi-agent coordination against a real relay over real HTTP: the task DAG under 16 concurrent instances, lock
races, globs, expiry and renewal, illegal transitions, token scope, the disconnect sweeper, live events, the CLI."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.coordination_helpers import (
    Coord,
    Instance,
    all_activity,
    conflict,
    new_instance,
    new_project,
    new_task,
)
from tests.e2e.harness import Proc, Relay, add_user, claudenest, role_env, timeout, wait_until

TASKS = 500
CLIENTS = 16


@pytest.fixture(scope="module")
def coord(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Coord]:
    root = tmp_path_factory.mktemp("coord")
    relay = Relay(root / "relay").start()
    try:
        yield Coord(relay, add_user(relay, "lead@example.com", root / "cli"), root)
    finally:
        relay.stop()


# -- the task DAG ---------------------------------------------------------------------------------------------------


async def test_sixteen_instances_work_through_a_dag_of_500_tasks(coord: Coord) -> None:
    project = new_project(coord.user, "dag")
    pid = project["id"]
    rng = random.Random(500)
    ids: list[str] = []
    deps_of: dict[str, list[str]] = {}
    for n in range(TASKS):
        deps = rng.sample(ids, rng.randint(0, min(3, len(ids)))) if ids and rng.random() < 0.7 else []
        task = new_task(
            coord.user, pid, f"task {n}", priority=rng.choice(["low", "medium", "high", "critical"]), dependencies=deps
        )
        ids.append(task["id"])
        deps_of[task["id"]] = deps
    workers = [new_instance(coord.user, pid, f"worker-{n}") for n in range(CLIENTS)]

    claims: list[tuple[str, str]] = []  # (task, worker) in the order the claims came back
    completion_sent: set[str] = set()
    done: list[str] = []

    async def work(worker: Instance) -> None:
        async with worker.client() as api:
            while len(done) < TASKS:
                response = await api.post(f"/api/projects/{pid}/tasks/claim-next")
                assert response.status_code == 200, response.text
                task = response.json()["task"]
                if task is None:
                    await asyncio.sleep(0.005)  # everything claimable is taken; wait for completions
                    continue
                assert task["assigned_to"] == worker.id
                # Claimed only once every dependency's completion had at least been sent.
                assert set(task["dependencies"]) <= completion_sent, task
                claims.append((task["id"], worker.name))
                completion_sent.add(task["id"])
                path = f"/api/projects/{pid}/tasks/{task['id']}/complete"
                finished = await api.post(path, json={"summary": f"done by {worker.name}", "files_modified": ["a.py"]})
                assert finished.status_code == 200, finished.text
                assert finished.json()["task"]["status"] == "done"
                done.append(task["id"])

    await asyncio.wait_for(asyncio.gather(*(work(w) for w in workers)), timeout(240))

    claimed = [task_id for task_id, _ in claims]
    assert len(claimed) == len(set(claimed)) == TASKS  # every task claimed exactly once
    assert set(claimed) == set(ids)
    assert len({w for _, w in claims}) > 1  # the work was shared
    finished = coord.user.api("GET", f"/api/projects/{pid}/tasks", params={"status": "done"}).json()["tasks"]
    assert len(finished) == TASKS
    # The relay's own order (activity ids are commit order): each claim after every dependency's completion.
    claimed_at: dict[str, int] = {}
    completed_at: dict[str, int] = {}
    for row in all_activity(coord.user, pid):
        if row["kind"] == "task_claimed":
            assert row["task_id"] not in claimed_at, "claimed twice"
            claimed_at[row["task_id"]] = row["id"]
        elif row["kind"] == "task_completed":
            completed_at[row["task_id"]] = row["id"]
    assert set(claimed_at) == set(completed_at) == set(ids)
    for task_id, deps in deps_of.items():
        for dep in deps:
            assert completed_at[dep] < claimed_at[task_id], (dep, task_id)
    members = coord.user.api("GET", f"/api/projects/{pid}/instances").json()["instances"]
    assert sum(m["tasks_completed"] for m in members) == TASKS
    assert all(m["current_task_id"] is None for m in members)


# -- locks ----------------------------------------------------------------------------------------------------------


async def test_sixteen_racers_for_one_lock_give_one_winner(coord: Coord) -> None:
    pid = new_project(coord.user, "race")["id"]
    racers = [new_instance(coord.user, pid, f"racer-{n}") for n in range(CLIENTS)]
    clients = [r.client() for r in racers]
    try:
        for api in clients:  # connections open first, so the requests really race
            assert (await api.get("/api/instance")).status_code == 200
        responses = await asyncio.gather(
            *(api.post(f"/api/projects/{pid}/locks", json={"path": "src/race.py", "reason": "mine"}) for api in clients)
        )
    finally:
        for api in clients:
            await api.aclose()
    won = [r for r in responses if r.status_code == 201]
    assert len(won) == 1
    lock = won[0].json()["lock"]
    assert isinstance(lock["fencing"], int)
    assert lock["holder_name"] in {r.name for r in racers}
    refused = [r for r in responses if r.status_code != 201]
    assert len(refused) == CLIENTS - 1
    for response in refused:
        body = conflict(response)
        assert body["error"] == "conflict"
        assert body["detail"] == f"locked by {lock['holder_name']} until {lock['expires_at']}"
        assert body["holder"] == {"id": lock["holder_instance_id"], "name": lock["holder_name"]}
        assert body["expires_at"] == lock["expires_at"]
    winner = next(r for r in racers if r.id == lock["holder_instance_id"])
    assert winner.api("POST", f"/api/projects/{pid}/locks/release", json={"path": "src/race.py"}).json() == {
        "released": True
    }
    runner_up = next(r for r in racers if r is not winner)
    again = runner_up.api("POST", f"/api/projects/{pid}/locks", json={"path": "src/race.py"})
    assert again.status_code == 201
    assert again.json()["lock"]["fencing"] > lock["fencing"]


def test_glob_locks_conflict_both_ways(coord: Coord) -> None:
    project = new_project(coord.user, "globs", path="/work/globs")
    pid = project["id"]
    alice, bob = new_instance(coord.user, pid, "alice"), new_instance(coord.user, pid, "bob")
    locks = f"/api/projects/{pid}/locks"
    held = alice.api("POST", locks, json={"path": "src/*.py", "reason": "refactor"})
    assert held.status_code == 201
    body = conflict(bob.api("POST", locks, json={"path": "src/app.py"}), "locked by alice", "(lock on src/*.py)")
    assert body["lock"]["path"] == "src/*.py"
    assert bob.api("POST", locks, json={"path": "/work/globs/docs/guide.md"}).json()["lock"]["path"] == "docs/guide.md"
    conflict(alice.api("POST", locks, json={"path": "docs/*"}), "locked by bob")  # the glob covers bob's file
    assert alice.api("POST", locks, json={"path": "src/own.py"}).status_code == 201  # your own locks never conflict
    checked = alice.api("POST", locks + "/check", json={"paths": ["src/app.py", "docs/guide.md", "README.md"]})
    found = checked.json()["locks"]
    assert found["src/app.py"]["holder_name"] == "alice"
    assert found["docs/guide.md"]["holder_name"] == "bob"
    assert found["README.md"] is None
    listed = coord.user.api("GET", locks).json()["locks"]
    assert sorted(lk["path"] for lk in listed) == ["docs/guide.md", "src/*.py", "src/own.py"]
    conflict(bob.api("POST", locks + "/release", json={"path": "src/*.py"}), "locked by alice")
    released = coord.user.api("POST", f"/api/projects/{pid}/instances/{alice.id}/release-locks")
    assert released.json() == {"released": 2}
    assert bob.api("POST", locks, json={"path": "src/app.py"}).status_code == 201


def test_locks_expire_and_renew(coord: Coord) -> None:
    pid = new_project(coord.user, "expiry")["id"]
    alice, bob = new_instance(coord.user, pid, "alice"), new_instance(coord.user, pid, "bob")
    locks = f"/api/projects/{pid}/locks"
    short = alice.api("POST", locks, json={"path": "exp.py", "ttl_seconds": 1}).json()["lock"]
    conflict(bob.api("POST", locks, json={"path": "exp.py"}), "locked by alice")

    def bob_gets_it() -> dict[str, Any] | None:
        response = bob.api("POST", locks, json={"path": "exp.py", "ttl_seconds": 60})
        return response.json()["lock"] if response.status_code == 201 else None

    taken = wait_until(bob_gets_it, 20, "alice's 1-second lock to expire")
    assert taken["fencing"] > short["fencing"]
    expired = [a for a in all_activity(coord.user, pid) if a["kind"] == "lock_expired"]
    assert [a["data"]["path"] for a in expired] == ["exp.py"]
    conflict(alice.api("POST", locks + "/renew", json={"path": "exp.py"}), "locked by bob")
    renewed = bob.api("POST", locks + "/renew", json={"path": "exp.py", "ttl_seconds": 600}).json()["lock"]
    assert renewed["id"] == taken["id"]
    assert renewed["fencing"] > taken["fencing"]
    assert renewed["expires_at"] > taken["expires_at"]
    again = bob.api("POST", locks, json={"path": "exp.py", "ttl_seconds": 900})  # re-acquiring renews
    assert again.status_code == 201
    assert (again.json()["lock"]["id"], again.json()["lock"]["fencing"]) == (taken["id"], renewed["fencing"] + 1)
    assert bob.api("POST", locks + "/renew", json={"path": "other.py"}).status_code == 404
    bad_ttl = bob.api("POST", locks, json={"path": "x.py", "ttl_seconds": 0})
    assert bad_ttl.status_code == 422
    assert bad_ttl.json()["detail"][0]["field"] == "ttl_seconds"
    assert coord.user.api("POST", locks, json={"path": "x.py"}).status_code == 403  # locks belong to instances


# -- transitions and validation -------------------------------------------------------------------------------------


def test_illegal_transitions_are_409_naming_the_state(coord: Coord) -> None:
    pid = new_project(coord.user, "transitions")["id"]
    alice, bob = new_instance(coord.user, pid, "alice"), new_instance(coord.user, pid, "bob")
    base = f"/api/projects/{pid}/tasks"
    first = new_task(coord.user, pid, "first")
    second = new_task(coord.user, pid, "second", dependencies=[first["id"]])
    conflict(alice.api("POST", f"{base}/{second['id']}/claim"), "depends on unfinished tasks", first["id"], "'first'")
    conflict(
        alice.api("POST", f"{base}/{first['id']}/complete", json={"summary": "x"}), "task is pending, not in_progress"
    )
    conflict(alice.api("POST", f"{base}/{first['id']}/unblock"), "task is pending, not blocked")
    assert coord.user.api("POST", f"{base}/{first['id']}/claim").status_code == 403  # claims belong to instances
    assert alice.api("POST", f"{base}/{first['id']}/claim").json()["task"]["status"] == "in_progress"
    conflict(bob.api("POST", f"{base}/{first['id']}/claim"), "task is in_progress, not pending", "alice")
    conflict(bob.api("POST", f"{base}/{first['id']}/release"), "assigned to alice")
    blocked = alice.api("POST", f"{base}/{first['id']}/block", json={"reason": "waiting for the schema"})
    assert blocked.json()["task"]["blocked_reason"] == "waiting for the schema"
    conflict(alice.api("POST", f"{base}/{first['id']}/block", json={"reason": "again"}), "task is blocked")
    assert alice.api("POST", f"{base}/{first['id']}/unblock").json()["task"]["status"] == "in_progress"
    done = alice.api("POST", f"{base}/{first['id']}/complete", json={"summary": "shipped", "files_modified": ["s.sql"]})
    assert done.json()["task"]["completion_summary"] == "shipped"
    conflict(bob.api("POST", f"{base}/{first['id']}/claim"), "task is done, not pending")
    conflict(coord.user.api("POST", f"{base}/{first['id']}/release"), "task is done, not in_progress")
    assert bob.api("POST", f"{base}/{second['id']}/claim").json()["task"]["assigned_to"] == bob.id
    released = coord.user.api("POST", f"{base}/{second['id']}/release")  # the owner may release anyone's task
    assert (released.json()["task"]["status"], released.json()["task"]["assigned_to"]) == ("pending", None)
    bad = coord.user.api("POST", base, json={"title": "x", "priority": "urgent"})
    assert (bad.status_code, bad.json()["detail"][0]["field"]) == (422, "priority")
    missing = coord.user.api("POST", base, json={"title": "x", "dependencies": ["no-such-task"]})
    assert (missing.status_code, missing.json()["detail"][0]["field"]) == (422, "dependencies")
    cycle = coord.user.api("PATCH", f"{base}/{first['id']}", json={"dependencies": [second["id"]]})
    assert (cycle.status_code, cycle.json()["detail"][0]["field"]) == (422, "dependencies")
    renamed = bob.api("PATCH", f"{base}/{second['id']}", json={"title": "second, renamed", "priority": "critical"})
    assert (renamed.json()["task"]["title"], renamed.json()["task"]["priority"]) == ("second, renamed", "critical")
    assert coord.user.api("GET", f"{base}/nope").status_code == 404


# -- scope ----------------------------------------------------------------------------------------------------------


def test_an_instance_token_reaches_only_its_project(coord: Coord) -> None:
    a, b = new_project(coord.user, "scope-a"), new_project(coord.user, "scope-b")
    mine = new_instance(coord.user, a["id"], "a-1")
    theirs = new_instance(coord.user, b["id"], "b-1")
    task_b = new_task(coord.user, b["id"], "b's task")
    for method, path in [
        ("GET", f"/api/projects/{b['id']}"),
        ("GET", f"/api/projects/{b['id']}/tasks"),
        ("GET", f"/api/projects/{b['id']}/tasks/{task_b['id']}"),
        ("POST", f"/api/projects/{b['id']}/tasks/claim-next"),
        ("POST", f"/api/projects/{b['id']}/tasks/{task_b['id']}/claim"),
        ("GET", f"/api/projects/{b['id']}/locks"),
        ("POST", f"/api/projects/{b['id']}/locks/check"),
        ("GET", f"/api/projects/{b['id']}/instances"),
        ("POST", f"/api/projects/{b['id']}/instances/{theirs.id}/heartbeat"),
        ("GET", f"/api/projects/{b['id']}/activity"),
        ("GET", f"/api/projects/{b['id']}/events"),
        ("POST", f"/api/projects/{b['id']}/messages"),
    ]:
        response = mine.api(method, path, json={"paths": ["x"], "text": "hi"} if method == "POST" else None)
        assert response.status_code == 404, (method, path, response.text)
    for path in ("/api/sessions", "/api/machines", "/api/me", "/api/projects"):
        response = mine.api("GET", path)
        assert response.status_code == 403, (path, response.text)
    assert mine.api("POST", "/api/projects", json={"name": "x", "project_path": "/x"}).status_code == 403
    assert mine.api("POST", f"/api/projects/{a['id']}/instances", json={"name": "x"}).status_code == 403
    assert mine.api("DELETE", f"/api/projects/{a['id']}").status_code == 403
    assert mine.api("GET", f"/api/projects/{a['id']}/tasks").status_code == 200
    sibling = new_instance(coord.user, a["id"], "a-2")
    assert mine.api("POST", f"/api/projects/{a['id']}/instances/{sibling.id}/heartbeat").status_code == 403
    assert mine.api("GET", "/api/instance").json()["project"]["id"] == a["id"]
    stranger = add_user(coord.relay, "stranger@example.com", coord.root / "stranger")
    assert stranger.api("GET", f"/api/projects/{a['id']}/tasks").status_code == 404
    assert stranger.api("GET", "/api/projects").json() == {"projects": []}
    ended = coord.user.api("DELETE", f"/api/projects/{a['id']}/instances/{mine.id}")
    assert ended.json()["instance"]["status"] == "ended"
    assert mine.api("GET", f"/api/projects/{a['id']}/tasks").status_code == 401  # revoked with the instance
    db = sqlite3.connect(coord.relay.home / "data" / "relay.db")
    try:
        blob = "\n".join(str(row) for row in db.execute("SELECT * FROM claude_instances"))
    finally:
        db.close()
    assert mine.token not in blob
    assert theirs.token not in blob


# -- instances ------------------------------------------------------------------------------------------------------


def test_an_instance_silent_past_the_grace_is_disconnected_and_its_work_released(tmp_path: Path) -> None:
    relay = Relay(tmp_path / "relay", extra_env={"CLAUDENEST_INSTANCE_GRACE_SECONDS": "1"}).start()
    try:
        user = add_user(relay, "lead@example.com", tmp_path / "cli")
        pid = new_project(user, "grace")["id"]
        quiet = new_instance(user, pid, "quiet")
        task = new_task(user, pid, "left behind")
        assert quiet.api("POST", f"/api/projects/{pid}/tasks/claim-next").json()["task"]["id"] == task["id"]
        assert quiet.api("POST", f"/api/projects/{pid}/locks", json={"path": "a.py"}).status_code == 201

        def disconnected() -> bool:
            members = user.api("GET", f"/api/projects/{pid}/instances").json()["instances"]
            return bool(members[0]["status"] == "disconnected")

        wait_until(disconnected, 30, "the sweeper to disconnect the silent instance")
        back = user.api("GET", f"/api/projects/{pid}/tasks/{task['id']}").json()["task"]
        assert (back["status"], back["assigned_to"]) == ("pending", None)
        assert user.api("GET", f"/api/projects/{pid}/locks").json()["locks"] == []
        kinds = [a["kind"] for a in all_activity(user, pid)]
        assert kinds[-3:] == ["task_released", "lock_released", "instance_disconnected"]
        # Its next request counts as a heartbeat; the task it held is gone from it.
        late = quiet.api("POST", f"/api/projects/{pid}/tasks/{task['id']}/complete", json={"summary": "late"})
        conflict(late, "task is pending, not in_progress")
        assert [a["kind"] for a in all_activity(user, pid)][-1] == "instance_joined"
    finally:
        relay.stop()


def test_heartbeat_and_ending_an_instance(coord: Coord) -> None:
    pid = new_project(coord.user, "lifecycle")["id"]
    worker = new_instance(coord.user, pid, "worker")
    task = new_task(coord.user, pid, "t")
    worker.api("POST", f"/api/projects/{pid}/tasks/{task['id']}/claim")
    worker.api("POST", f"/api/projects/{pid}/locks", json={"path": "w.py"})
    beat = worker.api("POST", f"/api/projects/{pid}/instances/{worker.id}/heartbeat", json={"current_task_id": None})
    assert (beat.json()["instance"]["status"], beat.json()["instance"]["current_task_id"]) == ("active", None)
    wrong = worker.api("POST", f"/api/projects/{pid}/instances/{worker.id}/heartbeat", json={"current_task_id": "x"})
    assert (wrong.status_code, wrong.json()["detail"][0]["field"]) == (422, "current_task_id")
    listed = coord.user.api("GET", f"/api/projects/{pid}/instances").json()["instances"]
    assert "token_hash" not in listed[0]
    assert "token" not in listed[0]
    ended = worker.api("DELETE", f"/api/projects/{pid}/instances/{worker.id}").json()["instance"]  # it may end itself
    assert ended["status"] == "ended"
    assert coord.user.api("GET", f"/api/projects/{pid}/tasks/{task['id']}").json()["task"]["status"] == "pending"
    assert coord.user.api("GET", f"/api/projects/{pid}/locks").json()["locks"] == []
    last = all_activity(coord.user, pid)[-1]
    assert (last["kind"], last["data"]["tasks_released"], last["data"]["locks_released"]) == ("instance_left", 1, 1)


# -- live events ----------------------------------------------------------------------------------------------------


async def test_event_stream_replays_then_follows(coord: Coord) -> None:
    pid = new_project(coord.user, "events")["id"]
    first = new_task(coord.user, pid, "before watching")
    headers = {"Authorization": f"Bearer {coord.user.token}"}
    seen: list[dict[str, Any]] = []
    async with (
        httpx.AsyncClient(base_url=coord.relay.url, headers=headers, timeout=timeout(30)) as api,
        api.stream("GET", f"/api/projects/{pid}/events", params={"after": "0"}) as stream,
    ):
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.aiter_lines()
        async for line in lines:
            if line == ": live":
                break
            if line.startswith("data: "):
                seen.append(json.loads(line[6:]))
        assert [e["task_id"] for e in seen if e["kind"] == "task_created"] == [first["id"]]
        sent = await api.post(f"/api/projects/{pid}/messages", json={"text": "hello, team"})
        assert sent.status_code == 201
        async for line in lines:
            if line.startswith("data: "):
                event = json.loads(line[6:])
                break
    assert (event["kind"], event["message"], event["data"]) == (
        "broadcast",
        "hello, team",
        {"from": "lead@example.com"},
    )
    assert event["id"] == sent.json()["activity"]["id"]


def test_cli_watch_prints_events_as_ndjson(coord: Coord) -> None:
    project = new_project(coord.user, "watched")
    watch = Proc(claudenest("projects", "watch", "watched", "--json"), role_env(coord.user.home))
    try:
        watch.wait_for(r"^watching watched")
        task = new_task(coord.user, project["id"], "seen live")
        line = watch.wait_for(r'"kind": "task_created"').string
        assert json.loads(line)["task_id"] == task["id"]
    finally:
        assert watch.stop(signal.SIGINT) == 0, watch.output


# -- the CLI --------------------------------------------------------------------------------------------------------


def test_cli_round_trip_for_projects_tasks_and_locks(coord: Coord) -> None:
    user = coord.user

    def run(*args: str, token: str | None = None, code: int = 0) -> Any:
        env = {"CLAUDENEST_INSTANCE_TOKEN": token} if token else None
        result = user.cli(*args, env=env, check=False)
        assert result.returncode == code, (args, result.stdout, result.stderr)
        return json.loads(result.stdout) if "--json" in args and code == 0 else result

    pid = run("projects", "create", "cli", "--path", "/work/cli", "--summary", "a CLI test", "--json")["project"]["id"]
    assert "cli" in [p["name"] for p in run("projects", "list", "--json")["projects"]]
    updated = run("projects", "update", "cli", "--current-focus", "tests", "--token-budget", "2000", "--json")
    assert (updated["project"]["current_focus"], updated["project"]["token_budget"]) == ("tests", 2000)
    first = run("tasks", "create", "first", "-p", "cli", "--priority", "high", "--file", "a.py", "--json")["task"]
    second = run("tasks", "create", "second", "-p", "cli", "--depends-on", first["id"][:8], "--json")["task"]
    assert second["dependencies"] == [first["id"]]
    assert [t["title"] for t in run("tasks", "list", "-p", "cli", "--json")["tasks"]] == ["first", "second"]
    alice, bob = new_instance(user, pid, "alice"), new_instance(user, pid, "bob")
    assert run("tasks", "claim-next", "--json", token=alice.token)["task"]["id"] == first["id"]  # its own project
    refused = run("tasks", "claim", second["id"][:8], "-p", "cli", token=bob.token, code=6)
    assert "depends on unfinished tasks" in refused.stderr
    run("tasks", "complete", first["id"][:8], "-s", "done", "--file-modified", "a.py", token=alice.token)
    assert run("tasks", "show", first["id"], "-p", "cli", "--json")["task"]["status"] == "done"
    assert run("tasks", "claim", second["id"][:8], "--json", token=bob.token)["task"]["assigned_to"] == bob.id
    assert (
        run("tasks", "block", second["id"][:8], "-r", "waiting", "--json", token=bob.token)["task"]["status"]
        == "blocked"
    )
    assert run("tasks", "unblock", second["id"][:8], "-p", "cli", "--json")["task"]["status"] == "in_progress"
    assert run("tasks", "release", second["id"][:8], "--json", token=bob.token)["task"]["status"] == "pending"
    renamed = run("tasks", "update", second["id"][:8], "-p", "cli", "--title", "2nd", "--no-dependencies", "--json")
    assert (renamed["task"]["title"], renamed["task"]["dependencies"]) == ("2nd", [])
    run("tasks", "claim", second["id"][:8], token=bob.token)
    ask = run("tasks", "review", second["id"][:8], "-s", "ready", "--file-modified", "b.py", "--json", token=bob.token)
    assert ask["task"]["status"] == "review"
    assert "own assignee" in run("tasks", "approve", second["id"][:8], token=bob.token, code=6).stderr
    back = run("tasks", "request-changes", second["id"][:8], "-r", "add tests", "--json", token=alice.token)
    assert (back["task"]["status"], back["task"]["assigned_to"]) == ("in_progress", bob.id)
    run("tasks", "review", second["id"][:8], "-s", "ready, with tests", token=bob.token)
    approved = run("tasks", "approve", second["id"][:8], "-p", "cli", "-n", "thanks", "--json")["task"]
    assert (approved["status"], approved["completion_summary"]) == ("done", "ready, with tests")

    lock = run("locks", "acquire", "src/*.py", "--reason", "refactor", "--ttl", "600", "--json", token=alice.token)
    assert (lock["lock"]["path"], lock["lock"]["holder_name"]) == ("src/*.py", "alice")
    taken = run("locks", "acquire", "src/app.py", token=bob.token, code=6)
    assert "locked by alice" in taken.stderr
    checked = run("locks", "check", "src/app.py", "README.md", "-p", "cli", "--json")["locks"]
    assert (checked["src/app.py"]["holder_name"], checked["README.md"]) == ("alice", None)
    assert run("locks", "renew", "src/*.py", "--json", token=alice.token)["lock"]["fencing"] > lock["lock"]["fencing"]
    assert len(run("locks", "list", "-p", "cli", "--json")["locks"]) == 1
    assert run("locks", "release", "src/*.py", "--json", token=alice.token) == {"released": True}
    assert run("locks", "release", "src/*.py", "--json", token=alice.token) == {"released": False}
    shown = run("projects", "show", "cli", "--json")
    assert (shown["tasks"], shown["instances"]["active"], shown["locks"]) == ({"done": 2}, 2, 0)
    assert "not-my-project" in run("tasks", "list", "-p", "not-my-project", token=alice.token, code=5).stderr
    run("projects", "delete", "cli", "--yes")
    assert run("projects", "show", "cli", code=5).returncode == 5
    assert run("tasks", "list", token=alice.token, code=4).returncode == 4  # its token died with the project
