"""Notification dispatch against a real loopback HTTP receiver: formats, retries, dedupe, filters, shutdown, config."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import tomllib
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from http import HTTPStatus

import httpx
import pytest

from claudenest.errors import ConfigError
from claudenest.relay.notify import (
    EVENT_KINDS,
    EventKind,
    Notification,
    Notifier,
    NotifyTarget,
    parse_targets,
)

# Every wait in here is bounded by this; the tests themselves normally finish in milliseconds.
DEADLINE = 5.0


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # loop time the request arrived


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    action: str = "answer"  # "answer", "drop" (close without a response) or "hang" (never answer)


class Receiver:
    """A minimal HTTP/1.1 server (keep-alive, Content-Length bodies) that records requests and follows a plan."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.plan: deque[Reply] = deque()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def then(self, *replies: Reply) -> None:
        self.plan.extend(replies)

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                method, path, _ = line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while (raw := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = raw.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append(Received(method, path, headers, body, asyncio.get_running_loop().time()))
                reply = self.plan.popleft() if self.plan else Reply()
                if reply.action == "drop":
                    return
                if reply.action == "hang":
                    await asyncio.Event().wait()
                if reply.delay:
                    await asyncio.sleep(reply.delay)
                extra = "".join(f"{k}: {v}\r\n" for k, v in reply.headers.items())
                head = f"HTTP/1.1 {reply.status} {HTTPStatus(reply.status).phrase}\r\nContent-Length: 0\r\n{extra}\r\n"
                writer.write(head.encode("latin-1"))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            self._handlers.discard(task)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    try:
        yield r
    finally:
        await r.close()


def note(
    kind: EventKind = "waiting_permission",
    session_id: str = "sess-1",
    key: str | None = None,
    title: str = "Permission needed",
    message: str = "Claude wants to run: rm -rf build/",
) -> Notification:
    return Notification(
        kind=kind,
        session_id=session_id,
        title=title,
        message=message,
        machine_name="laptop",
        user_id="user-1",
        dedupe_key=key or f"{session_id}:{kind}:1",
        created_at="2026-01-02T03:04:05.678Z",
    )


async def run(notifier: Notifier, *notes: Notification) -> Notifier:
    """Submit everything, then stop, which drains: afterwards every delivery has finished one way or another."""
    await notifier.start()
    for n in notes:
        notifier.submit(n)
    await asyncio.wait_for(notifier.stop(timeout=DEADLINE), DEADLINE + 1)
    return notifier


def ntfy(receiver: Receiver, **kw: object) -> NotifyTarget:
    return NotifyTarget(kind="ntfy", url=receiver.url("/my-topic"), **kw)  # type: ignore[arg-type]


def webhook(receiver: Receiver, **kw: object) -> NotifyTarget:
    return NotifyTarget(kind="webhook", url=receiver.url("/hook"), **kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------------
# Formats


async def test_ntfy_posts_plain_text_with_title_priority_tags_and_bearer(receiver: Receiver) -> None:
    target = ntfy(receiver, token="tk_secret", priority=5, tags=("robot", "warning"))
    n = await run(Notifier([target]), note())
    assert n.counters.delivered == 1
    [req] = receiver.requests
    assert (req.method, req.path) == ("POST", "/my-topic")
    assert req.body == b"Claude wants to run: rm -rf build/"
    assert req.headers["title"] == "Permission needed"
    assert req.headers["priority"] == "5"
    assert req.headers["tags"] == "robot,warning"
    assert req.headers["authorization"] == "Bearer tk_secret"
    assert req.headers["content-type"] == "text/plain; charset=utf-8"


async def test_ntfy_defaults_per_event_and_no_auth_without_token(receiver: Receiver) -> None:
    await run(
        Notifier([ntfy(receiver)]),
        note("waiting_permission", key="a"),
        note("turn_finished", key="b"),
        note("failed", key="c"),
    )
    got = [(r.headers["priority"], r.headers["tags"]) for r in receiver.requests]
    assert got == [("4", "raised_hand"), ("3", "white_check_mark"), ("4", "x")]
    assert all("authorization" not in r.headers for r in receiver.requests)


async def test_ntfy_non_ascii_title_is_rfc2047_encoded_and_newlines_folded(receiver: Receiver) -> None:
    await run(Notifier([ntfy(receiver)]), note(title="Müller's ✓ session\nline two", message="héllo ✓"))
    [req] = receiver.requests
    assert req.headers["title"].isascii()
    assert str(make_header(decode_header(req.headers["title"]))) == "Müller's ✓ session line two"
    assert req.body.decode() == "héllo ✓"


async def test_ntfy_long_body_is_kept_under_the_attachment_limit(receiver: Receiver) -> None:
    await run(Notifier([ntfy(receiver)]), note(message="é" * 5000))
    [req] = receiver.requests
    assert len(req.body) <= 4000
    assert req.body.decode().endswith("\u2026")


async def test_webhook_posts_json_with_event_header_and_bearer(receiver: Receiver) -> None:
    await run(Notifier([webhook(receiver, token="hook-token")]), note("failed", key="sess-1:failed:7"))
    [req] = receiver.requests
    assert (req.method, req.path) == ("POST", "/hook")
    assert req.headers["content-type"] == "application/json"
    assert req.headers["x-claudenest-event"] == "failed"
    assert req.headers["authorization"] == "Bearer hook-token"
    assert json.loads(req.body) == {
        "event": "failed",
        "session_id": "sess-1",
        "title": "Permission needed",
        "message": "Claude wants to run: rm -rf build/",
        "machine": "laptop",
        "created_at": "2026-01-02T03:04:05.678Z",
        "dedupe_key": "sess-1:failed:7",
    }


async def test_webhook_without_token_sends_no_authorization(receiver: Receiver) -> None:
    await run(Notifier([webhook(receiver)]), note())
    assert "authorization" not in receiver.requests[0].headers


# ---------------------------------------------------------------------------------------------------------------
# Retries


async def test_5xx_is_retried_then_delivered_exactly_once(receiver: Receiver) -> None:
    receiver.then(Reply(500), Reply(503))
    n = await run(Notifier([webhook(receiver)], backoff=0.01), note())
    assert len(receiver.requests) == 3
    assert len({r.body for r in receiver.requests}) == 1
    assert (n.counters.delivered, n.counters.failed) == (1, 0)


async def test_dropped_connection_is_retried(receiver: Receiver) -> None:
    receiver.then(Reply(action="drop"))
    n = await run(Notifier([ntfy(receiver)], backoff=0.01), note())
    assert len(receiver.requests) == 2
    assert (n.counters.delivered, n.counters.failed) == (1, 0)


async def test_429_retry_after_is_honoured_but_capped(receiver: Receiver) -> None:
    # Backoff alone would wait 1 ms; Retry-After asks for 30 s; the cap makes it 0.3 s.
    receiver.then(Reply(429, {"Retry-After": "30"}))
    n = await run(Notifier([ntfy(receiver)], backoff=0.001, max_delay=0.3), note())
    first, second = receiver.requests
    assert 0.29 <= second.at - first.at < 3.0
    assert n.counters.delivered == 1


async def test_retry_after_below_the_cap_is_used_as_given(receiver: Receiver) -> None:
    receiver.then(Reply(503, {"Retry-After": "0.2"}))
    await run(Notifier([ntfy(receiver)], backoff=0.001, max_delay=5.0), note())
    first, second = receiver.requests
    assert 0.19 <= second.at - first.at < 3.0


async def test_400_is_not_retried(receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    receiver.then(Reply(400), Reply(400))
    with caplog.at_level(logging.WARNING, logger="claudenest.relay.notify"):
        n = await run(Notifier([ntfy(receiver)], backoff=0.01), note())
    assert len(receiver.requests) == 1
    assert (n.counters.delivered, n.counters.failed) == (0, 1)
    [warning] = caplog.records
    assert "gave up" in warning.getMessage()
    assert "HTTP 400" in warning.getMessage()


async def test_gives_up_after_retries_and_logs_once_without_secrets(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.then(*[Reply(500)] * 10)
    target = NotifyTarget(kind="webhook", url=receiver.url("/hook/secret-path?key=QUERYSECRET"), token="TOKENSECRET")
    with caplog.at_level(logging.DEBUG, logger="claudenest.relay.notify"):
        n = await run(Notifier([target], retries=2, backoff=0.01), note())
    assert len(receiver.requests) == 3
    assert receiver.requests[0].path == "/hook/secret-path?key=QUERYSECRET"
    assert (n.counters.delivered, n.counters.failed) == (0, 1)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "HTTP 500" in warnings[0].getMessage()
    for secret in ("TOKENSECRET", "QUERYSECRET", "secret-path"):
        assert secret not in caplog.text


async def test_connection_refused_gives_up_after_retries(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as s:  # a port that was just free and now has no listener
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    target = NotifyTarget(kind="ntfy", url=f"http://127.0.0.1:{port}/topic")
    with caplog.at_level(logging.WARNING, logger="claudenest.relay.notify"):
        n = await run(Notifier([target], retries=2, backoff=0.01), note())
    assert (n.counters.delivered, n.counters.failed) == (0, 1)
    assert len(caplog.records) == 1
    assert "ConnectError" in caplog.text


async def test_failed_key_may_be_tried_again_later(receiver: Receiver) -> None:
    receiver.then(Reply(400))
    notifier = Notifier([ntfy(receiver)], backoff=0.01)
    await notifier.start()
    notifier.submit(note())
    await wait_until(lambda: notifier.counters.failed == 1)
    notifier.submit(note())
    await notifier.stop(timeout=DEADLINE)
    assert len(receiver.requests) == 2
    assert (notifier.counters.delivered, notifier.counters.failed) == (1, 1)


# ---------------------------------------------------------------------------------------------------------------
# Routing


async def test_same_dedupe_key_is_delivered_once_per_target(receiver: Receiver) -> None:
    n = await run(
        Notifier([ntfy(receiver), webhook(receiver)]),
        note(key="k1"),
        note(key="k1"),
        note(key="k2"),
    )
    paths = sorted(r.path for r in receiver.requests)
    assert paths == ["/hook", "/hook", "/my-topic", "/my-topic"]
    assert (n.counters.delivered, n.counters.skipped_duplicate) == (4, 2)


async def test_duplicate_while_first_is_still_retrying_is_dropped(receiver: Receiver) -> None:
    receiver.then(Reply(500))
    notifier = Notifier([ntfy(receiver)], backoff=0.05)
    await notifier.start()
    notifier.submit(note())
    await wait_until(lambda: len(receiver.requests) == 1)
    notifier.submit(note())
    await notifier.stop(timeout=DEADLINE)
    assert len(receiver.requests) == 2  # the failed try and its retry, not a second notification
    assert (notifier.counters.delivered, notifier.counters.skipped_duplicate) == (1, 1)


async def test_dedupe_memory_is_bounded(receiver: Receiver) -> None:
    await run(Notifier([ntfy(receiver)], dedupe_memory=2), note(key="a"), note(key="b"), note(key="c"), note(key="a"))
    assert len(receiver.requests) == 4  # "a" was forgotten once "c" arrived


async def test_attached_session_is_quiet(receiver: Receiver) -> None:
    n = await run(
        Notifier([ntfy(receiver)], is_attached=lambda session_id: session_id == "watched"),
        note(session_id="watched", message="watched"),
        note(session_id="unwatched", message="unwatched"),
    )
    assert [r.body for r in receiver.requests] == [b"unwatched"]
    assert (n.counters.delivered, n.counters.skipped_attached) == (1, 1)


async def test_events_filter(receiver: Receiver) -> None:
    only_failed = ntfy(receiver, events=("failed",))
    n = await run(Notifier([only_failed]), note("turn_finished"), note("waiting_permission"), note("failed"))
    [req] = receiver.requests
    assert req.headers["tags"] == "x"
    assert n.counters.delivered == 1
    assert n.counters.skipped_duplicate == n.counters.skipped_attached == 0


# ---------------------------------------------------------------------------------------------------------------
# Lifecycle


async def test_stop_drains_pending_deliveries(receiver: Receiver) -> None:
    receiver.then(*[Reply(delay=0.02)] * 5)
    notifier = Notifier([webhook(receiver)])
    await notifier.start()
    for i in range(5):
        notifier.submit(note(key=f"k{i}"))
    assert receiver.requests == []  # submit only enqueued
    await notifier.stop(timeout=DEADLINE)
    assert [json.loads(r.body)["dedupe_key"] for r in receiver.requests] == [f"k{i}" for i in range(5)]
    assert notifier.counters.delivered == 5


async def test_submitted_before_start_is_delivered_after_start(receiver: Receiver) -> None:
    notifier = Notifier([ntfy(receiver)])
    notifier.submit(note())
    await notifier.start()
    await notifier.stop(timeout=DEADLINE)
    assert notifier.counters.delivered == 1


async def test_stop_gives_up_on_a_hung_target_after_its_timeout(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.then(Reply(action="hang"))
    notifier = Notifier([ntfy(receiver)])
    await notifier.start()
    notifier.submit(note(key="a"))
    notifier.submit(note(key="b"))
    await wait_until(lambda: len(receiver.requests) == 1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with caplog.at_level(logging.WARNING, logger="claudenest.relay.notify"):
        await asyncio.wait_for(notifier.stop(timeout=0.2), DEADLINE)
    assert loop.time() - started < 2.0
    assert (notifier.counters.delivered, notifier.counters.failed) == (0, 2)
    assert "2 undelivered" in caplog.text


async def test_submit_after_stop_is_ignored(receiver: Receiver) -> None:
    notifier = Notifier([ntfy(receiver)])
    await notifier.start()
    await notifier.stop()
    notifier.submit(note())
    assert receiver.requests == []
    assert notifier.counters == type(notifier.counters)()


async def test_injected_client_is_used_and_left_open(receiver: Receiver) -> None:
    async with httpx.AsyncClient() as client:
        await run(Notifier([ntfy(receiver)], client=client), note())
        assert not client.is_closed
    assert len(receiver.requests) == 1


def test_notification_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown notification kind"):
        note(kind="finished")  # type: ignore[arg-type]


async def wait_until(predicate: Callable[[], bool], timeout: float = DEADLINE) -> None:
    """Yield to the loop until ``predicate()`` holds; fail loudly at the deadline instead of hanging."""

    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), timeout)


# ---------------------------------------------------------------------------------------------------------------
# Configuration

EXAMPLE = """
[[notify]]
kind = "ntfy"
url = "https://ntfy.sh/my-secret-topic"
token = "tk_abc123"
events = ["waiting_permission", "failed"]
priority = "high"
tags = ["robot", "computer"]

[[notify]]
kind = "webhook"
url = "http://192.168.1.5:8080/claudenest?key=x"
"""


def test_parse_targets_accepts_the_documented_example() -> None:
    targets = parse_targets(tomllib.loads(EXAMPLE)["notify"])
    assert targets == (
        NotifyTarget(
            kind="ntfy",
            url="https://ntfy.sh/my-secret-topic",
            events=("waiting_permission", "failed"),
            token="tk_abc123",
            priority=4,
            tags=("robot", "computer"),
        ),
        NotifyTarget(kind="webhook", url="http://192.168.1.5:8080/claudenest?key=x"),
    )
    assert targets[1].events == EVENT_KINDS
    assert "tk_abc123" not in repr(targets[0])
    assert targets[0].label == "ntfy https://ntfy.sh"


def test_parse_targets_without_a_notify_section() -> None:
    assert parse_targets(None) == ()
    assert parse_targets([]) == ()


@pytest.mark.parametrize(("priority", "expected"), [(1, 1), (5, 5), ("min", 1), ("URGENT", 5), ("default", 3)])
def test_parse_targets_priority_forms(priority: object, expected: int) -> None:
    [target] = parse_targets([{"kind": "ntfy", "url": "https://ntfy.sh/t", "priority": priority}])
    assert target.priority == expected


NTFY = {"kind": "ntfy", "url": "https://ntfy.sh/topic"}
HOOK = {"kind": "webhook", "url": "https://example.com/hook"}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"kind": "ntfy"}, "notify in config.toml must be an array of tables ([[notify]])"),
        (["ntfy"], "notify[0] must be a table"),
        (
            [NTFY, {**HOOK, "secret": "x"}],
            "notify[1].secret is not a known setting (known: kind, url, events, token, priority, tags)",
        ),
        ([{"url": "https://ntfy.sh/t"}], "notify[0].kind is required"),
        ([{**NTFY, "kind": "slack"}], "notify[0].kind must be one of ntfy, webhook"),
        ([{"kind": "ntfy"}], "notify[0].url is required"),
        ([NTFY, {**HOOK, "url": "ftp://example.com/x"}], "notify[1].url must be an http(s) URL"),
        ([{**HOOK, "url": "example.com/hook"}], "notify[0].url must be an http(s) URL"),
        ([{**HOOK, "url": "https:///nohost"}], "notify[0].url must be an http(s) URL"),
        ([{**HOOK, "url": "https://example.com:99999/x"}], "notify[0].url must be an http(s) URL"),
        ([{**HOOK, "url": "https://exa mple.com/"}], "notify[0].url must be an http(s) URL"),
        ([{**HOOK, "url": 42}], "notify[0].url must be an http(s) URL"),
        (
            [{**NTFY, "url": "https://ntfy.sh/"}],
            "notify[0].url must include the ntfy topic, e.g. https://ntfy.sh/my-topic",
        ),
        ([{**NTFY, "events": "failed"}], "notify[0].events must be an array of strings"),
        ([{**NTFY, "events": []}], "notify[0].events must not be empty (leave it out to get every event)"),
        (
            [{**NTFY, "events": ["failed", "done"]}],
            "notify[0].events[1] must be one of waiting_permission, turn_finished, failed",
        ),
        ([{**NTFY, "events": ["failed", "failed"]}], "notify[0].events[1] repeats failed"),
        ([{**NTFY, "token": ""}], "notify[0].token must be a non-empty string without spaces"),
        ([{**NTFY, "token": "tk_a\nX-Evil: 1"}], "notify[0].token must be a non-empty string without spaces"),
        ([{**NTFY, "token": 123}], "notify[0].token must be a non-empty string without spaces"),
        (
            [{**NTFY, "priority": 6}],
            "notify[0].priority must be 1-5 or one of min, low, default, high, max, urgent",
        ),
        (
            [{**NTFY, "priority": True}],
            "notify[0].priority must be 1-5 or one of min, low, default, high, max, urgent",
        ),
        (
            [{**NTFY, "priority": "loud"}],
            "notify[0].priority must be 1-5 or one of min, low, default, high, max, urgent",
        ),
        ([{**NTFY, "tags": "robot"}], "notify[0].tags must be an array of non-empty strings without commas"),
        ([{**NTFY, "tags": ["a,b"]}], "notify[0].tags must be an array of non-empty strings without commas"),
        ([{**NTFY, "tags": [""]}], "notify[0].tags must be an array of non-empty strings without commas"),
        ([{**HOOK, "priority": 3}], 'notify[0].priority only applies to kind = "ntfy"'),
        ([{**HOOK, "tags": ["x"]}], 'notify[0].tags only applies to kind = "ntfy"'),
    ],
)
def test_parse_targets_rejects(raw: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_targets(raw)
    assert str(info.value) == message
