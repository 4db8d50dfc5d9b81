"""A project's shared context: add, search (hybrid), list, show, delete, compile; re-embed after an embedder change."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from claudenest.relay.rag import ContextService
from claudenest.relay.routes.deps import StoreDep
from claudenest.relay.routes.project_auth import ProjectCallerDep

router = APIRouter(tags=["context"])

ChunkType = Field("note", pattern=r"^[a-z_]{1,40}$", description="task_completion, file_change, decision, note, ...")


class ChunkCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    content: str = Field(min_length=1, max_length=20_000)
    type: str = ChunkType
    files: list[str] = Field(default_factory=list, max_length=200)
    task_id: str | None = Field(None, max_length=64)
    importance: float = Field(0.5, ge=0, le=1)
    expires_at: str | None = Field(None, max_length=40, description="ISO-8601 UTC; null: never")


MAX_BULK_CHUNKS = 500  # per bulk request; the relay's 1 MiB body limit (app.MAX_BODY_BYTES) applies as well


class ChunkBulk(BaseModel):
    model_config = ConfigDict(extra="forbid")
    chunks: list[ChunkCreate] = Field(
        min_length=1, max_length=MAX_BULK_CHUNKS, description=f"1 to {MAX_BULK_CHUNKS} chunks, stored all or none"
    )


class ContextQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1, max_length=4000)
    limit: int = Field(5, ge=1, le=50)
    types: list[str] = Field(default_factory=list, max_length=20)
    mode: Literal["hybrid", "vector", "keyword"] = "hybrid"


def service(request: Request) -> ContextService:
    context: ContextService = request.app.state.context
    return context


@router.post("/api/projects/{project_id}/context", status_code=201)
async def add_chunk(body: ChunkCreate, caller: ProjectCallerDep, request: Request) -> dict[str, Any]:
    chunk = await service(request).add(
        caller.project["id"],
        body.content,
        type=body.type,
        files=body.files,
        instance_id=caller.instance["id"] if caller.instance else None,
        task_id=body.task_id,
        importance=body.importance,
        expires_at=body.expires_at,
    )
    return {"chunk": chunk}


@router.post("/api/projects/{project_id}/context/bulk", status_code=201)
async def add_chunks(body: ChunkBulk, caller: ProjectCallerDep, request: Request) -> dict[str, Any]:
    """Add many chunks at once (an import): embedded in batches and stored in one transaction, all or none. An
    invalid chunk fails the request with 422 naming it (``chunks.3.content``) and nothing is stored."""
    instance_id = caller.instance["id"] if caller.instance else None
    items = [{**chunk.model_dump(), "instance_id": instance_id} for chunk in body.chunks]
    context = service(request)
    ids = await context.add_many(caller.project["id"], items)
    return {
        "ids": ids,
        "created": len(ids),
        "project_chunks": await context.store.context.chunks_in(caller.project["id"]),
    }


@router.post("/api/projects/{project_id}/context/query")
async def query_context(body: ContextQuery, caller: ProjectCallerDep, request: Request) -> dict[str, Any]:
    """Hybrid search: FTS5 BM25 and sqlite-vec KNN fused by reciprocal rank; each result has both ranks."""
    results = await service(request).query(
        caller.project["id"], body.query, limit=body.limit, types=body.types, mode=body.mode
    )
    return {"results": [r.to_dict() for r in results]}


@router.get("/api/projects/{project_id}/context")
async def list_chunks(
    caller: ProjectCallerDep,
    store: StoreDep,
    type: str | None = Query(None, max_length=40),
    limit: int = Query(50, ge=1, le=500),
) -> dict[str, Any]:
    return {"chunks": await store.context.recent(caller.project["id"], type=type, limit=limit)}


@router.get("/api/projects/{project_id}/context/compiled")
async def compiled_context(
    caller: ProjectCallerDep,
    request: Request,
    store: StoreDep,
    budget: int | None = Query(None, ge=100, le=200_000, description="tokens; default the project's budget"),
    task_id: str | None = Query(None, max_length=64),
) -> dict[str, Any]:
    """Project fields, the chunks most relevant to the task (or the current focus), and open tasks, within budget."""
    project = caller.project
    focus = None
    if task_id:
        task = await store.tasks.get(project["id"], task_id)
        focus = f"{task['title']}\n{task.get('description') or ''}"
    limit = budget or int(project.get("token_budget") or 4000)
    text = await service(request).compile(project, limit, focus)
    return {"context": text, "budget": limit}


@router.get("/api/projects/{project_id}/context/{chunk_id}")
async def get_chunk(chunk_id: str, caller: ProjectCallerDep, store: StoreDep) -> dict[str, Any]:
    return {"chunk": await store.context.get(caller.project["id"], chunk_id)}


@router.delete("/api/projects/{project_id}/context/{chunk_id}", status_code=204)
async def delete_chunk(chunk_id: str, caller: ProjectCallerDep, store: StoreDep) -> Response:
    await store.context.delete(caller.project["id"], chunk_id)
    return Response(status_code=204)


@router.post("/api/context/reembed", status_code=202)
async def reembed(request: Request) -> dict[str, Any]:
    """Re-embed every chunk made by another embedder than the configured one (a background job)."""
    from claudenest.relay.auth import authenticate_user

    await authenticate_user(request, request.app.state.store)
    return {"progress": service(request).start_reembed().to_dict()}


@router.get("/api/context/reembed")
async def reembed_progress(request: Request) -> dict[str, Any]:
    from claudenest.relay.auth import authenticate_user

    await authenticate_user(request, request.app.state.store)
    return {"progress": service(request).progress.to_dict()}
