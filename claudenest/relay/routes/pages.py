"""Health, metrics, and the small status page served until the dashboard exists."""

from __future__ import annotations

import html
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse

from claudenest import __version__
from claudenest.errors import AuthError
from claudenest.relay.auth import authenticate_user
from claudenest.relay.routes.deps import HubDep, StoreDep

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


_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>ClaudeNest</title>
<style>body{{font:16px system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}}
code{{background:#eee;padding:.1rem .3rem}}</style></head><body>
<h1>ClaudeNest relay</h1><p id="who">{who}</p>
<p>Version {version}. {agents} agent(s) online.</p>
<p>API documentation: <a href="/docs">/docs</a> &middot; <a href="/openapi.json">/openapi.json</a>.
The web dashboard is not built yet; use the <code>claudenest</code> CLI.</p>
<script>
// A one-time login link carries its code in the fragment, which never reaches the server's logs.
const m = location.hash.match(/code=([^&]+)/);
if (m) {{
  history.replaceState(null, "", location.pathname);
  fetch("/api/auth/login-link", {{method: "POST", headers: {{"Content-Type": "application/json"}},
    body: JSON.stringify({{code: m[1]}})}}).then(r => r.json()).then(j => {{
      document.getElementById("who").textContent = j.user ? "Signed in as " + j.user.email : j.detail;
  }});
}}
</script></body></html>"""


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
async def status_page(request: Request, store: StoreDep, hub: HubDep) -> str:
    try:
        caller = await authenticate_user(request, store)
        who = f"Signed in as {html.escape(caller.user['email'])}."
    except AuthError:
        who = "Not signed in."
    return _PAGE.format(who=who, version=__version__, agents=len(hub.agents))
