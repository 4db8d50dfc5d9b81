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


def machine_view(machine: dict[str, Any], hub: Hub) -> dict[str, Any]:
    status = "revoked" if machine["revoked_at"] else ("online" if hub.online(machine["id"]) else "offline")
    return {**machine, "status": status}


@router.get("/api/machines")
async def list_machines(user: UserDep, store: StoreDep, hub: HubDep) -> dict[str, Any]:
    return {"machines": [machine_view(m, hub) for m in await store.machines.for_user(user["id"])]}


@router.get("/api/machines/{machine_id}")
async def get_machine(machine_id: str, user: UserDep, store: StoreDep, hub: HubDep) -> dict[str, Any]:
    return {"machine": machine_view(await store.machines.get(machine_id, user["id"]), hub)}


@router.patch("/api/machines/{machine_id}")
async def rename_machine(
    machine_id: str, body: MachineUpdate, user: UserDep, store: StoreDep, hub: HubDep
) -> dict[str, Any]:
    return {"machine": machine_view(await store.machines.rename(machine_id, user["id"], body.name), hub)}


@router.delete("/api/machines/{machine_id}")
async def revoke_machine(machine_id: str, user: UserDep, store: StoreDep, hub: HubDep) -> dict[str, Any]:
    """Revoke the machine's token; a connected agent is disconnected and told why."""
    machine = await store.machines.revoke(machine_id, user["id"])
    agent = hub.agents.get(machine_id)
    if agent is not None:
        await agent.close(4001, "this machine's token was revoked")
    return {"machine": machine_view(machine, hub)}
