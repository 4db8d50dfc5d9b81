"""The activity log of a project: one row per change, written in the transaction that made the change.

``ActivityQueries.transact(decide)`` is how coordination writes happen: ``decide(db, activity)`` runs inside one
``BEGIN IMMEDIATE`` transaction (``Store.transact``, in the database thread) with a log that collects the rows it
writes; once the transaction has committed, every listener (the relay's project event bus) is handed each row, in
order. Rows of a rolled-back transaction are never published.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from claudenest.clock import now_iso
from claudenest.store.users import as_dict

if TYPE_CHECKING:
    from claudenest.store.connection import Store, SyncTransaction

log = logging.getLogger(__name__)

KINDS = (
    "task_created",
    "task_updated",
    "task_claimed",
    "task_released",
    "task_review_requested",
    "task_changes_requested",
    "task_completed",
    "task_blocked",
    "task_unblocked",
    "lock_acquired",
    "lock_renewed",
    "lock_released",
    "lock_expired",
    "instance_joined",
    "instance_left",
    "instance_disconnected",
    "project_updated",
    "broadcast",
)

Listener = Callable[[dict[str, Any]], None]
T = TypeVar("T")


@dataclass(frozen=True)
class Actor:
    """Who made a change: an instance (by name) or a user (by email)."""

    name: str
    instance_id: str | None = None


def activity_row(row: Any) -> dict[str, Any]:
    found = as_dict(row)
    found["data"] = json.loads(found["data"]) if found["data"] else {}
    return found


class ActivityLog:
    """Writes activity rows inside one transaction and remembers them for publishing after the commit."""

    def __init__(self, db: SyncTransaction) -> None:
        self.db = db
        self.rows: list[dict[str, Any]] = []

    def add(
        self,
        project_id: str,
        kind: str,
        message: str,
        *,
        instance_id: str | None = None,
        task_id: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        created_at = now_iso()
        payload = data or {}
        row = self.db.fetchone(
            "INSERT INTO activity_logs (project_id, kind, instance_id, task_id, message, data, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (project_id, kind, instance_id, task_id, message, json.dumps(payload), created_at),
        )
        entry = {
            "id": int(row[0]),
            "project_id": project_id,
            "kind": kind,
            "instance_id": instance_id,
            "task_id": task_id,
            "message": message,
            "data": payload,
            "created_at": created_at,
        }
        self.rows.append(entry)
        return entry


class ActivityQueries:
    def __init__(self, store: Store) -> None:
        self._store = store
        self.listeners: list[Listener] = []

    async def transact(self, decide: Callable[[SyncTransaction, ActivityLog], T]) -> T:
        """Run ``decide(db, activity)`` in one write transaction; publish its activity rows once committed."""
        logs: list[ActivityLog] = []

        def run(db: SyncTransaction) -> T:
            activity = ActivityLog(db)
            logs.append(activity)
            return decide(db, activity)

        result = await self._store.transact(run)
        self.publish(logs[0].rows)
        return result

    def publish(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            for listener in list(self.listeners):
                try:
                    listener(row)
                except Exception:  # a broken listener must not undo or hide a committed change
                    log.exception("activity listener failed")

    async def record(
        self,
        project_id: str,
        kind: str,
        message: str,
        *,
        instance_id: str | None = None,
        task_id: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One activity row in its own transaction (a broadcast message, for instance)."""
        return await self.transact(
            lambda _, activity: activity.add(
                project_id, kind, message, instance_id=instance_id, task_id=task_id, data=data
            )
        )

    async def of_project(
        self, project_id: str, *, after: str | None = None, limit: int = 100, kind: str | None = None
    ) -> list[dict[str, Any]]:
        """Rows after a cursor (an activity id, or a created_at timestamp), oldest first; with no cursor, the
        latest ``limit`` rows, oldest first."""
        sql = "SELECT * FROM activity_logs WHERE project_id = ?"
        params: list[Any] = [project_id]
        if kind:
            sql += " AND kind = ?"
            params.append(kind)
        if after is None or after == "":
            sql = f"SELECT * FROM ({sql} ORDER BY id DESC LIMIT ?) ORDER BY id"
            params.append(limit)
        else:
            if after.isdigit():
                sql += " AND id > ?"
                params.append(int(after))
            else:
                sql += " AND created_at > ?"
                params.append(after)
            sql += " ORDER BY id LIMIT ?"
            params.append(limit)
        return [activity_row(r) for r in await self._store.fetchall(sql, params)]

    async def recent_of_user(self, user_id: str, limit: int = 30) -> list[dict[str, Any]]:
        """The latest ``limit`` rows across every project of the user, newest first, each with ``project_name``."""
        rows = await self._store.fetchall(
            "SELECT a.*, p.name AS project_name FROM activity_logs a JOIN shared_projects p ON p.id = a.project_id"
            " WHERE p.user_id = ? ORDER BY a.id DESC LIMIT ?",
            (user_id, limit),
        )
        return [activity_row(r) for r in rows]
