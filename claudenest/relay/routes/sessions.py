"""Sessions: create on a machine, list, show, type into, resize, terminate, read the output log."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, model_validator

from claudenest import tokens
from claudenest.clock import iso
from claudenest.errors import Conflict
from claudenest.relay.routes.deps import HubDep, SettingsDep, StoreDep, UserDep

router = APIRouter(tags=["sessions"])

SPAWN_WAIT = 10.0
MAX_INPUT = 64 << 10
MAX_LOG_READ = 4 << 20


class SessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    machine_id: str = Field(min_length=1, max_length=64)
    cwd: str = Field("~", min_length=1, max_length=4096, description="working directory on the machine")
    command: list[Annotated[str, Field(max_length=4096)]] | None = Field(
        None, min_length=1, max_length=256, description="argv to run instead of Claude Code"
    )
    mode: Literal["interactive", "headless"] = "interactive"
    prompt: str | None = Field(None, max_length=100_000)
    cols: int = Field(120, ge=1, le=1000)
    rows: int = Field(40, ge=1, le=1000)
    project_id: str | None = Field(
        None, max_length=64, description="run Claude as an instance of this shared project (MCP server, lock hook)"
    )

    @model_validator(mode="after")
    def headless_needs_prompt(self) -> SessionCreate:
        if self.mode == "headless" and not self.prompt:
            raise ValueError("headless sessions need a prompt")
        return self


class SessionInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str | None = Field(None, max_length=MAX_INPUT)
    data_base64: str | None = Field(None, max_length=MAX_INPUT * 2)

    @model_validator(mode="after")
    def exactly_one(self) -> SessionInput:
        if (self.text is None) == (self.data_base64 is None):
            raise ValueError("send exactly one of text or data_base64")
        return self

    def payload(self) -> bytes:
        if self.text is not None:
            return self.text.encode()
        try:
            return base64.b64decode(self.data_base64 or "", validate=True)
        except ValueError:
            raise ValueError("data_base64 is not valid base64") from None


class PermissionAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: str | None = Field(None, max_length=2000, description="shown to Claude with a deny")


class SessionResize(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cols: int = Field(ge=1, le=1000)
    rows: int = Field(ge=1, le=1000)


@router.post("/api/sessions", status_code=201)
async def create_session(
    body: SessionCreate, user: UserDep, store: StoreDep, hub: HubDep, request: Request
) -> dict[str, Any]:
    """Start Claude Code (or ``command``) in a PTY on the machine; waits briefly for the agent to confirm."""
    machine = await store.machines.get(body.machine_id, user["id"])
    if machine["revoked_at"]:
        raise Conflict("the machine has been revoked")
    if not hub.online(machine["id"]):
        raise Conflict(f"machine {machine['name']} is offline")
    session = await store.sessions.create(
        user_id=user["id"],
        machine_id=machine["id"],
        mode=body.mode,
        command=body.command,
        project_path=body.cwd,
        cols=body.cols,
        rows=body.rows,
        initial_prompt=body.prompt,
    )
    project = None
    if body.project_id is not None:
        if body.command:
            raise Conflict("project sessions run Claude Code; leave out command")
        project = await project_spawn_info(request, store, user, session, body.project_id)
    # The agent answers started or error within moments; past SPAWN_WAIT the session is returned as 'starting'.
    await hub.sessions.spawn(session, SPAWN_WAIT, project=project)
    return {"session": await store.sessions.get(session["id"])}


COLLABORATION_RULES = """You are one of several Claude Code instances on this project, coordinated by ClaudeNest.
Use the claudenest MCP tools: claim a task (task_claim_next) before you start and complete it with a summary of
what changed (task_complete; or task_request_review when another instance should check it first, and review
others' work with task_review), or release it if you stop. Edits take a file lock automatically; if an edit is
denied as locked by another instance, work on something else or ask with broadcast_message. Record decisions with
context_add and look up what others did with context_query before re-reading large parts of the code."""


async def project_spawn_info(
    request: Request, store: Any, user: dict[str, Any], session: dict[str, Any], project_id: str
) -> dict[str, Any]:
    """Register the session as an instance of the project (a ci_ token for it alone) and compile its prompt."""
    project = await store.projects.get(project_id, user["id"])
    raw = tokens.new_token(tokens.INSTANCE_PREFIX)
    instance = await store.instances.create(
        project["id"],
        user["id"],
        name=f"claude-{session['id'][:8]}",
        token_hash=tokens.hash_token(raw),
        session_id=session["id"],
        machine_id=session["machine_id"],
    )
    compiled = await request.app.state.context.compile(project, int(project.get("token_budget") or 4000))
    return {
        "project_id": project["id"],
        "instance_id": instance["id"],
        "instance_token": raw,
        "system_prompt": f"{COLLABORATION_RULES}\n\n{compiled}",
    }


@router.get("/api/sessions")
async def list_sessions(
    user: UserDep,
    store: StoreDep,
    machine_id: str | None = None,
    status: str | None = Query(None, max_length=30),
    project_id: str | None = Query(None, max_length=64, description="sessions running as instances of this project"),
    limit: int = Query(100, ge=1, le=1000),
) -> dict[str, Any]:
    """Newest first."""
    sessions = await store.sessions.of_user(
        user["id"], machine_id=machine_id, status=status, project_id=project_id, limit=limit
    )
    return {"sessions": sessions}


@router.get("/api/usage/summary")
async def usage_summary(
    user: UserDep,
    store: StoreDep,
    tz_offset_minutes: int = Query(0, ge=-840, le=840, description="the viewer's UTC offset, for where today starts"),
) -> dict[str, Any]:
    """Tokens and cost of the sessions started today and in the last seven days (by the viewer's clock)."""
    local_now = datetime.now(UTC) + timedelta(minutes=tz_offset_minutes)
    midnight = local_now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(minutes=tz_offset_minutes)
    return {
        "today": await store.sessions.usage_since(user["id"], iso(midnight)),
        "week": await store.sessions.usage_since(user["id"], iso(midnight - timedelta(days=6))),
        "today_starts_at": iso(midnight),
    }


@router.get("/api/sessions/{session_id}")
async def get_session(session_id: str, user: UserDep, store: StoreDep) -> dict[str, Any]:
    return {"session": await store.sessions.get(session_id, user["id"])}


@router.delete("/api/sessions/{session_id}", status_code=204)
async def delete_session(session_id: str, user: UserDep, store: StoreDep, hub: HubDep) -> Response:
    """Remove an ended session and its output log; a live one is 409 (end it first)."""
    await store.sessions.get(session_id, user["id"])  # yours, or 404
    if hub.sessions.still_saving(session_id):
        raise Conflict(f"session {session_id} is still saving its last output; try again in a moment")
    await store.sessions.delete(session_id, user["id"])
    await hub.output.delete(session_id)
    return Response(status_code=204)


@router.post("/api/sessions/{session_id}/input", status_code=202)
async def send_input(
    session_id: str, body: SessionInput, user: UserDep, store: StoreDep, hub: HubDep
) -> dict[str, Any]:
    await store.sessions.get(session_id, user["id"])
    try:
        data = body.payload()
    except ValueError as exc:
        raise RequestValidationError(
            [{"loc": ("body", "data_base64"), "msg": str(exc), "type": "value_error"}]
        ) from None
    await hub.sessions.send_input(session_id, data)
    return {"sent": len(data)}


@router.post("/api/sessions/{session_id}/resize", status_code=202)
async def resize(session_id: str, body: SessionResize, user: UserDep, store: StoreDep, hub: HubDep) -> dict[str, Any]:
    await store.sessions.get(session_id, user["id"])
    await hub.sessions.resize(session_id, body.cols, body.rows)
    return {"cols": body.cols, "rows": body.rows}


@router.post("/api/sessions/{session_id}/terminate", status_code=202)
async def terminate(session_id: str, user: UserDep, store: StoreDep, hub: HubDep) -> dict[str, Any]:
    """Ask the agent to end the session (SIGHUP, then SIGTERM, then SIGKILL to its process group)."""
    await store.sessions.get(session_id, user["id"])
    await hub.sessions.kill(session_id)
    return {"session": await store.sessions.get(session_id)}


@router.post("/api/sessions/{session_id}/approve", status_code=202)
async def approve(session_id: str, user: UserDep, store: StoreDep, hub: HubDep) -> dict[str, Any]:
    """Allow the tool use Claude is asking permission for (answers the held PermissionRequest hook)."""
    await store.sessions.get(session_id, user["id"])
    return {"answered": await hub.sessions.decide_permission(session_id, "allow", None), "behavior": "allow"}


@router.post("/api/sessions/{session_id}/deny", status_code=202)
async def deny(
    session_id: str, user: UserDep, store: StoreDep, hub: HubDep, body: PermissionAnswer | None = None
) -> dict[str, Any]:
    """Deny the pending tool use; ``message`` tells Claude why."""
    await store.sessions.get(session_id, user["id"])
    answered = await hub.sessions.decide_permission(session_id, "deny", body.message if body else None)
    return {"answered": answered, "behavior": "deny"}


@router.get(
    "/api/sessions/{session_id}/logs",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
async def read_logs(
    session_id: str,
    user: UserDep,
    store: StoreDep,
    hub: HubDep,
    settings: SettingsDep,
    from_offset: int = Query(0, ge=0, alias="from"),
    limit: int = Query(1 << 20, ge=1, le=MAX_LOG_READ),
) -> Response:
    """Raw output bytes from ``from``. Headers: ``X-Offset`` (first byte returned, later than ``from`` where
    older output was dropped), ``X-End-Offset`` (all output so far) and ``X-Session-Status``."""
    session = await store.sessions.get(session_id, user["id"])
    await hub.output.flush()  # what viewers have seen is readable here too
    start, data = await hub.output.read(session_id, from_offset, limit)
    stream = hub.live(session_id)
    end = stream.end if stream else session["output_bytes"]
    status = stream.status if stream else session["status"]
    ended = stream.ended if stream else session["ended"]
    return Response(
        content=data,
        media_type="application/octet-stream",
        headers={
            "X-Offset": str(start),
            "X-End-Offset": str(max(end, start + len(data))),
            "X-Session-Status": status,
            "X-Session-Ended": "true" if ended else "false",
        },
    )
