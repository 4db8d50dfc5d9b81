"""A project's file locks: acquire (or renew your own), renew, release, check, list; drop an instance's locks."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from claudenest.relay.routes.deps import StoreDep
from claudenest.relay.routes.project_auth import ProjectCallerDep
from claudenest.store.locks import DEFAULT_TTL_SECONDS, MAX_TTL_SECONDS

router = APIRouter(tags=["locks"])

LockPath = Annotated[
    str, Field(min_length=1, max_length=4096, description="a project-relative path or an fnmatch glob")
]
Ttl = Annotated[int, Field(ge=1, le=MAX_TTL_SECONDS, description="seconds until the lock expires")]


class LockAcquire(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: LockPath
    reason: str = Field("", max_length=1000)
    ttl_seconds: Ttl = DEFAULT_TTL_SECONDS


class LockRenew(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: LockPath
    ttl_seconds: Ttl = DEFAULT_TTL_SECONDS


class LockRelease(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: LockPath


class LockCheck(BaseModel):
    model_config = ConfigDict(extra="forbid")
    paths: list[LockPath] = Field(min_length=1, max_length=1000)


@router.post(
    "/api/projects/{project_id}/locks",
    status_code=201,
    responses={409: {"description": "locked by another instance: detail, holder {id, name}, expires_at, lock"}},
)
async def acquire_lock(body: LockAcquire, caller: ProjectCallerDep, store: StoreDep) -> dict[str, Any]:
    """Lock a path or glob for the calling instance; acquiring a path you already hold renews it."""
    instance = caller.need_instance("taking a file lock")
    lock = await store.locks.acquire(
        caller.project, instance, body.path, reason=body.reason, ttl_seconds=body.ttl_seconds
    )
    return {"lock": lock}


@router.post("/api/projects/{project_id}/locks/renew")
async def renew_lock(body: LockRenew, caller: ProjectCallerDep, store: StoreDep) -> dict[str, Any]:
    """Extend a live lock you hold on exactly ``path``; 404 when you hold none (it may have expired)."""
    instance = caller.need_instance("renewing a file lock")
    return {"lock": await store.locks.renew(caller.project, instance, body.path, ttl_seconds=body.ttl_seconds)}


@router.post("/api/projects/{project_id}/locks/release")
async def release_lock(body: LockRelease, caller: ProjectCallerDep, store: StoreDep) -> dict[str, Any]:
    """Release the lock on exactly ``path`` (the holder, or the project's owner for any lock). ``released`` is
    false when there was no live lock; a lock held by another instance is a 409."""
    return {"released": await store.locks.release(caller.project, caller.actor, body.path)}


@router.post("/api/projects/{project_id}/locks/check")
async def check_locks(body: LockCheck, caller: ProjectCallerDep, store: StoreDep) -> dict[str, Any]:
    """For each path: the live lock covering it (the same path, or a glob either way), or null."""
    return {"locks": await store.locks.check(caller.project, body.paths)}


@router.get("/api/projects/{project_id}/locks")
async def list_locks(caller: ProjectCallerDep, store: StoreDep) -> dict[str, Any]:
    return {"locks": await store.locks.live(caller.project["id"])}


@router.post("/api/projects/{project_id}/instances/{instance_id}/release-locks")
async def release_instance_locks(instance_id: str, caller: ProjectCallerDep, store: StoreDep) -> dict[str, Any]:
    """Drop every lock an instance holds: by the instance itself or the project's owner."""
    caller.need_self_or_user(instance_id, "release its locks")
    instance = await store.instances.get(caller.project["id"], instance_id)
    return {"released": await store.locks.release_of_instance(instance, f"released by {caller.actor.name}")}
