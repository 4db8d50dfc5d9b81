"""The HTTP API against a real relay: the auth matrix over every route, bad input, pairing limits, secrets at rest."""

from __future__ import annotations

import json
import re
import sqlite3
import tomllib
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import Stack
from tests.e2e.harness import User, add_user, timeout, wait_until

PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("POST", "/api/pairing/initiate"),
    ("GET", "/api/pairing/{code}"),
    ("DELETE", "/api/pairing/{code}"),
    ("POST", "/api/auth/login-link"),
    ("POST", "/api/auth/login"),
    ("POST", "/api/auth/token-login"),
    ("POST", "/api/auth/logout"),
}


@pytest.fixture(scope="module")
def other(stack: Stack) -> User:
    return add_user(stack.relay, "someone-else@example.com", stack.root / "other-cli")


@pytest.fixture(scope="module")
def machine_token(stack: Stack) -> str:
    creds = tomllib.loads((stack.agent.home / "config" / "credentials.toml").read_text())
    return str(creds["machine"][stack.relay.url])


@pytest.fixture(scope="module")
def owned(stack: Stack) -> dict[str, str]:
    """Ids of things the stack's user owns."""
    session = stack.user.api(
        "POST", "/api/sessions", json={"machine_id": stack.agent.machine_id, "command": ["sleep", "300"]}
    ).json()["session"]
    token_id = stack.user.api("GET", "/api/tokens").json()["tokens"][0]["id"]
    project = stack.user.api("POST", "/api/projects", json={"name": "owned", "project_path": "/p"}).json()["project"]
    task = stack.user.api("POST", f"/api/projects/{project['id']}/tasks", json={"title": "t"}).json()["task"]
    instance = stack.user.api("POST", f"/api/projects/{project['id']}/instances", json={"name": "i"}).json()
    chunk = stack.user.api("POST", f"/api/projects/{project['id']}/context", json={"content": "c"}).json()["chunk"]
    return {
        "machine_id": stack.agent.machine_id,
        "session_id": session["id"],
        "token_id": token_id,
        "code": "AAA-AAA",
        "project_id": project["id"],
        "task_id": task["id"],
        "instance_id": instance["instance"]["id"],
        "chunk_id": chunk["id"],
    }


def _routes(stack: Stack) -> Iterator[tuple[str, str]]:
    spec = httpx.get(stack.relay.url + "/openapi.json", timeout=timeout(10)).json()
    for path, methods in spec["paths"].items():
        for method in methods:
            yield method.upper(), path


def _call(stack: Stack, method: str, path: str, owned: dict[str, str], token: str | None) -> httpx.Response:
    url = stack.relay.url + path.format(**owned)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.request(
        method, url, headers=headers, json={} if method in ("POST", "PATCH") else None, timeout=timeout(10)
    )


def test_every_route_refuses_missing_wrong_and_machine_credentials(
    stack: Stack, owned: dict[str, str], machine_token: str
) -> None:
    checked = 0
    for method, path in _routes(stack):
        if (method, path) in PUBLIC:
            continue
        for token, status in (
            (None, 401),
            ("cn_not-a-real-token-0000000000000000", 401),
            (machine_token, 403),
        ):
            response = _call(stack, method, path, owned, token)
            assert response.status_code == status, (method, path, token and token[:3], response.text)
            assert response.json()["error"] in ("unauthorized", "forbidden")
        checked += 1
    assert checked >= 15


def test_another_users_token_sees_none_of_my_things(stack: Stack, other: User, owned: dict[str, str]) -> None:
    for method, path in _routes(stack):
        if (method, path) in PUBLIC or "{" not in path:
            continue
        response = _call(stack, method, path, owned, other.token)
        assert response.status_code in (404, 422), (method, path, response.text)  # 422 only for an empty body
        if response.status_code == 422:
            body = {"cols": 80, "rows": 24, "text": "x", "name": "x"}
            keys = {"resize": ("cols", "rows"), "input": ("text",), "machines": ("name",)}
            wanted = next(v for k, v in keys.items() if k in path)
            response = httpx.request(
                method,
                stack.relay.url + path.format(**owned),
                headers={"Authorization": f"Bearer {other.token}"},
                json={k: body[k] for k in wanted},
                timeout=timeout(10),
            )
            assert response.status_code == 404, (method, path, response.text)
    lists = {"/api/machines": "machines", "/api/sessions": "sessions"}
    for path, key in lists.items():
        assert other.api("GET", path).json()[key] == []
    spawn = other.api("POST", "/api/sessions", json={"machine_id": owned["machine_id"], "command": ["true"]})
    assert spawn.status_code == 404


def test_malformed_bodies_get_422_naming_the_field(stack: Stack, owned: dict[str, str]) -> None:
    response = stack.user.api("POST", "/api/sessions", json={"machine_id": owned["machine_id"], "cols": 0})
    assert response.status_code == 422
    assert [p["field"] for p in response.json()["detail"]] == ["cols"]
    response = stack.user.api("POST", "/api/sessions", json={"machine_id": owned["machine_id"], "surprise": 1})
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "surprise"
    response = stack.user.api(
        "POST", "/api/sessions", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "body"
    response = stack.user.api("POST", "/api/sessions", json={"machine_id": owned["machine_id"], "mode": "headless"})
    assert response.status_code == 422
    assert response.json()["detail"] == [{"field": "body", "message": "Value error, headless sessions need a prompt"}]
    response = stack.user.api("POST", f"/api/sessions/{owned['session_id']}/input", json={"data_base64": "***"})
    assert response.status_code == 422
    assert "base64" in json.dumps(response.json())


def test_oversized_bodies_get_413_and_the_relay_keeps_serving(stack: Stack, owned: dict[str, str]) -> None:
    response = stack.user.api(
        "POST",
        f"/api/sessions/{owned['session_id']}/input",
        content=b"x" * (2 << 20),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must hold for chunked bodies too
        for _ in range(40):
            yield b"x" * 65536

    response = stack.user.api("POST", f"/api/sessions/{owned['session_id']}/input", content=chunks())
    assert response.status_code == 413
    assert response.json()["error"] == "too_large"
    assert stack.user.api("GET", "/api/me").status_code == 200


def test_offline_machine_and_ended_session_give_409(stack: Stack, owned: dict[str, str]) -> None:
    ended = stack.user.api("POST", "/api/sessions", json={"machine_id": owned["machine_id"], "command": ["true"]})
    sid = ended.json()["session"]["id"]
    wait_until(lambda: stack.user.api("GET", f"/api/sessions/{sid}").json()["session"]["status"] == "exited")
    response = stack.user.api("POST", f"/api/sessions/{sid}/input", json={"text": "x"})
    assert response.status_code == 409
    assert "ended" in response.json()["detail"]


def test_mistyped_pairing_codes_are_refused_by_form_and_not_counted_as_guesses(stack: Stack) -> None:
    typist = add_user(stack.relay, "typist@example.com", stack.root / "typist-cli")
    for typo in ("A7K-M2", "A7KM2XX", "a7k m2x!", "ZZZ-ZZZ"):  # Z is not in the alphabet
        answer = typist.api("POST", f"/api/pairing/{typo}/approve")
        assert answer.status_code == 422, (typo, answer.text)
        assert answer.json()["detail"][0]["field"] == "code"
        assert "A7K-M2X" in answer.json()["detail"][0]["message"]
    empty = typist.cli("machines", "approve", "", check=False)
    assert empty.returncode == 2
    assert "like A7K-M2X" in empty.stderr
    for _ in range(5):  # five well-formed wrong codes are the limit
        assert typist.api("POST", "/api/pairing/AAA-AAA/approve").status_code == 404
    limited = typist.api("POST", "/api/pairing/AAA-AAA/approve")
    assert limited.status_code == 429
    assert "try again in 10 minutes" in limited.json()["detail"]
    assert limited.headers["retry-after"] == "600"


def test_pairing_codes_unknown_404_expired_410_and_guessing_429(stack: Stack, other: User) -> None:
    assert other.api("POST", "/api/pairing/AAA-AAA/approve").status_code == 404
    started = httpx.post(
        stack.relay.url + "/api/pairing/initiate",
        json={"hostname": "h", "platform": "p", "agent_version": "0"},
        timeout=timeout(10),
    ).json()
    assert re.fullmatch(r"[A-Z0-9]{3}-[A-Z0-9]{3}", started["code"])
    poll = httpx.get(stack.relay.url + f"/api/pairing/{started['code']}", timeout=timeout(10))
    assert poll.status_code == 401  # no device secret
    # A wrong secret and an unknown code look the same, so polling cannot discover live codes.
    wrong = {"X-Device-Secret": "guess"}
    live = httpx.get(stack.relay.url + f"/api/pairing/{started['code']}", headers=wrong, timeout=timeout(10))
    unknown = httpx.get(stack.relay.url + "/api/pairing/AAA-AAA", headers=wrong, timeout=timeout(10))
    assert live.status_code == unknown.status_code == 404
    assert live.json()["detail"].replace(started["code"], "X") == unknown.json()["detail"].replace("AAA-AAA", "X")
    # Expire it in the real database file, as time would.
    db = sqlite3.connect(stack.relay.home / "data" / "relay.db")
    with db:
        db.execute(
            "UPDATE pairing_codes SET expires_at = '2000-01-01T00:00:00.000Z' WHERE code = ?",
            (started["code"],),
        )
    db.close()
    poll = httpx.get(
        stack.relay.url + f"/api/pairing/{started['code']}",
        headers={"X-Device-Secret": started["device_secret"]},
        timeout=timeout(10),
    )
    assert poll.status_code == 410
    assert other.api("POST", f"/api/pairing/{started['code']}/approve").status_code == 410
    statuses = [other.api("POST", "/api/pairing/XXX-XXX/approve").status_code for _ in range(6)]
    assert statuses[-1] == 429
    assert other.api("POST", "/api/pairing/XXX-XXX/approve").headers.get("retry-after")


def test_no_raw_token_in_the_database_or_logs(stack: Stack, other: User, machine_token: str) -> None:
    stack.user.api("POST", "/api/tokens", json={"name": "extra"})
    secrets_to_find = [stack.user.token, other.token, machine_token]
    data_dir = stack.relay.home / "data"
    blobs = b"".join(p.read_bytes() for p in data_dir.iterdir() if p.is_file())
    logs = stack.relay.proc.output + stack.agent.proc.output  # type: ignore[union-attr]
    for secret in secrets_to_find:
        assert secret.encode() not in blobs
        assert secret not in logs


def test_health_metrics_and_openapi(stack: Stack) -> None:
    assert httpx.get(stack.relay.url + "/healthz", timeout=timeout(10)).json()["status"] == "ok"
    metrics = httpx.get(stack.relay.url + "/metrics", timeout=timeout(10)).text
    assert "claudenest_agents_online 1" in metrics
    unknown = httpx.get(stack.relay.url + "/api/nothing-here", timeout=timeout(10))
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "not_found"
