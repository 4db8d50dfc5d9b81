"""Pairing an agent to an account: the agent shows a short code, a signed-in user enters it.

Modelled on RFC 8628: the code is short and human-typed, the device secret is long and never shown; codes are
single use, live 10 minutes, and failed entries are limited per user and across the relay.
"""

from __future__ import annotations

import hmac
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from claudenest import tokens
from claudenest.clock import now, parse
from claudenest.errors import AuthError, Conflict, Gone, InvalidField, NotFound
from claudenest.relay.auth import PairingLimits
from claudenest.relay.routes.deps import StoreDep, UserDep, client_ip

router = APIRouter(tags=["pairing"])

PAIRING_TTL = timedelta(minutes=10)
POLL_INTERVAL = 3


class InitiateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hostname: str = Field(min_length=1, max_length=255)
    platform: str = Field(min_length=1, max_length=100)
    name: str | None = Field(None, min_length=1, max_length=100)
    agent_version: str = Field(min_length=1, max_length=50)


class ApproveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=100)


def _limits(request: Request) -> PairingLimits:
    limits: PairingLimits = request.app.state.pairing_limits
    return limits


CODE_FORM = "a pairing code is 6 letters and digits in the form A7K-M2X, as `claudenest pair` shows it"


def _code(raw: str) -> str:
    """The canonical code; a malformed one is a typo, answered 422 and not counted as a guess."""
    code = tokens.normalize_pairing_code(raw)
    if code is None:
        raise InvalidField("code", CODE_FORM)
    return code


@router.post("/api/pairing/initiate", status_code=201)
async def initiate(body: InitiateRequest, request: Request, store: StoreDep) -> dict[str, Any]:
    ip = client_ip(request)
    _limits(request).initiate_per_ip.check_and_hit(ip, "pairing requests from this address")
    secret = tokens.new_secret()
    info = {
        "hostname": body.hostname,
        "platform": body.platform,
        "name": body.name or body.hostname,
        "agent_version": body.agent_version,
    }
    for _ in range(5):
        code = tokens.new_pairing_code()
        try:
            pairing = await store.machines.add_pairing(
                code, tokens.hash_token(secret), info=info, ip=ip, ttl=PAIRING_TTL
            )
        except Conflict:
            continue
        return {
            "code": code,
            "device_secret": secret,
            "expires_at": pairing["expires_at"],
            "interval": POLL_INTERVAL,
        }
    raise Conflict("could not allocate a pairing code; try again")


@router.get("/api/pairing/{code}")
async def poll(
    code: str, request: Request, store: StoreDep, x_device_secret: Annotated[str | None, Header()] = None
) -> dict[str, Any]:
    """The agent's poll. Send the device secret in the ``X-Device-Secret`` header.

    Unknown code and wrong secret get the same 404, so polling cannot be used to find live codes.
    """
    _limits(request).polls_per_ip.check_and_hit(client_ip(request), "pairing polls from this address")
    if not x_device_secret:
        raise AuthError("missing device secret (X-Device-Secret header)")
    pairing = await store.machines.pairing(_code(code))
    if pairing is None or not hmac.compare_digest(tokens.hash_token(x_device_secret), pairing["device_secret_hash"]):
        raise NotFound(f"no pairing code {code} for this device")
    if pairing["status"] == "completed":
        raise Gone("this pairing code was already used")
    if pairing["status"] == "withdrawn":
        raise Gone("this pairing code was withdrawn; run `claudenest pair` again")
    if pairing["status"] == "pending" and parse(pairing["expires_at"]) <= now():
        raise Gone("this pairing code has expired; run `claudenest pair` again")
    last = pairing["last_polled_at"]
    await store.machines.mark_polled(pairing["id"])
    if pairing["status"] == "pending":
        if last and (now() - parse(last)).total_seconds() < POLL_INTERVAL - 1:
            return {"status": "slow_down", "interval": POLL_INTERVAL + 5}
        return {"status": "pending", "expires_at": pairing["expires_at"], "interval": POLL_INTERVAL}
    # Approved: mint the machine token now, so no raw token ever rests in the database.
    machine_token = tokens.new_token(tokens.MACHINE_PREFIX)
    if not await store.machines.complete_pairing(pairing["id"], tokens.hash_token(machine_token)):
        raise Gone("this pairing code was already used")
    machine = await store.machines.get(pairing["machine_id"])
    owner = await store.users.by_id(machine["user_id"])
    return {
        "status": "completed",
        "machine_token": machine_token,
        "machine": machine,
        "user": {"id": owner["id"], "email": owner["email"]},
    }


@router.delete("/api/pairing/{code}", status_code=204)
async def withdraw(
    code: str,
    request: Request,
    store: StoreDep,
    x_device_secret: Annotated[str | None, Header(max_length=200)] = None,
) -> Response:
    """The agent withdraws its code (Ctrl-C on `pair`), so nobody can approve a machine no one holds a token for.
    Unknown code and wrong secret get the same 404, as for polling."""
    _limits(request).polls_per_ip.check_and_hit(client_ip(request), "pairing polls from this address")
    if not x_device_secret:
        raise AuthError("missing device secret (X-Device-Secret header)")
    if not await store.machines.withdraw_pairing(_code(code), tokens.hash_token(x_device_secret)):
        raise NotFound(f"no pending pairing code {code} for this device")
    return Response(status_code=204)


@router.get("/api/pairing/{code}/info")
async def info(code: str, request: Request, user: UserDep, store: StoreDep) -> dict[str, Any]:
    """What is asking to be paired (hostname, platform, IP), so the user can check it is theirs."""
    normalized = _code(code)
    limits = _limits(request)
    limits.before_approval(user["id"])
    pairing = await store.machines.pairing(normalized)
    if pairing is None or pairing["status"] != "pending" or parse(pairing["expires_at"]) <= now():
        limits.failed(user["id"])
        raise NotFound(f"no pending pairing code {code}")
    return {k: pairing[k] for k in ("code", "hostname", "platform", "requested_name", "ip", "expires_at")}


@router.post("/api/pairing/{code}/approve")
async def approve(
    code: str, request: Request, user: UserDep, store: StoreDep, body: ApproveRequest | None = None
) -> dict[str, Any]:
    normalized = _code(code)
    limits = _limits(request)
    limits.before_approval(user["id"])
    try:
        machine = await store.machines.approve_pairing(normalized, user["id"], body.name if body else None)
    except (NotFound, Gone):
        limits.failed(user["id"])
        raise
    return {"machine": machine}
