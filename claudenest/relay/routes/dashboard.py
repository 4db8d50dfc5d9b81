"""The web dashboard (built from web/ into claudenest/relay/static) and the API documentation, all served from the
relay itself: nothing is loaded from another host.

Every dashboard path answers with index.html, so a deep link or a reload lands on the right page; the Vue router
draws it. Hashed assets are cached for a year, index.html never (a new build must be picked up at once).
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from claudenest import __version__
from claudenest.relay.problems import error_response

router = APIRouter(include_in_schema=False)

STATIC = Path(__file__).resolve().parent.parent / "static"
INDEX = STATIC / "index.html"

# Exactly the dashboard's routes (web/src/router.ts).
DASHBOARD_PATHS = re.compile(
    r"^/(|login|dashboard|machines|machines/[^/]+|sessions|sessions/new|sessions/[^/]+/terminal|projects"
    r"|projects/[^/]+|projects/[^/]+/(tasks|locks|context)|skills|mcp|commands|settings)/?$"
)
NO_CACHE = {"Cache-Control": "no-cache"}
IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}

_NOT_BUILT = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>ClaudeNest</title></head>
<body><h1>ClaudeNest relay {version}</h1>
<p>The dashboard's files are not in this installation. Install from a checkout with Node.js 18+ on the PATH
(<code>pip install .</code> builds them), or build them in place: <code>cd web &amp;&amp; npm ci &amp;&amp; npm run
build</code>. The API works without them: <a href="/openapi.json">/openapi.json</a>.</p></body></html>"""


def dashboard_built() -> bool:
    return INDEX.is_file()


def _index(status: int = 200) -> Response:
    if not dashboard_built():
        return HTMLResponse(_NOT_BUILT.format(version=__version__), status_code=503, headers=NO_CACHE)
    return FileResponse(INDEX, status_code=status, media_type="text/html", headers=NO_CACHE)


def _asset(folder: Path, name: str) -> Response:
    """A file of the build, never a path outside it."""
    path = (folder / name).resolve()
    if not path.is_relative_to(folder.resolve()) or not path.is_file():
        return Response("not found", status_code=404, media_type="text/plain")
    return FileResponse(path, headers=IMMUTABLE if folder.name == "assets" else NO_CACHE)


@router.get("/assets/{name:path}")
async def asset(name: str) -> Response:
    return _asset(STATIC / "assets", name)


@router.get("/favicon.svg")
async def favicon() -> Response:
    return _asset(STATIC, "favicon.svg")


_DOCS = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>ClaudeNest relay API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css"></head>
<body><div id="swagger-ui"></div><script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script></body></html>"""


@router.get("/docs")
async def api_docs() -> Response:
    """Swagger UI from the relay's own copy (web/scripts/copy-swagger.mjs), started by an external script."""
    if not (STATIC / "docs" / "swagger-ui-bundle.js").is_file():
        return _index()
    return HTMLResponse(_DOCS, headers=NO_CACHE)


@router.get("/docs/{name}")
async def api_docs_asset(name: str) -> Response:
    return _asset(STATIC / "docs", name)


@router.api_route("/{path:path}", methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"])
async def dashboard(path: str, request: Request) -> Response:
    """index.html for the dashboard's routes; other paths get the same page with 404, which shows "not found".
    Paths under /api and /ws that no route serves are a JSON 404, whatever the method."""
    if path.startswith(("api/", "ws/")) or path in ("api", "ws"):
        return error_response(404, "not_found", f"no route {request.url.path}")
    if request.method not in ("GET", "HEAD"):
        return error_response(405, "method_not_allowed", "Method Not Allowed", headers={"Allow": "GET, HEAD"})
    return _index(200 if DASHBOARD_PATHS.match(request.url.path) else 404)
