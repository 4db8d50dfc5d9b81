"""Push notifications (ntfy or a generic webhook) when a session waits for permission, finishes a turn, or fails.

Targets come from ``[[notify]]`` tables in config.toml and apply relay-wide. Delivery never blocks the caller:
``Notifier.submit`` only routes and enqueues; one worker task per target posts, so a slow or dead target never
delays another. A push is dropped when someone is attached to the session (they are already watching), and a
dedupe key is delivered at most once per target, because hooks can fire the same event more than once.

Example config.toml::

    [[notify]]
    kind = "ntfy"
    url = "https://ntfy.sh/my-secret-topic"
    token = "tk_..."                       # optional, sent as Authorization: Bearer
    events = ["waiting_permission", "failed"]  # optional, default: all three
    priority = "high"                      # optional, 1-5 or min/low/default/high/max/urgent
    tags = ["robot"]                       # optional

    [[notify]]
    kind = "webhook"
    url = "https://hooks.example.com/claudenest"
    token = "s3cret"                       # optional
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import math
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal, TypeGuard, cast
from urllib.parse import urlsplit

import httpx

from claudenest import __version__
from claudenest.clock import now_iso
from claudenest.errors import ConfigError
from claudenest.protocol import SessionState

log = logging.getLogger(__name__)

EventKind = Literal["waiting_permission", "turn_finished", "failed"]
TargetKind = Literal["ntfy", "webhook"]

EVENT_KINDS: tuple[EventKind, ...] = ("waiting_permission", "turn_finished", "failed")
TARGET_KINDS: tuple[TargetKind, ...] = ("ntfy", "webhook")

# ntfy accepts these names for its 1-5 scale; "urgent" is its alias for max.
NTFY_PRIORITY_NAMES = {"min": 1, "low": 2, "default": 3, "high": 4, "max": 5, "urgent": 5}

# Used when a target sets no priority/tags: a waiting permission or a failure needs the user, a finished turn
# is merely good to know. The tags are ntfy emoji short codes, so the phone shows an icon per event.
_DEFAULT_PRIORITY: dict[EventKind, int] = {"waiting_permission": 4, "turn_finished": 3, "failed": 4}
_DEFAULT_TAGS: dict[EventKind, tuple[str, ...]] = {
    "waiting_permission": ("raised_hand",),
    "turn_finished": ("white_check_mark",),
    "failed": ("x",),
}

# ntfy turns a body larger than its message limit (4096 bytes by default) into a file attachment, which shows
# on the phone as a download instead of text; stay under it.
NTFY_BODY_LIMIT = 4000

_KNOWN_KEYS = ("kind", "url", "events", "token", "priority", "tags")
_NTFY_ONLY_KEYS = ("priority", "tags")


@dataclass(frozen=True)
class NotifyTarget:
    kind: TargetKind
    url: str
    events: tuple[EventKind, ...] = EVENT_KINDS
    token: str | None = field(default=None, repr=False)  # kept out of repr so a logged target never leaks it
    priority: int | None = None  # ntfy only; None: per-event default
    tags: tuple[str, ...] = ()  # ntfy only; empty: per-event default

    @property
    def label(self) -> str:
        """What logs may show: the path of an ntfy URL is its topic, which is as good as a password."""
        parts = urlsplit(self.url)
        host = parts.hostname or "?"
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        return f"{self.kind} {parts.scheme}://{host}"


@dataclass(frozen=True)
class Notification:
    kind: EventKind
    session_id: str
    title: str
    message: str
    machine_name: str
    user_id: str
    dedupe_key: str  # e.g. f"{session_id}:{kind}:{turn_or_request_id}"
    created_at: str = field(default_factory=now_iso)

    def __post_init__(self) -> None:
        # Literal types are not checked at run time, and a typo here would silently match no target.
        if self.kind not in EVENT_KINDS:
            raise ValueError(f"unknown notification kind {self.kind!r}")


# Which Claude Code events are worth a push notification (the policy; the Notifier decides whom and whether).
NOTIFY_ON: dict[str, EventKind] = {
    "PermissionRequest": "waiting_permission",
    "Stop": "turn_finished",
    "StopFailure": "failed",
}
NOTIFY_TITLES: dict[EventKind, str] = {
    "waiting_permission": "Claude is waiting for your permission",
    "turn_finished": "Claude finished its turn",
    "failed": "Claude stopped with an error",
}


def notification_kind(event: str, status: str) -> EventKind | None:
    """The notification a Claude Code event calls for, if any (a headless result that failed counts as failed)."""
    if event == "Result" and status == "error":
        return "failed"
    return NOTIFY_ON.get(event)


def notification_for(
    kind: EventKind, state: SessionState, session_id: str, user_id: str, machine_name: str
) -> Notification:
    request_id = (state.permission or {}).get("request_id", now_iso())
    return Notification(
        kind=kind,
        session_id=session_id,
        title=f"{machine_name}: {NOTIFY_TITLES[kind]}",
        message=(state.detail or "")[:2000],
        machine_name=machine_name,
        user_id=user_id,
        dedupe_key=f"{session_id}:{kind}:{request_id}",
    )


@dataclass
class NotifyCounters:
    """Totals since start, for /metrics. delivered, failed and skipped_duplicate count per target."""

    delivered: int = 0
    failed: int = 0
    skipped_attached: int = 0
    skipped_duplicate: int = 0


# ---------------------------------------------------------------------------------------------------------------
# Configuration


def parse_targets(raw: object) -> tuple[NotifyTarget, ...]:
    """Validate the ``notify`` value of config.toml (an array of tables); None means no targets."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError("notify in config.toml must be an array of tables ([[notify]])")
    return tuple(_parse_target(i, entry) for i, entry in enumerate(raw))


def _parse_target(i: int, entry: object) -> NotifyTarget:
    where = f"notify[{i}]"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be a table")
    for key in entry:
        if key not in _KNOWN_KEYS:
            raise ConfigError(f"{where}.{key} is not a known setting (known: {', '.join(_KNOWN_KEYS)})")

    kind = entry.get("kind")
    if kind is None:
        raise ConfigError(f"{where}.kind is required")
    if kind not in TARGET_KINDS:
        raise ConfigError(f"{where}.kind must be one of {', '.join(TARGET_KINDS)}")
    kind = cast(TargetKind, kind)
    if kind != "ntfy":
        for key in _NTFY_ONLY_KEYS:
            if key in entry:
                raise ConfigError(f'{where}.{key} only applies to kind = "ntfy"')

    url = entry.get("url")
    if url is None:
        raise ConfigError(f"{where}.url is required")
    if not _is_http_url(url):
        raise ConfigError(f"{where}.url must be an http(s) URL")
    if kind == "ntfy" and not urlsplit(url).path.strip("/"):
        raise ConfigError(f"{where}.url must include the ntfy topic, e.g. https://ntfy.sh/my-topic")

    return NotifyTarget(
        kind=kind,
        url=url,
        events=_parse_events(where, entry.get("events")),
        token=_parse_token(where, entry.get("token")),
        priority=_parse_priority(where, entry.get("priority")),
        tags=_parse_tags(where, entry.get("tags")),
    )


def _is_http_url(value: object) -> TypeGuard[str]:
    if not isinstance(value, str) or any(c.isspace() for c in value):
        return False
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 -- raises ValueError on a malformed port, which httpx would only reject later
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _parse_events(where: str, value: object) -> tuple[EventKind, ...]:
    if value is None:
        return EVENT_KINDS
    if not isinstance(value, list):
        raise ConfigError(f"{where}.events must be an array of strings")
    if not value:
        # An empty list would make a target that never fires, which is surely not what was meant.
        raise ConfigError(f"{where}.events must not be empty (leave it out to get every event)")
    events: list[EventKind] = []
    for j, event in enumerate(value):
        if event not in EVENT_KINDS:
            raise ConfigError(f"{where}.events[{j}] must be one of {', '.join(EVENT_KINDS)}")
        if event in events:
            raise ConfigError(f"{where}.events[{j}] repeats {event}")
        events.append(cast(EventKind, event))
    return tuple(events)


def _parse_token(where: str, value: object) -> str | None:
    if value is None:
        return None
    # Whitespace (above all a newline) would corrupt or inject into the Authorization header.
    if not isinstance(value, str) or not value or not value.isascii() or any(c.isspace() for c in value):
        raise ConfigError(f"{where}.token must be a non-empty string without spaces")
    return value


def _parse_priority(where: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value.lower() in NTFY_PRIORITY_NAMES:
        return NTFY_PRIORITY_NAMES[value.lower()]
    # bool is an int subclass; `priority = true` is a mistake, not 1.
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 5:
        return value
    raise ConfigError(f"{where}.priority must be 1-5 or one of {', '.join(NTFY_PRIORITY_NAMES)}")


def _parse_tags(where: str, value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    # ntfy takes tags as one comma-separated header, so a comma inside a tag would split it in two.
    if not isinstance(value, list) or not all(
        isinstance(tag, str) and tag.strip() and "," not in tag and not any(c in tag for c in "\r\n") for tag in value
    ):
        raise ConfigError(f"{where}.tags must be an array of non-empty strings without commas")
    return tuple(tag.strip() for tag in value)


# ---------------------------------------------------------------------------------------------------------------
# Request building


def _header_text(value: str) -> str:
    """One header-safe line. httpx only sends ASCII header values; ntfy decodes RFC 2047 encoded words."""
    value = " ".join(value.split())  # newlines in a title would break (or inject into) the header block
    if value.isascii():
        return value
    return "=?utf-8?b?" + base64.b64encode(value.encode()).decode("ascii") + "?="


def _truncate_utf8(text: str, limit: int) -> str:
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode(errors="ignore") + "\u2026"


def build_request(target: NotifyTarget, n: Notification) -> tuple[dict[str, str], bytes]:
    """Headers and body of the POST for one notification to one target."""
    headers = {"User-Agent": f"claudenest/{__version__}"}
    if target.token:
        headers["Authorization"] = f"Bearer {target.token}"
    if target.kind == "ntfy":
        priority = target.priority if target.priority is not None else _DEFAULT_PRIORITY[n.kind]
        tags = target.tags or _DEFAULT_TAGS[n.kind]
        headers |= {
            "Content-Type": "text/plain; charset=utf-8",
            "Title": _header_text(n.title),
            "Priority": str(priority),
            "Tags": _header_text(",".join(tags)),
        }
        return headers, _truncate_utf8(n.message, NTFY_BODY_LIMIT).encode()
    payload = {
        "event": n.kind,
        "session_id": n.session_id,
        "title": n.title,
        "message": n.message,
        "machine": n.machine_name,
        "created_at": n.created_at,
        "dedupe_key": n.dedupe_key,
    }
    headers |= {"Content-Type": "application/json", "X-Claudenest-Event": n.kind}
    return headers, json.dumps(payload, ensure_ascii=False).encode()


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds from a Retry-After header; None for the HTTP-date form, which would need our clock to agree."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


# ---------------------------------------------------------------------------------------------------------------
# Delivery


class _Lane:
    """One target's queue, worker and memory of dedupe keys already claimed for it."""

    def __init__(self, index: int, target: NotifyTarget, queue_limit: int) -> None:
        self.index = index
        self.target = target
        self.name = f"notify[{index}] ({target.label})"
        self.queue: asyncio.Queue[Notification] = asyncio.Queue(maxsize=queue_limit)
        self.seen: OrderedDict[str, None] = OrderedDict()
        self.task: asyncio.Task[None] | None = None
        self.overflowing = False


class Notifier:
    def __init__(
        self,
        targets: Iterable[NotifyTarget],
        *,
        client: httpx.AsyncClient | None = None,
        retries: int = 4,
        backoff: float = 0.5,
        is_attached: Callable[[str], bool] | None = None,
        max_delay: float = 60.0,
        queue_limit: int = 1000,
        dedupe_memory: int = 10_000,
    ) -> None:
        if retries < 0 or backoff < 0 or max_delay < 0 or queue_limit < 1 or dedupe_memory < 1:
            raise ValueError("retries, backoff and max_delay must be >= 0; queue_limit and dedupe_memory >= 1")
        self.targets = tuple(targets)
        self.retries = retries
        self.backoff = backoff
        self.max_delay = max_delay  # caps both the exponential backoff and a server's Retry-After
        self.dedupe_memory = dedupe_memory
        self.counters = NotifyCounters()
        self._is_attached = is_attached
        self._client = client
        self._owns_client = client is None
        self._lanes = [_Lane(i, t, queue_limit) for i, t in enumerate(self.targets)]
        self._pending = 0  # queued or in flight, over all lanes
        self._started = False
        self._stopped = False

    # -- lifecycle ------------------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._started or self._stopped:
            return
        self._started = True
        if self._client is None:
            # No redirects: following one would turn the POST into a GET or resend the token elsewhere;
            # failing visibly makes the user fix the URL instead.
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(10.0), follow_redirects=False)
        for lane in self._lanes:
            lane.task = asyncio.create_task(self._work(lane), name=f"notify-{lane.index}")

    async def stop(self, timeout: float = 10.0) -> None:
        """Deliver what is queued or in flight for up to ``timeout`` seconds, then abandon the rest."""
        if self._stopped:
            return
        self._stopped = True
        tasks = [lane.task for lane in self._lanes if lane.task is not None]
        if tasks:
            drained = asyncio.gather(*(lane.queue.join() for lane in self._lanes))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(drained, timeout)
        if self._pending:
            # Counted before cancelling: an in-flight delivery's own bookkeeping would otherwise race with this.
            self.counters.failed += self._pending
            log.warning("notifications: %d undelivered at shutdown, abandoned", self._pending)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._owns_client and self._client is not None:
            await self._client.aclose()

    # -- routing --------------------------------------------------------------------------------------------

    def submit(self, n: Notification) -> None:
        """Route and enqueue; never blocks and never raises for delivery problems."""
        if self._stopped:
            log.debug("notification %s after stop: dropped", n.dedupe_key)
            return
        lanes = [lane for lane in self._lanes if n.kind in lane.target.events]
        if not lanes:
            return
        if self._attached(n.session_id):
            self.counters.skipped_attached += 1
            return
        for lane in lanes:
            if n.dedupe_key in lane.seen:
                lane.seen.move_to_end(n.dedupe_key)
                self.counters.skipped_duplicate += 1
                continue
            try:
                lane.queue.put_nowait(n)
            except asyncio.QueueFull:
                self.counters.failed += 1
                # A dead target fills its queue with every event; one line per outage, not one per event.
                if not lane.overflowing:
                    lane.overflowing = True
                    log.warning("%s: queue full, dropping notifications until it drains", lane.name)
                continue
            self._pending += 1
            # Claimed at enqueue, not on success, so a repeat arriving while the first is still retrying is dropped.
            lane.seen[n.dedupe_key] = None
            if len(lane.seen) > self.dedupe_memory:
                lane.seen.popitem(last=False)

    def _attached(self, session_id: str) -> bool:
        if self._is_attached is None:
            return False
        try:
            return self._is_attached(session_id)
        except Exception:
            # A redundant push is better than a lost one.
            log.exception("notifications: is_attached(%s) failed; notifying anyway", session_id)
            return False

    # -- delivery -------------------------------------------------------------------------------------------

    async def _work(self, lane: _Lane) -> None:
        while True:
            n = await lane.queue.get()
            try:
                try:
                    ok = await self._deliver(lane, n)
                except Exception as exc:  # a bug here must not kill the lane for every later notification
                    log.error("%s: delivery crashed: %s", lane.name, type(exc).__name__)
                    ok = False
                if ok:
                    self.counters.delivered += 1
                else:
                    self.counters.failed += 1
                    # Forget the key so a later repeat of the same event gets another chance.
                    lane.seen.pop(n.dedupe_key, None)
            finally:
                self._pending -= 1
                lane.queue.task_done()
            if lane.queue.empty():
                lane.overflowing = False

    async def _deliver(self, lane: _Lane, n: Notification) -> bool:
        assert self._client is not None
        headers, body = build_request(lane.target, n)
        reason = ""
        for attempt in range(self.retries + 1):
            delay = min(self.backoff * 2**attempt, self.max_delay)
            try:
                response = await self._client.post(lane.target.url, content=body, headers=headers)
            except httpx.TransportError as exc:
                # The class name only: httpx messages can carry the URL, whose path or query may be secret.
                reason = type(exc).__name__
            else:
                status = response.status_code
                if response.is_success:
                    return True
                reason = f"HTTP {status}"
                if status != 429 and not 500 <= status <= 599:
                    break  # the request itself is wrong (bad token, unknown topic): repeating it cannot help
                server_delay = _retry_after(response)
                if server_delay is not None:
                    delay = min(server_delay, self.max_delay)
            if attempt < self.retries:
                log.debug("%s: %s for %s, retrying in %.2fs", lane.name, reason, n.dedupe_key, delay)
                await asyncio.sleep(delay)
        log.warning("%s: gave up on %s %s: %s", lane.name, n.kind, n.dedupe_key, reason)
        return False
