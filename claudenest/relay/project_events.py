"""In-memory pub/sub of project activity for live watchers (``GET /api/projects/{id}/events``).

Every committed activity row is handed to :meth:`ProjectEvents.publish`, which never waits: each subscriber has a
bounded queue, and a subscriber whose queue is full is dropped with one final ``stream_dropped`` event (it can
reconnect with ``?after=<last id>`` and lose nothing, since every event is also an activity row).
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI

from claudenest.store import Store

QUEUE_LIMIT = 1000


class Subscription:
    def __init__(self, project_id: str) -> None:
        self.project_id = project_id
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()  # bounded by ProjectEvents.publish
        self.closed = False

    async def get(self) -> dict[str, Any]:
        return await self.queue.get()


class ProjectEvents:
    def __init__(self, limit: int = QUEUE_LIMIT) -> None:
        self.limit = limit
        self._subscribers: dict[str, set[Subscription]] = {}

    def subscribe(self, project_id: str) -> Subscription:
        subscription = Subscription(project_id)
        self._subscribers.setdefault(project_id, set()).add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        subscription.closed = True
        found = self._subscribers.get(subscription.project_id)
        if found is not None:
            found.discard(subscription)
            if not found:
                del self._subscribers[subscription.project_id]

    def count(self, project_id: str | None = None) -> int:
        if project_id is not None:
            return len(self._subscribers.get(project_id, ()))
        return sum(len(s) for s in self._subscribers.values())

    def publish(self, row: dict[str, Any]) -> None:
        for subscription in list(self._subscribers.get(row["project_id"], ())):
            if subscription.queue.qsize() >= self.limit:
                self._close(
                    subscription,
                    "stream_dropped",
                    f"this watcher fell {self.limit} events behind and was dropped; "
                    "reconnect with ?after=<the last id you saw> to resume",
                )
            else:
                subscription.queue.put_nowait(row)

    def close_project(self, project_id: str, message: str) -> None:
        """End every watcher of a project (it was deleted) with a final ``project_deleted`` event."""
        for subscription in list(self._subscribers.get(project_id, ())):
            self._close(subscription, "project_deleted", message)

    def _close(self, subscription: Subscription, kind: str, message: str) -> None:
        self.unsubscribe(subscription)
        # One item over the bound, on purpose: the final event must reach the watcher.
        subscription.queue.put_nowait(
            {"id": None, "project_id": subscription.project_id, "kind": kind, "message": message}
        )


FINAL_KINDS = ("stream_dropped", "project_deleted")


def for_app(app: FastAPI) -> ProjectEvents:
    """The app's bus, created on first use and fed by every activity row the store commits."""
    events: ProjectEvents | None = getattr(app.state, "project_events", None)
    if events is None:
        events = ProjectEvents()
        store: Store = app.state.store
        store.activity.listeners.append(events.publish)
        app.state.project_events = events
    return events
