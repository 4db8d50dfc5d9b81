"""A loopback stand-in for Ollama (not ours, so the one thing the tests stand in for): ``POST /api/embed`` and
``POST /api/generate`` answered the way Ollama answers them, following a Plan the test can change at any time."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from claudenest.relay.embedders import DIM


@dataclass
class Plan:
    status: int = 200
    dim: int = DIM
    reply: str = "Added the thing."  # the "response" of /api/generate
    body: Any = None  # replaces the normal answer when set (bytes are sent as they are)
    delay: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (a time-out under test) is expected; anything else is printed as usual."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _normal_answer(path: str, request: dict[str, Any], plan: Plan) -> Any:
    if path == "/api/embed":
        # Deterministic, deliberately not unit-length: the embedder must normalise.
        vectors = [[float((i + j) % 7) + 0.5 for j in range(plan.dim)] for i, _ in enumerate(request["input"])]
        return {"model": request["model"], "embeddings": vectors}
    return {"model": request["model"], "created_at": "2025-01-01T00:00:00Z", "response": plan.reply, "done": True}


class FakeOllama:
    """``with FakeOllama() as ollama:`` serves on ``ollama.url`` until the block ends (or ``close()``)."""

    PATHS = ("/api/embed", "/api/generate")

    def __init__(self) -> None:
        self.plan = Plan()
        plan_ref = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                plan = plan_ref.plan
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                request = json.loads(raw)
                content_type = self.headers.get("Content-Type", "")
                plan.requests.append({"path": self.path, "content_type": content_type, "body": request})
                if plan.delay:
                    time.sleep(plan.delay)
                if self.path not in FakeOllama.PATHS:
                    self._answer(404, {"error": "404 page not found"})
                elif plan.body is not None:
                    self._answer(plan.status, plan.body)
                else:
                    self._answer(plan.status, _normal_answer(self.path, request, plan))

            def _answer(self, status: int, body: Any) -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> FakeOllama:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()


def refused_url() -> str:
    """The URL of a port that was free a moment ago and has no listener now: connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"
