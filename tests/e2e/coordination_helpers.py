"""Helpers for the coordination end-to-end tests: projects, instances and instance-token calls over real HTTP."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.harness import Relay, User, timeout


@dataclass
class Coord:
    relay: Relay
    user: User
    root: Path


@dataclass
class Instance:
    id: str
    name: str
    token: str
    relay_url: str

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.request(method, self.relay_url + path, headers=headers, timeout=timeout(30), **kwargs)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.relay_url, headers={"Authorization": f"Bearer {self.token}"}, timeout=timeout(60)
        )


def new_project(user: User, name: str, path: str = "/work/nest") -> dict[str, Any]:
    response = user.api("POST", "/api/projects", json={"name": name, "project_path": path})
    assert response.status_code == 201, response.text
    return dict(response.json()["project"])


def new_instance(user: User, project_id: str, name: str) -> Instance:
    response = user.api("POST", f"/api/projects/{project_id}/instances", json={"name": name})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["token"].startswith("ci_")
    return Instance(id=body["instance"]["id"], name=name, token=body["token"], relay_url=user.relay_url)


def new_task(user: User, project_id: str, title: str, **fields: Any) -> dict[str, Any]:
    response = user.api("POST", f"/api/projects/{project_id}/tasks", json={"title": title, **fields})
    assert response.status_code == 201, response.text
    return dict(response.json()["task"])


def all_activity(user: User, project_id: str) -> list[dict[str, Any]]:
    """Every activity row of the project, oldest first, paging with the ``after`` cursor."""
    rows: list[dict[str, Any]] = []
    after = "0"
    while True:
        page = user.api("GET", f"/api/projects/{project_id}/activity", params={"after": after, "limit": 1000})
        assert page.status_code == 200, page.text
        found = page.json()["activity"]
        if not found:
            return rows
        rows += found
        after = str(found[-1]["id"])


def conflict(response: httpx.Response, *words: str) -> dict[str, Any]:
    """A 409 whose detail names each of ``words``."""
    assert response.status_code == 409, response.text
    body: dict[str, Any] = response.json()
    for word in words:
        assert word in body["detail"], (word, body)
    return body
