"""The caller's identity, personal access tokens, browser sign-in and WebSocket tickets."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from claudenest import tokens
from claudenest.errors import AuthError
from claudenest.relay.auth import SESSION_COOKIE
from claudenest.relay.routes.deps import CallerDep, StoreDep, UserDep
from claudenest.store.users import public_user

router = APIRouter(tags=["auth"])

WEB_SESSION_TTL = timedelta(days=14)


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field("cli", min_length=1, max_length=100)
    expires_in_days: int | None = Field(30, ge=1, le=3650, description="null: never expires")


class LoginLinkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=10, max_length=200)


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


@router.post("/api/auth/login-link")
async def use_login_link(body: LoginLinkRequest, request: Request, store: StoreDep) -> Response:
    """Exchange a one-time login link (printed by `claudenest up`) for a dashboard session cookie."""
    user_id = await store.users.use_login_link(tokens.hash_token(body.code))
    if user_id is None:
        raise AuthError("this login link is invalid, expired or already used")
    session = tokens.new_secret()
    await store.users.add_web_session(user_id, tokens.hash_token(session), WEB_SESSION_TTL)
    user = await store.users.by_id(user_id)
    response = JSONResponse({"user": {"email": user["email"]}})
    response.set_cookie(
        SESSION_COOKIE,
        session,
        max_age=int(WEB_SESSION_TTL.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/api/auth/logout", status_code=204)
async def logout(request: Request, store: StoreDep) -> Response:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        await store.users.end_web_session(tokens.hash_token(cookie))
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.post("/api/ws-ticket")
async def ws_ticket(caller: CallerDep, request: Request) -> dict[str, Any]:
    """A single-use, 60-second ticket for a browser's WebSocket upgrade (browsers cannot set headers)."""
    return {"ticket": request.app.state.tickets.issue(caller.user["id"]), "expires_in": 60}
