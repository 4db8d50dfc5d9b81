"""Run the relay: take the database, build the app, serve it with uvicorn until told to stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import uvicorn

from claudenest.config import RelaySettings, paths, read_config_file
from claudenest.errors import ConfigError
from claudenest.relay.app import create_app
from claudenest.relay.notify import parse_targets
from claudenest.store import Store

log = logging.getLogger(__name__)


@dataclass
class RunningRelay:
    server: uvicorn.Server
    store: Store
    url: str
    # Work that lives as long as the relay (the embedded agent of `claudenest up`); cancelled at shutdown.
    companions: list[asyncio.Task[None]] = field(default_factory=list)


class _DenialIsNotAnError(logging.Filter):
    """uvicorn's websockets-sansio protocol logs "ASGI callable returned without completing handshake" after a
    WebSocket denial response (our 401/403 before an upgrade), although the response went out. Drop that line
    only, so refused connections do not look like server errors in the journal."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "ASGI callable returned without completing handshake."


logging.getLogger("uvicorn.error").addFilter(_DenialIsNotAnError())


class RelayServer(uvicorn.Server):
    """uvicorn's server, stopping our companions first on SIGINT/SIGTERM and exiting 0 after a clean stop.

    (uvicorn re-raises the captured signal after shutdown, which makes a clean `systemctl stop` look like a crash
    to scripts that check the exit status.) A second signal forces the exit.
    """

    companions: list[asyncio.Task[None]]

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit:
            self.force_exit = True
        self.should_exit = True
        loop = getattr(self, "loop", None)
        for task in getattr(self, "companions", []):
            if loop is not None:
                loop.call_soon_threadsafe(task.cancel)


def database_path(settings: RelaySettings) -> str:
    return settings.database or str(paths().ensure().database)


def url_file(database: str) -> Path:
    """Where a running relay notes the URL it serves (its port may have been picked by the OS), for
    `relay login-link` on the same box; removed when the relay stops."""
    return Path(database + ".url")


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose proto says TCP, and
    # accepted sockets inherit it. With proto 0 every response written in two parts (headers, then body) waited
    # for the client's delayed ACK: 40 ms per HTTP request.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror} (choose another --port)") from None
    sock.set_inheritable(True)
    return sock


async def serve(
    settings: RelaySettings,
    on_ready: Callable[[RunningRelay], None] | None = None,
    prepare: Callable[[Store, str], Awaitable[None]] | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM (uvicorn's handlers) or ``server.should_exit``.

    ``prepare(store, url)`` runs once the database is ours and the port is bound, before the first request.
    """
    store = await Store.open(database_path(settings), exclusive=True)
    running: RunningRelay | None = None
    try:
        sock = bind(settings.host, settings.port)
        port = sock.getsockname()[1]
        scheme = "https" if settings.tls_cert else "http"
        host = settings.host if settings.host not in ("0.0.0.0", "::") else "127.0.0.1"
        url = f"{scheme}://{host if ':' not in host else f'[{host}]'}:{port}"
        if prepare is not None:
            await prepare(store, url)
        config_file = read_config_file()
        app = create_app(
            store, settings, parse_targets(config_file.get("notify")), context_config=config_file.get("context")
        )
        config = uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            ws="websockets-sansio",
            ws_max_size=settings.max_frame_bytes,
            # Terminal frames are small and latency-bound; per-message deflate cost >40% of relay CPU and
            # halved 10-viewer throughput in scripts/bench_terminal.py (docs/benchmarks.md).
            ws_per_message_deflate=False,
            ws_ping_interval=15,
            ws_ping_timeout=30,
            ssl_certfile=settings.tls_cert or None,
            ssl_keyfile=settings.tls_key or None,
            proxy_headers=bool(settings.trusted_proxies),
            forwarded_allow_ips=list(settings.trusted_proxies) or None,
            timeout_graceful_shutdown=5,
        )
        server = RelayServer(config)
        running = RunningRelay(server=server, store=store, url=url)
        server.companions = running.companions
        server.loop = asyncio.get_running_loop()  # type: ignore[attr-defined]
        serve_task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not serve_task.done():
            await asyncio.sleep(0.02)
        if server.started:
            url_file(store.path).write_text(url + "\n")
            log.info("relay listening on %s (database %s)", url, store.path)
            if on_ready is not None:
                on_ready(running)
        await serve_task
    finally:
        if running is not None:
            for task in running.companions:
                task.cancel()
            for task in running.companions:
                with contextlib.suppress(BaseException):
                    await task
        if running is not None:
            url_file(store.path).unlink(missing_ok=True)
        await store.close()
