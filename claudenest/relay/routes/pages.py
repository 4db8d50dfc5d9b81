"""Health and metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from claudenest import __version__
from claudenest.relay.routes.deps import HubDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz(hub: HubDep) -> dict[str, Any]:
    return {"status": "ok", "version": __version__, "agents_online": hub.metrics()["agents_online"]}


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(hub: HubDep, request: Request) -> str:
    live = hub.metrics()
    lines = [
        "# TYPE claudenest_agents_online gauge",
        f"claudenest_agents_online {live['agents_online']}",
        "# TYPE claudenest_streams gauge",
        f"claudenest_streams {live['streams']}",
        "# TYPE claudenest_viewers gauge",
        f"claudenest_viewers {live['viewers']}",
        "# TYPE claudenest_unpersisted_bytes gauge",
        f"claudenest_unpersisted_bytes {live['unpersisted_bytes']}",
        "# TYPE claudenest_notifications_total counter",
    ]
    counters = request.app.state.notifier.counters
    for outcome in ("delivered", "failed", "skipped_attached", "skipped_duplicate"):
        lines.append(f'claudenest_notifications_total{{outcome="{outcome}"}} {getattr(counters, outcome)}')
    return "\n".join(lines) + "\n"
