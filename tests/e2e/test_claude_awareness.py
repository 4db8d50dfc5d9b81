"""Claude Code awareness with a stand-in `claude` that calls the injected hooks with the documented payloads:
live status, remote approval, notifications, headless runs with cost, transcript accounting, discovery."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from claudenest.client import RelayClient
from claudenest.protocol import SessionStatus, Watch, Watching, decode_message, encode_message
from tests.e2e.harness import Agent, Relay, User, add_user, cli, pair_agent, timeout, wait_until

FAKE_CLAUDE = Path(__file__).parents[1] / "fakes" / "claude"


class Receiver:
    """A loopback webhook endpoint that records what the relay's notifier posts."""

    def __init__(self) -> None:
        received: list[dict[str, Any]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append({"event": self.headers["X-Claudenest-Event"], **json.loads(body)})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.received = received
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def events(self, session_id: str) -> list[str]:
        return [r["event"] for r in self.received if r["session_id"] == session_id]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class ClaudeStack:
    relay: Relay
    user: User
    agent: Agent
    receiver: Receiver
    agent_home: Path

    def new(self, *args: str) -> dict[str, Any]:
        result = self.user.cli("sessions", "new", "--cwd", str(self.agent_home / "project"), "--json", *args)
        return dict(json.loads(result.stdout)["session"])

    def show(self, sid: str) -> dict[str, Any]:
        return dict(json.loads(self.user.cli("sessions", "show", sid, "--json").stdout)["session"])

    def wait_status(self, sid: str, status: str) -> dict[str, Any]:
        return dict(wait_until(lambda: (s := self.show(sid))["status"] == status and s, message=f"status {status}"))

    def logs(self, sid: str) -> str:
        return self.user.cli("sessions", "logs", sid).stdout


@pytest.fixture(scope="module")
def claude(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClaudeStack]:
    root = tmp_path_factory.mktemp("claude")
    receiver = Receiver()
    relay_home = root / "relay"
    (relay_home / "config").mkdir(parents=True)
    (relay_home / "config" / "config.toml").write_text(f'[[notify]]\nkind = "webhook"\nurl = "{receiver.url}"\n')
    relay = Relay(relay_home).start()
    user = add_user(relay, "me@example.com", root / "cli")
    agent_home = root / "agent"
    home = agent_home / "unix-home"
    (home / ".claude" / "skills" / "release-notes").mkdir(parents=True)
    (home / ".claude" / "skills" / "release-notes" / "SKILL.md").write_text(
        "---\nname: release-notes\ndescription: Drafts release notes from merged PRs\n---\nBody\n"
    )
    (home / ".claude.json").write_text(
        json.dumps({"mcpServers": {"tracker": {"command": "tracker-mcp", "env": {"TRACKER_TOKEN": "sekret-value"}}}})
    )
    (agent_home / "project").mkdir(parents=True)
    agent_env = {
        "CLAUDENEST_AGENT_CLAUDE_PATH": str(FAKE_CLAUDE),
        "CLAUDENEST_AGENT_PERMISSION_WAIT": "3",
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        "HOME": str(home),
    }
    agent = pair_agent(relay, user, agent_home, "workstation", extra_env=agent_env)
    try:
        yield ClaudeStack(relay, user, agent, receiver, agent_home)
    finally:
        agent.stop()
        relay.stop()
        receiver.stop()


def test_claude_version_is_detected_and_reported(claude: ClaudeStack) -> None:
    machine = json.loads(claude.user.cli("machines", "show", "workstation", "--json").stdout)["machine"]
    assert machine["claude_version"] == "2.1.197"


def test_hooks_drive_the_session_status_live(claude: ClaudeStack) -> None:
    session = claude.new()
    sid = session["id"]
    claude.wait_status(sid, "idle")  # SessionStart on an interactive session: waiting for a prompt

    async def watch_for_stop() -> list[SessionStatus]:
        async with RelayClient(claude.relay.url, claude.user.token) as api:
            ws = await api.connect_viewer()
            await ws.send(encode_message(Watch()))
            # The relay acknowledges the watch: from here on no status change can be missed (no sleep that hopes).
            assert isinstance(decode_message(await asyncio.wait_for(ws.recv(), timeout(10))), Watching)
            await api.send_input(sid, b"hello there\n")
            seen: list[SessionStatus] = []
            while not any(s.event == "Stop" for s in seen):
                raw = await asyncio.wait_for(ws.recv(), timeout(15))
                if isinstance(raw, str) and isinstance(message := decode_message(raw), SessionStatus):
                    seen.append(message)
            await ws.close()
            return seen

    events = asyncio.run(watch_for_stop())  # the user's channel, without attaching to the session
    assert [(e.event, e.status) for e in events] == [("UserPromptSubmit", "running"), ("Stop", "idle")]
    shown = claude.show(sid)
    assert shown["last_message"] == "echo: hello there"
    assert shown["status"] == "idle"
    listed = json.loads(claude.user.cli("sessions", "list", "--status", "idle", "--json").stdout)["sessions"]
    assert sid in [s["id"] for s in listed]


def test_remote_approval_and_denial_answer_the_held_permission_request(claude: ClaudeStack) -> None:
    sid = claude.new()["id"]
    claude.wait_status(sid, "idle")
    claude.user.cli("sessions", "send", sid, "ask Bash rm -rf build", "--no-enter")
    claude.user.cli("sessions", "send", sid, "")
    waiting = claude.wait_status(sid, "waiting_permission")
    assert waiting["pending_permission"]["tool_name"] == "Bash"
    assert "rm -rf build" in waiting["pending_permission"]["summary"]
    claude.user.cli("sessions", "approve", sid)
    wait_until(lambda: "permission: allow" in claude.logs(sid), message="allowed in the terminal")
    assert claude.wait_status(sid, "idle")["pending_permission"] is None

    claude.user.cli("sessions", "send", sid, "ask Write /etc/passwd")
    claude.wait_status(sid, "waiting_permission")
    claude.user.cli("sessions", "deny", sid, "--message", "not that file")
    wait_until(lambda: "permission: deny (not that file)" in claude.logs(sid), message="denied with the reason")

    # No pending request: a clear 409, not a silent success.
    claude.wait_status(sid, "idle")
    refused = claude.user.cli("sessions", "approve", sid, check=False)
    assert refused.returncode == 6
    assert "not waiting for a permission decision" in refused.stderr


def test_unanswered_permission_falls_back_to_claudes_own_prompt(claude: ClaudeStack) -> None:
    sid = claude.new()["id"]
    claude.wait_status(sid, "idle")
    claude.user.cli("sessions", "send", sid, "ask Bash make deploy")
    wait_until(lambda: "permission: none" in claude.logs(sid), message="the hook answered nothing after the wait")


def test_notifications_for_permission_and_failure_but_quiet_while_attached(claude: ClaudeStack) -> None:
    sid = claude.new()["id"]
    claude.wait_status(sid, "idle")
    claude.user.cli("sessions", "send", sid, "ask Bash ls")
    wait_until(lambda: "waiting_permission" in claude.receiver.events(sid), message="permission notification")
    claude.user.cli("sessions", "approve", sid)
    wait_until(lambda: "turn_finished" in claude.receiver.events(sid), message="turn notification")
    claude.user.cli("sessions", "send", sid, "fail")
    failed = claude.wait_status(sid, "error")
    assert "authentication_failed" in failed["status_detail"]
    assert failed["ended"] is False  # Claude reported an error; its process lives on
    wait_until(lambda: "failed" in claude.receiver.events(sid), message="failure notification")
    notification = next(r for r in claude.receiver.received if r["session_id"] == sid and r["event"] == "failed")
    assert notification["machine"] == "workstation"
    assert claude.receiver.events(sid).count("waiting_permission") == 1  # no duplicates

    async def attached_turn() -> None:
        async with RelayClient(claude.relay.url, claude.user.token) as api:
            ws = await api.connect_viewer()
            from claudenest.protocol import Attach

            await ws.send(encode_message(Attach(session_id=sid)))
            await asyncio.sleep(0.5)
            await api.send_input(sid, b"while watched\n")
            await asyncio.sleep(1.5)
            await ws.close()

    before = len(claude.receiver.events(sid))
    asyncio.run(attached_turn())
    wait_until(lambda: claude.show(sid)["last_message"] == "echo: while watched", message="the watched turn")
    assert len(claude.receiver.events(sid)) == before  # someone was attached: no push


def test_transcript_accounting_is_deduplicated_and_totalled_per_machine(claude: ClaudeStack) -> None:
    sid = claude.new()["id"]
    claude.wait_status(sid, "idle")
    claude.user.cli("sessions", "send", sid, "cost")
    # msg_1 counted once (three content-block rows), msg_2 once with its final output_tokens, synthetic ignored:
    # (100 + 50 + 10 + 1000) + (100 + 70 + 10 + 1000) = 2340 tokens.
    shown = wait_until(lambda: (s := claude.show(sid))["total_tokens"] and s, message="usage from the transcript")
    assert shown["total_tokens"] == 2340
    assert shown["usage"]["output_tokens"] == 120
    assert shown["total_cost"] > 0
    machine = json.loads(claude.user.cli("machines", "show", "workstation", "--json").stdout)["machine"]
    assert machine["total_tokens"] >= 2340


def test_headless_run_shows_text_and_records_cost(claude: ClaudeStack) -> None:
    session = claude.new("--headless", "--prompt", "summarize the repo")
    sid = session["id"]
    wait_until(lambda: claude.show(sid)["ended"], message="the headless run to end")
    shown = claude.show(sid)
    assert shown["status"] == "exited"
    assert shown["exit_code"] == 0
    assert shown["total_cost"] == pytest.approx(0.0123)
    assert shown["usage"]["total_tokens"] == 47
    text = claude.logs(sid)
    assert "You said: summarize the repo" in text
    assert '{"type"' not in text  # viewers see text, not raw JSON


def test_headless_error_is_surfaced(claude: ClaudeStack) -> None:
    sid = claude.new("--headless", "--prompt", "fail")["id"]
    wait_until(lambda: claude.show(sid)["ended"], message="the headless run to end")
    shown = claude.show(sid)
    assert shown["exit_code"] == 1
    assert shown["status"] == "error"  # is_error on the result, though its subtype says "success"
    assert "Not logged in" in shown["status_detail"]
    assert "Not logged in" in (shown["last_message"] or "")
    assert "Not logged in" in claude.logs(sid)


def test_discovery_reports_skills_and_mcp_servers_without_secrets(claude: ClaudeStack) -> None:
    skills = wait_until(
        lambda: json.loads(claude.user.cli("skills", "list", "--json").stdout)["skills"], message="skills reported"
    )
    assert [(s["name"], s["machine"]) for s in skills] == [("release-notes", "workstation")]
    servers = json.loads(claude.user.cli("mcp", "list", "--machine", "workstation", "--json").stdout)["mcp_servers"]
    assert [(s["name"], s["scope"]) for s in servers] == [("tracker", "user")]
    assert "sekret-value" not in json.dumps(servers)


def test_doctor_reports_claude_and_relay(claude: ClaudeStack) -> None:
    result = cli(
        claude.agent_home,
        "doctor",
        "--json",
        "--cwd",
        str(claude.agent_home / "project"),
        check=False,
        env={"CLAUDENEST_AGENT_CLAUDE_PATH": str(FAKE_CLAUDE)},
    )
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["claude"]["ok"] is True
    assert "2.1.197" in checks["claude"]["detail"]
    assert checks["claude login"]["ok"] is False  # `claude auth status` says loggedIn: false
    assert checks["relay"]["ok"] is True
    assert checks["workspace trust"]["ok"] is False
    assert result.returncode == 1


def test_a_project_session_gets_an_instance_and_its_edits_take_file_locks(claude: ClaudeStack) -> None:
    project_dir = claude.agent_home / "project"
    project = claude.user.api(
        "POST", "/api/projects", json={"name": "lockdemo", "project_path": str(project_dir)}
    ).json()["project"]
    rival = claude.user.api("POST", f"/api/projects/{project['id']}/instances", json={"name": "rival"}).json()
    held = claude.user.api(
        "POST",
        f"/api/projects/{project['id']}/locks",
        json={"path": "src/held.py"},
        headers={"Authorization": f"Bearer {rival['token']}"},
    )
    assert held.status_code == 201
    # Through the CLI, by project name, without --cwd: the session runs in the project's path.
    created = json.loads(
        claude.user.cli(
            "sessions", "new", "--project", "lockdemo", "--machine", claude.agent.machine_id, "--json"
        ).stdout
    )["session"]
    assert created["project_path"] == str(project_dir)
    mixed = claude.user.cli("sessions", "new", "--project", "lockdemo", "--command", "bash", check=False)
    assert mixed.returncode == 2
    assert "project sessions run Claude Code" in mixed.stderr
    unknown = claude.user.cli("sessions", "new", "--project", "no-such-project", check=False)
    assert unknown.returncode == 5
    assert "no project 'no-such-project'" in unknown.stderr
    sid = created["id"]
    claude.wait_status(sid, "idle")
    instances = claude.user.api("GET", f"/api/projects/{project['id']}/instances").json()["instances"]
    mine = next(i for i in instances if i["session_id"] == sid)
    claude.user.cli("sessions", "send", sid, f"edit {project_dir / 'src' / 'held.py'}")
    wait_until(lambda: "edit denied: locked by rival until" in claude.logs(sid), message="the lock hook's deny")
    claude.user.cli("sessions", "send", sid, f"edit {project_dir / 'src' / 'free.py'}")
    wait_until(lambda: "edit allowed" in claude.logs(sid), message="a free file is editable")
    locks = claude.user.api("GET", f"/api/projects/{project['id']}/locks").json()["locks"]
    assert {(lock["path"], lock["holder_instance_id"]) for lock in locks} == {
        ("src/held.py", rival["instance"]["id"]),
        ("src/free.py", mine["id"]),
    }
    claude.user.cli("sessions", "send", sid, "exit")
    wait_until(lambda: claude.show(sid)["ended"], message="session end")
    wait_until(
        lambda: (
            [lock["path"] for lock in claude.user.api("GET", f"/api/projects/{project['id']}/locks").json()["locks"]]
            == ["src/held.py"]
        ),
        message="the ended instance's locks released",
    )
    ended = claude.user.api("GET", f"/api/projects/{project['id']}/instances").json()["instances"]
    assert next(i for i in ended if i["id"] == mine["id"])["status"] == "ended"


def test_headless_wait_prints_the_result_and_exits_with_claudes_status(claude: ClaudeStack) -> None:
    done = claude.user.cli("sessions", "new", "--headless", "--prompt", "summarize the repo", "--wait", check=False)
    assert done.returncode == 0, done.stderr
    assert "You said: summarize the repo" in done.stdout
    assert "[session exited, exit 0, 47 / $0.0123]" in done.stderr
    failed = claude.user.cli("sessions", "new", "--headless", "--prompt", "fail", "--wait", check=False)
    assert failed.returncode == 1
    assert "Not logged in" in failed.stdout
    assert "[session error, exit 1" in failed.stderr
    scripted = claude.user.cli("sessions", "new", "--headless", "--prompt", "again", "--wait", "--json")
    ended = json.loads(scripted.stdout.strip().splitlines()[-1])["session"]
    assert ended["ended"] is True
    assert ended["total_cost"] == pytest.approx(0.0123)


def test_claude_installed_after_the_agent_started_is_found_and_reported(tmp_path: Path) -> None:
    import shutil

    relay = Relay(tmp_path / "relay").start()
    user = add_user(relay, "late@example.com", tmp_path / "cli")
    claude_path = tmp_path / "bin" / "claude"  # not there yet
    agent = pair_agent(
        relay, user, tmp_path / "agent", "late-box", extra_env={"CLAUDENEST_AGENT_CLAUDE_PATH": str(claude_path)}
    )
    try:
        machine = user.api("GET", f"/api/machines/{agent.machine_id}").json()["machine"]
        assert machine["claude_version"] is None
        refused = user.api(
            "POST", "/api/sessions", json={"machine_id": agent.machine_id, "mode": "headless", "prompt": "hi"}
        ).json()["session"]
        assert refused["status"] == "error"
        assert "not found" in refused["status_detail"]
        claude_path.parent.mkdir()
        shutil.copy(FAKE_CLAUDE, claude_path)  # installed now, with the agent running
        ran = user.api(
            "POST", "/api/sessions", json={"machine_id": agent.machine_id, "mode": "headless", "prompt": "hi"}
        ).json()["session"]
        assert ran["status"] != "error", ran
        wait_until(
            lambda: (
                user.api("GET", f"/api/machines/{agent.machine_id}").json()["machine"]["claude_version"] == "2.1.197"
            ),
            seconds=20,
            message="the new Claude Code version reported",
        )
        wait_until(
            lambda: user.api("GET", f"/api/sessions/{ran['id']}").json()["session"]["ended"], message="the run ends"
        )
        assert "You said: hi" in user.api("GET", f"/api/sessions/{ran['id']}/logs").text  # nothing lost on the way
    finally:
        agent.stop()
        relay.stop()
