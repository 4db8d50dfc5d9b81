"""A user's machines: list, show, rename, revoke."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from claudenest.relay.hub import Hub
from claudenest.relay.routes.deps import HubDep, StoreDep, UserDep

router = APIRouter(tags=["machines"])


class MachineUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)


def machine_view(machine: dict[str, Any], hub: Hub, totals: dict[str, dict[str, Any]]) -> dict[str, Any]:
    status = "revoked" if machine["revoked_at"] else ("online" if hub.online(machine["id"]) else "offline")
    usage = totals.get(machine["id"], {"sessions": 0, "total_tokens": 0, "total_cost": 0.0})
    return {**machine, "status": status, **usage}


@router.get("/api/machines")
async def list_machines(user: UserDep, store: StoreDep, hub: HubDep) -> dict[str, Any]:
    totals = await store.sessions.totals_by_machine(user["id"])
    return {"machines": [machine_view(m, hub, totals) for m in await store.machines.for_user(user["id"])]}


@router.get("/api/machines/{machine_id}")
async def get_machine(machine_id: str, user: UserDep, store: StoreDep, hub: HubDep) -> dict[str, Any]:
    machine = await store.machines.get(machine_id, user["id"])
    return {"machine": machine_view(machine, hub, await store.sessions.totals_by_machine(user["id"]))}


@router.get("/api/machines/{machine_id}/discovery")
async def machine_discovery(machine_id: str, user: UserDep, store: StoreDep) -> dict[str, Any]:
    """Skills, slash commands, subagents and MCP servers the machine's agent found (null before it reported)."""
    await store.machines.get(machine_id, user["id"])
    return {"machine_id": machine_id, "discovery": await store.machines.discovery(machine_id)}


@router.patch("/api/machines/{machine_id}")
async def rename_machine(
    machine_id: str, body: MachineUpdate, user: UserDep, store: StoreDep, hub: HubDep
) -> dict[str, Any]:
    machine = await store.machines.rename(machine_id, user["id"], body.name)
    return {"machine": machine_view(machine, hub, await store.sessions.totals_by_machine(user["id"]))}


@router.delete("/api/machines/{machine_id}")
async def revoke_machine(machine_id: str, user: UserDep, store: StoreDep, hub: HubDep) -> dict[str, Any]:
    """Revoke the machine's token; a connected agent is disconnected and told why."""
    machine = await store.machines.revoke(machine_id, user["id"])
    await hub.disconnect_machine(machine_id, 4001, "this machine's token was revoked")
    return {"machine": machine_view(machine, hub, {})}
