"""Shared projects: the unit several Claude instances coordinate in (tasks, locks, context, activity)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from claudenest.clock import now_iso
from claudenest.errors import Conflict, NotFound
from claudenest.store.activity import ActivityLog, Actor
from claudenest.store.users import as_dict

if TYPE_CHECKING:
    from claudenest.store.connection import Store, SyncTransaction

TEXT_FIELDS = ("summary", "architecture", "conventions", "current_focus", "recent_changes")
UPDATABLE = ("name", "project_path", *TEXT_FIELDS, "token_budget", "settings")


def _known(fields: dict[str, Any]) -> None:
    unknown = set(fields) - set(UPDATABLE)
    if unknown:
        raise TypeError(f"unknown project fields: {sorted(unknown)}")


def project_row(row: Any) -> dict[str, Any]:
    found = as_dict(row)
    found["settings"] = json.loads(found["settings"]) if found["settings"] else {}
    return found


class ProjectQueries:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def create(self, user_id: str, *, name: str, project_path: str, **fields: Any) -> dict[str, Any]:
        _known(fields)
        now = now_iso()
        project_id = str(uuid.uuid4())
        values: dict[str, Any] = {
            "id": project_id,
            "user_id": user_id,
            "name": name,
            "project_path": project_path,
            **{k: v for k, v in fields.items() if v is not None},
            "created_at": now,
            "updated_at": now,
        }
        if "settings" in values:
            values["settings"] = json.dumps(values["settings"])
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        async with self._store.write() as db:
            if await db.fetchone("SELECT 1 FROM shared_projects WHERE user_id = ? AND name = ?", (user_id, name)):
                raise Conflict(f"you already have a project named {name!r}")
            await db.execute(f"INSERT INTO shared_projects ({columns}) VALUES ({marks})", tuple(values.values()))
        return await self.get(project_id)

    async def get(self, project_id: str, user_id: str | None = None) -> dict[str, Any]:
        sql = "SELECT * FROM shared_projects WHERE id = ?"
        params: tuple[str, ...] = (project_id,)
        if user_id is not None:
            sql += " AND user_id = ?"
            params += (user_id,)
        row = await self._store.fetchone(sql, params)
        if row is None:
            raise NotFound(f"no project {project_id}")
        return project_row(row)

    async def of_user(self, user_id: str) -> list[dict[str, Any]]:
        rows = await self._store.fetchall(
            "SELECT * FROM shared_projects WHERE user_id = ? ORDER BY created_at", (user_id,)
        )
        return [project_row(r) for r in rows]

    async def update(
        self,
        project_id: str,
        fields: dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]],
        actor: Actor,
    ) -> dict[str, Any]:
        """Change the given fields (a ``project_updated`` activity row names those whose value changed).

        ``fields`` may be a function of the current project returning the fields to set: it runs inside the
        transaction, so a read-modify-write (appending to ``recent_changes``) loses no concurrent update. It must
        be quick and pure.
        """

        def decide(db: SyncTransaction, activity: ActivityLog) -> dict[str, Any]:
            row = db.fetchone("SELECT * FROM shared_projects WHERE id = ?", (project_id,))
            if row is None:
                raise NotFound(f"no project {project_id}")
            before = project_row(row)
            wanted = fields(before) if callable(fields) else fields
            _known(wanted)
            changed = [k for k, v in wanted.items() if before[k] != v]
            if not changed:
                return before
            if "name" in changed and db.fetchone(
                "SELECT 1 FROM shared_projects WHERE user_id = ? AND name = ? AND id != ?",
                (before["user_id"], wanted["name"], project_id),
            ):
                raise Conflict(f"you already have a project named {wanted['name']!r}")
            values = {k: (json.dumps(wanted[k]) if k == "settings" else wanted[k]) for k in changed}
            columns = ", ".join(f"{k} = ?" for k in values)
            row = db.fetchone(
                f"UPDATE shared_projects SET {columns}, updated_at = ? WHERE id = ? RETURNING *",
                (*values.values(), now_iso(), project_id),
            )
            activity.add(
                project_id,
                "project_updated",
                f"{actor.name} updated {', '.join(changed)}",
                instance_id=actor.instance_id,
                data={"fields": changed},
            )
            return project_row(row)

        return await self._store.activity.transact(decide)

    async def delete(self, project_id: str) -> None:
        """Delete the project and, by cascade, its tasks, instances (and so their tokens), locks and activity."""
        changed = await self._store.execute("DELETE FROM shared_projects WHERE id = ?", (project_id,))
        if not changed:
            raise NotFound(f"no project {project_id}")


def next_fencing(db: SyncTransaction, project_id: str) -> int:
    """The next number of the project's fencing counter (inside the caller's write transaction)."""
    row = db.fetchone(
        "INSERT INTO project_fencing (project_id, value) VALUES (?, 1)"
        " ON CONFLICT (project_id) DO UPDATE SET value = value + 1 RETURNING value",
        (project_id,),
    )
    return int(row[0])
