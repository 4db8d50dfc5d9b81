"""Bulk context import through a real relay: POST .../context/bulk and `claudenest context import`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.coordination_helpers import new_instance, new_project
from tests.e2e.harness import Relay, User, add_user

TOPICS = ("billing", "search", "payments", "deploys", "queues", "caching", "auth", "emails")


@dataclass
class Bulk:
    relay: Relay
    user: User
    other: User
    root: Path


@pytest.fixture(scope="module")
def bulk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bulk]:
    root = tmp_path_factory.mktemp("bulk")
    relay = Relay(root / "relay").start()
    try:
        user = add_user(relay, "me@example.com", root / "cli")
        other = add_user(relay, "other@example.com", root / "other")
        yield Bulk(relay, user, other, root)
    finally:
        relay.stop()


def notes(count: int, word: str) -> list[dict[str, Any]]:
    """``count`` distinct notes; note i mentions a unique token ``{word}{i}z`` and a file of its own."""
    return [
        {
            "content": f"The {TOPICS[i % len(TOPICS)]} module keeps marker {word}{i}z for note number {i}.",
            "type": "decision" if i % 5 == 0 else "note",
            "files": [f"src/{TOPICS[i % len(TOPICS)]}/part{i}.py"],
            "importance": 0.7,
        }
        for i in range(count)
    ]


def chunk_count(user: User, project_id: str) -> int:
    listed = user.api("GET", f"/api/projects/{project_id}/context", params={"limit": 500})
    assert listed.status_code == 200, listed.text
    return len(listed.json()["chunks"])


def query(user: User, project_id: str, text: str, mode: str = "keyword") -> list[dict[str, Any]]:
    found = user.api("POST", f"/api/projects/{project_id}/context/query", json={"query": text, "mode": mode})
    assert found.status_code == 200, found.text
    return list(found.json()["results"])


def test_a_bulk_of_200_is_stored_in_order_and_found_by_queries(bulk: Bulk) -> None:
    project = new_project(bulk.user, "bulk-200")
    sent = notes(200, "alpha")
    added = bulk.user.api("POST", f"/api/projects/{project['id']}/context/bulk", json={"chunks": sent})
    assert added.status_code == 201, added.text
    body = added.json()
    assert body["created"] == 200
    assert body["project_chunks"] == 200
    assert len(set(body["ids"])) == 200
    for i in (0, 17, 123, 199):  # ids come back in the order the chunks were sent
        chunk = bulk.user.api("GET", f"/api/projects/{project['id']}/context/{body['ids'][i]}").json()["chunk"]
        assert chunk["content"] == sent[i]["content"]
        assert chunk["files"] == sent[i]["files"]
        assert chunk["type"] == sent[i]["type"]
        assert chunk["importance"] == 0.7
    for i in (3, 150):
        results = query(bulk.user, project["id"], f"alpha{i}z")
        assert results[0]["id"] == body["ids"][i]
    hybrid = query(bulk.user, project["id"], f"which module keeps marker alpha{77}z", mode="hybrid")
    assert hybrid[0]["id"] == body["ids"][77]


def test_an_invalid_item_names_its_index_and_field_and_nothing_is_stored(bulk: Bulk) -> None:
    project = new_project(bulk.user, "bulk-invalid")
    sent = notes(30, "beta")
    sent[12]["importance"] = 3
    sent[20]["content"] = ""
    refused = bulk.user.api("POST", f"/api/projects/{project['id']}/context/bulk", json={"chunks": sent})
    assert refused.status_code == 422, refused.text
    fields = {p["field"] for p in refused.json()["detail"]}
    assert {"chunks.12.importance", "chunks.20.content"} <= fields
    assert chunk_count(bulk.user, project["id"]) == 0
    assert query(bulk.user, project["id"], "beta0z") == []


def test_too_many_chunks_or_too_large_a_body_is_refused_saying_the_limit(bulk: Bulk) -> None:
    project = new_project(bulk.user, "bulk-limits")
    path = f"/api/projects/{project['id']}/context/bulk"
    too_many = bulk.user.api("POST", path, json={"chunks": [{"content": f"n{i}"} for i in range(501)]})
    assert too_many.status_code == 422, too_many.text
    (problem,) = too_many.json()["detail"]
    assert problem["field"] == "chunks"
    assert "500" in problem["message"]
    big = [{"content": "x" * 19_000} for _ in range(60)]  # ~1.1 MB of JSON, each chunk valid on its own
    too_large = bulk.user.api("POST", path, json={"chunks": big})
    assert too_large.status_code == 413, too_large.text
    assert str(1 << 20) in str(too_large.json()["detail"])
    empty = bulk.user.api("POST", path, json={"chunks": []})
    assert empty.status_code == 422, empty.text
    assert chunk_count(bulk.user, project["id"]) == 0


def test_another_users_project_is_not_found(bulk: Bulk) -> None:
    project = new_project(bulk.user, "bulk-private")
    path = f"/api/projects/{project['id']}/context/bulk"
    refused = bulk.other.api("POST", path, json={"chunks": notes(3, "gamma")})
    assert refused.status_code == 404, refused.text
    assert chunk_count(bulk.user, project["id"]) == 0


def test_an_instance_token_adds_to_its_own_project_only(bulk: Bulk) -> None:
    mine = new_project(bulk.user, "bulk-instance")
    elsewhere = new_project(bulk.user, "bulk-elsewhere")
    instance = new_instance(bulk.user, mine["id"], "importer")
    added = instance.api("POST", f"/api/projects/{mine['id']}/context/bulk", json={"chunks": notes(5, "delta")})
    assert added.status_code == 201, added.text
    chunk = instance.api("GET", f"/api/projects/{mine['id']}/context/{added.json()['ids'][0]}").json()["chunk"]
    assert chunk["instance_id"] == instance.id
    refused = instance.api("POST", f"/api/projects/{elsewhere['id']}/context/bulk", json={"chunks": notes(5, "x")})
    assert refused.status_code == 404, refused.text
    assert chunk_count(bulk.user, elsewhere["id"]) == 0


def jsonl(chunks: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(c) + "\n" for c in chunks)


def test_cli_imports_a_file_in_batches_and_stdin_with_json(bulk: Bulk) -> None:
    project = new_project(bulk.user, "bulk-cli")
    source = bulk.root / "notes.jsonl"
    source.write_text(jsonl(notes(45, "eps")) + "\n")  # a trailing blank line is skipped
    imported = bulk.user.cli("context", "import", str(source), "--project", "bulk-cli", "--batch", "10", "--json")
    result = json.loads(imported.stdout)
    assert result["created"] == 45
    assert result["project"] == project["id"]
    assert imported.stderr == ""  # no progress bar when stderr is not a terminal
    assert query(bulk.user, project["id"], "eps44z")[0]["id"] == result["ids"][44]

    piped = bulk.user.cli("context", "import", "-", "-p", "bulk-cli", "--json", input=jsonl(notes(3, "zeta")))
    assert json.loads(piped.stdout)["project_chunks"] == 48
    plain = bulk.user.cli("context", "import", "-", "-p", "bulk-cli", input=jsonl(notes(2, "eta")))
    assert "imported 2 chunks (50 in the project now)" in plain.stdout
    assert chunk_count(bulk.user, project["id"]) == 50


@pytest.mark.parametrize(
    ("bad_line", "problem"),
    [
        ("{not json", "not JSON"),
        ('["a list"]', "expected a JSON object"),
        ('{"content": "ok", "importance": 2}', "importance"),
        ('{"content": "ok", "colour": "red"}', "colour"),
        ('{"type": "note"}', "content"),
    ],
)
def test_cli_a_bad_line_stops_the_import_before_anything_is_sent(bulk: Bulk, bad_line: str, problem: str) -> None:
    name = "bulk-bad-" + problem.lower().replace(" ", "-")
    project = new_project(bulk.user, name)
    text = jsonl(notes(3, "theta")) + bad_line + "\n" + jsonl(notes(2, "iota"))
    failed = bulk.user.cli("context", "import", "-", "--project", name, input=text, check=False)
    assert failed.returncode == 2, failed.stderr
    assert "line 4" in failed.stderr
    assert problem in failed.stderr
    assert chunk_count(bulk.user, project["id"]) == 0
