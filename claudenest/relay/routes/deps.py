"""Dependencies shared by the routes: the store, the hub, and who is calling."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from claudenest.config import RelaySettings
from claudenest.relay.auth import Caller, authenticate_user
from claudenest.relay.hub import Hub
from claudenest.store import Store


async def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def get_hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


async def get_settings(request: Request) -> RelaySettings:
    settings: RelaySettings = request.app.state.settings
    return settings


async def get_caller(request: Request) -> Caller:
    return await authenticate_user(request, request.app.state.store)


async def get_user(caller: Annotated[Caller, Depends(get_caller)]) -> dict[str, Any]:
    return caller.user


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


StoreDep = Annotated[Store, Depends(get_store)]
HubDep = Annotated[Hub, Depends(get_hub)]
UserDep = Annotated[dict[str, Any], Depends(get_user)]
CallerDep = Annotated[Caller, Depends(get_caller)]
SettingsDep = Annotated[RelaySettings, Depends(get_settings)]
