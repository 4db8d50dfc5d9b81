"""Every message that crosses a WebSocket between agent, relay and viewers.

Pure: no I/O. ``encode_*`` / ``decode_*`` raise :class:`ProtocolError` on anything malformed.

Control messages are JSON text frames ``{"type": ..., ...}``. Terminal bytes travel as binary frames::

    kind (1 byte) | session id (16 bytes, UUID) | offset (8 bytes, big-endian) | payload

``offset`` is the position of the payload's first byte in that session's output stream (for OUTPUT frames) or
in that sender's input stream (for INPUT frames), so a receiver always knows what it has and what it lacks.
See docs/protocol.md.
"""

from __future__ import annotations

import json
import re
import struct
import uuid
from dataclasses import MISSING, asdict, dataclass, field, fields
from enum import IntEnum
from typing import Any, ClassVar, Literal

from claudenest.errors import ProtocolError

PROTOCOL_VERSION = 1

_HEADER = struct.Struct(">B16sQ")
HEADER_SIZE = _HEADER.size  # 25
MAX_OFFSET = (1 << 63) - 1


class FrameKind(IntEnum):
    OUTPUT = 1  # PTY -> agent -> relay -> viewers
    INPUT = 2  # viewer -> relay -> agent -> PTY


@dataclass(frozen=True)
class Frame:
    kind: FrameKind
    session_id: str
    offset: int
    payload: bytes

    @property
    def end(self) -> int:
        return self.offset + len(self.payload)


def encode_frame(frame: Frame) -> bytes:
    if not 0 <= frame.offset <= MAX_OFFSET:
        raise ProtocolError(f"frame offset {frame.offset} out of range")
    return _HEADER.pack(int(frame.kind), _session_bytes(frame.session_id), frame.offset) + frame.payload


def decode_frame(data: bytes, max_size: int | None = None) -> Frame:
    if len(data) < HEADER_SIZE:
        raise ProtocolError(f"binary frame of {len(data)} bytes is shorter than the {HEADER_SIZE}-byte header")
    if max_size is not None and len(data) > max_size:
        raise ProtocolError(f"binary frame of {len(data)} bytes exceeds the {max_size}-byte limit")
    kind_byte, sid, offset = _HEADER.unpack_from(data)
    try:
        kind = FrameKind(kind_byte)
    except ValueError:
        raise ProtocolError(f"unknown frame kind {kind_byte}") from None
    if offset > MAX_OFFSET:
        raise ProtocolError(f"frame offset {offset} out of range")
    return Frame(kind, str(uuid.UUID(bytes=sid)), offset, bytes(data[HEADER_SIZE:]))


_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _session_bytes(session_id: str) -> bytes:
    # Only the canonical lowercase form, so one session never has two spellings on the wire.
    if not isinstance(session_id, str) or not _UUID_RE.fullmatch(session_id):
        raise ProtocolError(f"session id {str(session_id)[:60]!r} is not a canonical lowercase UUID")
    return uuid.UUID(session_id).bytes


# --------------------------------------------------------------------------------------------------------------
# Control messages


@dataclass(frozen=True)
class Message:
    type: ClassVar[str]


@dataclass(frozen=True)
class LiveSession:
    """A session the agent still holds, announced in its hello so the relay can ask for what it lacks."""

    session_id: str
    end_offset: int
    status: str
    pid: int | None = None
    exit_code: int | None = None


@dataclass(frozen=True)
class AgentHello(Message):
    type: ClassVar[str] = "agent_hello"
    protocol: int
    agent_version: str
    hostname: str
    platform: str
    claude_version: str | None = None
    sessions: list[LiveSession] = field(default_factory=list)


@dataclass(frozen=True)
class ClientHello(Message):
    type: ClassVar[str] = "client_hello"
    protocol: int
    client_version: str


@dataclass(frozen=True)
class Welcome(Message):
    """The relay's answer to either hello."""

    type: ClassVar[str] = "welcome"
    protocol: int
    relay_version: str
    machine_id: str | None = None
    user_id: str | None = None


# relay -> agent ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spawn(Message):
    type: ClassVar[str] = "spawn"
    session_id: str
    cwd: str
    cols: int
    rows: int
    command: list[str] | None = None  # None: Claude Code
    mode: Literal["interactive", "headless"] = "interactive"
    prompt: str | None = None
    # A session in a shared project: {project_id, instance_id, instance_token, system_prompt}. The agent wires
    # the claudenest MCP server and the file-lock hook into Claude with these.
    project: dict[str, Any] | None = None


@dataclass(frozen=True)
class Resize(Message):
    type: ClassVar[str] = "resize"
    session_id: str
    cols: int
    rows: int


@dataclass(frozen=True)
class Kill(Message):
    type: ClassVar[str] = "kill"
    session_id: str


@dataclass(frozen=True)
class Resume(Message):
    """Relay -> agent: send this session's output from ``from_offset`` on, then keep streaming."""

    type: ClassVar[str] = "resume"
    session_id: str
    from_offset: int


@dataclass(frozen=True)
class Forget(Message):
    """Relay -> agent: the relay has everything of this ended session; drop it."""

    type: ClassVar[str] = "forget"
    session_id: str


# agent -> relay ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionStarted(Message):
    type: ClassVar[str] = "session_started"
    session_id: str
    pid: int
    command: list[str]
    cwd: str


@dataclass(frozen=True)
class SessionExited(Message):
    type: ClassVar[str] = "session_exited"
    session_id: str
    status: Literal["exited", "error"]
    end_offset: int
    exit_code: int | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Gap(Message):
    """Output from ``from_offset`` to ``to_offset`` is gone (older than anything kept)."""

    type: ClassVar[str] = "gap"
    session_id: str
    from_offset: int
    to_offset: int


# viewer <-> relay ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attach(Message):
    type: ClassVar[str] = "attach"
    session_id: str
    # None: the current screen (a replay from a point that redraws it, docs/protocol.md "Attaching"), then live.
    # A number: every byte from there that retention still keeps, at the viewer's own pace, then live.
    from_offset: int | None = None
    read_only: bool = False


@dataclass(frozen=True)
class Watch(Message):
    """Viewer -> relay: also send me ``session_status`` for every one of my sessions (a dashboard's list)."""

    type: ClassVar[str] = "watch"


@dataclass(frozen=True)
class Watching(Message):
    """Relay -> viewer: the ``watch`` is in place; every status change from here on is sent. A list read after
    this cannot miss an event that the socket will not bring."""

    type: ClassVar[str] = "watching"


@dataclass(frozen=True)
class Flow(Message):
    """Viewer -> relay: stop (``paused``) or restart sending to this socket. A browser pauses while its terminal
    has more output waiting to be drawn than it wants to hold; the relay's viewer backpressure applies meanwhile."""

    type: ClassVar[str] = "flow"
    paused: bool


@dataclass(frozen=True)
class Detach(Message):
    type: ClassVar[str] = "detach"
    session_id: str


@dataclass(frozen=True)
class Attached(Message):
    type: ClassVar[str] = "attached"
    session_id: str
    status: str
    from_offset: int  # the first byte the viewer will get
    end_offset: int  # what the relay holds right now
    cols: int
    rows: int
    read_only: bool
    # Terminal modes in force before ``from_offset`` (alternate screen, hidden cursor, bracketed paste, mouse,
    # application cursor keys) as escape sequences: a viewer writes them to its terminal before the first output,
    # so a replay that starts after the program switched a mode on draws as the live terminal did.
    prelude: str = ""


@dataclass(frozen=True)
class SessionStatus(Message):
    """A session's state changed: running, idle, waiting_permission, error (Claude's), exited, or a spawn error.

    ``ended`` says whether the process is gone; ``error`` alone can mean Claude reported an API or auth failure
    while its process lives on.
    """

    type: ClassVar[str] = "session_status"
    session_id: str
    status: str
    exit_code: int | None = None
    end_offset: int | None = None
    reason: str | None = None
    ended: bool = False
    event: str | None = None  # the Claude Code hook event behind the change, if any
    permission: dict[str, Any] | None = None  # the pending permission request, while waiting for one


# Claude Code awareness (agent -> relay, relay -> agent) -----------------------------------------------------------


@dataclass(frozen=True)
class SessionState(Message):
    """Agent -> relay: what Claude Code's hooks (or a headless run's stream) say about a session."""

    type: ClassVar[str] = "session_state"
    session_id: str
    event: str  # SessionStart, UserPromptSubmit, PreToolUse, PermissionRequest, Notification, Stop, ...
    status: str | None = None  # None: the event does not change the status
    detail: str | None = None
    permission: dict[str, Any] | None = None  # {request_id, tool_name, summary}


@dataclass(frozen=True)
class PermissionDecision(Message):
    """Relay -> agent: a user's answer to a pending PermissionRequest."""

    type: ClassVar[str] = "permission_decision"
    session_id: str
    request_id: str
    behavior: Literal["allow", "deny"]
    message: str | None = None


@dataclass(frozen=True)
class SessionUsage(Message):
    """Agent -> relay: token and cost totals for a session (the latest totals, never an increment)."""

    type: ClassVar[str] = "session_usage"
    session_id: str
    usage: dict[str, Any]


@dataclass(frozen=True)
class Discovery(Message):
    """Agent -> relay: skills, commands, subagents and MCP servers found on the machine."""

    type: ClassVar[str] = "discovery"
    found: dict[str, Any]


@dataclass(frozen=True)
class Error(Message):
    type: ClassVar[str] = "error"
    code: str
    message: str
    session_id: str | None = None


MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.type: cls
    for cls in (
        AgentHello,
        ClientHello,
        Welcome,
        Spawn,
        Resize,
        Kill,
        Resume,
        Forget,
        SessionStarted,
        SessionExited,
        Gap,
        Flow,
        Watching,
        Attach,
        Watch,
        Detach,
        Attached,
        SessionStatus,
        SessionState,
        PermissionDecision,
        SessionUsage,
        Discovery,
        Error,
    )
}

_MAX_DIMENSION = 1000
_UUID_FIELDS = {"session_id"}
_OFFSET_FIELDS = {"from_offset", "to_offset", "end_offset"}


def encode_message(message: Message) -> str:
    body = asdict(message)
    return json.dumps({"type": message.type, **body}, separators=(",", ":"))


def decode_message(text: str | bytes, max_size: int | None = None) -> Message:
    if max_size is not None and len(text) > max_size:
        raise ProtocolError(f"message of {len(text)} bytes exceeds the {max_size}-byte limit")
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad UTF-8, huge numbers, deep nesting
        raise ProtocolError(f"message is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(raw, dict):
        raise ProtocolError("message must be a JSON object")
    kind = raw.pop("type", None)
    if not isinstance(kind, str):
        raise ProtocolError("message has no string 'type'")
    cls = MESSAGE_TYPES.get(kind)
    if cls is None:
        raise ProtocolError(f"unknown message type {kind!r}")
    message: Message = _build(cls, raw, kind)
    return message


def _build(cls: type[Any], raw: dict[str, Any], kind: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    unknown = set(raw) - set(known)
    if unknown:
        raise ProtocolError(f"{kind}: unknown field(s) {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    for name, f in known.items():
        if name not in raw:
            if f.default is MISSING and f.default_factory is MISSING:
                raise ProtocolError(f"{kind}: missing field {name!r}")
            continue
        values[name] = _check(kind, name, str(f.type), raw[name])
    return cls(**values)


def _check(kind: str, name: str, annotation: str, value: Any) -> Any:
    optional = "None" in annotation
    if value is None:
        if optional:
            return None
        raise ProtocolError(f"{kind}: field {name!r} may not be null")
    base = annotation.replace(" | None", "")
    if base == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            raise ProtocolError(f"{kind}: field {name!r} must be an integer")
        if name in _OFFSET_FIELDS and not 0 <= value <= MAX_OFFSET:
            raise ProtocolError(f"{kind}: field {name!r} out of range")
        if name in ("cols", "rows") and not 1 <= value <= _MAX_DIMENSION:
            raise ProtocolError(f"{kind}: field {name!r} must be between 1 and {_MAX_DIMENSION}")
        return value
    if base == "bool":
        if not isinstance(value, bool):
            raise ProtocolError(f"{kind}: field {name!r} must be true or false")
        return value
    if base == "str" or base.startswith("Literal"):
        if not isinstance(value, str):
            raise ProtocolError(f"{kind}: field {name!r} must be a string")
        if base.startswith("Literal"):
            allowed = [part.strip().strip("'\"") for part in base[len("Literal[") : -1].split(",")]
            if value not in allowed:
                raise ProtocolError(f"{kind}: field {name!r} must be one of {', '.join(allowed)}")
        if name in _UUID_FIELDS:
            _session_bytes(value)
        return value
    if base == "dict[str, Any]":
        if not isinstance(value, dict):
            raise ProtocolError(f"{kind}: field {name!r} must be an object")
        return value
    if base == "list[str]":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ProtocolError(f"{kind}: field {name!r} must be a list of strings")
        return value
    if base == "list[LiveSession]":
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise ProtocolError(f"{kind}: field {name!r} must be a list of objects")
        return [_build(LiveSession, dict(v), f"{kind}.{name}") for v in value]
    raise ProtocolError(f"{kind}: field {name!r} has an unsupported type {annotation}")  # pragma: no cover
