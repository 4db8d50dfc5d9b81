"""Claude sessions and their persisted output log (byte offsets, batched, capped)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from claudenest.clock import now_iso
from claudenest.errors import Conflict, NotFound
from claudenest.store.users import as_dict

if TYPE_CHECKING:
    from claudenest.store.connection import Store


def _session(row: Any) -> dict[str, Any]:
    session = as_dict(row)
    for column in ("command", "pending_permission", "usage"):
        session[column] = json.loads(session[column]) if session[column] else None
    session["ended"] = session["completed_at"] is not None  # the process is gone (status says why)
    return session


# The project a session runs in, through the instance it was registered as (null for plain sessions).
_PROJECT_ID = "(SELECT i.project_id FROM claude_instances i WHERE i.session_id = s.id LIMIT 1) AS project_id"


class SessionQueries:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def create(
        self,
        *,
        user_id: str,
        machine_id: str,
        mode: str,
        command: list[str] | None,
        project_path: str,
        cols: int,
        rows: int,
        initial_prompt: str | None = None,
    ) -> dict[str, Any]:
        session_id = str(uuid.uuid4())
        await self._store.execute(
            "INSERT INTO claude_sessions (id, machine_id, user_id, mode, command, project_path, initial_prompt,"
            " status, cols, rows, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'starting', ?, ?, ?)",
            (
                session_id,
                machine_id,
                user_id,
                mode,
                json.dumps(command) if command else None,
                project_path,
                initial_prompt,
                cols,
                rows,
                now_iso(),
            ),
        )
        return await self.get(session_id)

    async def get(self, session_id: str, user_id: str | None = None) -> dict[str, Any]:
        sql = f"SELECT *, {_PROJECT_ID} FROM claude_sessions s WHERE id = ?"
        params: tuple[str, ...] = (session_id,)
        if user_id is not None:
            sql += " AND user_id = ?"
            params += (user_id,)
        row = await self._store.fetchone(sql, params)
        if row is None:
            raise NotFound(f"no session {session_id}")
        return _session(row)

    async def of_user(
        self,
        user_id: str,
        *,
        machine_id: str | None = None,
        status: str | None = None,
        project_id: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        sql = f"SELECT *, {_PROJECT_ID} FROM claude_sessions s WHERE user_id = ?"
        params: list[Any] = [user_id]
        if machine_id:
            sql += " AND machine_id = ?"
            params.append(machine_id)
        if status:
            sql += " AND status = ?"
            params.append(status)
        if project_id:
            sql += " AND id IN (SELECT session_id FROM claude_instances WHERE project_id = ?)"
            params.append(project_id)
        sql += " ORDER BY created_at DESC LIMIT ?"
        params.append(limit)
        return [_session(r) for r in await self._store.fetchall(sql, params)]

    async def usage_since(self, user_id: str, since: str) -> dict[str, Any]:
        """Sessions started at or after ``since`` (UTC ISO-8601) and their token and cost totals."""
        row = await self._store.fetchone(
            "SELECT COUNT(*), SUM(total_tokens), SUM(total_cost) FROM claude_sessions"
            " WHERE user_id = ? AND created_at >= ?",
            (user_id, since),
        )
        assert row is not None
        return {"sessions": row[0], "total_tokens": row[1] or 0, "total_cost": round(row[2] or 0.0, 6)}

    async def delete(self, session_id: str, user_id: str) -> None:
        """Remove an ended session with its output log (the log rows go by ON DELETE CASCADE)."""
        session = await self.get(session_id, user_id)
        if not session["ended"]:
            raise Conflict(f"session {session_id} is still {session['status']}: end it first (sessions kill)")
        await self._store.execute("DELETE FROM claude_sessions WHERE id = ? AND user_id = ?", (session_id, user_id))

    async def totals_by_machine(self, user_id: str) -> dict[str, dict[str, Any]]:
        rows = await self._store.fetchall(
            "SELECT machine_id, COUNT(*), SUM(total_tokens), SUM(total_cost) FROM claude_sessions"
            " WHERE user_id = ? GROUP BY machine_id",
            (user_id,),
        )
        return {r[0]: {"sessions": r[1], "total_tokens": r[2] or 0, "total_cost": r[3] or 0.0} for r in rows}

    async def live_on_machine(self, machine_id: str) -> list[dict[str, Any]]:
        rows = await self._store.fetchall(
            "SELECT * FROM claude_sessions WHERE machine_id = ? AND completed_at IS NULL",
            (machine_id,),
        )
        return [_session(r) for r in rows]

    async def update(self, session_id: str, **fields: Any) -> None:
        if not fields:
            return
        for column in ("pending_permission", "usage"):
            if column in fields and fields[column] is not None:
                fields[column] = json.dumps(fields[column])
        columns = ", ".join(f"{name} = ?" for name in fields)
        await self._store.execute(f"UPDATE claude_sessions SET {columns} WHERE id = ?", (*fields.values(), session_id))

    # -- output log (the bytes live in segment files, relay/segments.py; the row keeps their bounds) -------------

    async def set_output_bounds(self, bounds: dict[str, tuple[int, int]]) -> None:
        """Record each session's output end and oldest kept offset, as its segment files have them."""
        async with self._store.write() as db:
            await db.executemany(
                "UPDATE claude_sessions SET output_bytes = MAX(output_bytes, ?), log_start_offset = ? WHERE id = ?",
                [(end, start, session_id) for session_id, (end, start) in bounds.items()],
            )

    async def existing(self, session_ids: Iterable[str]) -> set[str]:
        wanted = list(session_ids)
        found: set[str] = set()
        for i in range(0, len(wanted), 500):
            part = wanted[i : i + 500]
            rows = await self._store.fetchall(
                f"SELECT id FROM claude_sessions WHERE id IN ({', '.join('?' * len(part))})", part
            )
            found.update(r[0] for r in rows)
        return found

    # Relays before segment files kept output in the session_logs table; the relay moves it out once.

    async def with_table_output(self) -> list[str]:
        return [r[0] for r in await self._store.fetchall("SELECT DISTINCT session_id FROM session_logs")]

    async def table_output(self, session_id: str) -> list[tuple[int, bytes]]:
        rows = await self._store.fetchall(
            "SELECT offset, data FROM session_logs WHERE session_id = ? ORDER BY offset", (session_id,)
        )
        return [(r[0], bytes(r[1])) for r in rows]

    async def drop_table_output(self, session_id: str) -> None:
        await self._store.execute("DELETE FROM session_logs WHERE session_id = ?", (session_id,))
