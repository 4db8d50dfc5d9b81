"""RelayClient: the relay's HTTP API and viewer WebSocket, for the CLI, scripts and the MCP server."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import websockets
from websockets.asyncio.client import ClientConnection

from claudenest import __version__
from claudenest.errors import (
    AuthError,
    ClaudenestError,
    Conflict,
    Forbidden,
    Gone,
    InvalidRequest,
    LockConflict,
    NotFound,
    ProtocolError,
    RateLimited,
    RelayUnreachable,
)
from claudenest.protocol import PROTOCOL_VERSION, ClientHello, Welcome, decode_message, encode_message

_BY_STATUS: dict[int, type[ClaudenestError]] = {
    401: AuthError,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    429: RateLimited,
}


INPUT_CHUNK = 32 << 10  # under the relay's 64 KiB per input request


class RelayClient:
    def __init__(self, relay_url: str, token: str | None, *, timeout: float = 30) -> None:
        self.relay_url = relay_url.rstrip("/")
        self._token = token
        headers = {"User-Agent": f"claudenest/{__version__}"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        # A plain-HTTP relay needs no TLS: skip loading the CA bundle into an SSL context, which was a third of the
        # start-up of a quick command like `sessions list` (scripts/bench_cli.py). Redirects are not followed, so
        # nothing can lead such a client to an unverified https:// host.
        plain = self.relay_url.startswith("http://")
        self._http = httpx.AsyncClient(base_url=self.relay_url, headers=headers, timeout=timeout, verify=not plain)

    async def __aenter__(self) -> RelayClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise RelayUnreachable(f"cannot reach the relay at {self.relay_url}: {exc}") from None
        if response.status_code >= 400:
            raise _error(response)
        return response

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.request(method, path, **kwargs)
        return response.json() if response.content else None

    # -- identity -----------------------------------------------------------------------------------------------

    async def me(self) -> dict[str, Any]:
        return dict((await self._json("GET", "/api/me"))["user"])

    async def create_token(self, name: str, expires_in_days: int | None = 30) -> dict[str, Any]:
        return dict(await self._json("POST", "/api/tokens", json={"name": name, "expires_in_days": expires_in_days}))

    async def tokens(self) -> list[dict[str, Any]]:
        return list((await self._json("GET", "/api/tokens"))["tokens"])

    async def revoke_token(self, token_id: str) -> None:
        await self._json("DELETE", f"/api/tokens/{token_id}")

    # -- machines -----------------------------------------------------------------------------------------------

    async def machines(self) -> list[dict[str, Any]]:
        return list((await self._json("GET", "/api/machines"))["machines"])

    async def machine(self, machine_id: str) -> dict[str, Any]:
        return dict((await self._json("GET", f"/api/machines/{machine_id}"))["machine"])

    async def revoke_machine(self, machine_id: str) -> dict[str, Any]:
        return dict((await self._json("DELETE", f"/api/machines/{machine_id}"))["machine"])

    async def pairing_info(self, code: str) -> dict[str, Any]:
        return dict(await self._json("GET", f"/api/pairing/{code}/info"))

    async def approve_pairing(self, code: str, name: str | None = None) -> dict[str, Any]:
        body = {"name": name} if name else {}
        return dict((await self._json("POST", f"/api/pairing/{code}/approve", json=body))["machine"])

    # -- sessions -----------------------------------------------------------------------------------------------

    async def create_session(self, **fields: Any) -> dict[str, Any]:
        body = {k: v for k, v in fields.items() if v is not None}
        return dict((await self._json("POST", "/api/sessions", json=body))["session"])

    async def sessions(self, **filters: Any) -> list[dict[str, Any]]:
        params = {k: v for k, v in filters.items() if v is not None}
        return list((await self._json("GET", "/api/sessions", params=params))["sessions"])

    async def session(self, session_id: str) -> dict[str, Any]:
        return dict((await self._json("GET", f"/api/sessions/{session_id}"))["session"])

    async def delete_session(self, session_id: str) -> None:
        await self._json("DELETE", f"/api/sessions/{session_id}")

    async def send_input(self, session_id: str, data: bytes) -> int:
        """Type ``data`` into the session, in pieces the relay accepts (it takes 64 KiB a request), in order."""
        sent = 0
        for start in range(0, max(len(data), 1), INPUT_CHUNK):
            body = {"data_base64": base64.b64encode(data[start : start + INPUT_CHUNK]).decode()}
            sent += int((await self._json("POST", f"/api/sessions/{session_id}/input", json=body))["sent"])
        return sent

    async def resize(self, session_id: str, cols: int, rows: int) -> None:
        await self._json("POST", f"/api/sessions/{session_id}/resize", json={"cols": cols, "rows": rows})

    async def terminate(self, session_id: str) -> dict[str, Any]:
        return dict((await self._json("POST", f"/api/sessions/{session_id}/terminate"))["session"])

    async def approve(self, session_id: str) -> dict[str, Any]:
        return dict(await self._json("POST", f"/api/sessions/{session_id}/approve"))

    async def deny(self, session_id: str, message: str | None = None) -> dict[str, Any]:
        return dict(await self._json("POST", f"/api/sessions/{session_id}/deny", json={"message": message}))

    async def discovery(self, machine_id: str) -> dict[str, Any]:
        return dict(await self._json("GET", f"/api/machines/{machine_id}/discovery"))

    async def logs(self, session_id: str, from_offset: int = 0, limit: int = 1 << 20) -> tuple[int, bytes, int, bool]:
        """``(offset of first byte, bytes, end offset, whether the session's process has ended)``."""
        response = await self.request(
            "GET", f"/api/sessions/{session_id}/logs", params={"from": from_offset, "limit": limit}
        )
        return (
            int(response.headers["x-offset"]),
            response.content,
            int(response.headers["x-end-offset"]),
            response.headers["x-session-ended"] == "true",
        )

    # -- live ---------------------------------------------------------------------------------------------------

    async def connect_viewer(self) -> ClientConnection:
        """A /ws/client connection that has already exchanged hellos."""
        url = self.relay_url.replace("http://", "ws://").replace("https://", "wss://") + "/ws/client"
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        try:
            ws = await websockets.connect(
                url, additional_headers=headers, max_size=None, ping_interval=15, compression=None
            )
        except websockets.InvalidStatus as exc:
            status = exc.response.status_code
            raise _BY_STATUS.get(status, ClaudenestError)(f"the relay refused the connection ({status})") from None
        except (OSError, websockets.InvalidHandshake) as exc:
            raise RelayUnreachable(f"cannot reach the relay at {self.relay_url}: {exc}") from None
        await ws.send(encode_message(ClientHello(protocol=PROTOCOL_VERSION, client_version=__version__)))
        welcome = decode_message(await ws.recv())
        if not isinstance(welcome, Welcome):
            await ws.close()
            raise ProtocolError(f"expected welcome from the relay, got {welcome.type}")
        return ws

    # -- multi-agent coordination -----------------------------------------------------------------------------
    # Made with an instance token (ci_...), a client reaches only that instance's project; made with a personal
    # access token, every project of its user. Shapes are those of docs/coordination.md.

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise RelayUnreachable(f"cannot reach the relay at {self.relay_url}: {exc}") from None
        if response.status_code >= 400:
            raise _coordination_error(response)
        return response.json() if response.content else None

    # -- projects -----------------------------------------------------------------------------------------------

    async def create_project(self, name: str, project_path: str, **fields: Any) -> dict[str, Any]:
        body = {"name": name, "project_path": project_path, **{k: v for k, v in fields.items() if v is not None}}
        return dict((await self._call("POST", "/api/projects", json=body))["project"])

    async def projects(self) -> list[dict[str, Any]]:
        return list((await self._call("GET", "/api/projects"))["projects"])

    async def project(self, project_id: str) -> dict[str, Any]:
        return dict((await self._call("GET", f"/api/projects/{project_id}"))["project"])

    async def update_project(self, project_id: str, **fields: Any) -> dict[str, Any]:
        body = {k: v for k, v in fields.items() if v is not None}
        return dict((await self._call("PATCH", f"/api/projects/{project_id}", json=body))["project"])

    async def delete_project(self, project_id: str) -> None:
        await self._call("DELETE", f"/api/projects/{project_id}")

    # -- tasks --------------------------------------------------------------------------------------------------

    async def create_task(self, project_id: str, title: str, **fields: Any) -> dict[str, Any]:
        body = {"title": title, **{k: v for k, v in fields.items() if v is not None}}
        return dict((await self._call("POST", f"/api/projects/{project_id}/tasks", json=body))["task"])

    async def tasks(
        self, project_id: str, *, status: str | None = None, assigned_to: str | None = None
    ) -> list[dict[str, Any]]:
        params = {k: v for k, v in {"status": status, "assigned_to": assigned_to}.items() if v}
        return list((await self._call("GET", f"/api/projects/{project_id}/tasks", params=params))["tasks"])

    async def task(self, project_id: str, task_id: str) -> dict[str, Any]:
        return dict((await self._call("GET", f"/api/projects/{project_id}/tasks/{task_id}"))["task"])

    async def update_task(self, project_id: str, task_id: str, **fields: Any) -> dict[str, Any]:
        body = {k: v for k, v in fields.items() if v is not None}
        return dict((await self._call("PATCH", f"/api/projects/{project_id}/tasks/{task_id}", json=body))["task"])

    async def claim_task(self, project_id: str, task_id: str) -> dict[str, Any]:
        return dict((await self._call("POST", f"/api/projects/{project_id}/tasks/{task_id}/claim"))["task"])

    async def claim_next_task(self, project_id: str) -> dict[str, Any] | None:
        task = (await self._call("POST", f"/api/projects/{project_id}/tasks/claim-next"))["task"]
        return dict(task) if task is not None else None

    async def release_task(self, project_id: str, task_id: str) -> dict[str, Any]:
        return dict((await self._call("POST", f"/api/projects/{project_id}/tasks/{task_id}/release"))["task"])

    async def complete_task(
        self, project_id: str, task_id: str, summary: str, files_modified: list[str] | None = None
    ) -> dict[str, Any]:
        body = {"summary": summary, "files_modified": files_modified or []}
        path = f"/api/projects/{project_id}/tasks/{task_id}/complete"
        return dict((await self._call("POST", path, json=body))["task"])

    async def request_review(
        self, project_id: str, task_id: str, summary: str, files_modified: list[str] | None = None
    ) -> dict[str, Any]:
        body = {"summary": summary, "files_modified": files_modified or []}
        path = f"/api/projects/{project_id}/tasks/{task_id}/review"
        return dict((await self._call("POST", path, json=body))["task"])

    async def approve_task(self, project_id: str, task_id: str, note: str | None = None) -> dict[str, Any]:
        path = f"/api/projects/{project_id}/tasks/{task_id}/approve"
        return dict((await self._call("POST", path, json={"note": note}))["task"])

    async def request_changes(self, project_id: str, task_id: str, reason: str) -> dict[str, Any]:
        path = f"/api/projects/{project_id}/tasks/{task_id}/request-changes"
        return dict((await self._call("POST", path, json={"reason": reason}))["task"])

    async def block_task(self, project_id: str, task_id: str, reason: str) -> dict[str, Any]:
        path = f"/api/projects/{project_id}/tasks/{task_id}/block"
        return dict((await self._call("POST", path, json={"reason": reason}))["task"])

    async def unblock_task(self, project_id: str, task_id: str) -> dict[str, Any]:
        return dict((await self._call("POST", f"/api/projects/{project_id}/tasks/{task_id}/unblock"))["task"])

    # -- file locks ---------------------------------------------------------------------------------------------

    async def acquire_lock(
        self, project_id: str, path: str, *, reason: str | None = None, ttl_seconds: int | None = None
    ) -> dict[str, Any]:
        """The lock, or LockConflict (``.holder``, ``.expires_at``, ``.lock``) when another instance holds it."""
        body = {k: v for k, v in {"path": path, "reason": reason, "ttl_seconds": ttl_seconds}.items() if v is not None}
        return dict((await self._call("POST", f"/api/projects/{project_id}/locks", json=body))["lock"])

    async def renew_lock(self, project_id: str, path: str, ttl_seconds: int | None = None) -> dict[str, Any]:
        body = {k: v for k, v in {"path": path, "ttl_seconds": ttl_seconds}.items() if v is not None}
        return dict((await self._call("POST", f"/api/projects/{project_id}/locks/renew", json=body))["lock"])

    async def release_lock(self, project_id: str, path: str) -> bool:
        body = {"path": path}
        return bool((await self._call("POST", f"/api/projects/{project_id}/locks/release", json=body))["released"])

    async def check_locks(self, project_id: str, paths: list[str]) -> dict[str, dict[str, Any] | None]:
        body = {"paths": paths}
        return dict((await self._call("POST", f"/api/projects/{project_id}/locks/check", json=body))["locks"])

    async def locks(self, project_id: str) -> list[dict[str, Any]]:
        return list((await self._call("GET", f"/api/projects/{project_id}/locks"))["locks"])

    async def release_instance_locks(self, project_id: str, instance_id: str) -> int:
        path = f"/api/projects/{project_id}/instances/{instance_id}/release-locks"
        return int((await self._call("POST", path))["released"])

    # -- instances ----------------------------------------------------------------------------------------------

    async def register_instance(
        self, project_id: str, name: str, *, session_id: str | None = None, machine_id: str | None = None
    ) -> dict[str, Any]:
        """``{"instance": {...}, "token": "ci_..."}``: the token is shown only here."""
        body = {k: v for k, v in {"name": name, "session_id": session_id, "machine_id": machine_id}.items() if v}
        return dict(await self._call("POST", f"/api/projects/{project_id}/instances", json=body))

    async def instances(self, project_id: str, status: str | None = None) -> list[dict[str, Any]]:
        params = {"status": status} if status else {}
        return list((await self._call("GET", f"/api/projects/{project_id}/instances", params=params))["instances"])

    async def heartbeat(self, project_id: str, instance_id: str, **fields: Any) -> dict[str, Any]:
        """``status`` ('active' or 'disconnected') and ``current_task_id`` are optional; pass
        ``current_task_id=None`` explicitly to clear it."""
        path = f"/api/projects/{project_id}/instances/{instance_id}/heartbeat"
        return dict((await self._call("POST", path, json=fields))["instance"])

    async def end_instance(self, project_id: str, instance_id: str) -> dict[str, Any]:
        return dict((await self._call("DELETE", f"/api/projects/{project_id}/instances/{instance_id}"))["instance"])

    async def whoami_instance(self) -> dict[str, Any]:
        """For an instance token: ``{"instance": {...}, "project": {...}}``."""
        return dict(await self._call("GET", "/api/instance"))

    # -- activity and messages ----------------------------------------------------------------------------------

    async def activity(
        self, project_id: str, *, after: str | int | None = None, limit: int | None = None, kind: str | None = None
    ) -> list[dict[str, Any]]:
        params = {k: v for k, v in {"after": after, "limit": limit, "kind": kind}.items() if v is not None}
        return list((await self._call("GET", f"/api/projects/{project_id}/activity", params=params))["activity"])

    async def send_message(self, project_id: str, text: str) -> dict[str, Any]:
        return dict((await self._call("POST", f"/api/projects/{project_id}/messages", json={"text": text}))["activity"])

    async def project_events(
        self, project_id: str, *, after: str | int | None = None, on_live: Callable[[], None] | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Activity rows as they happen (after replaying those past ``after``). ``on_live`` runs once the stream is
        live. Ends after a final ``stream_dropped`` or ``project_deleted`` event, or when the relay goes away."""
        params = {"after": str(after)} if after is not None else {}
        timeout = httpx.Timeout(30, read=60)  # the relay sends a keepalive comment every 15 s
        try:
            async with self._http.stream(
                "GET", f"/api/projects/{project_id}/events", params=params, timeout=timeout
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise _coordination_error(response)
                data: list[str] = []
                async for line in response.aiter_lines():
                    if line.startswith("data:"):
                        data.append(line[5:].removeprefix(" "))
                    elif line == ": live" and on_live is not None:
                        on_live()
                    elif not line and data:
                        yield json.loads("\n".join(data))
                        data = []
        except httpx.HTTPError as exc:
            raise RelayUnreachable(f"lost the event stream from {self.relay_url}: {exc}") from None

    # -- shared context -------------------------------------------------------------------------------------------

    async def add_context_chunks(self, project_id: str, chunks: list[dict[str, Any]]) -> dict[str, Any]:
        """Add chunks (``content`` and the optional fields of one chunk) all or none: ``{ids, created,
        project_chunks}``. At most 500 a request, within the relay's 1 MiB body limit."""
        return dict(await self._call("POST", f"/api/projects/{project_id}/context/bulk", json={"chunks": chunks}))


def _error(response: httpx.Response) -> ClaudenestError:
    try:
        body = response.json()
        detail = body.get("detail", body)
    except ValueError:
        detail = response.text[:300]
    if isinstance(detail, list):  # validation problems: [{field, message}]
        detail = "; ".join(f"{p.get('field')}: {p.get('message')}" for p in detail if isinstance(p, dict))
    cls = _BY_STATUS.get(response.status_code)
    if response.status_code == 422:
        return InvalidRequest(f"invalid request: {detail}")
    if cls is None:
        return ClaudenestError(f"relay error {response.status_code}: {detail}")
    if cls is RateLimited:
        return RateLimited(str(detail), int(response.headers.get("retry-after", "60")))
    return cls(str(detail))


def _coordination_error(response: httpx.Response) -> ClaudenestError:
    if response.status_code == 409:
        try:
            body = response.json()
        except ValueError:
            body = {}
        if isinstance(body, dict) and "holder" in body:
            return LockConflict(
                str(body.get("detail", "locked")),
                holder=dict(body["holder"]),
                expires_at=str(body.get("expires_at", "")),
                lock=dict(body.get("lock") or {}),
            )
    return _error(response)
