"""The real Claude Code CLI (@anthropic-ai/claude-code 2.1.197 from npm, installed by scripts/test), offline and
logged out: version detection, a headless run's "Not logged in" surfaced, our injected hooks reaching the agent,
and an interactive session's screen reaching a viewer."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from claudenest.client import RelayClient
from claudenest.protocol import SessionStatus, Watch, Watching, decode_message, encode_message
from tests.e2e.harness import Agent, Relay, User, add_user, pair_agent, timeout, wait_until

REPO = Path(__file__).parents[2]


def real_claude() -> str | None:
    candidate = os.environ.get("CLAUDENEST_TEST_CLAUDE") or str(REPO / ".tools" / "node_modules" / ".bin" / "claude")
    return candidate if Path(candidate).exists() else shutil.which("claude")


CLAUDE = real_claude()
if CLAUDE is None:
    if os.environ.get("CLAUDENEST_REQUIRE_REAL_CLAUDE"):
        raise RuntimeError("scripts/test installs the real Claude Code CLI into .tools/; it is missing")
    pytestmark = pytest.mark.skip(reason="the real Claude Code CLI is not installed (scripts/test installs it)")


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Relay, User, Agent, Path]]:
    root = tmp_path_factory.mktemp("real")
    relay = Relay(root / "relay").start()
    user = add_user(relay, "me@example.com", root / "cli")
    project = root / "project"
    project.mkdir()
    config_dir = root / "claude-config"
    config_dir.mkdir()
    # Onboarding done and this folder trusted, as a user who ran claude here once would have it.
    (config_dir / ".claude.json").write_text(
        json.dumps({"hasCompletedOnboarding": True, "projects": {str(project): {"hasTrustDialogAccepted": True}}})
    )
    env = {
        "CLAUDENEST_AGENT_CLAUDE_PATH": str(CLAUDE),
        "CLAUDE_CONFIG_DIR": str(config_dir),
        "HOME": str(root),
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    agent = pair_agent(relay, user, root / "agent", "real", extra_env=env)
    try:
        yield relay, user, agent, project
    finally:
        agent.stop()
        relay.stop()


def show(user: User, sid: str) -> dict:
    return json.loads(user.cli("sessions", "show", sid, "--json").stdout)["session"]


def screen_text(raw: str) -> str:
    """Terminal bytes without escape sequences and spacing, enough to find words on Claude's screen."""
    return re.sub(r"\s+", "", re.sub(r"\x1b(\[[0-9;?<>=]*[ -/]*[@-~]|\][^\x07]*\x07|[()][A-Za-z0-9]|[=>])", "", raw))


def test_version_is_detected(real: tuple[Relay, User, Agent, Path]) -> None:
    _, user, _, _ = real
    machine = json.loads(user.cli("machines", "show", "real", "--json").stdout)["machine"]
    assert machine["claude_version"] == "2.1.197"


def test_headless_not_logged_in_is_surfaced_and_hooks_reach_the_agent(real: tuple[Relay, User, Agent, Path]) -> None:
    relay, user, agent, project = real

    async def run() -> tuple[str, list[str]]:
        async with RelayClient(relay.url, user.token) as api:
            ws = await api.connect_viewer()
            await ws.send(encode_message(Watch()))
            # The relay acknowledges the watch: from here on no status change can be missed (no sleep that hopes).
            assert isinstance(decode_message(await asyncio.wait_for(ws.recv(), timeout(10))), Watching)
            session = await api.create_session(
                machine_id=agent.machine_id, cwd=str(project), mode="headless", prompt="say hi"
            )
            events: list[str] = []
            while True:
                raw = await asyncio.wait_for(ws.recv(), timeout(60))
                if not isinstance(raw, str) or not isinstance(message := decode_message(raw), SessionStatus):
                    continue
                if message.session_id == session["id"]:
                    events.append(message.event or f"<{message.status}>")
                    if message.ended:
                        break
            await ws.close()
            return session["id"], events

    sid, events = asyncio.run(run())
    for hook in ("SessionStart", "StopFailure", "SessionEnd"):  # delivered by our --settings injection
        assert hook in events, events
    shown = show(user, sid)
    assert shown["status"] == "error"
    assert "Not logged in" in shown["status_detail"]
    assert "Not logged in" in user.cli("sessions", "logs", sid).stdout


def test_interactive_session_reaches_a_viewer_and_reports_the_login_failure(
    real: tuple[Relay, User, Agent, Path],
) -> None:
    _, user, _, project = real
    sid = json.loads(user.cli("sessions", "new", "--cwd", str(project), "--json").stdout)["session"]["id"]
    wait_until(lambda: "Notloggedin" in screen_text(user.cli("sessions", "logs", sid).stdout), seconds=30)
    user.cli("sessions", "send", sid, "hello")
    failed = wait_until(lambda: (s := show(user, sid))["status"] == "error" and s, seconds=30)
    assert "authentication_failed" in failed["status_detail"]
    assert failed["ended"] is False
    user.cli("sessions", "kill", sid)


def test_real_cli_accepts_the_generated_mcp_config_and_connects_to_the_claudenest_server(tmp_path: Path) -> None:
    import subprocess
    import sys

    from claudenest.agent.sessions import SessionRegistry
    from claudenest.protocol import Spawn

    registry = SessionRegistry(
        ring_bytes=1 << 16,
        claude_path="",
        on_output=lambda _: None,
        on_ended=lambda _: None,
        relay_url="http://127.0.0.1:9",
    )
    project = {"project_id": "p", "instance_id": "i", "instance_token": "ci_test", "system_prompt": "rules"}
    spawn = Spawn(
        session_id="00000000-0000-4000-8000-000000000001", cwd=str(tmp_path), cols=80, rows=24, project=project
    )
    args = registry._project_args(spawn, project)  # noqa: SLF001 (the exact file the agent hands to Claude)
    config_path = args[args.index("--mcp-config") + 1]
    assert oct(Path(config_path).stat().st_mode & 0o777) == "0o600"  # it holds the instance token
    server = json.loads(Path(config_path).read_text())["mcpServers"]["claudenest"]
    assert server["args"] == ["-m", "claudenest", "mcp", "serve"]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CLAUDENEST_")},
        "CLAUDE_CONFIG_DIR": str(tmp_path / "cfg"),
        "HOME": str(tmp_path),
        "DISABLE_AUTOUPDATER": "1",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / ".claude.json").write_text('{"hasCompletedOnboarding": true}')

    def claude(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(CLAUDE), *argv], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=timeout(60),
            stdin=subprocess.DEVNULL,
        )  # fmt: skip

    init = json.loads(claude("-p", "hi", "--output-format", "stream-json", "--verbose", *args).stdout.splitlines()[0])
    assert [s["name"] for s in init["mcp_servers"]] == ["claudenest"]  # accepted (2.1.197 reports it "pending" here)
    assert claude("mcp", "add-json", "-s", "user", "claudenest", json.dumps(server)).returncode == 0
    listed = claude("mcp", "list").stdout
    line = next(line for line in listed.splitlines() if line.startswith("claudenest:"))
    assert "Connected" in line, listed
