"""Answer MCP's ``initialize`` before the MCP SDK is imported, then let the SDK hold the conversation.

Claude Code starts ``claudenest mcp serve`` once per project session and waits for its answer to ``initialize``.
Importing the SDK alone takes about 0.5 s (its top level loads its client and its pydantic types), so the answer
goes out first, from here: the server's capabilities and instructions do not depend on anything the SDK computes.

The SDK still sees a complete conversation, through two pipes put in place of fd 0 and fd 1: its stdin starts with
the same ``initialize`` under an id of our own, followed by everything the client sends; its answer to that copy is
dropped on the way out, and everything else passes through unchanged. Only this module knows; the SDK runs as usual.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from typing import Any

from claudenest import __version__
from claudenest.mcp.config import SERVER_NAME

# The revisions the SDK negotiates through ``initialize`` (mcp_types.version.HANDSHAKE_PROTOCOL_VERSIONS; a test
# keeps the two equal). A client asking for another gets the newest, as the SDK answers.
HANDSHAKE_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
# What build_server's MCPServer advertises (tools, and the empty prompt and resource lists every MCPServer has).
CAPABILITIES = {
    "prompts": {"listChanged": False},
    "resources": {"listChanged": False, "subscribe": False},
    "tools": {"listChanged": False},
}
log = logging.getLogger(__name__)
REPLAY_ID = "claudenest-early-initialize"


def early_answer(line: bytes, instructions: str) -> tuple[bytes, bytes] | None:
    """For an ``initialize`` request: (our answer, the request re-addressed to REPLAY_ID). None for anything else."""
    try:
        request = json.loads(line)
    except ValueError:
        return None
    if not isinstance(request, dict) or request.get("method") != "initialize" or "id" not in request:
        return None
    params = request.get("params")
    asked = params.get("protocolVersion") if isinstance(params, dict) else None
    answer: dict[str, Any] = {
        "jsonrpc": "2.0",
        "id": request["id"],
        "result": {
            "capabilities": CAPABILITIES,
            "instructions": instructions,
            "protocolVersion": asked if asked in HANDSHAKE_VERSIONS else HANDSHAKE_VERSIONS[-1],
            "serverInfo": {"name": SERVER_NAME, "version": __version__},
        },
    }
    replay = {**request, "id": REPLAY_ID}
    return _line(answer), _line(replay)


def _line(message: dict[str, Any]) -> bytes:
    return (json.dumps(message, separators=(",", ":")) + "\n").encode()


def answer_early(instructions: str) -> threading.Thread | None:
    """Read the client's first message from fd 0; if it is ``initialize``, answer it now and rewire fd 0 and fd 1
    so the SDK, started next, sees the request again and its own answer to it never reaches the client.

    Returns the thread that passes the SDK's output on: once the SDK is done, close fd 1 and join it, so the last
    answers reach the client before the process ends."""
    first = _read_line(0)
    if not first:
        return None
    early = early_answer(first, instructions)
    if early is None:
        _feed_stdin(first)
        return None
    answer, replay = early
    client_out = os.dup(1)
    _write_all(client_out, answer)
    _feed_stdin(replay)
    reader, writer = os.pipe()
    os.dup2(writer, 1)
    os.close(writer)
    forwarder = threading.Thread(target=_forward_output, args=(reader, client_out), name="mcp-stdout", daemon=True)
    forwarder.start()
    return forwarder


def _feed_stdin(first: bytes) -> None:
    """fd 0 becomes a pipe that yields ``first``, then whatever the client writes to the real stdin."""
    client_in = os.dup(0)
    reader, writer = os.pipe()
    os.dup2(reader, 0)
    os.close(reader)
    threading.Thread(target=_forward_input, args=(first, client_in, writer), name="mcp-stdin", daemon=True).start()


def _forward_input(first: bytes, source: int, sink: int) -> None:
    try:
        _write_all(sink, first)
        while chunk := os.read(source, 65536):
            _write_all(sink, chunk)
    except OSError as exc:  # the SDK stopped reading (it ended): nothing more to pass on
        log.debug("mcp stdin forwarding stopped: %s", exc)
    finally:
        os.close(sink)  # the SDK reads EOF when the client closes its end


def _forward_output(source: int, sink: int) -> None:
    """Pass the SDK's lines on as they come, but its answer to the replayed ``initialize``."""
    marker = f'"{REPLAY_ID}"'.encode()
    pending = b""
    dropped = False
    try:
        while chunk := os.read(source, 65536):
            if dropped:
                _write_all(sink, chunk)
                continue
            pending += chunk
            while b"\n" in pending and not dropped:
                line, pending = pending.split(b"\n", 1)
                if marker in line and _is_replay_answer(line):
                    dropped = True
                else:
                    _write_all(sink, line + b"\n")
            if dropped and pending:
                _write_all(sink, pending)
                pending = b""
    except OSError as exc:  # the client closed its end: nobody is left to read the answers
        log.debug("mcp stdout forwarding stopped: %s", exc)
    finally:
        os.close(sink)


def _is_replay_answer(line: bytes) -> bool:
    try:
        message = json.loads(line)
    except ValueError:
        return False
    return isinstance(message, dict) and message.get("id") == REPLAY_ID and "method" not in message


def _read_line(fd: int) -> bytes:
    """One line from ``fd``, read a byte at a time so nothing after it is taken from the client's stream."""
    out = bytearray()
    while not out.endswith(b"\n"):
        byte = os.read(fd, 1)
        if not byte:
            break
        out += byte
    return bytes(out)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
