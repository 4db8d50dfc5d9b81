"""A real relay, a real agent paired through the real flow, real PTYs running bash and Python."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from pathlib import Path

from tests.e2e.conftest import Stack
from tests.e2e.harness import wait_until


def new_session(stack: Stack, *args: str) -> dict:
    result = stack.user.cli("sessions", "new", "--machine", "laptop", "--json", *args, check=False)
    return json.loads(result.stdout)["session"]


def logs(stack: Stack, session_id: str) -> str:
    return stack.user.cli("sessions", "logs", session_id).stdout


def session(stack: Stack, session_id: str) -> dict:
    return json.loads(stack.user.cli("sessions", "show", session_id, "--json").stdout)["session"]


def test_machine_is_listed_online_with_its_name(stack: Stack) -> None:
    machines = json.loads(stack.user.cli("machines", "list", "--json").stdout)["machines"]
    assert [(m["name"], m["status"]) for m in machines] == [("laptop", "online")]
    assert machines[0]["id"] == stack.agent.machine_id


def test_shell_session_input_output_resize_and_exit_code(stack: Stack) -> None:
    started = new_session(
        stack, "--command", "bash --norc --noprofile", "--cwd", "/tmp", "--cols", "80", "--rows", "24"
    )
    assert started["status"] == "running"
    assert started["pid"] > 0
    sid = started["id"]

    stack.user.cli("sessions", "send", sid, "echo answer=$((6*7)) cols=$(tput cols)")
    wait_until(lambda: "answer=42 cols=80" in logs(stack, sid), message="echo output")

    response = stack.user.api("POST", f"/api/sessions/{sid}/resize", json={"cols": 101, "rows": 30})
    assert response.status_code == 202
    stack.user.cli("sessions", "send", sid, "echo now=$(tput cols)x$(tput lines)")
    wait_until(lambda: "now=101x30" in logs(stack, sid), message="resized terminal")

    stack.user.cli("sessions", "send", sid, "exit 3")
    ended = wait_until(lambda: (s := session(stack, sid))["status"] == "exited" and s, message="exit")
    assert ended["exit_code"] == 3
    listed = json.loads(stack.user.cli("sessions", "list", "--json").stdout)["sessions"]
    assert any(s["id"] == sid and s["status"] == "exited" for s in listed)


def test_send_without_enter_types_but_does_not_submit(stack: Stack) -> None:
    sid = new_session(stack, "--command", "bash --norc --noprofile")["id"]
    stack.user.cli("sessions", "send", sid, "echo one ", "--no-enter")
    stack.user.cli("sessions", "send", sid, "two")
    wait_until(lambda: "\none two\n" in logs(stack, sid).replace("\r", ""), message="one submitted line")
    stack.user.cli("sessions", "kill", sid)


def test_missing_command_ends_in_error_with_reason(stack: Stack) -> None:
    failed = new_session(stack, "--command", "definitely-not-a-command-xyz")
    assert failed["status"] == "error"
    assert "definitely-not-a-command-xyz" in failed["status_detail"]
    missing_dir = new_session(stack, "--command", "bash", "--cwd", "/no/such/dir")
    assert missing_dir["status"] == "error"
    assert "/no/such/dir" in missing_dir["status_detail"]


def test_kill_ends_the_whole_process_group(stack: Stack) -> None:
    # One write(2) per line: two processes printing with print() can interleave ("pidpid 1 2"), and the test must
    # see both pids.
    script = "import os, time; os.fork(); os.write(1, b'pid %d\\n' % os.getpid()); time.sleep(600)"
    sid = new_session(stack, "--command", f'{sys.executable} -c "{script}"')["id"]
    try:
        wait_until(lambda: len(re.findall(r"pid (\d+)", logs(stack, sid))) >= 2, seconds=30, message="both")
    except AssertionError:
        raise AssertionError(repr(logs(stack, sid))) from None
    pids = [int(p) for p in re.findall(r"pid (\d+)", logs(stack, sid))]
    assert len(set(pids)) == 2, logs(stack, sid)
    result = json.loads(stack.user.cli("sessions", "kill", sid, "--json").stdout)["session"]
    assert result["status"] == "exited"
    assert result["exit_code"] == 128 + signal.SIGHUP  # the shell's convention, not subprocess's -1
    assert result["status_detail"] == "ended by SIGHUP"

    def gone(pid: int) -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"  # not running any more
        except FileNotFoundError:
            return True

    wait_until(lambda: all(gone(p) for p in pids), message="children gone")


def test_no_zombies_or_leaked_pty_descriptors_after_sessions_end(stack: Stack) -> None:
    agent_pid = stack.agent.proc.popen.pid  # type: ignore[union-attr]
    for _ in range(3):
        sid = new_session(stack, "--command", "true")["id"]
        wait_until(lambda sid=sid: session(stack, sid)["status"] == "exited", message="quick exit")
    time.sleep(0.5)

    def ptmx_fds() -> int:
        fd_dir = f"/proc/{agent_pid}/fd"
        return sum(1 for fd in os.listdir(fd_dir) if os.readlink(f"{fd_dir}/{fd}") == "/dev/ptmx")

    live = [
        s
        for s in json.loads(stack.user.cli("sessions", "list", "--json").stdout)["sessions"]
        if s["status"] == "running"
    ]
    assert ptmx_fds() == len(live)
    children = Path(f"/proc/{agent_pid}/task/{agent_pid}/children").read_text().split()
    states = [Path(f"/proc/{c}/stat").read_text().split()[2] for c in children]
    assert "Z" not in states
