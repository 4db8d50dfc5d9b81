"""Machines (one per paired agent) and pairing codes (RFC 8628-style device flow)."""

from __future__ import annotations

import hmac
import json
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from claudenest.clock import now_iso
from claudenest.errors import Conflict, Gone, NotFound
from claudenest.store.users import as_dict

if TYPE_CHECKING:
    from claudenest.store.connection import Store

MACHINE_COLUMNS = (
    "id, user_id, name, hostname, platform, agent_version, claude_version, last_seen_at, last_ip, revoked_at,"
    " created_at"
)


class PairingGone(Gone):
    """The code exists but can no longer be used (expired or already used)."""


class MachineQueries:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def create(
        self,
        user_id: str,
        *,
        name: str,
        hostname: str = "",
        platform: str = "",
        token_hash: str | None = None,
    ) -> dict[str, Any]:
        machine_id = str(uuid.uuid4())
        await self._store.execute(
            "INSERT INTO machines (id, user_id, name, hostname, platform, token_hash, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (machine_id, user_id, name, hostname, platform, token_hash, now_iso()),
        )
        return await self.get(machine_id)

    async def get(self, machine_id: str, user_id: str | None = None) -> dict[str, Any]:
        sql = f"SELECT {MACHINE_COLUMNS} FROM machines WHERE id = ?"
        params: tuple[str, ...] = (machine_id,)
        if user_id is not None:
            sql += " AND user_id = ?"
            params += (user_id,)
        row = await self._store.fetchone(sql, params)
        if row is None:
            raise NotFound(f"no machine {machine_id}")
        return as_dict(row)

    async def for_user(self, user_id: str) -> list[dict[str, Any]]:
        rows = await self._store.fetchall(
            f"SELECT {MACHINE_COLUMNS} FROM machines WHERE user_id = ? ORDER BY created_at", (user_id,)
        )
        return [as_dict(r) for r in rows]

    async def by_token(self, token_hash: str) -> dict[str, Any] | None:
        row = await self._store.fetchone(
            f"SELECT {MACHINE_COLUMNS} FROM machines WHERE token_hash = ? AND revoked_at IS NULL",
            (token_hash,),
        )
        return as_dict(row) if row else None

    async def set_token(self, machine_id: str, token_hash: str) -> None:
        await self._store.execute("UPDATE machines SET token_hash = ? WHERE id = ?", (token_hash, machine_id))

    async def seen(self, machine_id: str, *, ip: str | None = None, **info: str | None) -> None:
        sets = ["last_seen_at = ?"]
        params: list[Any] = [now_iso()]
        if ip is not None:
            sets.append("last_ip = ?")
            params.append(ip)
        for column in ("hostname", "platform", "agent_version", "claude_version"):
            if column in info:
                sets.append(f"{column} = ?")
                params.append(info[column])
        await self._store.execute(f"UPDATE machines SET {', '.join(sets)} WHERE id = ?", (*params, machine_id))

    async def set_discovery(self, machine_id: str, found: dict[str, Any]) -> None:
        await self._store.execute(
            "UPDATE machines SET discovery = ?, discovery_at = ? WHERE id = ?",
            (json.dumps(found), now_iso(), machine_id),
        )

    async def discovery(self, machine_id: str) -> dict[str, Any] | None:
        row = await self._store.fetchone("SELECT discovery FROM machines WHERE id = ?", (machine_id,))
        return json.loads(row[0]) if row and row[0] else None

    async def rename(self, machine_id: str, user_id: str, name: str) -> dict[str, Any]:
        changed = await self._store.execute(
            "UPDATE machines SET name = ? WHERE id = ? AND user_id = ?", (name, machine_id, user_id)
        )
        if not changed:
            raise NotFound(f"no machine {machine_id}")
        return await self.get(machine_id)

    async def revoke(self, machine_id: str, user_id: str) -> dict[str, Any]:
        changed = await self._store.execute(
            "UPDATE machines SET revoked_at = ?, token_hash = NULL WHERE id = ? AND user_id = ? AND revoked_at IS NULL",
            (now_iso(), machine_id, user_id),
        )
        if not changed:
            raise NotFound(f"no active machine {machine_id}")
        return await self.get(machine_id)

    # -- pairing ------------------------------------------------------------------------------------------------

    async def add_pairing(
        self, code: str, device_secret_hash: str, *, info: dict[str, str], ip: str, ttl: timedelta
    ) -> dict[str, Any]:
        pairing = {
            "id": str(uuid.uuid4()),
            "code": code,
            "expires_at": now_iso(ttl),
            "created_at": now_iso(),
        }
        async with self._store.write() as db:
            # A code is unique among live codes only; old ones are cleared so the space is reused.
            await db.execute(
                "DELETE FROM pairing_codes WHERE code = ? AND (expires_at <= ? OR status = 'completed')",
                (code, now_iso()),
            )
            if await db.fetchone("SELECT 1 FROM pairing_codes WHERE code = ?", (code,)):
                raise Conflict("pairing code collision")
            await db.execute(
                "INSERT INTO pairing_codes (id, code, device_secret_hash, hostname, platform, requested_name,"
                " agent_version, ip, expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    pairing["id"],
                    code,
                    device_secret_hash,
                    info["hostname"],
                    info["platform"],
                    info["name"],
                    info["agent_version"],
                    ip,
                    pairing["expires_at"],
                    pairing["created_at"],
                ),
            )
        return pairing

    async def pairing(self, code: str) -> dict[str, Any] | None:
        row = await self._store.fetchone("SELECT * FROM pairing_codes WHERE code = ?", (code,))
        return as_dict(row) if row else None

    async def mark_polled(self, pairing_id: str) -> None:
        await self._store.execute("UPDATE pairing_codes SET last_polled_at = ? WHERE id = ?", (now_iso(), pairing_id))

    async def approve_pairing(self, code: str, user_id: str, name: str | None) -> dict[str, Any]:
        """Create the machine for a pending code. Exactly one approval can win."""
        async with self._store.write() as db:
            row = await db.fetchone("SELECT * FROM pairing_codes WHERE code = ?", (code,))
            if row is None:
                raise NotFound(f"no pairing code {code}")
            pairing = as_dict(row)
            if pairing["status"] != "pending" or pairing["expires_at"] <= now_iso():
                if pairing["status"] == "withdrawn":
                    raise PairingGone(f"pairing code {code} was withdrawn: `claudenest pair` stopped on that machine")
                raise PairingGone(f"pairing code {code} has expired or was already used")
            machine_id = str(uuid.uuid4())
            await db.execute(
                "INSERT INTO machines (id, user_id, name, hostname, platform, agent_version, last_ip, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    machine_id,
                    user_id,
                    name or pairing["requested_name"],
                    pairing["hostname"],
                    pairing["platform"],
                    pairing["agent_version"],
                    pairing["ip"],
                    now_iso(),
                ),
            )
            await db.execute(
                "UPDATE pairing_codes SET status = 'approved', user_id = ?, machine_id = ? WHERE id = ?",
                (user_id, machine_id, pairing["id"]),
            )
        return await self.get(machine_id)

    async def withdraw_pairing(self, code: str, device_secret_hash: str) -> bool:
        """The agent gave up (Ctrl-C on `pair`): its code can no longer be approved. A machine approved but not
        yet handed its token is removed with it, since nobody will ever hold that token. True when withdrawn."""
        async with self._store.write() as db:
            row = await db.fetchone(
                "SELECT id, status, machine_id, device_secret_hash FROM pairing_codes WHERE code = ?", (code,)
            )
            if row is None or row["status"] not in ("pending", "approved"):
                return False
            if not hmac.compare_digest(row["device_secret_hash"], device_secret_hash):
                return False
            if row["status"] == "approved" and row["machine_id"]:
                await db.execute("DELETE FROM machines WHERE id = ? AND token_hash IS NULL", (row["machine_id"],))
            await db.execute(
                "UPDATE pairing_codes SET status = 'withdrawn', machine_id = NULL WHERE id = ?", (row["id"],)
            )
            return True

    async def complete_pairing(self, pairing_id: str, token_hash: str) -> bool:
        """Hand the machine its token hash; true only for the one call that completes the code."""
        async with self._store.write() as db:
            row = await db.fetchone(
                "SELECT machine_id FROM pairing_codes WHERE id = ? AND status = 'approved'", (pairing_id,)
            )
            if row is None:
                return False
            await db.execute("UPDATE machines SET token_hash = ? WHERE id = ?", (token_hash, row[0]))
            await db.execute("UPDATE pairing_codes SET status = 'completed' WHERE id = ?", (pairing_id,))
            return True
