"""A project's activity: the log, broadcast messages, and a live Server-Sent Events stream of new rows."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from claudenest.relay import project_events
from claudenest.relay.routes.deps import StoreDep, UserDep
from claudenest.relay.routes.project_auth import ProjectCallerDep
from claudenest.store import Store

router = APIRouter(tags=["activity"])

KEEPALIVE_SECONDS = 15.0
BACKLOG_PAGE = 500
Cursor = Query(None, max_length=64, description="an activity id, or a created_at timestamp: rows after it")


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=10_000)


@router.get("/api/projects/{project_id}/activity")
async def list_activity(
    caller: ProjectCallerDep,
    store: StoreDep,
    after: str | None = Cursor,
    limit: int = Query(100, ge=1, le=1000),
    kind: str | None = Query(None, max_length=40),
) -> dict[str, Any]:
    """Oldest first: rows after ``after``, or (without it) the latest ``limit`` rows."""
    return {"activity": await store.activity.of_project(caller.project["id"], after=after, limit=limit, kind=kind)}


@router.get("/api/activity")
async def recent_activity(user: UserDep, store: StoreDep, limit: int = Query(30, ge=1, le=500)) -> dict[str, Any]:
    """Newest first, across all of your projects; each row also names its project (``project_name``). For the
    owner's credentials only (an instance token is refused: it reaches only its own project)."""
    return {"activity": await store.activity.recent_of_user(user["id"], limit)}


@router.post("/api/projects/{project_id}/messages", status_code=201)
async def broadcast(body: Message, caller: ProjectCallerDep, store: StoreDep) -> dict[str, Any]:
    """A message to everyone in the project: an activity row of kind ``broadcast``."""
    actor = caller.actor
    row = await store.activity.record(
        caller.project["id"], "broadcast", body.text, instance_id=actor.instance_id, data={"from": actor.name}
    )
    return {"activity": row}


def _frame(row: dict[str, Any]) -> str:
    head = f"id: {row['id']}\n" if row.get("id") is not None else ""
    return f"{head}data: {json.dumps(row)}\n\n"


@router.get(
    "/api/projects/{project_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def events(
    caller: ProjectCallerDep, store: StoreDep, request: Request, after: str | None = Cursor
) -> StreamingResponse:
    """Server-Sent Events: ``data: <activity row as JSON>`` for every new row (after replaying rows past
    ``after``, or the ``Last-Event-ID`` header). A watcher that falls behind gets a final ``stream_dropped`` event."""
    bus = project_events.for_app(request.app)
    subscription = bus.subscribe(caller.project["id"])  # before the backlog is read, so nothing falls between
    cursor = after or request.headers.get("last-event-id")
    return StreamingResponse(
        _stream(store, bus, subscription, cursor),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _stream(
    store: Store, bus: project_events.ProjectEvents, subscription: project_events.Subscription, cursor: str | None
) -> AsyncIterator[str]:
    try:
        last = 0
        while cursor:
            page = await store.activity.of_project(subscription.project_id, after=cursor, limit=BACKLOG_PAGE)
            for row in page:
                yield _frame(row)
                last = row["id"]
            cursor = str(last) if len(page) == BACKLOG_PAGE else None
        yield ": live\n\n"
        while True:
            try:
                row = await asyncio.wait_for(subscription.get(), KEEPALIVE_SECONDS)
            except TimeoutError:
                yield ": keepalive\n\n"
                continue
            if row["kind"] in project_events.FINAL_KINDS:
                yield _frame(row)
                return
            if row["id"] > last:
                yield _frame(row)
    finally:
        bus.unsubscribe(subscription)
