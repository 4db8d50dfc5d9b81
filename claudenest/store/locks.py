"""Expiring file locks with globs and fencing numbers.

A lock path is a project-relative path or an ``fnmatch`` glob (``*`` also matches ``/``). Acquiring ``P`` conflicts
with a live lock of another instance on ``L`` when ``P == L``, when ``L`` is a glob that matches ``P``, or when ``P``
is a glob that matches ``L``. Expired locks (``expires_at <= now``) are ignored, and deleted (with a
``lock_expired`` activity row) by the next write that meets them or by the relay's sweeper. Every grant (acquire
and renew) takes the next number of the project's fencing counter. Each decision is one write transaction.
"""

from __future__ import annotations

import posixpath
import uuid
from datetime import timedelta
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from claudenest.clock import now_iso
from claudenest.errors import InvalidField, LockConflict, NotFound
from claudenest.store.activity import ActivityLog, Actor
from claudenest.store.projects import next_fencing
from claudenest.store.users import as_dict

if TYPE_CHECKING:
    from claudenest.store.connection import Store, SyncTransaction

DEFAULT_TTL_SECONDS = 1800
MAX_TTL_SECONDS = 86400
_GLOB_CHARS = frozenset("*?[")

_SELECT = (
    "SELECT l.id, l.project_id, l.path, l.holder_instance_id, i.name AS holder_name, l.reason, l.fencing,"
    " l.expires_at, l.created_at FROM file_locks l JOIN claude_instances i ON i.id = l.holder_instance_id"
)


def is_glob(path: str) -> bool:
    return any(c in _GLOB_CHARS for c in path)


def overlaps(a: str, b: str) -> bool:
    """Whether locks on ``a`` and ``b`` conflict: equal, or either is a glob matching the other."""
    return a == b or (is_glob(a) and fnmatchcase(b, a)) or (is_glob(b) and fnmatchcase(a, b))


def normalize_path(path: str, project_path: str = "", field: str = "path") -> str:
    """A lock path relative to the project: ``/abs/project/src/a.py`` and ``./src//a.py`` are ``src/a.py``."""
    text = path.strip()
    root = project_path.rstrip("/")
    if root and text.startswith(root + "/"):
        text = text[len(root) + 1 :]
    if not text:
        raise InvalidField(field, "a path is needed")
    normal = posixpath.normpath(text)
    if normal in (".", "/"):
        raise InvalidField(field, f"{path!r} names no file; lock a path or a glob such as 'src/*'")
    return normal


def lock_row(row: Any) -> dict[str, Any]:
    return as_dict(row)


def _holder(lock: dict[str, Any]) -> dict[str, Any]:
    return {"id": lock["holder_instance_id"], "name": lock["holder_name"]}


def conflict(lock: dict[str, Any], wanted: str) -> LockConflict:
    via = "" if lock["path"] == wanted else f" (lock on {lock['path']})"
    return LockConflict(
        f"locked by {lock['holder_name']} until {lock['expires_at']}{via}",
        holder=_holder(lock),
        expires_at=lock["expires_at"],
        lock=lock,
    )


def _live_locks(db: SyncTransaction, activity: ActivityLog, project_id: str) -> list[dict[str, Any]]:
    """The project's live locks; expired ones met on the way are deleted and logged."""
    now = now_iso()
    rows = [lock_row(r) for r in db.fetchall(_SELECT + " WHERE l.project_id = ?", (project_id,))]
    expired = [lock for lock in rows if lock["expires_at"] <= now]
    if expired:
        _delete_expired(db, activity, expired)
    return [lock for lock in rows if lock["expires_at"] > now]


def _delete_expired(db: SyncTransaction, activity: ActivityLog, expired: list[dict[str, Any]]) -> None:
    for lock in expired:
        db.execute("DELETE FROM file_locks WHERE id = ?", (lock["id"],))
        activity.add(
            lock["project_id"],
            "lock_expired",
            f"{lock['holder_name']}'s lock on {lock['path']} expired",
            instance_id=lock["holder_instance_id"],
            data={"path": lock["path"], "lock_id": lock["id"], "fencing": lock["fencing"]},
        )


def release_all_held(db: SyncTransaction, activity: ActivityLog, instance: dict[str, Any], why: str) -> int:
    """Drop every lock ``instance`` holds (inside the caller's transaction); returns how many."""
    rows = [lock_row(r) for r in db.fetchall(_SELECT + " WHERE l.holder_instance_id = ?", (instance["id"],))]
    for lock in rows:
        db.execute("DELETE FROM file_locks WHERE id = ?", (lock["id"],))
        activity.add(
            lock["project_id"],
            "lock_released",
            f"{instance['name']}'s lock on {lock['path']} was released: {why}",
            instance_id=instance["id"],
            data={"path": lock["path"], "lock_id": lock["id"], "fencing": lock["fencing"], "reason": why},
        )
    return len(rows)


def _grant(
    db: SyncTransaction,
    activity: ActivityLog,
    project: dict[str, Any],
    instance: dict[str, Any],
    wanted: str,
    own: dict[str, Any] | None,
    reason: str,
    ttl_seconds: int,
) -> dict[str, Any]:
    """A new lock on ``wanted``, or ``own`` renewed; either way with the next fencing number."""
    fencing = next_fencing(db, project["id"])
    now = now_iso()
    expires_at = now_iso(timedelta(seconds=ttl_seconds))
    if own is not None:
        reason = reason or own["reason"]
        db.execute(
            "UPDATE file_locks SET fencing = ?, expires_at = ?, reason = ? WHERE id = ?",
            (fencing, expires_at, reason, own["id"]),
        )
        granted = {**own, "fencing": fencing, "expires_at": expires_at, "reason": reason}
        kind, verb = "lock_renewed", "renewed its lock on"
    else:
        granted = {
            "id": str(uuid.uuid4()),
            "project_id": project["id"],
            "path": wanted,
            "holder_instance_id": instance["id"],
            "holder_name": instance["name"],
            "reason": reason,
            "fencing": fencing,
            "expires_at": expires_at,
            "created_at": now,
        }
        db.execute(
            "INSERT INTO file_locks (id, project_id, path, holder_instance_id, reason, fencing, expires_at,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (granted["id"], project["id"], wanted, instance["id"], reason, fencing, expires_at, now),
        )
        kind, verb = "lock_acquired", "locked"
    activity.add(
        project["id"],
        kind,
        f"{instance['name']} {verb} {wanted}" + (f": {reason}" if reason and own is None else ""),
        instance_id=instance["id"],
        data={"path": wanted, "lock_id": granted["id"], "fencing": fencing, "expires_at": expires_at},
    )
    return granted


class LockQueries:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def acquire(
        self, project: dict[str, Any], instance: dict[str, Any], path: str, *, reason: str = "", ttl_seconds: int
    ) -> dict[str, Any]:
        """Grant (or, when ``instance`` already holds exactly ``path``, renew) a lock; LockConflict otherwise."""
        wanted = normalize_path(path, project["project_path"])

        def decide(db: SyncTransaction, activity: ActivityLog) -> dict[str, Any]:
            own: dict[str, Any] | None = None
            for lock in _live_locks(db, activity, project["id"]):
                if lock["holder_instance_id"] == instance["id"]:
                    if lock["path"] == wanted:
                        own = lock
                elif overlaps(lock["path"], wanted):
                    raise conflict(lock, wanted)
            return _grant(db, activity, project, instance, wanted, own, reason, ttl_seconds)

        return await self._store.activity.transact(decide)

    async def renew(
        self, project: dict[str, Any], instance: dict[str, Any], path: str, *, ttl_seconds: int
    ) -> dict[str, Any]:
        """Extend a live lock the instance holds on exactly ``path`` (with a new fencing number)."""
        wanted = normalize_path(path, project["project_path"])

        def decide(db: SyncTransaction, activity: ActivityLog) -> dict[str, Any]:
            live = _live_locks(db, activity, project["id"])
            lock = next((candidate for candidate in live if candidate["path"] == wanted), None)
            if lock is None:
                raise NotFound(f"{instance['name']} holds no live lock on {wanted} (it may have expired)")
            if lock["holder_instance_id"] != instance["id"]:
                raise conflict(lock, wanted)
            return _grant(db, activity, project, instance, wanted, lock, "", ttl_seconds)

        return await self._store.activity.transact(decide)

    async def release(self, project: dict[str, Any], actor: Actor, path: str) -> bool:
        """Release the lock on exactly ``path``: by its holder, or by the project's owner (``actor`` a user).

        False when there is no live lock on the path; LockConflict when another instance holds it.
        """
        wanted = normalize_path(path, project["project_path"])

        def decide(db: SyncTransaction, activity: ActivityLog) -> bool:
            live = _live_locks(db, activity, project["id"])
            lock = next((candidate for candidate in live if candidate["path"] == wanted), None)
            if lock is None:
                return False
            if actor.instance_id is not None and lock["holder_instance_id"] != actor.instance_id:
                raise conflict(lock, wanted)
            db.execute("DELETE FROM file_locks WHERE id = ?", (lock["id"],))
            by = "" if actor.instance_id == lock["holder_instance_id"] else f" by {actor.name}"
            activity.add(
                project["id"],
                "lock_released",
                f"{lock['holder_name']}'s lock on {wanted} was released{by}",
                instance_id=lock["holder_instance_id"],
                data={"path": wanted, "lock_id": lock["id"], "fencing": lock["fencing"], "by": actor.name},
            )
            return True

        return await self._store.activity.transact(decide)

    async def live(self, project_id: str) -> list[dict[str, Any]]:
        rows = await self._store.fetchall(
            _SELECT + " WHERE l.project_id = ? AND l.expires_at > ? ORDER BY l.path", (project_id, now_iso())
        )
        return [lock_row(r) for r in rows]

    async def check(self, project: dict[str, Any], paths: list[str]) -> dict[str, dict[str, Any] | None]:
        """For each path as given: the live lock covering it (equal, or a glob either way), or None."""
        wanted = [normalize_path(p, project["project_path"], field=f"paths.{n}") for n, p in enumerate(paths)]
        live = await self.live(project["id"])
        return {
            path: next((lock for lock in live if overlaps(lock["path"], normal)), None)
            for path, normal in zip(paths, wanted, strict=True)
        }

    async def release_of_instance(self, instance: dict[str, Any], why: str) -> int:
        return await self._store.activity.transact(lambda db, activity: release_all_held(db, activity, instance, why))

    async def sweep_expired(self) -> int:
        """Delete every expired lock of every project (with ``lock_expired`` activity); returns how many."""
        if await self._store.fetchone("SELECT 1 FROM file_locks WHERE expires_at <= ? LIMIT 1", (now_iso(),)) is None:
            return 0

        def decide(db: SyncTransaction, activity: ActivityLog) -> int:
            expired = [lock_row(r) for r in db.fetchall(_SELECT + " WHERE l.expires_at <= ?", (now_iso(),))]
            _delete_expired(db, activity, expired)
            return len(expired)

        return await self._store.activity.transact(decide)
