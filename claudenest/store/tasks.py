"""Shared tasks: a dependency DAG that instances claim atomically.

States: ``pending`` -(claim)-> ``in_progress`` -(complete)-> ``done``; ``in_progress`` -(request review)->
``review`` -(approve)-> ``done`` or -(request changes)-> ``in_progress``, the review decided by anyone but the
assignee; ``in_progress``/``review`` -(release)-> ``pending``; ``pending``/``in_progress`` -(block)-> ``blocked``
-(unblock)-> ``in_progress`` (assignee still active) or ``pending``. A task is claimable when it is pending and
every dependency is done. ``claim_next`` takes the highest priority (critical > high > medium > low), then oldest,
claimable task. Every transition is decided inside one write transaction, so two racers never both win.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from claudenest.clock import now_iso
from claudenest.errors import Conflict, InvalidField, NotFound
from claudenest.store.activity import ActivityLog, Actor
from claudenest.store.users import as_dict

if TYPE_CHECKING:
    from claudenest.store.connection import Store, SyncTransaction

PRIORITIES = ("low", "medium", "high", "critical")
STATUSES = ("pending", "in_progress", "blocked", "review", "done")
UPDATABLE = ("title", "description", "priority", "files", "estimate", "dependencies")
_JSON_COLUMNS = ("dependencies", "files", "files_modified")

# Dependencies that are not done yet, for the task whose dependency list is bound as the parameter.
_UNFINISHED = (
    "SELECT d.value AS id, x.title, x.status FROM json_each(?) d LEFT JOIN shared_tasks x ON x.id = d.value"
    " WHERE x.status IS NOT 'done'"
)
_CLAIM_NEXT = (
    "UPDATE shared_tasks SET status = 'in_progress', assigned_to = ?, claimed_at = ?, updated_at = ?"
    " WHERE id = (SELECT t.id FROM shared_tasks t WHERE t.project_id = ? AND t.status = 'pending'"
    " AND NOT EXISTS (SELECT 1 FROM json_each(t.dependencies) d LEFT JOIN shared_tasks x ON x.id = d.value"
    " WHERE x.status IS NOT 'done')"
    " ORDER BY t.priority_rank DESC, t.created_at, t.rowid LIMIT 1) RETURNING *"
)


def task_row(row: Any) -> dict[str, Any]:
    found = as_dict(row)
    found.pop("priority_rank", None)
    for column in _JSON_COLUMNS:
        found[column] = json.loads(found[column]) if found[column] else []
    return found


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


class TaskQueries:
    def __init__(self, store: Store) -> None:
        self._store = store

    # -- reading ------------------------------------------------------------------------------------------------

    async def get(self, project_id: str, task_id: str) -> dict[str, Any]:
        row = await self._store.fetchone(
            "SELECT * FROM shared_tasks WHERE id = ? AND project_id = ?", (task_id, project_id)
        )
        if row is None:
            raise NotFound(f"no task {task_id} in this project")
        return task_row(row)

    async def of_project(
        self, project_id: str, *, status: str | None = None, assigned_to: str | None = None
    ) -> list[dict[str, Any]]:
        sql = "SELECT * FROM shared_tasks WHERE project_id = ?"
        params: list[Any] = [project_id]
        if status:
            sql += " AND status = ?"
            params.append(status)
        if assigned_to:
            sql += " AND assigned_to = ?"
            params.append(assigned_to)
        sql += " ORDER BY priority_rank DESC, created_at, rowid"
        return [task_row(r) for r in await self._store.fetchall(sql, params)]

    async def for_project(self, project_id: str) -> list[dict[str, Any]]:
        """Every task of the project, highest priority first, then oldest."""
        return await self.of_project(project_id)

    # -- writing (each a single decision: one transaction, one trip to the database thread) --------------------

    async def create(
        self,
        project_id: str,
        actor: Actor,
        *,
        title: str,
        description: str = "",
        priority: str = "medium",
        dependencies: Iterable[str] = (),
        files: Iterable[str] = (),
        estimate: str | None = None,
    ) -> dict[str, Any]:
        task_id = str(uuid.uuid4())
        deps = _unique(dependencies)

        def decide(db: SyncTransaction, activity: ActivityLog) -> dict[str, Any]:
            _check_dependencies(db, project_id, task_id, deps, new=True)
            now = now_iso()
            row = db.fetchone(
                "INSERT INTO shared_tasks (id, project_id, title, description, priority, status, dependencies, files,"
                " estimate, created_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?)"
                " RETURNING *",
                (
                    task_id,
                    project_id,
                    title,
                    description,
                    priority,
                    json.dumps(deps),
                    json.dumps(_unique(files)),
                    estimate,
                    actor.name,
                    now,
                    now,
                ),
            )
            task = task_row(row)
            _log(activity, task, "task_created", f"{actor.name} created {title!r}", actor)
            return task

        return await self._store.activity.transact(decide)

    async def update(self, project_id: str, task_id: str, fields: dict[str, Any], actor: Actor) -> dict[str, Any]:
        unknown = set(fields) - set(UPDATABLE)
        if unknown:
            raise TypeError(f"unknown task fields: {sorted(unknown)}")

        def decide(db: SyncTransaction, activity: ActivityLog) -> dict[str, Any]:
            task = _get(db, project_id, task_id)
            values = dict(fields)
            for column in ("dependencies", "files"):
                if column in values:
                    values[column] = _unique(values[column])
            if "dependencies" in values:
                _check_dependencies(db, project_id, task_id, values["dependencies"])
            changed = [k for k, v in values.items() if task[k] != v]
            if not changed:
                return task
            stored = {k: (json.dumps(values[k]) if k in _JSON_COLUMNS else values[k]) for k in changed}
            columns = ", ".join(f"{k} = ?" for k in stored)
            row = db.fetchone(
                f"UPDATE shared_tasks SET {columns}, updated_at = ? WHERE id = ? RETURNING *",
                (*stored.values(), now_iso(), task_id),
            )
            task = task_row(row)
            message = f"{actor.name} updated {', '.join(changed)} of {task['title']!r}"
            _log(activity, task, "task_updated", message, actor, fields=changed)
            return task

        return await self._store.activity.transact(decide)

    async def claim(
        self, project_id: str, task_id: str, instance: dict[str, Any], by: Actor | None = None
    ) -> dict[str, Any]:
        """Claim one task for ``instance``: it must be pending with every dependency done. ``by`` is the project's
        owner assigning the task to the instance (which must then be active); None when the instance claims it."""

        def decide(db: SyncTransaction, activity: ActivityLog) -> dict[str, Any]:
            task = _get(db, project_id, task_id)
            if by is not None:
                row = db.fetchone("SELECT status FROM claude_instances WHERE id = ?", (instance["id"],))
                status = row[0] if row else "ended"
                if status != "active":
                    raise Conflict(f"instance {instance['name']} is {status}: only a live instance can take a task")
            if task["status"] != "pending":
                raise Conflict(f"task is {task['status']}, not pending{_by_whom(db, task)}")
            unfinished = db.fetchall(_UNFINISHED, (json.dumps(task["dependencies"]),))
            if unfinished:
                names = ", ".join(f"{r['id']} {r['title']!r} ({r['status'] or 'missing'})" for r in unfinished)
                raise Conflict(f"task depends on unfinished tasks: {names}")
            now = now_iso()
            row = db.fetchone(
                "UPDATE shared_tasks SET status = 'in_progress', assigned_to = ?, claimed_at = ?, updated_at = ?"
                " WHERE id = ? RETURNING *",
                (instance["id"], now, now, task_id),
            )
            return _claimed(db, activity, task_row(row), instance, by)

        return await self._store.activity.transact(decide)

    async def claim_next(self, project_id: str, instance: dict[str, Any]) -> dict[str, Any] | None:
        """Claim the highest-priority, oldest claimable task; None when nothing is claimable now."""

        def decide(db: SyncTransaction, activity: ActivityLog) -> dict[str, Any] | None:
            now = now_iso()
            row = db.fetchone(_CLAIM_NEXT, (instance["id"], now, now, project_id))
            if row is None:
                return None
            return _claimed(db, activity, task_row(row), instance)

        return await self._store.activity.transact(decide)

    async def release(self, project_id: str, task_id: str, actor: Actor) -> dict[str, Any]:
        """Back to pending, unassigned: by the instance holding it, or by the project's owner."""

        def decide(db: SyncTransaction, activity: ActivityLog) -> dict[str, Any]:
            task = _get(db, project_id, task_id)
            if task["status"] not in ("in_progress", "review") and not (
                task["status"] == "blocked" and task["assigned_to"]
            ):
                raise Conflict(f"task is {task['status']}, not in_progress")
            _must_hold(db, task, actor)
            row = db.fetchone(
                "UPDATE shared_tasks SET status = 'pending', assigned_to = NULL, claimed_at = NULL,"
                " blocked_reason = NULL, updated_at = ? WHERE id = ? RETURNING *",
                (now_iso(), task_id),
            )
            _clear_current(db, task)
            released = task_row(row)
            _log(activity, released, "task_released", f"{actor.name} released {task['title']!r}", actor)
            return released

        return await self._store.activity.transact(decide)

    async def complete(
        self, project_id: str, task_id: str, actor: Actor, *, summary: str, files_modified: Iterable[str] = ()
    ) -> dict[str, Any]:
        """Done, with a summary: by the instance holding it, or by the project's owner."""
        modified = _unique(files_modified)

        def decide(db: SyncTransaction, activity: ActivityLog) -> dict[str, Any]:
            task = _get(db, project_id, task_id)
            if task["status"] == "review" and actor.instance_id is not None:
                raise Conflict("task is in review: another instance or the owner approves it or requests changes")
            if task["status"] not in ("in_progress", "review"):
                raise Conflict(f"task is {task['status']}, not in_progress")
            _must_hold(db, task, actor)
            now = now_iso()
            row = db.fetchone(
                "UPDATE shared_tasks SET status = 'done', completion_summary = ?, files_modified = ?,"
                " completed_at = ?, updated_at = ? WHERE id = ? RETURNING *",
                (summary, json.dumps(modified), now, now, task_id),
            )
            _credit(db, task)
            done = task_row(row)
            message = f"{actor.name} completed {task['title']!r}: {summary}"
            _log(activity, done, "task_completed", message, actor, summary=summary, files_modified=modified)
            return done

        return await self._store.activity.transact(decide)

    async def request_review(
        self, project_id: str, task_id: str, actor: Actor, *, summary: str, files_modified: Iterable[str] = ()
    ) -> dict[str, Any]:
        """In progress -> review, with the summary and files the reviewer will judge (by the holder or the owner)."""
        modified = _unique(files_modified)

        def decide(db: SyncTransaction, activity: ActivityLog) -> dict[str, Any]:
            task = _get(db, project_id, task_id)
            if task["status"] != "in_progress":
                raise Conflict(f"task is {task['status']}, not in_progress")
            _must_hold(db, task, actor)
            row = db.fetchone(
                "UPDATE shared_tasks SET status = 'review', completion_summary = ?, files_modified = ?, updated_at = ?"
                " WHERE id = ? RETURNING *",
                (summary, json.dumps(modified), now_iso(), task_id),
            )
            _clear_current(db, task)  # free to claim other work while the review waits
            ready = task_row(row)
            message = f"{actor.name} asks for a review of {task['title']!r}: {summary}"
            _log(activity, ready, "task_review_requested", message, actor, summary=summary, files_modified=modified)
            return ready

        return await self._store.activity.transact(decide)

    async def approve(self, project_id: str, task_id: str, actor: Actor, note: str | None = None) -> dict[str, Any]:
        """Review -> done with the summary given for review; by anyone of the project but the assignee."""

        def decide(db: SyncTransaction, activity: ActivityLog) -> dict[str, Any]:
            task = _get(db, project_id, task_id)
            _must_review(db, task, actor)
            now = now_iso()
            row = db.fetchone(
                "UPDATE shared_tasks SET status = 'done', completed_at = ?, updated_at = ? WHERE id = ? RETURNING *",
                (now, now, task_id),
            )
            _credit(db, task)
            done = task_row(row)
            message = f"{actor.name} approved {task['title']!r}" + (f": {note}" if note else "")
            _log(
                activity,
                done,
                "task_completed",
                message,
                actor,
                summary=done["completion_summary"],
                files_modified=done["files_modified"],
                reviewed_by=actor.name,
                note=note,
            )
            return done

        return await self._store.activity.transact(decide)

    async def request_changes(self, project_id: str, task_id: str, actor: Actor, reason: str) -> dict[str, Any]:
        """Review -> in progress, back to the same assignee, with what to change; by anyone but the assignee."""

        def decide(db: SyncTransaction, activity: ActivityLog) -> dict[str, Any]:
            task = _get(db, project_id, task_id)
            _must_review(db, task, actor)
            row = db.fetchone(
                "UPDATE shared_tasks SET status = 'in_progress', updated_at = ? WHERE id = ? RETURNING *",
                (now_iso(), task_id),
            )
            reopened = task_row(row)
            message = f"{actor.name} asks for changes to {task['title']!r}: {reason}"
            _log(activity, reopened, "task_changes_requested", message, actor, reason=reason)
            return reopened

        return await self._store.activity.transact(decide)

    async def block(self, project_id: str, task_id: str, actor: Actor, reason: str) -> dict[str, Any]:
        def decide(db: SyncTransaction, activity: ActivityLog) -> dict[str, Any]:
            task = _get(db, project_id, task_id)
            if task["status"] not in ("pending", "in_progress"):
                raise Conflict(f"task is {task['status']}, not pending or in_progress")
            if task["status"] == "in_progress":
                _must_hold(db, task, actor)
            row = db.fetchone(
                "UPDATE shared_tasks SET status = 'blocked', blocked_reason = ?, updated_at = ? WHERE id = ?"
                " RETURNING *",
                (reason, now_iso(), task_id),
            )
            blocked = task_row(row)
            message = f"{actor.name} blocked {task['title']!r}: {reason}"
            _log(activity, blocked, "task_blocked", message, actor, reason=reason)
            return blocked

        return await self._store.activity.transact(decide)

    async def unblock(self, project_id: str, task_id: str, actor: Actor) -> dict[str, Any]:
        """Blocked -> in_progress when its assignee is still active, else pending (unassigned)."""

        def decide(db: SyncTransaction, activity: ActivityLog) -> dict[str, Any]:
            task = _get(db, project_id, task_id)
            if task["status"] != "blocked":
                raise Conflict(f"task is {task['status']}, not blocked")
            holder = None
            if task["assigned_to"]:
                holder = db.fetchone(
                    "SELECT 1 FROM claude_instances WHERE id = ? AND status = 'active'", (task["assigned_to"],)
                )
            if holder is not None:
                sql = "UPDATE shared_tasks SET status = 'in_progress', blocked_reason = NULL, updated_at = ?"
            else:
                sql = (
                    "UPDATE shared_tasks SET status = 'pending', assigned_to = NULL, claimed_at = NULL,"
                    " blocked_reason = NULL, updated_at = ?"
                )
            row = db.fetchone(sql + " WHERE id = ? RETURNING *", (now_iso(), task_id))
            unblocked = task_row(row)
            _log(activity, unblocked, "task_unblocked", f"{actor.name} unblocked {task['title']!r}", actor)
            return unblocked

        return await self._store.activity.transact(decide)


# -- helpers (inside a caller's transaction) ----------------------------------------------------------------------


def _get(db: SyncTransaction, project_id: str, task_id: str) -> dict[str, Any]:
    row = db.fetchone("SELECT * FROM shared_tasks WHERE id = ? AND project_id = ?", (task_id, project_id))
    if row is None:
        raise NotFound(f"no task {task_id} in this project")
    return task_row(row)


def _holder_name(db: SyncTransaction, instance_id: str | None) -> str | None:
    if not instance_id:
        return None
    row = db.fetchone("SELECT name FROM claude_instances WHERE id = ?", (instance_id,))
    return str(row[0]) if row else None


def _by_whom(db: SyncTransaction, task: dict[str, Any]) -> str:
    name = _holder_name(db, task["assigned_to"])
    return f" (assigned to {name})" if name and task["status"] != "done" else ""


def _must_hold(db: SyncTransaction, task: dict[str, Any], actor: Actor) -> None:
    """Instances act only on tasks assigned to them; the project's owner (a user) may act on any."""
    if actor.instance_id is None or task["assigned_to"] == actor.instance_id:
        return
    name = _holder_name(db, task["assigned_to"]) or "nobody"
    raise Conflict(f"task is {task['status']} (assigned to {name}), not assigned to {actor.name}")


def _must_review(db: SyncTransaction, task: dict[str, Any], actor: Actor) -> None:
    """A review is decided by the owner or another instance of the project, never by the task's own assignee."""
    if task["status"] != "review":
        raise Conflict(f"task is {task['status']}, not review")
    if actor.instance_id is not None and actor.instance_id == task["assigned_to"]:
        raise Conflict("the task's own assignee cannot decide its review: another instance or the owner does")


def _credit(db: SyncTransaction, task: dict[str, Any]) -> None:
    """The assignee finished a task: count it, and it is no longer the instance's current task."""
    if task["assigned_to"]:
        db.execute(
            "UPDATE claude_instances SET tasks_completed = tasks_completed + 1,"
            " current_task_id = CASE WHEN current_task_id = ? THEN NULL ELSE current_task_id END WHERE id = ?",
            (task["id"], task["assigned_to"]),
        )


def _clear_current(db: SyncTransaction, task: dict[str, Any]) -> None:
    if task["assigned_to"]:
        db.execute(
            "UPDATE claude_instances SET current_task_id = NULL WHERE id = ? AND current_task_id = ?",
            (task["assigned_to"], task["id"]),
        )


def _claimed(
    db: SyncTransaction,
    activity: ActivityLog,
    task: dict[str, Any],
    instance: dict[str, Any],
    by: Actor | None = None,
) -> dict[str, Any]:
    db.execute("UPDATE claude_instances SET current_task_id = ? WHERE id = ?", (task["id"], instance["id"]))
    if by is None:
        actor = Actor(instance["name"], instance["id"])
        _log(activity, task, "task_claimed", f"{instance['name']} claimed {task['title']!r}", actor)
    else:  # the owner assigned it: the row names the owner as the one who acted, and the instance it went to
        message = f"{by.name} assigned {task['title']!r} to {instance['name']}"
        activity.add(
            task["project_id"],
            "task_claimed",
            message,
            instance_id=instance["id"],
            task_id=task["id"],
            data={"title": task["title"], "status": task["status"], "by": by.name, "assigned_to": instance["name"]},
        )
    return task


def _log(activity: ActivityLog, task: dict[str, Any], kind: str, message: str, actor: Actor, **data: Any) -> None:
    activity.add(
        task["project_id"],
        kind,
        message,
        instance_id=actor.instance_id,
        task_id=task["id"],
        data={"title": task["title"], "status": task["status"], "by": actor.name, **data},
    )


def _check_dependencies(
    db: SyncTransaction, project_id: str, task_id: str, deps: list[str], *, new: bool = False
) -> None:
    """Every dependency is a task of this project, and depending on them closes no cycle (a new task cannot
    close one: nothing depends on it yet)."""
    if not deps:
        return
    if task_id in deps:
        raise InvalidField("dependencies", "a task cannot depend on itself")
    marks = ", ".join("?" for _ in deps)
    rows = db.fetchall(f"SELECT id FROM shared_tasks WHERE project_id = ? AND id IN ({marks})", (project_id, *deps))
    missing = [d for d in deps if d not in {r[0] for r in rows}]
    if missing:
        raise InvalidField("dependencies", f"no task {', '.join(missing)} in this project")
    if new:
        return
    graph = {
        r[0]: json.loads(r[1])
        for r in db.fetchall(
            "SELECT id, dependencies FROM shared_tasks WHERE project_id = ? AND dependencies != '[]'", (project_id,)
        )
    }
    seen: set[str] = set()
    todo = list(deps)
    while todo:
        current = todo.pop()
        if current == task_id:
            raise InvalidField("dependencies", "these dependencies would make a cycle")
        if current in seen:
            continue
        seen.add(current)
        todo.extend(graph.get(current, ()))
