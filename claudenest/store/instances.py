"""Claude instances: one per Claude session working in a project, with a ``ci_`` token (stored as SHA-256).

Status is ``active`` (heartbeating), ``disconnected`` (silent past the grace period; its in-progress tasks went back
to pending and its locks were dropped; any later request of its token makes it active again) or ``ended`` (token
revoked for good).
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from claudenest.clock import now_iso
from claudenest.errors import Conflict, InvalidField, NotFound
from claudenest.store.activity import ActivityLog, Actor
from claudenest.store.locks import release_all_held
from claudenest.store.users import as_dict

if TYPE_CHECKING:
    from claudenest.store.connection import Store, SyncTransaction

STATUSES = ("active", "disconnected", "ended")


def instance_row(row: Any) -> dict[str, Any]:
    found = as_dict(row)
    found.pop("token_hash", None)
    return found


def release_work(db: SyncTransaction, activity: ActivityLog, instance: dict[str, Any], why: str) -> list[int]:
    """Return the instance's in-progress tasks to pending and drop its locks: ``[tasks, locks]`` released."""
    tasks = db.fetchall(
        "UPDATE shared_tasks SET status = 'pending', assigned_to = NULL, claimed_at = NULL, updated_at = ?"
        " WHERE assigned_to = ? AND status IN ('in_progress', 'review') RETURNING id, title",
        (now_iso(), instance["id"]),
    )
    for task_id, title in tasks:
        activity.add(
            instance["project_id"],
            "task_released",
            f"{title!r} went back to pending: {why}",
            instance_id=instance["id"],
            task_id=task_id,
            data={"title": title, "status": "pending", "reason": why},
        )
    locks = release_all_held(db, activity, instance, why)
    db.execute("UPDATE claude_instances SET current_task_id = NULL WHERE id = ?", (instance["id"],))
    return [len(tasks), locks]


def _disconnect(db: SyncTransaction, activity: ActivityLog, instance: dict[str, Any], why: str) -> None:
    tasks, locks = release_work(db, activity, instance, why)
    db.execute("UPDATE claude_instances SET status = 'disconnected' WHERE id = ?", (instance["id"],))
    activity.add(
        instance["project_id"],
        "instance_disconnected",
        f"{instance['name']} disconnected ({why}); released {tasks} task(s) and {locks} lock(s)",
        instance_id=instance["id"],
        data={"tasks_released": tasks, "locks_released": locks, "reason": why},
    )


def _get(db: SyncTransaction, project_id: str, instance_id: str) -> dict[str, Any]:
    row = db.fetchone("SELECT * FROM claude_instances WHERE id = ? AND project_id = ?", (instance_id, project_id))
    if row is None:
        raise NotFound(f"no instance {instance_id} in this project")
    return instance_row(row)


class InstanceQueries:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def create(
        self,
        project_id: str,
        user_id: str,
        *,
        name: str,
        token_hash: str,
        session_id: str | None = None,
        machine_id: str | None = None,
    ) -> dict[str, Any]:
        instance_id = str(uuid.uuid4())

        def decide(db: SyncTransaction, activity: ActivityLog) -> dict[str, Any]:
            now = now_iso()
            row = db.fetchone(
                "INSERT INTO claude_instances (id, project_id, user_id, name, session_id, machine_id, token_hash,"
                " status, last_heartbeat_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'active', ?, ?) RETURNING *",
                (instance_id, project_id, user_id, name, session_id, machine_id, token_hash, now, now),
            )
            activity.add(project_id, "instance_joined", f"{name} joined", instance_id=instance_id)
            return instance_row(row)

        return await self._store.activity.transact(decide)

    async def by_token_with_project(self, token_hash: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The instance of a token and its project, in one query (this runs on every instance request)."""
        row = await self._store.fetchone(
            "SELECT i.*, p.* FROM claude_instances i JOIN shared_projects p ON p.id = i.project_id"
            " WHERE i.token_hash = ?",
            (token_hash,),
        )
        if row is None:
            return None
        names, values = list(row.keys()), tuple(row)
        split = names.index("id", 1)  # both tables start with their id column
        instance = dict(zip(names[:split], values[:split], strict=True))
        instance.pop("token_hash", None)
        project = dict(zip(names[split:], values[split:], strict=True))
        project["settings"] = json.loads(project["settings"]) if project["settings"] else {}
        return instance, project

    async def get(self, project_id: str, instance_id: str) -> dict[str, Any]:
        row = await self._store.fetchone(
            "SELECT * FROM claude_instances WHERE id = ? AND project_id = ?", (instance_id, project_id)
        )
        if row is None:
            raise NotFound(f"no instance {instance_id} in this project")
        return instance_row(row)

    async def of_project(self, project_id: str, status: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM claude_instances WHERE project_id = ?"
        params: list[Any] = [project_id]
        if status:
            sql += " AND status = ?"
            params.append(status)
        return [instance_row(r) for r in await self._store.fetchall(sql + " ORDER BY created_at", params)]

    async def touch(self, instance: dict[str, Any], min_interval: float) -> dict[str, Any]:
        """Count a request as a heartbeat. Written at most every ``min_interval`` seconds while active; a
        disconnected instance becomes active again (logged as ``instance_joined``)."""
        now = now_iso()
        if instance["status"] == "active" and instance["last_heartbeat_at"] > now_iso(timedelta(seconds=-min_interval)):
            return instance

        def decide(db: SyncTransaction, activity: ActivityLog) -> dict[str, Any]:
            row = db.fetchone("SELECT status FROM claude_instances WHERE id = ?", (instance["id"],))
            if row is None or row[0] == "ended":
                return instance
            db.execute(
                "UPDATE claude_instances SET last_heartbeat_at = ?, status = 'active' WHERE id = ?",
                (now, instance["id"]),
            )
            if row[0] == "disconnected":
                activity.add(
                    instance["project_id"],
                    "instance_joined",
                    f"{instance['name']} is back",
                    instance_id=instance["id"],
                    data={"reconnected": True},
                )
            return {**instance, "status": "active", "last_heartbeat_at": now}

        return await self._store.activity.transact(decide)

    async def heartbeat(
        self,
        project_id: str,
        instance_id: str,
        *,
        status: str | None = None,
        current_task_id: str | None = None,
        set_current_task: bool = False,
    ) -> dict[str, Any]:
        """An explicit heartbeat: ``status`` 'active' (default) or 'disconnected' (releases its work now)."""

        def decide(db: SyncTransaction, activity: ActivityLog) -> dict[str, Any]:
            instance = _get(db, project_id, instance_id)
            if instance["status"] == "ended":
                raise Conflict(f"instance {instance['name']} is ended, not active")
            if set_current_task and current_task_id is not None:
                found = db.fetchone(
                    "SELECT 1 FROM shared_tasks WHERE id = ? AND project_id = ?", (current_task_id, project_id)
                )
                if found is None:
                    raise InvalidField("current_task_id", f"no task {current_task_id} in this project")
            if status == "disconnected":
                _disconnect(db, activity, instance, "it said it is disconnecting")
            else:
                if instance["status"] == "disconnected":
                    activity.add(project_id, "instance_joined", f"{instance['name']} is back", instance_id=instance_id)
                db.execute(
                    "UPDATE claude_instances SET status = 'active', last_heartbeat_at = ? WHERE id = ?",
                    (now_iso(), instance_id),
                )
            if set_current_task:
                db.execute(
                    "UPDATE claude_instances SET current_task_id = ? WHERE id = ?", (current_task_id, instance_id)
                )
            return _get(db, project_id, instance_id)

        return await self._store.activity.transact(decide)

    async def end_for_session(self, session_id: str, actor: Actor) -> None:
        """A project session ended: its instance's token dies, its locks go, its claimed tasks return to pending."""
        rows = await self._store.fetchall(
            "SELECT project_id, id FROM claude_instances WHERE session_id = ? AND status != 'ended'", (session_id,)
        )
        for project_id, instance_id in rows:
            await self.end(project_id, instance_id, actor)

    async def end(self, project_id: str, instance_id: str, actor: Actor) -> dict[str, Any]:
        """End the instance: its token stops working, its locks are dropped, its tasks go back to pending.
        Ending an ended instance changes nothing."""

        def decide(db: SyncTransaction, activity: ActivityLog) -> dict[str, Any]:
            instance = _get(db, project_id, instance_id)
            if instance["status"] == "ended":
                return instance
            why = f"{instance['name']} left" if actor.instance_id == instance_id else f"{actor.name} ended it"
            tasks, locks = release_work(db, activity, instance, why)
            row = db.fetchone(
                "UPDATE claude_instances SET status = 'ended', ended_at = ?, current_task_id = NULL WHERE id = ?"
                " RETURNING *",
                (now_iso(), instance_id),
            )
            activity.add(
                project_id,
                "instance_left",
                f"{instance['name']} left ({why}; released {tasks} task(s) and {locks} lock(s))",
                instance_id=instance_id,
                data={"tasks_released": tasks, "locks_released": locks, "by": actor.name},
            )
            return instance_row(row)

        return await self._store.activity.transact(decide)

    async def disconnect_stale(self, grace_seconds: float) -> list[dict[str, Any]]:
        """Mark active instances silent for longer than the grace as disconnected and release their work."""
        cutoff = now_iso(timedelta(seconds=-grace_seconds))
        stale = await self._store.fetchone(
            "SELECT 1 FROM claude_instances WHERE status = 'active' AND last_heartbeat_at < ? LIMIT 1", (cutoff,)
        )
        if stale is None:
            return []

        def decide(db: SyncTransaction, activity: ActivityLog) -> list[dict[str, Any]]:
            # Decided again inside the transaction: a heartbeat that landed meanwhile keeps its instance.
            rows = db.fetchall(
                "SELECT * FROM claude_instances WHERE status = 'active' AND last_heartbeat_at < ?", (cutoff,)
            )
            gone = [instance_row(r) for r in rows]
            for instance in gone:
                _disconnect(db, activity, instance, f"{instance['name']} sent no heartbeat for {grace_seconds:g}s")
            return gone

        return await self._store.activity.transact(decide)
