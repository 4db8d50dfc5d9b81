"""The ASGI application: routes, error mapping, size limits. Built by :func:`create_app`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from claudenest import __version__
from claudenest.config import RelaySettings
from claudenest.errors import ClaudenestError
from claudenest.relay.auth import PairingLimits, TicketBook
from claudenest.relay.hub import Hub
from claudenest.relay.notify import Notifier, NotifyTarget
from claudenest.relay.problems import domain_error_response, error_response
from claudenest.relay.rag import ContextService
from claudenest.relay.security import SecurityHeaders
from claudenest.relay.sweeper import Sweeper
from claudenest.store import Store

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20


class BodyLimit:
    """Refuse request bodies over a size with 413, whether or not the client sent Content-Length.

    The body (at most ``limit`` bytes) is read before the app runs, so a chunked upload that grows too large is
    answered with 413 instead of failing half-way through the app's own parsing.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = error_response(413, "too_large", f"request body over {self.limit} bytes")
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await too_large(scope, receive, send)
                return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            if len(body) > self.limit:
                await too_large(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _field(error: Any) -> str:
    """The field a validation error is about: ``cols``, ``command.0``; ``body`` for the body as a whole."""
    if error.get("type") == "json_invalid":
        return "body"
    parts = [str(p) for p in error.get("loc", ()) if p != "body"]
    return ".".join(parts) or "body"


def create_app(
    store: Store,
    settings: RelaySettings,
    notify_targets: tuple[NotifyTarget, ...] = (),
    context_config: dict[str, Any] | None = None,
) -> FastAPI:
    hub = Hub(store, settings)
    context_service = ContextService(store, context_config)
    notifier = Notifier(notify_targets, is_attached=hub.attached)
    sweeper = Sweeper(store)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await hub.start()
        await notifier.start()
        hub.sessions.notifier = notifier
        sweeper.start()
        context_service.start()
        try:
            yield
        finally:
            await sweeper.stop()
            await context_service.stop()
            await hub.stop()
            await notifier.stop()

    app = FastAPI(
        title="ClaudeNest relay",
        version=__version__,
        lifespan=lifespan,
        description="Drive Claude Code on your machines. Authenticate with `Authorization: Bearer cn_...`.",
        docs_url=None,  # served by routes/dashboard.py from the relay's own copy of Swagger UI (no CDN)
        redoc_url=None,
    )
    app.state.store = store
    app.state.hub = hub
    app.state.context = context_service
    app.state.notifier = notifier
    app.state.settings = settings
    app.state.pairing_limits = PairingLimits()
    app.state.tickets = TicketBook()

    @app.exception_handler(ClaudenestError)
    async def domain_error(_: Request, exc: ClaudenestError) -> JSONResponse:
        return domain_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [{"field": _field(err), "message": err["msg"]} for err in exc.errors()]
        return error_response(422, "invalid_request", problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, exc.detail)

    from claudenest.relay.routes import (
        activity,
        auth,
        context,
        dashboard,
        instances,
        locks,
        machines,
        pages,
        pairing,
        projects,
        sessions,
        tasks,
        ws,
    )

    for module in (pages, auth, pairing, machines, sessions, ws, projects, tasks, locks, instances, activity, context):
        app.include_router(module.router)
    app.include_router(dashboard.router)  # last: its catch-all answers every path the API does not
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    app.add_middleware(SecurityHeaders)
    return app
