"""The caller's identity, personal access tokens, browser sign-in (login link, password, pasted token), browser
sessions and WebSocket tickets."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from claudenest import tokens
from claudenest.errors import AuthError, NotFound
from claudenest.relay.auth import SESSION_COOKIE, SlidingWindow
from claudenest.relay.routes.deps import CallerDep, StoreDep, UserDep, client_ip
from claudenest.relay.security import require_same_origin
from claudenest.store import Store
from claudenest.store.users import public_user

router = APIRouter(tags=["auth"])

WEB_SESSION_TTL = timedelta(days=14)
# A scrypt hash of nothing anybody knows: checked when the email is unknown, so both answers take as long.
_NO_PASSWORD = tokens.hash_password(tokens.new_secret())


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field("cli", min_length=1, max_length=100)
    expires_in_days: int | None = Field(30, ge=1, le=3650, description="null: never expires")


class LoginLinkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=10, max_length=200)


class PasswordLogin(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=1024)


class TokenLogin(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=1, max_length=200, description="a personal access token (cn_...)")


class SignInLimits:
    """Failed sign-ins per address and per account; a success does not reset them (no oracle)."""

    def __init__(self) -> None:
        self.per_ip = SlidingWindow(20, 600)
        self.per_account = SlidingWindow(10, 600)

    def check(self, request: Request, account: str) -> None:
        self.per_ip.check_and_hit(client_ip(request), "failed sign-ins from this address")
        self.per_account.check_and_hit(account, "failed sign-ins for this account")


def _limits(request: Request) -> SignInLimits:
    limits: SignInLimits | None = getattr(request.app.state, "sign_in_limits", None)
    if limits is None:
        limits = request.app.state.sign_in_limits = SignInLimits()
    return limits


@router.get("/api/me")
async def me(user: UserDep) -> dict[str, Any]:
    return {"user": public_user(user)}


@router.get("/api/tokens")
async def list_tokens(user: UserDep, store: StoreDep) -> dict[str, Any]:
    return {"tokens": await store.users.tokens(user["id"])}


@router.post("/api/tokens", status_code=201)
async def create_token(body: TokenRequest, user: UserDep, store: StoreDep) -> dict[str, Any]:
    raw = tokens.new_token(tokens.PAT_PREFIX)
    expires = timedelta(days=body.expires_in_days) if body.expires_in_days else None
    record = await store.users.add_token(
        user["id"], tokens.hash_token(raw), name=body.name, expires_in=expires, abilities=["*"]
    )
    return {"token": raw, **record}


@router.delete("/api/tokens/{token_id}", status_code=204)
async def revoke_token(token_id: str, user: UserDep, store: StoreDep) -> Response:
    await store.users.revoke_token(user["id"], token_id)
    return Response(status_code=204)


async def _signed_in(request: Request, store: Store, user_id: str) -> Response:
    """A new browser session for the user: the answer sets its cookie (HttpOnly, SameSite=Strict, Secure on TLS)."""
    session = tokens.new_secret()
    await store.users.add_web_session(
        user_id, tokens.hash_token(session), WEB_SESSION_TTL, request.headers.get("user-agent", "")
    )
    user = await store.users.by_id(user_id)
    response = JSONResponse({"user": public_user(user)})
    response.set_cookie(
        SESSION_COOKIE,
        session,
        max_age=int(WEB_SESSION_TTL.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


def _same_origin_sign_in(request: Request) -> None:
    """Another site must not sign a visitor's browser in to an account of its choosing (login CSRF)."""
    require_same_origin(request, request.app.state.settings.public_origin)


@router.post("/api/auth/login-link")
async def use_login_link(body: LoginLinkRequest, request: Request, store: StoreDep) -> Response:
    """Exchange a one-time login link (from `claudenest up` or `relay login-link`) for a dashboard session cookie."""
    _same_origin_sign_in(request)
    user_id = await store.users.use_login_link(tokens.hash_token(body.code))
    if user_id is None:
        _limits(request).per_ip.check_and_hit(client_ip(request), "failed sign-ins from this address")
        raise AuthError("this login link is invalid, expired or already used: ask for a new one")
    return await _signed_in(request, store, user_id)


@router.post("/api/auth/login")
async def login_with_password(body: PasswordLogin, request: Request, store: StoreDep) -> Response:
    """Email and password (set with `claudenest relay user passwd EMAIL`) for a dashboard session cookie."""
    _same_origin_sign_in(request)
    limits = _limits(request)
    account = body.email.strip().lower()
    if not (limits.per_ip.allowed(client_ip(request)) and limits.per_account.allowed(account)):
        limits.check(request, account)  # raises 429 with Retry-After
    try:
        user = await store.users.by_email(body.email)
    except NotFound:
        user = None
    stored = (user or {}).get("password_hash") or _NO_PASSWORD
    if not tokens.check_password(body.password, stored) or user is None or not user.get("password_hash"):
        limits.check(request, account)
        raise AuthError("wrong email or password")
    return await _signed_in(request, store, user["id"])


@router.post("/api/auth/token-login")
async def login_with_token(body: TokenLogin, request: Request, store: StoreDep) -> Response:
    """A personal access token pasted into the login page, exchanged for a dashboard session cookie."""
    _same_origin_sign_in(request)
    limits = _limits(request)
    if not limits.per_ip.allowed(client_ip(request)):
        limits.per_ip.check_and_hit(client_ip(request), "failed sign-ins from this address")
    token = body.token.strip()
    if not token.startswith(tokens.PAT_PREFIX):
        raise AuthError("paste a personal access token: it starts with cn_")
    user = await store.users.user_for_token(tokens.hash_token(token))
    if user is None:
        limits.per_ip.check_and_hit(client_ip(request), "failed sign-ins from this address")
        raise AuthError("this token is invalid, expired or revoked")
    return await _signed_in(request, store, user["id"])


@router.post("/api/auth/logout", status_code=204)
async def logout(request: Request, store: StoreDep) -> Response:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        _same_origin_sign_in(request)  # another site cannot sign you out either
        await store.users.end_web_session(tokens.hash_token(cookie))
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/api/auth/web-sessions")
async def list_web_sessions(caller: CallerDep, store: StoreDep) -> dict[str, Any]:
    """The user's signed-in browsers; ``current`` marks the one asking."""
    rows = await store.users.web_sessions(caller.user["id"])
    return {"sessions": [{**row, "current": row["id"] == caller.web_session_id} for row in rows]}


@router.delete("/api/auth/web-sessions/{session_id}", status_code=204)
async def end_web_session(session_id: str, caller: CallerDep, store: StoreDep) -> Response:
    """Sign a browser out (the current one too: its cookie stops working at once)."""
    await store.users.end_web_session_by_id(caller.user["id"], session_id)
    return Response(status_code=204)


@router.post("/api/ws-ticket")
async def ws_ticket(caller: CallerDep, request: Request) -> dict[str, Any]:
    """A single-use, 60-second ticket for a browser's WebSocket upgrade (browsers cannot set headers)."""
    return {"ticket": request.app.state.tickets.issue(caller.user["id"]), "expires_in": 60}
