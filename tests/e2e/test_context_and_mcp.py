"""Shared context through the real relay, and the claudenest MCP server driven by the mcp SDK's own stdio client."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client

from tests.e2e.harness import Relay, User, add_user, timeout

TOOLS = {
    "task_list", "task_claim_next", "task_claim", "task_complete", "task_release", "task_create",
    "task_request_review", "task_review",
    "lock_acquire", "lock_release", "lock_check", "context_query", "context_add", "project_info",
    "project_context_set", "broadcast_message", "instance_status",
}  # fmt: skip


@dataclass
class Project:
    relay: Relay
    user: User
    project: dict[str, Any]

    def register(self, name: str) -> tuple[dict[str, Any], str]:
        created = self.user.api("POST", f"/api/projects/{self.project['id']}/instances", json={"name": name}).json()
        return created["instance"], created["token"]

    def as_instance(self, token: str, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        url = f"{self.relay.url}/api/projects/{self.project['id']}{path}"
        response = httpx.request(
            method, url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout(30), **kwargs
        )
        return response


@pytest.fixture(scope="module")
def proj(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    root = tmp_path_factory.mktemp("context")
    relay = Relay(root / "relay").start()
    user = add_user(relay, "me@example.com", root / "cli")
    project = user.api(
        "POST",
        "/api/projects",
        json={"name": "shop", "project_path": "/src/shop", "summary": "An online shop with billing and search."},
    ).json()["project"]
    try:
        yield Project(relay, user, project)
    finally:
        relay.stop()


def test_chunks_are_searchable_by_words_and_meaning_with_ranks(proj: Project) -> None:
    _, token = proj.register("alpha")
    for kind, text, files in (
        (
            "decision",
            "Stripe webhooks are verified with the signing secret before any invoice changes.",
            ["billing/hooks.py"],
        ),
        ("note", "Search uses a trigram index over product titles.", ["search/index.py"]),
        ("file_change", "Job retries now back off exponentially with jitter.", ["jobs/retry.py"]),
    ):
        added = proj.as_instance(token, "POST", "/context", json={"content": text, "type": kind, "files": files})
        assert added.status_code == 201, added.text
    found = proj.as_instance(
        token, "POST", "/context/query", json={"query": "how do we verify billing webhooks", "limit": 2}
    )
    results = found.json()["results"]
    assert results[0]["files"] == ["billing/hooks.py"]
    assert results[0]["keyword_rank"] == 1
    assert results[0]["vector_rank"] is not None
    assert results[0]["score"] > 0
    bad = proj.as_instance(token, "POST", "/context/query", json={"query": "", "limit": 500})
    assert bad.status_code == 422


def test_completing_a_task_feeds_context_and_recent_changes_and_compiles_within_budget(proj: Project) -> None:
    instance, token = proj.register("beta")
    task = proj.as_instance(token, "POST", "/tasks", json={"title": "Add coupon codes", "priority": "high"}).json()[
        "task"
    ]
    assert proj.as_instance(token, "POST", f"/tasks/{task['id']}/claim").status_code == 200
    done = proj.as_instance(
        token,
        "POST",
        f"/tasks/{task['id']}/complete",
        json={
            "summary": "Coupons are validated at checkout and stored per order.",
            "files_modified": ["cart/coupons.py"],
        },
    )
    assert done.status_code == 200, done.text
    chunks = proj.as_instance(token, "GET", "/context", params={"type": "task_completion"}).json()["chunks"]
    assert any("Coupons are validated" in c["content"] and c["files"] == ["cart/coupons.py"] for c in chunks)
    project = proj.user.api("GET", f"/api/projects/{proj.project['id']}").json()["project"]
    assert project["recent_changes"].startswith("- Add coupon codes: Coupons are validated at checkout")
    compiled = proj.as_instance(token, "GET", "/context/compiled", params={"budget": 120}).json()
    assert -(-len(compiled["context"]) // 4) <= 120
    assert compiled["context"].startswith("# Project shop")
    roomy = proj.as_instance(token, "GET", "/context/compiled", params={"budget": 4000}).json()["context"]
    assert "Coupons are validated" in roomy


def test_a_review_goes_back_and_forth_between_instances_and_then_feeds_context(proj: Project) -> None:
    author, author_token = proj.register("author")
    _, reviewer_token = proj.register("reviewer")
    task = proj.as_instance(author_token, "POST", "/tasks", json={"title": "Add dark mode"}).json()["task"]
    path = f"/tasks/{task['id']}"
    assert proj.as_instance(author_token, "POST", f"{path}/claim").status_code == 200
    ask = {"summary": "Added a dark theme toggle.", "files_modified": ["ui/theme.css"]}
    assert proj.as_instance(reviewer_token, "POST", f"{path}/review", json=ask).status_code == 409  # not its task
    answer = proj.as_instance(author_token, "POST", f"{path}/review", json=ask)
    assert answer.json()["task"]["status"] == "review"
    own = proj.as_instance(author_token, "POST", f"{path}/approve", json={})
    assert own.status_code == 409
    assert "own assignee" in own.json()["detail"]
    assert proj.as_instance(reviewer_token, "POST", f"{path}/request-changes", json={}).status_code == 422
    back = proj.as_instance(reviewer_token, "POST", f"{path}/request-changes", json={"reason": "contrast too low"})
    assert (back.json()["task"]["status"], back.json()["task"]["assigned_to"]) == ("in_progress", author["id"])
    ask = {"summary": "Dark theme with AA contrast.", "files_modified": ["ui/theme.css"]}
    proj.as_instance(author_token, "POST", f"{path}/review", json=ask)
    done = proj.as_instance(reviewer_token, "POST", f"{path}/approve", json={"note": "good"}).json()["task"]
    assert (done["status"], done["completion_summary"]) == ("done", "Dark theme with AA contrast.")
    project = proj.user.api("GET", f"/api/projects/{proj.project['id']}").json()["project"]
    assert "- Add dark mode: Dark theme with AA contrast." in project["recent_changes"]
    chunks = proj.as_instance(reviewer_token, "GET", "/context", params={"type": "task_completion"}).json()["chunks"]
    mine = [c for c in chunks if c["task_id"] == task["id"]]
    assert len(mine) == 1
    assert (mine[0]["instance_id"], mine[0]["files"]) == (author["id"], ["ui/theme.css"])
    kinds = [a["kind"] for a in proj.user.api("GET", f"/api/projects/{proj.project['id']}/activity").json()["activity"]]
    assert "task_changes_requested" in kinds
    assert "task_review_requested" in kinds


def test_an_instance_token_reaches_no_other_project_context(proj: Project) -> None:
    other = proj.user.api("POST", "/api/projects", json={"name": "other", "project_path": "/src/other"}).json()[
        "project"
    ]
    _, token = proj.register("gamma")
    import httpx

    response = httpx.post(
        f"{proj.relay.url}/api/projects/{other['id']}/context/query",
        headers={"Authorization": f"Bearer {token}"},
        json={"query": "anything"},
        timeout=timeout(10),
    )
    assert response.status_code == 404


async def test_mcp_server_lists_and_runs_every_tool_against_the_relay(proj: Project, tmp_path: Path) -> None:
    instance, token = proj.register("claude-1")
    _, rival_token = proj.register("claude-2")
    assert proj.as_instance(rival_token, "POST", "/locks", json={"path": "src/held.py"}).status_code == 201
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "claudenest", "mcp", "serve"],
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("CLAUDENEST_")},
            "CLAUDENEST_HOME": str(tmp_path / "mcp-home"),
            "CLAUDENEST_RELAY_URL": proj.relay.url,
            "CLAUDENEST_INSTANCE_TOKEN": token,
            "CLAUDENEST_PROJECT_ID": proj.project["id"],
            "CLAUDENEST_INSTANCE_ID": instance["id"],
        },
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        tools = {t.name for t in (await session.list_tools()).tools}
        assert tools == TOOLS

        async def call(name: str, **arguments: Any) -> tuple[str, bool]:
            result = await session.call_tool(name, arguments)
            text = "\n".join(getattr(c, "text", "") for c in result.content)
            return text, bool(result.is_error) if hasattr(result, "is_error") else bool(result.isError)

        text, error = await call("task_create", title="Write the MCP docs", priority="critical")
        assert not error
        assert "Write the MCP docs" in text
        text, _ = await call("task_list", status="pending")
        assert "Write the MCP docs" in text
        text, _ = await call("task_claim_next")
        assert "Write the MCP docs" in text
        task_ref = text.split()[0]
        text, error = await call("task_release", task_id=task_ref)
        assert not error
        text, error = await call("task_claim", task_id=task_ref)
        assert not error
        text, error = await call(
            "task_complete", task_id=task_ref, summary="Documented every tool.", files_modified=["docs/mcp.md"]
        )
        assert not error
        assert "completed" in text
        text, _ = await call("task_create", title="Proofread the MCP docs")
        review_ref = text.split()[1]  # "created <id> ..."
        await call("task_claim", task_id=review_ref)
        text, error = await call("task_request_review", task_id=review_ref, summary="Fixed typos.")
        assert not error
        assert "in review" in text
        text, error = await call("task_review", task_id=review_ref, approve=True)
        assert error  # its own assignee cannot approve it
        assert "own assignee" in text
        text, error = await call("task_review", task_id=review_ref, approve=False)
        assert error  # a review that neither approves nor says what to change
        assert "changes_needed" in text
        text, error = await call("lock_acquire", path="src/app.py", reason="refactor")
        assert not error
        assert "fencing" in text
        text, error = await call("lock_acquire", path="src/held.py")
        assert error
        assert "claude-2" in text  # the refusal names the holder
        text, _ = await call("lock_check", paths=["src/app.py", "src/free.py"])
        assert "src/free.py: free" in text
        assert "claude-1" in text
        text, error = await call("lock_release", path="src/app.py")
        assert not error
        text, error = await call("context_add", content="Decided: MCP results are short text.", type="decision")
        assert not error
        text, _ = await call("context_query", query="what did we decide about MCP results")
        assert "MCP results are short text" in text
        text, error = await call("project_context_set", field="current_focus", value="documentation")
        assert not error
        text, _ = await call("project_info")
        assert "current_focus: documentation" in text
        text, error = await call("broadcast_message", text="docs are done")
        assert not error
        text, error = await call("instance_status")
        assert not error
        assert "claude-1" in text
    activity = proj.user.api("GET", f"/api/projects/{proj.project['id']}/activity").json()["activity"]
    assert any(a["kind"] == "broadcast" and "docs are done" in (a.get("message") or json.dumps(a)) for a in activity)


def test_context_cli_add_query_compile_and_reembed(proj: Project) -> None:
    added = json.loads(
        proj.user.cli(
            "context", "add", "--project", "shop", "--type", "decision", "--file", "auth/session.py",
            "Sessions expire after 14 days of inactivity.", "--json",
        ).stdout
    )["chunk"]  # fmt: skip
    assert added["type"] == "decision"
    results = json.loads(
        proj.user.cli("context", "query", "--project", "shop", "when do sessions expire", "--json").stdout
    )["results"]
    assert results[0]["id"] == added["id"]
    assert {"score", "keyword_rank", "vector_rank"} <= set(results[0])
    compiled = proj.user.cli("context", "compile", "--project", "shop", "--budget", "200").stdout
    assert compiled.startswith("# Project shop")
    assert -(-len(compiled.rstrip("\n")) // 4) <= 200
    reembedded = proj.user.cli("context", "reembed")
    assert "re-embedded" in reembedded.stderr
