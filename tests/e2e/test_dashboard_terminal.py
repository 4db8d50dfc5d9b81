"""The dashboard's terminal in a real Chromium against a real relay and agent: typing and reading the screen,
resizing the PTY, resuming after the relay is killed (-9) without a line lost or doubled, scrollback after a reload,
permission requests of the stand-in claude answered from the terminal bar, and the phone's key bar and compose box.

The screen is read from xterm.js's buffer through the terminal element's ``terminalText()`` (the whole buffer,
scrollback included, as text), which the terminal view puts on its own element for exactly this.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import browser as web
from tests.e2e.browser import new_page, screenshot, sign_in
from tests.e2e.harness import Agent, Relay, User, add_user, pair_agent, wait_until

browser = web.browser  # the fixture, for this module

FAKE_CLAUDE = Path(__file__).parents[1] / "fakes" / "claude"
BASH = ["bash", "--norc", "--noprofile", "-i"]

PRINTER = """
import time
for i in range(1, {n} + 1):
    print(f"line {{i:05d}}", flush=True)
    time.sleep({delay})
print("printer done", flush=True)
"""


@dataclass
class TermStack:
    relay: Relay
    user: User
    agent: Agent
    root: Path

    def new_session(self, command: list[str] | None = BASH) -> str:
        body: dict[str, Any] = {"machine_id": self.agent.machine_id, "cwd": str(self.root / "work"), "command": command}
        response = self.user.api("POST", "/api/sessions", json=body)
        assert response.status_code in (200, 201), response.text
        return str(response.json()["session"]["id"])

    def session(self, sid: str) -> dict[str, Any]:
        return dict(self.user.api("GET", f"/api/sessions/{sid}").json()["session"])

    def wait_status(self, sid: str, status: str) -> dict[str, Any]:
        return dict(wait_until(lambda: (s := self.session(sid))["status"] == status and s, message=f"status {status}"))


@pytest.fixture(scope="module")
def term(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TermStack]:
    root = tmp_path_factory.mktemp("terminal")
    (root / "work").mkdir()
    home = root / "agent" / "unix-home"
    (home / ".claude").mkdir(parents=True)
    relay = Relay(root / "relay").start()
    user = add_user(relay, "me@example.com", root / "cli")
    agent_env = {
        "CLAUDENEST_AGENT_CLAUDE_PATH": str(FAKE_CLAUDE),
        "CLAUDENEST_AGENT_PERMISSION_WAIT": "90",  # the request stays pending while the browser answers it
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        "HOME": str(home),
    }
    agent = pair_agent(relay, user, root / "agent", "workstation", extra_env=agent_env)
    try:
        yield TermStack(relay, user, agent, root)
    finally:
        agent.stop()
        relay.stop()


# -- the page ----------------------------------------------------------------------------------------------------


def open_terminal(page: Any, stack: TermStack, sid: str) -> None:
    sign_in(page, stack.user)
    page.goto(f"{stack.relay.url}/sessions/{sid}/terminal")
    wait_live(page)


def wait_live(page: Any) -> None:
    page.locator('[data-testid=terminal-view][data-state="live"]').wait_for()


def screen(page: Any) -> str:
    return str(page.locator("[data-testid=terminal]").evaluate("el => el.terminalText()"))


def lines(page: Any) -> list[str]:
    return [line.rstrip() for line in screen(page).split("\n")]


def wait_screen(page: Any, predicate: Any, message: str, seconds: float = 15) -> str:
    def check() -> str | None:
        text = screen(page)
        return text if predicate(text) else None

    try:
        return str(wait_until(check, seconds, message))
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the screen shows:\n{screen(page)[-2000:]}") from None


def wait_line(page: Any, line: str, seconds: float = 15) -> None:
    wait_screen(page, lambda text: line in [row.rstrip() for row in text.split("\n")], f"the line {line!r}", seconds)


def type_line(page: Any, text: str) -> None:
    page.locator("[data-testid=terminal]").click()
    page.keyboard.type(text)
    page.keyboard.press("Enter")


def wait_prompt(page: Any, count: int = 1) -> None:
    """bash's prompt (`bash-5.2$ ` with --norc) shown at least `count` times."""
    wait_screen(page, lambda text: len(re.findall(r"bash-[\d.]+[$#]", text)) >= count, f"{count} bash prompt(s)")


MARKS = iter(range(1, 1_000_000))


def stty_size(page: Any) -> tuple[int, int]:
    """The PTY's size as the shell sees it (each call with its own marker, so an older answer is never read)."""
    marker = f"size-{next(MARKS)}"
    type_line(page, f"echo {marker} $(stty size)")
    found = wait_screen(page, lambda text: re.search(rf"^{marker} \d+ \d+$", text, re.M), f"stty size ({marker})")
    rows, cols = re.search(rf"^{marker} (\d+) (\d+)$", found, re.M).groups()  # type: ignore[union-attr]
    return int(rows), int(cols)


def numbered(page: Any) -> list[str]:
    return [row for row in lines(page) if re.fullmatch(r"line \d{5}", row)]


# -- desktop -----------------------------------------------------------------------------------------------------


def test_typing_echo_hi_shows_hi_and_resizing_the_window_resizes_the_pty(
    term: TermStack, browser: Any, tmp_path: Path
) -> None:
    sid = term.new_session()
    page = new_page(browser)
    try:
        open_terminal(page, term, sid)
        wait_prompt(page)
        type_line(page, "echo hi")
        wait_line(page, "hi")
        assert page.get_by_test_id("terminal-status").inner_text() == "running"
        screenshot(page, "terminal", tmp_path)

        rows, cols = stty_size(page)
        assert cols > 100  # fitted to a 1280 px wide window, not the 80 columns of a default terminal
        page.set_viewport_size({"width": 800, "height": 500})
        smaller_rows, smaller_cols = wait_until(
            lambda: (size := stty_size(page)) != (rows, cols) and size, seconds=20, message="a new PTY size"
        )
        assert smaller_cols < cols
        assert smaller_rows < rows
        assert page.console_errors == []
    finally:
        page.context.close()


def test_relay_killed_and_restarted_the_page_resumes_with_every_line_once_and_a_reload_keeps_the_scrollback(
    term: TermStack, browser: Any, tmp_path: Path
) -> None:
    sid = term.new_session()
    script = term.root / "work" / "printer.py"
    script.write_text(PRINTER.format(n=3000, delay=0.004))
    page = new_page(browser)
    try:
        open_terminal(page, term, sid)
        wait_prompt(page)
        type_line(page, f"python3 {script}")
        wait_line(page, "line 00300")

        term.relay.stop(9)  # kill -9 while the session prints
        page.get_by_test_id("connection-state").filter(has_text="reconnecting").wait_for()
        term.relay.start()  # the same port
        wait_live(page)
        assert page.get_by_test_id("connection-state").count() == 0
        wait_line(page, "printer done", seconds=60)
        expected = [f"line {i:05d}" for i in range(1, 3001)]
        assert numbered(page) == expected

        page.reload()
        wait_live(page)
        wait_line(page, "printer done")
        assert numbered(page) == expected  # the scrollback came back from the log, nothing twice
        type_line(page, "echo after reload")
        wait_line(page, "after reload")
        assert numbered(page) == expected
        assert page.console_errors == []
    finally:
        page.context.close()


def test_network_drop_and_frozen_background_tab_resume_without_loss_or_doubles(term: TermStack, browser: Any) -> None:
    sid = term.new_session()
    page = new_page(browser)
    try:
        open_terminal(page, term, sid)
        wait_prompt(page)
        page.context.set_offline(True)
        page.get_by_test_id("connection-state").filter(has_text="reconnecting").wait_for()
        term.user.cli("sessions", "send", sid, "for i in $(seq 1 300); do echo offline-$i; done")
        page.context.set_offline(False)
        wait_live(page)
        wait_line(page, "offline-300")
        assert [row for row in lines(page) if row.startswith("offline-")] == [f"offline-{i}" for i in range(1, 301)]

        # A background tab the browser froze: no script runs while the session prints; then it thaws.
        cdp = page.context.new_cdp_session(page)
        cdp.send("Page.setWebLifecycleState", {"state": "frozen"})
        term.user.cli("sessions", "send", sid, "for i in $(seq 1 300); do echo frozen-$i; done")
        wait_until(lambda: "frozen-300" in term.user.cli("sessions", "logs", sid).stdout, message="printed")
        cdp.send("Page.setWebLifecycleState", {"state": "active"})
        wait_line(page, "frozen-300")
        assert [row for row in lines(page) if row.startswith("frozen-")] == [f"frozen-{i}" for i in range(1, 301)]
        assert page.console_errors == []
    finally:
        page.context.close()


def test_more_printed_while_offline_than_the_relay_replays_still_shows_every_line_once(
    term: TermStack, browser: Any
) -> None:
    sid = term.new_session()
    page = new_page(browser)
    try:
        open_terminal(page, term, sid)
        wait_prompt(page)
        page.context.set_offline(True)
        page.get_by_test_id("connection-state").filter(has_text="reconnecting").wait_for()
        # 6,000 lines of 101 bytes: 600 KB, more than the 256 KiB the relay replays on attach.
        term.user.cli("sessions", "send", sid, "for i in $(seq -w 1 6000); do printf 'long-%s %090d\\n' $i 0; done")
        wait_until(lambda: "long-6000" in term.user.cli("sessions", "logs", sid).stdout, message="printed")
        page.context.set_offline(False)
        wait_live(page)
        wait_screen(page, lambda text: "long-6000 " in text, "the last line")
        shown = [row.split()[0] for row in lines(page) if row.startswith("long-")]
        assert shown == [f"long-{i:04d}" for i in range(1, 6001)]
        assert "output skipped" not in screen(page)
    finally:
        page.context.close()


def test_copy_and_paste_through_the_clipboard(term: TermStack, browser: Any) -> None:
    sid = term.new_session()
    page = new_page(browser)
    try:
        page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=term.relay.url)
        open_terminal(page, term, sid)
        wait_prompt(page)
        type_line(page, "echo copy-me-please")
        wait_line(page, "copy-me-please")
        # Select the output word with a double click on its rendered row, then Copy.
        row = page.locator(".xterm-rows > div").filter(has_text=re.compile(r"^copy-me-please\s*$"))
        box = row.bounding_box()
        page.mouse.dblclick(box["x"] + 20, box["y"] + box["height"] / 2)  # xterm's screen layer takes the clicks
        page.get_by_test_id("copy").click()
        page.get_by_test_id("terminal-notice").filter(has_text="Copied").wait_for()
        assert page.evaluate("() => navigator.clipboard.readText()") == "copy-me-please"

        page.evaluate("() => navigator.clipboard.writeText('echo pasted-$((40+2))')")
        page.get_by_test_id("paste").click()
        wait_screen(page, lambda text: text.rstrip().endswith("echo pasted-$((40+2))"), "the pasted command line")
        page.keyboard.press("Enter")
        wait_line(page, "pasted-42")
    finally:
        page.context.close()


def test_permission_requests_are_approved_and_denied_from_the_terminal_bar(
    term: TermStack, browser: Any, tmp_path: Path
) -> None:
    sid = term.new_session(command=None)  # Claude Code (the stand-in)
    term.wait_status(sid, "idle")
    page = new_page(browser)
    try:
        open_terminal(page, term, sid)
        wait_line(page, next(line for line in lines(page) if line.startswith("Fake Claude Code")))
        assert page.get_by_test_id("terminal-status").inner_text() == "idle"

        type_line(page, "ask Bash rm -rf build")
        bar = page.get_by_test_id("permission-bar")
        bar.wait_for()
        assert page.get_by_test_id("permission-tool").inner_text() == "Bash"
        assert "rm -rf build" in page.get_by_test_id("permission-summary").inner_text()
        assert '"command": "rm -rf build"' in page.get_by_test_id("permission-input").inner_text()
        page.get_by_test_id("terminal-status").filter(has_text="waiting permission").wait_for()
        screenshot(page, "terminal-permission", tmp_path)
        page.get_by_test_id("permission-approve").click()
        wait_line(page, "permission: allow")
        bar.wait_for(state="detached")
        assert term.wait_status(sid, "idle")["pending_permission"] is None

        type_line(page, "ask Write /etc/passwd")
        bar.wait_for()
        page.get_by_test_id("permission-message").fill("not that file")
        page.get_by_test_id("permission-deny").click()
        wait_line(page, "permission: deny (not that file)")
        bar.wait_for(state="detached")

        # Decided elsewhere (the CLI): the bar goes away by itself.
        type_line(page, "ask Bash make deploy")
        bar.wait_for()
        term.user.cli("sessions", "approve", sid)
        wait_line(page, "permission: allow", seconds=15)
        bar.wait_for(state="detached")
        assert page.console_errors == []
    finally:
        page.context.close()


def test_read_only_shows_output_but_sends_no_keys(term: TermStack, browser: Any) -> None:
    sid = term.new_session()
    page = new_page(browser)
    try:
        open_terminal(page, term, sid)
        wait_prompt(page)
        page.get_by_test_id("toggle-read-only").click()
        page.get_by_test_id("toggle-read-only").filter(has_text="Read-only").wait_for()
        type_line(page, "echo typed-while-read-only")
        page.get_by_test_id("terminal-notice").filter(has_text="Read-only").wait_for()
        term.user.cli("sessions", "send", sid, "echo sent-from-cli")
        wait_line(page, "sent-from-cli")
        assert "typed-while-read-only" not in screen(page)

        page.get_by_test_id("toggle-read-only").click()
        page.get_by_test_id("toggle-read-only").filter(has_text="Writable").wait_for()
        type_line(page, "echo writable-again")
        wait_line(page, "writable-again")
        assert len(re.findall("sent-from-cli", screen(page))) == 2  # the command line and its output, once each

        page.get_by_test_id("toggle-find").click()
        page.get_by_test_id("find-input").fill("writable-again")
        page.get_by_test_id("find-next").click()
        assert page.get_by_test_id("find-none").count() == 0
        page.get_by_test_id("find-input").fill("no-such-text-anywhere")
        page.get_by_test_id("find-none").wait_for()
    finally:
        page.context.close()


def test_a_50_mb_flood_reaches_the_screen_and_the_tab_stays_responsive_with_bounded_memory(
    term: TermStack, browser: Any
) -> None:
    sid = term.new_session()
    page = new_page(browser)
    try:
        open_terminal(page, term, sid)
        wait_prompt(page)
        words = " ".join(["flood"] * 10)
        type_line(page, f"yes '{words}' | head -c 50000000; echo; echo FLOOD-$((6*7))")

        # Read only the rendered rows while it runs: each answer is itself proof the tab is not frozen.
        def finished() -> bool:
            return bool(page.evaluate("() => document.querySelector('.xterm-rows').textContent.includes('FLOOD-42')"))

        wait_until(finished, seconds=240, message="the flood's last line on screen")
        wait_line(page, "FLOOD-42")
        heap = page.evaluate("() => performance.memory.usedJSHeapSize")
        assert heap < 150_000_000, f"{heap / 1e6:.0f} MB of JS heap after a 50 MB flood"
        type_line(page, "echo still-typing")
        wait_line(page, "still-typing")
        assert page.console_errors == []
    finally:
        page.context.close()


# -- phone -------------------------------------------------------------------------------------------------------


def tap(page: Any, testid: str) -> None:
    page.get_by_test_id(testid).tap()


def test_phone_key_bar_and_compose_box(term: TermStack, browser: Any, tmp_path: Path) -> None:
    sid = term.new_session()
    page = new_page(browser, phone=True)
    try:
        open_terminal(page, term, sid)
        wait_prompt(page)
        bar = page.get_by_test_id("key-bar")
        bar.wait_for()
        for testid in ("key-esc", "key-ctrl-c", "key-up", "key-ctrl"):
            box = page.get_by_test_id(testid).bounding_box()
            assert box["width"] >= 44
            assert box["height"] >= 44
        # The terminal fills the screen above the key bar.
        terminal_box = page.get_by_test_id("terminal").bounding_box()
        assert terminal_box["height"] > 400
        assert terminal_box["y"] + terminal_box["height"] <= bar.bounding_box()["y"] + 1

        compose = page.get_by_test_id("compose-input")
        compose.fill("echo from-compose")
        compose.press("Enter")
        wait_line(page, "from-compose")
        assert compose.input_value() == ""

        compose.fill("sleep 100")
        page.get_by_test_id("compose-send").tap()
        wait_screen(page, lambda text: text.rstrip().endswith("sleep 100"), "sleep 100 running")
        tap(page, "key-ctrl-c")
        wait_prompt(page, 3)
        wait_screen(page, lambda text: re.search(r"\^C\s*\n\s*bash-[\d.]+[$#]", text), "the interrupted sleep")

        # Sticky Ctrl + a typed letter: Ctrl-U erases the line typed so far; the modifier is used up.
        page.locator("[data-testid=terminal]").click()
        page.keyboard.type("echo discarded")
        tap(page, "key-ctrl")
        assert page.get_by_test_id("key-ctrl").get_attribute("aria-pressed") == "true"
        page.keyboard.type("u")
        assert page.get_by_test_id("key-ctrl").get_attribute("aria-pressed") == "false"
        compose.fill("echo after-ctrl-u")
        compose.press("Enter")
        wait_line(page, "after-ctrl-u")
        assert "discarded" not in screen(page).split("echo after-ctrl-u")[-1]

        # Arrow up recalls the last command; Enter runs it again.
        tap(page, "key-up")
        wait_screen(page, lambda text: text.rstrip().endswith("echo after-ctrl-u"), "the recalled command")
        compose.press("Enter")
        wait_screen(page, lambda text: [r.rstrip() for r in text.split("\n")].count("after-ctrl-u") == 2, "run twice")

        # In application cursor mode (as vim or less set it) the arrow is ESC O A; cat -v shows what arrived.
        compose.fill("printf '\\033[?1h'; stty -echo; cat -v")
        compose.press("Enter")
        wait_screen(page, lambda text: text.rstrip().endswith("cat -v"), "cat running")
        tap(page, "key-up")
        tap(page, "key-left")
        compose.press("Enter")
        wait_line(page, "^[OA^[OD")
        tap(page, "key-ctrl-c")
        compose.fill("stty echo; printf '\\033[?1l'")
        compose.press("Enter")
        wait_prompt(page, 6)
        screenshot(page, "terminal", tmp_path)
        assert page.console_errors == []
    finally:
        page.context.close()


def test_an_ended_session_shows_its_output_and_exit_code_and_takes_no_keys(term: TermStack, browser: Any) -> None:
    sid = term.new_session(command=["bash", "-c", "echo goodbye-from-bash; exit 3"])
    wait_until(lambda: term.session(sid)["ended"], message="the session ended")
    page = new_page(browser)
    try:
        open_terminal(page, term, sid)
        wait_line(page, "goodbye-from-bash")
        page.get_by_test_id("terminal-status").filter(has_text="ended (exit 3)").wait_for()
        type_line(page, "echo nobody-hears")
        page.get_by_test_id("terminal-notice").filter(has_text="ended").wait_for()
        assert "nobody-hears" not in screen(page)
    finally:
        page.context.close()


def test_a_session_that_is_gone_says_so(term: TermStack, browser: Any) -> None:
    page = new_page(browser)
    try:
        sign_in(page, term.user)
        page.goto(f"{term.relay.url}/sessions/00000000-0000-4000-8000-000000000000/terminal")
        page.get_by_test_id("terminal-error").wait_for()
        assert "no session 00000000-0000-4000-8000-000000000000" in page.get_by_test_id("terminal-error").inner_text()
        page.locator('[data-testid=terminal-view][data-state="closed"]').wait_for()  # no retrying forever
    finally:
        page.context.close()
