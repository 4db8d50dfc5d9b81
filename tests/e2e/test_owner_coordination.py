"""What the dashboard needs from the coordination API, against a real relay over real HTTP: the owner assigns a
pending task to one of the project's live instances (POST .../claim with instance_id), the owner releases any
instance's lock, and GET /api/activity lists the newest rows across all of the owner's projects."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.coordination_helpers import Coord, all_activity, conflict, new_instance, new_project, new_task
from tests.e2e.harness import Relay, add_user


@pytest.fixture(scope="module")
def coord(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Coord]:
    root = tmp_path_factory.mktemp("owner")
    relay = Relay(root / "relay").start()
    try:
        yield Coord(relay, add_user(relay, "owner@example.com", root / "cli"), root)
    finally:
        relay.stop()


def test_the_owner_assigns_a_task_to_a_live_instance(coord: Coord) -> None:
    pid = new_project(coord.user, "assign")["id"]
    base = f"/api/projects/{pid}/tasks"
    first = new_task(coord.user, pid, "first")

    # With no instance at all, the refusal says so and how to get one.
    refused = coord.user.api("POST", f"{base}/{first['id']}/claim")
    assert refused.status_code == 403, refused.text
    assert "has none" in refused.json()["detail"]

    alice = new_instance(coord.user, pid, "alice")
    bob = new_instance(coord.user, pid, "bob")
    refused = coord.user.api("POST", f"{base}/{first['id']}/claim", json={})
    assert refused.status_code == 403, refused.text
    assert "alice" in refused.json()["detail"]
    assert "bob" in refused.json()["detail"]

    assigned = coord.user.api("POST", f"{base}/{first['id']}/claim", json={"instance_id": bob.id})
    assert assigned.status_code == 200, assigned.text
    task = assigned.json()["task"]
    assert (task["status"], task["assigned_to"]) == ("in_progress", bob.id)
    assert bob.api("GET", f"/api/projects/{pid}/instances/{bob.id}").json()["instance"]["current_task_id"] == task["id"]
    row = [r for r in all_activity(coord.user, pid) if r["kind"] == "task_claimed"][-1]
    assert row["instance_id"] == bob.id
    assert row["data"]["by"] == "owner@example.com"
    assert row["data"]["assigned_to"] == "bob"
    assert "assigned" in row["message"]

    # The same transitions as an instance's claim: a task in progress is a 409 naming its holder.
    conflict(
        coord.user.api("POST", f"{base}/{first['id']}/claim", json={"instance_id": alice.id}),
        "in_progress",
        "bob",
    )
    # Bob works on it as if he had claimed it himself.
    done = bob.api("POST", f"{base}/{first['id']}/complete", json={"summary": "did it"})
    assert done.status_code == 200, done.text

    # An unknown instance is a 422 naming the field; an ended one is a 409.
    second = new_task(coord.user, pid, "second")
    unknown = coord.user.api("POST", f"{base}/{second['id']}/claim", json={"instance_id": "nope"})
    assert unknown.status_code == 422
    assert unknown.json()["detail"][0]["field"] == "instance_id"
    assert coord.user.api("DELETE", f"/api/projects/{pid}/instances/{alice.id}").status_code == 200
    conflict(coord.user.api("POST", f"{base}/{second['id']}/claim", json={"instance_id": alice.id}), "alice", "ended")

    # Instances keep claiming for themselves only.
    assert bob.api("POST", f"{base}/{second['id']}/claim", json={"instance_id": alice.id}).status_code == 403
    mine = bob.api("POST", f"{base}/{second['id']}/claim", json={"instance_id": bob.id})
    assert mine.status_code == 200
    assert mine.json()["task"]["assigned_to"] == bob.id


def test_the_owner_releases_an_instances_lock(coord: Coord) -> None:
    pid = new_project(coord.user, "locks")["id"]
    alice = new_instance(coord.user, pid, "alice")
    bob = new_instance(coord.user, pid, "bob")
    locks = f"/api/projects/{pid}/locks"
    assert alice.api("POST", locks, json={"path": "src/a.py", "reason": "editing"}).status_code == 201
    conflict(bob.api("POST", f"{locks}/release", json={"path": "src/a.py"}), "alice")  # not bob's to release
    released = coord.user.api("POST", f"{locks}/release", json={"path": "src/a.py"})
    assert released.status_code == 200
    assert released.json() == {"released": True}
    assert coord.user.api("GET", locks).json()["locks"] == []


def test_recent_activity_across_the_owners_projects(coord: Coord, tmp_path_factory: pytest.TempPathFactory) -> None:
    one = new_project(coord.user, "feed-one")
    two = new_project(coord.user, "feed-two")
    new_task(coord.user, one["id"], "in one")
    new_task(coord.user, two["id"], "in two")
    other = add_user(coord.relay, "other@example.com", tmp_path_factory.mktemp("other"))
    new_task(other, new_project(other, "theirs")["id"], "not yours")

    response = coord.user.api("GET", "/api/activity", params={"limit": 2})
    assert response.status_code == 200, response.text
    rows = response.json()["activity"]
    assert [(r["project_name"], r["project_id"], r["data"]["title"]) for r in rows] == [
        ("feed-two", two["id"], "in two"),
        ("feed-one", one["id"], "in one"),
    ]
    everything = coord.user.api("GET", "/api/activity", params={"limit": 500}).json()["activity"]
    assert all(r["project_name"] != "theirs" for r in everything)
    assert [r["id"] for r in everything] == sorted((r["id"] for r in everything), reverse=True)

    instance = new_instance(coord.user, one["id"], "scoped")
    assert instance.api("GET", "/api/activity").status_code == 403
    assert coord.user.api("GET", "/api/activity", params={"limit": 0}).status_code == 422
