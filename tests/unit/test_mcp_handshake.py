"""`mcp serve` answers `initialize` before the MCP SDK is imported, exactly as the SDK would, and the SDK then holds
the rest of the conversation as if it had answered itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

from claudenest.mcp.handshake import HANDSHAKE_VERSIONS

ENV = {
    **os.environ,
    "CLAUDENEST_RELAY_URL": "http://127.0.0.1:9",  # nothing listens: these tests call no tool that reaches it
    "CLAUDENEST_INSTANCE_TOKEN": "ci_test",
    "CLAUDENEST_PROJECT_ID": "p",
    "CLAUDENEST_INSTANCE_ID": "i",
}
SDK_ONLY = (
    "from claudenest.mcp.config import McpConfig\nfrom claudenest.mcp.server import serve\nserve(McpConfig.from_env())"
)


def converse(argv: list[str], messages: list[dict[str, Any]], answers: int) -> list[dict[str, Any]]:
    """Send every message, read ``answers`` answers, then close stdin (as a client does once it has them: a server
    may drop requests still in flight at EOF) and check the server ends cleanly with nothing more to say."""
    proc = subprocess.Popen(argv, env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None
    assert proc.stdout is not None
    try:
        proc.stdin.write("".join(json.dumps(m) + "\n" for m in messages).encode())
        proc.stdin.flush()
        got = [json.loads(proc.stdout.readline()) for _ in range(answers)]
        proc.stdin.close()
        rest = proc.stdout.read()
        returncode = proc.wait(60)
        assert proc.stderr is not None
        errors = proc.stderr.read()
    finally:
        proc.kill()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    assert returncode == 0, errors.decode()
    assert not rest.strip(), rest
    return got


def initialize(version: str, request_id: int | str = 0) -> dict[str, Any]:
    params = {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}
    return {"jsonrpc": "2.0", "id": request_id, "method": "initialize", "params": params}


def test_the_versions_offered_are_the_sdks() -> None:
    assert tuple(HANDSHAKE_PROTOCOL_VERSIONS) == HANDSHAKE_VERSIONS


@pytest.mark.parametrize("version", ["2025-06-18", "2024-11-05", "1999-01-01"])
def test_the_early_answer_is_the_one_the_sdk_gives(version: str) -> None:
    shimmed = converse([sys.executable, "-m", "claudenest", "mcp", "serve"], [initialize(version, "abc")], 1)
    sdk = converse([sys.executable, "-c", SDK_ONLY], [initialize(version, "abc")], 1)
    assert shimmed == sdk


def test_the_sdk_holds_the_rest_of_the_conversation() -> None:
    answers = converse(
        [sys.executable, "-m", "claudenest", "mcp", "serve"],
        [
            initialize("2025-06-18", 1),
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
            {"jsonrpc": "2.0", "id": 3, "method": "ping"},
        ],
        3,
    )
    # Our answer to 1, then the SDK's to 2 and 3; its answer to the replayed initialize never shows.
    assert [a.get("id") for a in answers] == [1, 2, 3]
    assert "task_claim_next" in {tool["name"] for tool in answers[1]["result"]["tools"]}
    assert answers[2]["result"] == {}


def test_a_first_message_that_is_not_initialize_goes_to_the_sdk_unchanged() -> None:
    answers = converse(
        [sys.executable, "-m", "claudenest", "mcp", "serve"], [{"jsonrpc": "2.0", "id": 7, "method": "ping"}], 1
    )
    sdk = converse([sys.executable, "-c", SDK_ONLY], [{"jsonrpc": "2.0", "id": 7, "method": "ping"}], 1)
    assert answers == sdk
