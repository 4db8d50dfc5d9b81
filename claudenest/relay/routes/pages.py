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
    return {"status": "ok", "version": __version__, "agents_online": len(hub.agents)}


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(hub: HubDep, request: Request) -> str:
    viewers = sum(len(s.attachments) for s in hub.streams.values())
    pending = sum(s.pending_bytes for s in hub.streams.values())
    lines = [
        "# TYPE claudenest_agents_online gauge",
        f"claudenest_agents_online {len(hub.agents)}",
        "# TYPE claudenest_streams gauge",
        f"claudenest_streams {len(hub.streams)}",
        "# TYPE claudenest_viewers gauge",
        f"claudenest_viewers {viewers}",
        "# TYPE claudenest_unpersisted_bytes gauge",
        f"claudenest_unpersisted_bytes {pending}",
        "# TYPE claudenest_notifications_total counter",
    ]
    counters = request.app.state.notifier.counters
    for outcome in ("delivered", "failed", "skipped_attached", "skipped_duplicate"):
        lines.append(f'claudenest_notifications_total{{outcome="{outcome}"}} {getattr(counters, outcome)}')
    return "\n".join(lines) + "\n"
