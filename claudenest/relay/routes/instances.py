"""Claude instances of a project: register (a ``ci_`` token, shown once), list, heartbeat, end; and ``/api/instance``,
which tells an instance token who it is."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from claudenest import tokens
from claudenest.errors import Forbidden, InvalidField, NotFound
from claudenest.relay.auth import authenticate_user, bearer
from claudenest.relay.routes.deps import StoreDep
from claudenest.relay.routes.project_auth import ProjectCallerDep, instance_for_token

router = APIRouter(tags=["instances"])


class InstanceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    session_id: str | None = Field(None, max_length=64, description="the ClaudeNest session it runs in")
    machine_id: str | None = Field(None, max_length=64)


class Heartbeat(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["active", "disconnected"] | None = Field(
        None, description="'disconnected' releases the instance's tasks and locks now; any later request revives it"
    )
    current_task_id: str | None = Field(None, max_length=64)


@router.post("/api/projects/{project_id}/instances", status_code=201)
async def register_instance(body: InstanceCreate, caller: ProjectCallerDep, store: StoreDep) -> dict[str, Any]:
    """A new instance and its token (``ci_...``, shown only here; the relay keeps its SHA-256)."""
    caller.need_user("registering an instance")
    if body.session_id is not None:
        try:
            await store.sessions.get(body.session_id, caller.user_id)
        except NotFound:
            raise InvalidField("session_id", f"no session {body.session_id}") from None
    if body.machine_id is not None:
        try:
            await store.machines.get(body.machine_id, caller.user_id)
        except NotFound:
            raise InvalidField("machine_id", f"no machine {body.machine_id}") from None
    raw = tokens.new_token(tokens.INSTANCE_PREFIX)
    instance = await store.instances.create(
        caller.project["id"],
        caller.user_id,
        name=body.name,
        token_hash=tokens.hash_token(raw),
        session_id=body.session_id,
        machine_id=body.machine_id,
    )
    return {"instance": instance, "token": raw}


@router.get("/api/projects/{project_id}/instances")
async def list_instances(
    caller: ProjectCallerDep, store: StoreDep, status: Literal["active", "disconnected", "ended"] | None = None
) -> dict[str, Any]:
    return {"instances": await store.instances.of_project(caller.project["id"], status)}


@router.get("/api/projects/{project_id}/instances/{instance_id}")
async def get_instance(instance_id: str, caller: ProjectCallerDep, store: StoreDep) -> dict[str, Any]:
    return {"instance": await store.instances.get(caller.project["id"], instance_id)}


@router.post("/api/projects/{project_id}/instances/{instance_id}/heartbeat")
async def heartbeat(
    instance_id: str, caller: ProjectCallerDep, store: StoreDep, body: Heartbeat | None = None
) -> dict[str, Any]:
    """The instance is alive (any request of its token also counts); optionally sets its current task."""
    caller.need_self_or_user(instance_id, "send its heartbeat")
    sent = body.model_fields_set if body else set()
    instance = await store.instances.heartbeat(
        caller.project["id"],
        instance_id,
        status=body.status if body else None,
        current_task_id=body.current_task_id if body else None,
        set_current_task="current_task_id" in sent,
    )
    return {"instance": instance}


@router.delete("/api/projects/{project_id}/instances/{instance_id}")
async def end_instance(instance_id: str, caller: ProjectCallerDep, store: StoreDep) -> dict[str, Any]:
    """End the instance: its token is revoked, its locks dropped, its in-progress tasks go back to pending."""
    caller.need_self_or_user(instance_id, "end it")
    return {"instance": await store.instances.end(caller.project["id"], instance_id, caller.actor)}


@router.get("/api/instance")
async def whoami(request: Request, store: StoreDep) -> dict[str, Any]:
    """For an instance token: the instance and its project."""
    token = bearer(request)
    if token is None or not token.startswith(tokens.INSTANCE_PREFIX):
        await authenticate_user(request, store)  # 401 for missing or bad credentials, 403 for machine tokens
        raise Forbidden("this route is for instance tokens (ci_...)")
    instance, project = await instance_for_token(store, token)
    return {"instance": instance, "project": project}
