"""Shared projects: create, list, show, update, delete (the user's own; an instance sees only its project)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from claudenest.relay import project_events
from claudenest.relay.routes.deps import StoreDep, UserDep
from claudenest.relay.routes.project_auth import ProjectCallerDep

router = APIRouter(tags=["projects"])

TEXT_MAX = 100_000


class ProjectCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    project_path: str = Field(min_length=1, max_length=4096, description="the project's folder on the machines")
    summary: str | None = Field(None, max_length=TEXT_MAX)
    architecture: str | None = Field(None, max_length=TEXT_MAX)
    conventions: str | None = Field(None, max_length=TEXT_MAX)
    current_focus: str | None = Field(None, max_length=TEXT_MAX)
    recent_changes: str | None = Field(None, max_length=TEXT_MAX)
    token_budget: int | None = Field(None, ge=100, le=1_000_000, description="compiled-context budget (tokens)")
    settings: dict[str, Any] | None = None


class ProjectUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=200)
    project_path: str | None = Field(None, min_length=1, max_length=4096)
    summary: str | None = Field(None, max_length=TEXT_MAX)
    architecture: str | None = Field(None, max_length=TEXT_MAX)
    conventions: str | None = Field(None, max_length=TEXT_MAX)
    current_focus: str | None = Field(None, max_length=TEXT_MAX)
    recent_changes: str | None = Field(None, max_length=TEXT_MAX)
    token_budget: int | None = Field(None, ge=100, le=1_000_000)
    settings: dict[str, Any] | None = None


@router.post("/api/projects", status_code=201)
async def create_project(body: ProjectCreate, user: UserDep, store: StoreDep) -> dict[str, Any]:
    fields = body.model_dump(exclude={"name", "project_path"}, exclude_none=True)
    project = await store.projects.create(user["id"], name=body.name, project_path=body.project_path, **fields)
    return {"project": project}


@router.get("/api/projects")
async def list_projects(user: UserDep, store: StoreDep) -> dict[str, Any]:
    return {"projects": await store.projects.of_user(user["id"])}


@router.get("/api/projects/{project_id}")
async def get_project(caller: ProjectCallerDep) -> dict[str, Any]:
    return {"project": caller.project}


@router.patch("/api/projects/{project_id}")
async def update_project(body: ProjectUpdate, caller: ProjectCallerDep, store: StoreDep) -> dict[str, Any]:
    """Change any of the fields sent (``null`` or absent leaves a field as it is); instances may do this too."""
    fields = body.model_dump(exclude_none=True)
    return {"project": await store.projects.update(caller.project["id"], fields, caller.actor)}


@router.delete("/api/projects/{project_id}", status_code=204, response_class=Response)
async def delete_project(caller: ProjectCallerDep, store: StoreDep, request: Request) -> Response:
    """Delete the project with its tasks, instances (their tokens stop working), locks and activity."""
    caller.need_user("deleting a project")
    await store.projects.delete(caller.project["id"])
    project_events.for_app(request.app).close_project(caller.project["id"], "the project was deleted")
    return Response(status_code=204)
