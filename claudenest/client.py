"""RelayClient: the relay's HTTP API and viewer WebSocket, for the CLI, scripts and the MCP server."""

from __future__ import annotations

import base64
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


class RelayClient:
    def __init__(self, relay_url: str, token: str | None, *, timeout: float = 30) -> None:
        self.relay_url = relay_url.rstrip("/")
        self._token = token
        headers = {"User-Agent": f"claudenest/{__version__}"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.AsyncClient(base_url=self.relay_url, headers=headers, timeout=timeout)

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

    async def send_input(self, session_id: str, data: bytes) -> int:
        body = {"data_base64": base64.b64encode(data).decode()}
        return int((await self._json("POST", f"/api/sessions/{session_id}/input", json=body))["sent"])

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
