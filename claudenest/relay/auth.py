"""Who is calling: personal access tokens, machine tokens, web sessions, WS tickets, rate limits."""

from __future__ import annotations

import secrets
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from starlette.requests import HTTPConnection

from claudenest import tokens
from claudenest.errors import AuthError, Forbidden, RateLimited
from claudenest.relay.security import SAFE_METHODS, require_same_origin
from claudenest.store import Store

SESSION_COOKIE = "claudenest_session"
TICKET_TTL = 60.0


@dataclass(frozen=True)
class Caller:
    user: dict[str, Any]
    via: str  # "token" or "cookie"
    web_session_id: str | None = None  # the browser session, when signed in by the cookie


def bearer(conn: HTTPConnection) -> str | None:
    header = conn.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


async def authenticate_user(conn: HTTPConnection, store: Store, *, allow_cookie: bool = True) -> Caller:
    """A user, from a personal access token (``Authorization: Bearer cn_...``) or the dashboard cookie."""
    token = bearer(conn)
    if token is not None:
        if token.startswith(tokens.MACHINE_PREFIX):
            raise Forbidden("this route needs a personal access token; machine tokens only open /ws/agent")
        if token.startswith(tokens.INSTANCE_PREFIX):
            raise Forbidden("this route needs a personal access token; instance tokens only reach their project")
        if not token.startswith(tokens.PAT_PREFIX):
            raise AuthError("invalid token")
        user = await store.users.user_for_token(tokens.hash_token(token))
        if user is None:
            raise AuthError("invalid, expired or revoked token")
        return Caller(user=user, via="token")
    cookie = conn.cookies.get(SESSION_COOKIE) if allow_cookie else None
    if cookie:
        if conn.scope["type"] == "http" and conn.scope["method"] not in SAFE_METHODS:
            require_same_origin(conn, conn.app.state.settings.public_origin)
        user = await store.users.user_for_web_session(tokens.hash_token(cookie))
        if user is not None:
            return Caller(user=user, via="cookie", web_session_id=user["web_session_id"])
        raise AuthError("your sign-in has expired")
    raise AuthError("missing credentials: send 'Authorization: Bearer <token>'")


async def authenticate_machine(conn: HTTPConnection, store: Store) -> dict[str, Any]:
    token = bearer(conn)
    if token is None:
        raise AuthError("missing machine token")
    if not token.startswith(tokens.MACHINE_PREFIX):
        raise Forbidden("/ws/agent needs a machine token")
    machine = await store.machines.by_token(tokens.hash_token(token))
    if machine is None:
        raise AuthError("invalid or revoked machine token")
    return machine


class SlidingWindow:
    """At most ``limit`` events per ``window`` seconds for each key (kept in memory)."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._events: dict[str, deque[float]] = {}

    def _prune(self, key: str) -> deque[float]:
        horizon = time.monotonic() - self.window
        if len(self._events) > 10_000:  # forget idle keys so memory does not grow with every new address
            self._events = {k: v for k, v in self._events.items() if v and v[-1] > horizon}
        events = self._events.setdefault(key, deque())
        while events and events[0] <= horizon:
            events.popleft()
        return events

    def allowed(self, key: str) -> bool:
        return len(self._prune(key)) < self.limit

    def hit(self, key: str) -> None:
        self._prune(key).append(time.monotonic())

    def check_and_hit(self, key: str, what: str) -> None:
        if not self.allowed(key):
            raise RateLimited(f"too many {what}; try again in a minute", retry_after=int(self.window))
        self.hit(key)


class PairingLimits:
    """Guessing a pending code must be infeasible: failures are limited per user and across the relay."""

    def __init__(self) -> None:
        self.initiate_per_ip = SlidingWindow(20, 60)
        self.polls_per_ip = SlidingWindow(120, 60)
        self.failures_per_user = SlidingWindow(5, 600)
        self.failures_global = SlidingWindow(200, 3600)

    def before_approval(self, user_id: str) -> None:
        if not self.failures_per_user.allowed(user_id) or not self.failures_global.allowed("*"):
            raise RateLimited(
                "too many wrong pairing codes: try again in 10 minutes (a mistyped code such as A7K-M2 is not counted)",
                retry_after=600,
            )

    def failed(self, user_id: str) -> None:
        self.failures_per_user.hit(user_id)
        self.failures_global.hit("*")


class TicketBook:
    """Single-use WebSocket tickets (60 s) for browsers, which cannot set headers on an upgrade."""

    def __init__(self) -> None:
        self._tickets: dict[str, tuple[str, float]] = {}

    def issue(self, user_id: str) -> str:
        now = time.monotonic()
        self._tickets = {k: v for k, v in self._tickets.items() if v[1] > now}
        ticket = secrets.token_urlsafe(32)
        self._tickets[ticket] = (user_id, now + TICKET_TTL)
        return ticket

    def redeem(self, ticket: str) -> str | None:
        found = self._tickets.pop(ticket, None)
        if found is None or found[1] < time.monotonic():
            return None
        return found[0]
