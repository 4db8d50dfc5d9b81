"""Users, personal access tokens, web sessions and one-time login links. Only token hashes are stored."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from claudenest.clock import now_iso
from claudenest.errors import Conflict, NotFound

if TYPE_CHECKING:
    from claudenest.store.connection import Store


def as_dict(row: Any) -> dict[str, Any]:
    return dict(zip(row.keys(), tuple(row), strict=True))


WEB_SESSION_TOUCH = timedelta(minutes=1)  # how stale last_used_at may get: one write a minute, not one a request


class UserQueries:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def create(self, email: str, *, password_hash: str | None = None, is_owner: bool = False) -> dict[str, Any]:
        user = {
            "id": str(uuid.uuid4()),
            "email": email.strip(),
            "password_hash": password_hash,
            "is_owner": int(is_owner),
            "created_at": now_iso(),
        }
        async with self._store.write() as db:
            if await db.fetchone("SELECT 1 FROM users WHERE email = ?", (user["email"],)):
                raise Conflict(f"a user with email {user['email']} already exists")
            await db.execute(
                "INSERT INTO users (id, email, password_hash, is_owner, created_at) VALUES (?, ?, ?, ?, ?)",
                (user["id"], user["email"], password_hash, user["is_owner"], user["created_at"]),
            )
        return public_user(user)

    async def by_email(self, email: str) -> dict[str, Any]:
        row = await self._store.fetchone("SELECT * FROM users WHERE email = ?", (email.strip(),))
        if row is None:
            raise NotFound(f"no user with email {email}")
        return as_dict(row)

    async def by_id(self, user_id: str) -> dict[str, Any]:
        row = await self._store.fetchone("SELECT * FROM users WHERE id = ?", (user_id,))
        if row is None:
            raise NotFound(f"no user {user_id}")
        return as_dict(row)

    async def owner(self) -> dict[str, Any] | None:
        row = await self._store.fetchone("SELECT * FROM users WHERE is_owner = 1 ORDER BY created_at LIMIT 1")
        return as_dict(row) if row else None

    async def all(self) -> list[dict[str, Any]]:
        rows = await self._store.fetchall("SELECT * FROM users ORDER BY created_at")
        return [public_user(as_dict(r)) for r in rows]

    # -- personal access tokens ---------------------------------------------------------------------------------

    async def add_token(
        self, user_id: str, token_hash: str, *, name: str, expires_in: timedelta | None, abilities: list[str]
    ) -> dict[str, Any]:
        token = {
            "id": str(uuid.uuid4()),
            "user_id": user_id,
            "name": name,
            "abilities": abilities,
            "expires_at": now_iso(expires_in) if expires_in else None,
            "last_used_at": None,
            "revoked_at": None,
            "created_at": now_iso(),
        }
        await self._store.execute(
            "INSERT INTO personal_access_tokens (id, user_id, name, token_hash, abilities, expires_at, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                token["id"],
                user_id,
                name,
                token_hash,
                json.dumps(abilities),
                token["expires_at"],
                token["created_at"],
            ),
        )
        return token

    async def user_for_token(self, token_hash: str) -> dict[str, Any] | None:
        """The user a live (unexpired, unrevoked) token belongs to; marks the token used."""
        row = await self._store.fetchone(
            "SELECT t.id AS token_id, t.expires_at, t.revoked_at, t.abilities, u.* FROM personal_access_tokens t"
            " JOIN users u ON u.id = t.user_id WHERE t.token_hash = ?",
            (token_hash,),
        )
        if row is None:
            return None
        found = as_dict(row)
        now = now_iso()
        if found["revoked_at"] or (found["expires_at"] and found["expires_at"] <= now):
            return None
        await self._store.execute(
            "UPDATE personal_access_tokens SET last_used_at = ? WHERE id = ?", (now, found["token_id"])
        )
        return found

    async def tokens(self, user_id: str) -> list[dict[str, Any]]:
        rows = await self._store.fetchall(
            "SELECT id, name, abilities, expires_at, last_used_at, revoked_at, created_at"
            " FROM personal_access_tokens WHERE user_id = ? ORDER BY created_at",
            (user_id,),
        )
        return [{**as_dict(r), "abilities": json.loads(r["abilities"])} for r in rows]

    async def revoke_token(self, user_id: str, token_id: str) -> None:
        changed = await self._store.execute(
            "UPDATE personal_access_tokens SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL",
            (now_iso(), token_id, user_id),
        )
        if not changed:
            raise NotFound(f"no live token {token_id}")

    # -- browser sign-in ----------------------------------------------------------------------------------------

    async def add_login_link(self, user_id: str, token_hash: str, ttl: timedelta) -> None:
        await self._store.execute(
            "INSERT INTO login_links (token_hash, user_id, expires_at) VALUES (?, ?, ?)",
            (token_hash, user_id, now_iso(ttl)),
        )

    async def use_login_link(self, token_hash: str) -> str | None:
        """The user id of an unused, unexpired link, which is spent by this call."""
        async with self._store.write() as db:
            row = await db.fetchone(
                "SELECT user_id FROM login_links WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?",
                (token_hash, now_iso()),
            )
            if row is None:
                return None
            await db.execute("UPDATE login_links SET used_at = ? WHERE token_hash = ?", (now_iso(), token_hash))
            return str(row[0])

    async def add_web_session(self, user_id: str, token_hash: str, ttl: timedelta, user_agent: str = "") -> str:
        session_id = str(uuid.uuid4())
        now = now_iso()
        await self._store.execute(
            "INSERT INTO web_sessions (id, user_id, token_hash, expires_at, created_at, user_agent, last_used_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (session_id, user_id, token_hash, now_iso(ttl), now, user_agent[:300], now),
        )
        return session_id

    async def user_for_web_session(self, token_hash: str) -> dict[str, Any] | None:
        """The user of a live browser session, with ``web_session_id``; its last use is noted once a minute."""
        row = await self._store.fetchone(
            "SELECT s.id AS web_session_id, s.last_used_at AS web_session_used_at, u.* FROM web_sessions s"
            " JOIN users u ON u.id = s.user_id WHERE s.token_hash = ? AND s.expires_at > ?",
            (token_hash, now_iso()),
        )
        if row is None:
            return None
        found = as_dict(row)
        if (found["web_session_used_at"] or "") < now_iso(-WEB_SESSION_TOUCH):
            await self._store.execute(
                "UPDATE web_sessions SET last_used_at = ? WHERE id = ?", (now_iso(), found["web_session_id"])
            )
        return found

    async def web_sessions(self, user_id: str) -> list[dict[str, Any]]:
        rows = await self._store.fetchall(
            "SELECT id, user_agent, created_at, last_used_at, expires_at FROM web_sessions"
            " WHERE user_id = ? AND expires_at > ? ORDER BY created_at DESC",
            (user_id, now_iso()),
        )
        return [as_dict(r) for r in rows]

    async def end_web_session(self, token_hash: str) -> None:
        await self._store.execute("DELETE FROM web_sessions WHERE token_hash = ?", (token_hash,))

    async def end_web_session_by_id(self, user_id: str, session_id: str) -> None:
        changed = await self._store.execute(
            "DELETE FROM web_sessions WHERE id = ? AND user_id = ?", (session_id, user_id)
        )
        if not changed:
            raise NotFound(f"no browser session {session_id}")

    async def set_password(self, user_id: str, password_hash: str) -> None:
        await self._store.execute("UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id))


def public_user(user: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": user["id"],
        "email": user["email"],
        "is_owner": bool(user["is_owner"]),
        "created_at": user["created_at"],
    }
