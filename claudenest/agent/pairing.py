"""The agent's side of pairing: ask the relay for a code, show it, poll until a user approves it."""

from __future__ import annotations

import asyncio
import contextlib
import platform
import socket
from collections.abc import Callable
from typing import Any

import httpx

from claudenest import __version__
from claudenest.errors import PairingFailed, RateLimited, RelayUnreachable

WITHDRAW_TIMEOUT = 3.0  # seconds a Ctrl-C'd `pair` waits to take its code back


def machine_info(name: str | None) -> dict[str, str]:
    return {
        "hostname": socket.gethostname(),
        "platform": f"{platform.system()} {platform.release()} {platform.machine()}".strip(),
        "name": name or socket.gethostname(),
        "agent_version": __version__,
    }


async def pair(
    relay_url: str, name: str | None, on_code: Callable[[dict[str, Any]], None], *, max_wait: float = 660
) -> dict[str, Any]:
    """Returns ``{"machine_token", "machine", "user"}`` once approved; raises PairingFailed otherwise."""
    base = relay_url.rstrip("/")
    async with httpx.AsyncClient(base_url=base, timeout=15) as http:
        try:
            response = await http.post("/api/pairing/initiate", json=machine_info(name))
        except httpx.HTTPError as exc:
            raise RelayUnreachable(f"cannot reach the relay at {base}: {exc}") from None
        if response.status_code == 429:
            raise RateLimited(f"the relay is limiting pairing requests: {_detail(response)}")
        if response.status_code != 201:
            raise PairingFailed(f"the relay refused to start pairing ({response.status_code}): {_detail(response)}")
        started = response.json()
        on_code({"code": started["code"], "expires_at": started["expires_at"]})
        try:
            return await _wait_for_approval(http, started, max_wait)
        except (asyncio.CancelledError, KeyboardInterrupt):
            # Ctrl-C: take the code back, so nobody approves a machine that no one holds a token for.
            secret = {"X-Device-Secret": started["device_secret"]}
            with contextlib.suppress(Exception):
                await asyncio.wait_for(http.delete(f"/api/pairing/{started['code']}", headers=secret), WITHDRAW_TIMEOUT)
            raise


async def _wait_for_approval(http: httpx.AsyncClient, started: dict[str, Any], max_wait: float) -> dict[str, Any]:
    """Poll every ``interval`` seconds (longer when told to slow down) until approved, refused or expired."""
    interval = float(started["interval"])
    headers = {"X-Device-Secret": started["device_secret"]}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_wait
    while loop.time() < deadline:
        await asyncio.sleep(interval)
        try:
            response = await http.get(f"/api/pairing/{started['code']}", headers=headers)
        except httpx.HTTPError:
            continue  # a blip while waiting for a human: keep polling
        if response.status_code == 410:
            raise PairingFailed(_detail(response))
        if response.status_code != 200:
            raise PairingFailed(f"pairing failed ({response.status_code}): {_detail(response)}")
        body = response.json()
        if body["status"] == "completed":
            return dict(body)
        if body["status"] == "slow_down":
            interval = float(body["interval"])
    raise PairingFailed("the pairing code expired before it was approved")


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail"))
    except ValueError:
        return response.text[:200]
