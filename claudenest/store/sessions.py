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

    # -- output log ---------------------------------------------------------------------------------------------

    async def append_output(self, batches: Iterable[tuple[str, int, bytes]], cap_bytes: int) -> None:
        """Persist ``(session_id, offset, data)`` chunks in one transaction; keep at most ``cap_bytes`` each."""
        by_session: dict[str, list[tuple[int, bytes]]] = {}
        for session_id, offset, data in batches:
            by_session.setdefault(session_id, []).append((offset, data))
        async with self._store.write() as db:
            for session_id, chunks in by_session.items():
                await db.executemany(
                    "INSERT OR IGNORE INTO session_logs (session_id, offset, data) VALUES (?, ?, ?)",
                    [(session_id, offset, data) for offset, data in chunks],
                )
                end = max(offset + len(data) for offset, data in chunks)
                await db.execute(
                    "UPDATE claude_sessions SET output_bytes = MAX(output_bytes, ?) WHERE id = ?",
                    (end, session_id),
                )
                row = await db.fetchone(
                    "SELECT output_bytes, log_start_offset FROM claude_sessions WHERE id = ?", (session_id,)
                )
                if row and row[0] - row[1] > cap_bytes:
                    # Drop whole chunks, oldest first, until what is kept fits; the new start records the drop.
                    keep_from = row[0] - cap_bytes
                    await db.execute(
                        "DELETE FROM session_logs WHERE session_id = ? AND offset + length(data) <= ?",
                        (session_id, keep_from),
                    )
                    first = await db.fetchone(
                        "SELECT MIN(offset) FROM session_logs WHERE session_id = ?", (session_id,)
                    )
                    await db.execute(
                        "UPDATE claude_sessions SET log_start_offset = ? WHERE id = ?",
                        (first[0] if first[0] is not None else row[0], session_id),
                    )

    async def read_output(self, session_id: str, from_offset: int, limit: int) -> tuple[int, bytes]:
        """Up to ``limit`` bytes from ``from_offset`` (or from the oldest byte kept, if that is later)."""
        rows = await self._store.fetchall(
            "SELECT offset, data FROM session_logs WHERE session_id = ? AND offset + length(data) > ? ORDER BY offset",
            (session_id, from_offset),
        )
        start: int | None = None
        out = bytearray()
        for offset, data in rows:
            if start is None:
                start = max(offset, from_offset)
                data = data[start - offset :]
            elif offset != start + len(out):
                break  # a hole: stop at contiguous bytes, the caller asks again from there
            out += data
            if len(out) >= limit:
                break
        if start is None:
            return from_offset, b""
        return start, bytes(out[:limit])
