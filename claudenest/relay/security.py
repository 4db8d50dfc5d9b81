"""What the browser is told and checked for: security headers on every response, and the same-origin rule for
requests that a session cookie authenticates (docs/security.md, "The dashboard")."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from claudenest.errors import Forbidden

# xterm.js adds <style> elements and Vue binds style attributes, so styles may be inline; scripts may not, and
# nothing may come from another host. connect-src 'self' covers the same-origin ws:/wss: socket.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class SecurityHeaders:
    """Add :data:`SECURITY_HEADERS` to every HTTP response (API answers included: they cost a few bytes)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


def expected_origin(conn: HTTPConnection, public_origin: str) -> str:
    """The relay's own origin: the configured public origin, else the scheme and Host the request came to."""
    if public_origin:
        return public_origin.rstrip("/")
    scheme = {"ws": "http", "wss": "https"}.get(conn.url.scheme, conn.url.scheme)
    return f"{scheme}://{conn.headers.get('host', '')}"


def origin_matches(conn: HTTPConnection, public_origin: str) -> bool:
    origin = conn.headers.get("origin")
    return origin is not None and origin.rstrip("/") == expected_origin(conn, public_origin)


def require_same_origin(conn: HTTPConnection, public_origin: str) -> None:
    """Refuse a change that another site could have made a signed-in browser send (CSRF), or a sign-in it could
    have pushed on a visitor (login CSRF).

    Browsers send ``Origin`` on every cross-origin request and on same-origin POST, PUT, PATCH and DELETE, and
    ``Sec-Fetch-Site`` on every request: a mismatched Origin, or a cross-site fetch without one, is refused. A request
    with neither header does not come from a browser, so no other site can have caused it. The cookie is
    SameSite=Strict as well; this check is the second lock, and the one that holds for a sibling subdomain.
    """
    origin = conn.headers.get("origin")
    if origin is None:
        if conn.headers.get("sec-fetch-site") in ("cross-site", "same-site"):
            raise Forbidden("cross-site request refused: it carries no Origin of this relay")
        return
    if not origin_matches(conn, public_origin):
        raise Forbidden(f"cross-origin request refused: Origin {origin} is not this relay's own")
