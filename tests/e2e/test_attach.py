"""`sessions attach` in a real terminal (a PTY driving the CLI), and `sessions logs --follow`."""

from __future__ import annotations

import json
import os
import select
import sys
import time
from pathlib import Path

import ptyprocess

from tests.e2e.conftest import Stack
from tests.e2e.harness import claudenest, role_env, timeout, wait_until


class Terminal:
    """The user's terminal: the CLI runs in a PTY we read and type into."""

    def __init__(self, stack: Stack, *args: str, cols: int = 80, rows: int = 24) -> None:
        self.proc = ptyprocess.PtyProcess.spawn(
            claudenest(*args), env=role_env(stack.user.home), dimensions=(rows, cols)
        )
        self.screen = b""

    def expect(self, needle: bytes, seconds: float = 15) -> None:
        deadline = time.monotonic() + timeout(seconds)
        while needle not in self.screen:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{needle!r} not seen; terminal shows:\n{self.screen[-2000:]!r}")
            ready, _, _ = select.select([self.proc.fd], [], [], left)
            if ready:
                try:
                    self.screen += os.read(self.proc.fd, 65536)
                except OSError:
                    if needle not in self.screen:
                        raise AssertionError(f"CLI ended before {needle!r}:\n{self.screen[-2000:]!r}") from None

    def type(self, data: bytes) -> None:
        self.proc.write(data)

    def wait_exit(self, seconds: float = 15) -> int:
        deadline = time.monotonic() + timeout(seconds)
        while self.proc.isalive() and time.monotonic() < deadline:
            try:
                self.expect(b"\x00never", 0.2)
            except AssertionError:
                pass
        self.proc.wait()
        return int(self.proc.exitstatus)

    def close(self) -> None:
        if self.proc.isalive():
            self.proc.terminate(force=True)
        self.proc.close()


def test_attach_types_resizes_detaches_and_reattaches(stack: Stack) -> None:
    started = json.loads(stack.user.cli("sessions", "new", "--command", "bash --norc --noprofile", "--json").stdout)[
        "session"
    ]
    sid = started["id"]
    term = Terminal(stack, "sessions", "attach", sid[:8], cols=90, rows=30)
    try:
        term.expect(b"Ctrl-] detaches")
        term.type(b"echo attached-$((40+2))\r")
        term.expect(b"attached-42")
        term.type(b"echo size=$(tput cols)x$(tput lines)\r")
        term.expect(b"size=90x30")  # attach sends this terminal's size when it starts
        term.proc.setwinsize(33, 111)  # the user resizes the window: SIGWINCH -> resize
        wait_until(
            lambda: json.loads(stack.user.cli("sessions", "show", sid, "--json").stdout)["session"]["cols"] == 111
        )
        term.type(b"echo size=$(tput cols)x$(tput lines)\r")
        term.expect(b"size=111x33")
        term.type(b"\x1d")
        assert term.wait_exit() == 0
        term.expect(b"detached")
    finally:
        term.close()
    assert json.loads(stack.user.cli("sessions", "show", sid, "--json").stdout)["session"]["status"] == "running"

    # A read-only viewer sees the recent output, and its keys do not reach the session.
    watcher = Terminal(stack, "sessions", "attach", sid, "--read-only")
    try:
        watcher.expect(b"attached-42")
        watcher.type(b"echo should-not-run\r")
        stack.user.cli("sessions", "send", sid, "echo from-send")
        watcher.expect(b"from-send")
        assert b"should-not-run" not in stack.user.cli("sessions", "logs", sid).stdout.encode()
        stack.user.cli("sessions", "send", sid, "exit 7")
        assert watcher.wait_exit() == 0
        watcher.expect(b"exited with code 7")
    finally:
        watcher.close()


def test_attach_writes_the_modes_before_the_screen_and_hands_the_terminal_back(stack: Stack, tmp_path: Path) -> None:
    # A full-screen program: alternate screen, hidden cursor, bracketed paste, mouse and application cursor keys,
    # then a screen drawn from the top.
    tui = tmp_path / "tui.py"
    tui.write_text(
        "import sys, time\n"
        "sys.stdout.write('\\x1b[?1049h\\x1b[?25l\\x1b[?2004h\\x1b[?1000h\\x1b[?1006h\\x1b[?1h')\n"
        "sys.stdout.write('\\x1b[H\\x1b[2Jtui-ready\\r\\n')\n"
        "sys.stdout.flush()\n"
        "time.sleep(600)\n"
    )
    sid = json.loads(stack.user.cli("sessions", "new", "--command", f"{sys.executable} {tui}", "--json").stdout)[
        "session"
    ]["id"]
    wait_until(lambda: "tui-ready" in stack.user.cli("sessions", "logs", sid).stdout, message="the screen drawn")
    term = Terminal(stack, "sessions", "attach", sid)
    try:
        term.expect(b"tui-ready")
        # The alternate screen is entered before the screen is drawn, whether the replay starts before the switch
        # or after it (then the relay's prelude carries it).
        assert term.screen.index(b"\x1b[?1049h") < term.screen.index(b"tui-ready")
        term.type(b"\x1d")
        assert term.wait_exit() == 0
        term.expect(b"detached")
        handed_back = term.screen[term.screen.index(b"tui-ready") : term.screen.index(b"[detached")]
        for mode_off in (b"\x1b[?1000l", b"\x1b[?1006l", b"\x1b[?2004l", b"\x1b[?1l", b"\x1b[?1049l"):
            assert mode_off in handed_back
        assert handed_back.endswith(b"\x1b[?25h\r\n")  # the cursor shown, then the CLI's note on stderr
    finally:
        term.close()
    stack.user.cli("sessions", "kill", sid)


def test_logs_follow_prints_everything_until_the_session_ends(stack: Stack) -> None:
    # Bracketed paste on first: a follow that attaches mid-way gets it in the relay's prelude, and must not print
    # it (the output is the log's bytes, exactly once).
    script = (
        "import time\nprint(chr(27) + '[?2004h')\n"
        "for i in range(200):\n    print(f'row {i}', flush=True)\n    time.sleep(0.01)\n"
    )
    sid = json.loads(
        stack.user.cli("sessions", "new", "--command", f'{sys.executable} -c "{script}"', "--json").stdout
    )["session"]["id"]
    wait_until(lambda: "row 20" in stack.user.cli("sessions", "logs", sid).stdout, message="a few rows")
    followed = stack.user.cli("sessions", "logs", sid, "--follow", seconds=60).stdout
    rows = [line for line in followed.replace("\r", "").split("\n") if line.startswith("row ")]
    assert rows == [f"row {i}" for i in range(200)]
    assert followed == stack.user.cli("sessions", "logs", sid).stdout


def test_attach_says_when_it_is_reconnecting_and_when_it_is_live_again(stack: Stack) -> None:
    sid = json.loads(stack.user.cli("sessions", "new", "--command", "bash --norc --noprofile", "--json").stdout)[
        "session"
    ]["id"]
    term = Terminal(stack, "sessions", "attach", sid)
    try:
        term.expect(b"Ctrl-] detaches")
        stack.relay.restart()  # the relay goes away and comes back on the same port; the session lives on
        term.expect(b"reconnecting...")
        term.expect(b"live again", seconds=40)
        wait_until(  # the agent reconnects on its own schedule; keys for its session wait for it
            lambda: (
                json.loads(stack.user.cli("machines", "list", "--json").stdout)["machines"][0]["status"] == "online"
            ),
            seconds=40,
        )
        term.type(b"echo back-$((6*7))\r")
        term.expect(b"back-42")
        term.type(b"\x1d")
        assert term.wait_exit() == 0
    finally:
        term.close()
