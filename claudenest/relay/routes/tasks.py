"""A project's tasks: create, list, show, update; claim, claim-next, release, complete, review, block, unblock."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from claudenest.errors import Forbidden, InvalidField, NotFound
from claudenest.relay.rag import updated_recent_changes
from claudenest.relay.routes.deps import StoreDep
from claudenest.relay.routes.project_auth import ProjectCaller, ProjectCallerDep
from claudenest.store import Store

router = APIRouter(tags=["tasks"])

Priority = Literal["low", "medium", "high", "critical"]
Status = Literal["pending", "in_progress", "blocked", "review", "done"]
Id = Annotated[str, Field(min_length=1, max_length=64)]
FilePath = Annotated[str, Field(min_length=1, max_length=4096)]


class TaskCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=500)
    description: str = Field("", max_length=100_000)
    priority: Priority = "medium"
    dependencies: list[Id] = Field(default_factory=list, max_length=200, description="ids of tasks to finish first")
    files: list[FilePath] = Field(default_factory=list, max_length=1000)
    estimate: str | None = Field(None, max_length=100)


class TaskUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str | None = Field(None, min_length=1, max_length=500)
    description: str | None = Field(None, max_length=100_000)
    priority: Priority | None = None
    dependencies: list[Id] | None = Field(None, max_length=200)
    files: list[FilePath] | None = Field(None, max_length=1000)
    estimate: str | None = Field(None, max_length=100)


class TaskComplete(BaseModel):
    model_config = ConfigDict(extra="forbid")
    summary: str = Field(min_length=1, max_length=100_000)
    files_modified: list[FilePath] = Field(default_factory=list, max_length=1000)


class TaskApprove(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str | None = Field(None, max_length=10_000)


class TaskBlock(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=10_000)


@router.post("/api/projects/{project_id}/tasks", status_code=201)
async def create_task(body: TaskCreate, caller: ProjectCallerDep, store: StoreDep) -> dict[str, Any]:
    task = await store.tasks.create(caller.project["id"], caller.actor, **body.model_dump())
    return {"task": task}


@router.get("/api/projects/{project_id}/tasks")
async def list_tasks(
    caller: ProjectCallerDep,
    store: StoreDep,
    status: Status | None = None,
    assigned_to: str | None = Query(None, max_length=64, description="an instance id"),
) -> dict[str, Any]:
    """Highest priority first, then oldest."""
    return {"tasks": await store.tasks.of_project(caller.project["id"], status=status, assigned_to=assigned_to)}


@router.post("/api/projects/{project_id}/tasks/claim-next")
async def claim_next(caller: ProjectCallerDep, store: StoreDep) -> dict[str, Any]:
    """The highest-priority, oldest pending task whose dependencies are all done, now in progress for the calling
    instance; ``{"task": null}`` when nothing is claimable."""
    instance = caller.need_instance("claiming a task")
    return {"task": await store.tasks.claim_next(caller.project["id"], instance)}


@router.get("/api/projects/{project_id}/tasks/{task_id}")
async def get_task(task_id: str, caller: ProjectCallerDep, store: StoreDep) -> dict[str, Any]:
    return {"task": await store.tasks.get(caller.project["id"], task_id)}


@router.patch("/api/projects/{project_id}/tasks/{task_id}")
async def update_task(task_id: str, body: TaskUpdate, caller: ProjectCallerDep, store: StoreDep) -> dict[str, Any]:
    fields = body.model_dump(exclude_unset=True)
    for name in ("title", "description", "priority", "dependencies", "files"):
        if name in fields and fields[name] is None:
            del fields[name]  # null means "leave as it is" except for estimate, which may be cleared
    return {"task": await store.tasks.update(caller.project["id"], task_id, fields, caller.actor)}


class TaskClaim(BaseModel):
    model_config = ConfigDict(extra="forbid")
    instance_id: Id | None = Field(
        None, description="the owner assigns the task to this live instance; an instance may name only itself"
    )


@router.post("/api/projects/{project_id}/tasks/{task_id}/claim")
async def claim_task(
    task_id: str, caller: ProjectCallerDep, store: StoreDep, body: TaskClaim | None = None
) -> dict[str, Any]:
    """In progress for the calling instance; or, called by the project's owner with ``instance_id``, assigned to
    that instance (which must be active). 409 naming the state or the unfinished dependencies."""
    wanted = body.instance_id if body is not None else None
    project_id = caller.project["id"]
    if caller.instance is not None:
        if wanted is not None and wanted != caller.instance["id"]:
            raise Forbidden("an instance claims tasks only for itself; the project's owner assigns them to others")
        return {"task": await store.tasks.claim(project_id, task_id, caller.instance)}
    if wanted is None:
        live = [i["name"] for i in await store.instances.of_project(project_id, status="active")]
        which = (
            f"one of its live instances ({', '.join(live)})"
            if live
            else "a live instance, and this project has none: start Claude Code in it"
            " (claudenest sessions new --project) or register an instance"
        )
        raise Forbidden(
            "claiming a task needs an instance token (ci_...); the project's owner assigns a task with"
            f' {{"instance_id": ...}} naming {which}'
        )
    try:
        instance = await store.instances.get(project_id, wanted)
    except NotFound:
        raise InvalidField("instance_id", f"no instance {wanted} in this project") from None
    return {"task": await store.tasks.claim(project_id, task_id, instance, by=caller.actor)}


@router.post("/api/projects/{project_id}/tasks/{task_id}/release")
async def release_task(task_id: str, caller: ProjectCallerDep, store: StoreDep) -> dict[str, Any]:
    """Back to pending: by the instance it is assigned to, or by the project's owner."""
    return {"task": await store.tasks.release(caller.project["id"], task_id, caller.actor)}


@router.post("/api/projects/{project_id}/tasks/{task_id}/complete")
async def complete_task(
    task_id: str, body: TaskComplete, caller: ProjectCallerDep, store: StoreDep, request: Request
) -> dict[str, Any]:
    """Done, with a summary; the summary joins the shared context and the project's recent changes."""
    task = await store.tasks.complete(
        caller.project["id"], task_id, caller.actor, summary=body.summary, files_modified=body.files_modified
    )
    await _record_completion(request, store, caller, task)
    return {"task": task}


@router.post("/api/projects/{project_id}/tasks/{task_id}/review")
async def request_review(task_id: str, body: TaskComplete, caller: ProjectCallerDep, store: StoreDep) -> dict[str, Any]:
    """In progress -> review, with the summary and files for the reviewer (the holder, or the project's owner)."""
    task = await store.tasks.request_review(
        caller.project["id"], task_id, caller.actor, summary=body.summary, files_modified=body.files_modified
    )
    return {"task": task}


@router.post("/api/projects/{project_id}/tasks/{task_id}/approve")
async def approve_task(
    task_id: str, body: TaskApprove, caller: ProjectCallerDep, store: StoreDep, request: Request
) -> dict[str, Any]:
    """Review -> done, by the owner or another instance (never the assignee); recorded like a completion."""
    task = await store.tasks.approve(caller.project["id"], task_id, caller.actor, body.note)
    await _record_completion(request, store, caller, task)
    return {"task": task}


@router.post("/api/projects/{project_id}/tasks/{task_id}/request-changes")
async def request_changes(task_id: str, body: TaskBlock, caller: ProjectCallerDep, store: StoreDep) -> dict[str, Any]:
    """Review -> in progress for the same assignee, with what to change (the owner or another instance)."""
    return {"task": await store.tasks.request_changes(caller.project["id"], task_id, caller.actor, body.reason)}


async def _record_completion(request: Request, store: Store, caller: ProjectCaller, task: dict[str, Any]) -> None:
    """A finished task's summary joins the shared context and the top of the project's recent changes."""
    summary = task["completion_summary"]
    await request.app.state.context.add(
        caller.project["id"],
        f"{task['title']}: {summary}",
        type="task_completion",
        files=task["files_modified"],
        instance_id=task["assigned_to"],
        task_id=task["id"],
        importance=0.7,
    )
    # Read-modify-write inside one transaction, so concurrent completions never drop each other's line.
    await store.projects.update(
        caller.project["id"],
        lambda project: {
            "recent_changes": updated_recent_changes(project.get("recent_changes"), task["title"], summary)
        },
        caller.actor,
    )
    # The line above is extractive; a configured LLM summarizer replaces it later, in the background.
    request.app.state.context.upgrade_recent_change(caller.project["id"], task["title"], summary)


@router.post("/api/projects/{project_id}/tasks/{task_id}/block")
async def block_task(task_id: str, body: TaskBlock, caller: ProjectCallerDep, store: StoreDep) -> dict[str, Any]:
    return {"task": await store.tasks.block(caller.project["id"], task_id, caller.actor, body.reason)}


@router.post("/api/projects/{project_id}/tasks/{task_id}/unblock")
async def unblock_task(task_id: str, caller: ProjectCallerDep, store: StoreDep) -> dict[str, Any]:
    return {"task": await store.tasks.unblock(caller.project["id"], task_id, caller.actor)}
