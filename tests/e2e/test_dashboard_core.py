"""The dashboard's core pages in a real Chromium against a real relay and real agents: the three ways to sign in,
approving a pairing code, starting a session, the approvals inbox with the stand-in claude, markup shown as text,
and a screenshot of every page at 1280x800 and 390x844."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import browser as web
from tests.e2e.browser import new_page, screenshot, sign_in
from tests.e2e.harness import (
    Agent,
    Proc,
    Relay,
    User,
    add_user,
    claudenest,
    cli,
    pair_agent,
    role_env,
    timeout,
    wait_until,
)

browser, page, phone_page = web.browser, web.page, web.phone_page  # the fixtures, for this module
expect = pytest.importorskip("playwright.sync_api", reason="the [dev] extra installs playwright").expect

FAKE_CLAUDE = Path(__file__).parents[1] / "fakes" / "claude"
EMAIL = "me@example.com"
MARKUP = "<img src=x onerror=alert(1)>"


@dataclass
class Core:
    relay: Relay
    user: User
    agent: Agent
    root: Path

    @property
    def project_dir(self) -> Path:
        return self.root / "agent" / "project"

    def session(self, sid: str) -> dict[str, Any]:
        return dict(self.user.api("GET", f"/api/sessions/{sid}").json()["session"])

    def start_claude(self) -> str:
        created = self.user.api(
            "POST", "/api/sessions", json={"machine_id": self.agent.machine_id, "cwd": str(self.project_dir)}
        )
        assert created.status_code == 201, created.text
        sid = str(created.json()["session"]["id"])
        wait_until(lambda: self.session(sid)["status"] == "idle", message="the stand-in claude to start")
        return sid

    def type(self, sid: str, text: str) -> None:
        sent = self.user.api("POST", f"/api/sessions/{sid}/input", json={"text": text + "\r"})
        assert sent.status_code == 202, sent.text

    def logs(self, sid: str) -> str:
        return self.user.api("GET", f"/api/sessions/{sid}/logs").content.decode(errors="replace")


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Core]:
    """A relay, a user, and one agent whose `claude` is the stand-in (with a skill and an MCP server to find)."""
    root = tmp_path_factory.mktemp("core")
    relay = Relay(root / "relay").start()
    user = add_user(relay, EMAIL, root / "cli")
    home = root / "agent" / "unix-home"
    (home / ".claude" / "skills" / "release-notes").mkdir(parents=True)
    (home / ".claude" / "skills" / "release-notes" / "SKILL.md").write_text(
        "---\nname: release-notes\ndescription: Drafts release notes from merged PRs\n---\nBody\n"
    )
    (home / ".claude" / "commands").mkdir(parents=True)
    (home / ".claude" / "commands" / "review.md").write_text("---\ndescription: Review the current diff\n---\nBody\n")
    (home / ".claude.json").write_text(json.dumps({"mcpServers": {"tracker": {"command": "tracker-mcp"}}}))
    (root / "agent" / "project").mkdir(parents=True)
    agent_env = {
        "CLAUDENEST_AGENT_CLAUDE_PATH": str(FAKE_CLAUDE),
        "CLAUDENEST_AGENT_PERMISSION_WAIT": str(int(timeout(120))),  # the hook holds the request while we click
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        "HOME": str(home),
    }
    agent = pair_agent(relay, user, root / "agent", "workstation", extra_env=agent_env)
    try:
        yield Core(relay, user, agent, root)
    finally:
        agent.stop()
        relay.stop()


@pytest.fixture
def signed_in(core: Core, page: Any) -> Any:
    sign_in(page, core.user)
    return page


def no_script_ran(page: Any) -> None:
    assert page.evaluate("() => window.__pwned === undefined")
    assert page.console_errors == []


# ---- signing in -----------------------------------------------------------------------------------------------


def test_one_time_link_signs_in_once_and_leaves_the_address_bar(core: Core, browser: Any, page: Any) -> None:
    link = json.loads(cli(core.relay.home, "relay", "login-link", EMAIL, "--json").stdout)
    url = link["url"]
    assert url.startswith(core.relay.url + "/login#code=")
    page.goto(url)
    expect(page).to_have_url(f"{core.relay.url}/dashboard")
    expect(page.get_by_test_id("nav-user")).to_have_text(EMAIL)
    assert "code=" not in page.evaluate("() => location.href")

    # The same link in another browser: spent, and the page says so instead of signing in.
    other = new_page(browser)
    try:
        other.goto(url)
        expect(other.get_by_test_id("login-error")).to_contain_text("already used")
        expect(other).to_have_url(f"{core.relay.url}/login")
        assert other.request.get(f"{core.relay.url}/api/me").status == 401
    finally:
        other.context.close()


def test_password_sign_in_returns_to_the_deep_link(core: Core, page: Any, tmp_path: Path) -> None:
    cli(core.relay.home, "relay", "user", "passwd", EMAIL, input="correct horse battery\n")
    page.goto(f"{core.relay.url}/sessions?state=idle")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.get_by_test_id("email").fill(EMAIL)
    page.get_by_test_id("password").fill("not the password")
    page.get_by_test_id("password-submit").click()
    expect(page.get_by_test_id("login-error")).to_be_visible()
    screenshot(page, "login-error", tmp_path)
    page.get_by_test_id("password").fill("correct horse battery")
    page.get_by_test_id("password-submit").click()
    expect(page).to_have_url(f"{core.relay.url}/sessions?state=idle")
    expect(page.get_by_test_id("filter-state")).to_have_value("idle")

    # Signing out ends the cookie: a reload lands on the login page.
    page.get_by_test_id("logout").click()
    expect(page).to_have_url(re.compile(r"/login"))
    page.goto(f"{core.relay.url}/dashboard")
    expect(page).to_have_url(re.compile(r"/login\?next=(/|%2F)dashboard$"))


def test_pasting_a_token_signs_in(core: Core, phone_page: Any) -> None:
    phone_page.goto(f"{core.relay.url}/login")
    phone_page.get_by_test_id("method-token").click()
    phone_page.get_by_test_id("token").fill(core.user.token)
    phone_page.get_by_test_id("token-submit").click()
    expect(phone_page).to_have_url(f"{core.relay.url}/dashboard")
    expect(phone_page.get_by_test_id("tabbar")).to_be_visible()


# ---- machines -------------------------------------------------------------------------------------------------


def test_approving_a_pairing_code_from_the_machines_page(core: Core, signed_in: Any) -> None:
    page = signed_in
    home = core.root / "second"
    pairing = Proc(claudenest("pair", "--relay", core.relay.url, "--name", "second-box", "--json"), role_env(home))
    agent: Agent | None = None
    try:
        code = json.loads(pairing.wait_for(r'^\{"code"').string)["code"]
        page.goto(f"{core.relay.url}/machines")
        page.get_by_test_id("pairing-code").fill(code.replace("-", "").lower())  # typed loosely
        page.get_by_test_id("pairing-lookup").click()
        info = page.get_by_test_id("pairing-info")
        expect(info).to_be_visible()
        expect(page.get_by_test_id("pairing-hostname")).to_have_text(socket.gethostname())
        expect(page.get_by_test_id("pairing-ip")).to_have_text("127.0.0.1")
        expect(page.get_by_test_id("pairing-requested-name")).to_have_text("second-box")
        expect(page.get_by_test_id("pairing-platform")).not_to_be_empty()
        page.get_by_test_id("pairing-approve").click()
        expect(page.get_by_test_id("pairing-done")).to_contain_text("second-box")
        done = json.loads(pairing.wait_for(r'"status": "completed"', seconds=20).string)
        assert pairing.wait(seconds=10) == 0, pairing.output

        agent = Agent(home=home, relay_url=core.relay.url, machine_id=done["machine_id"]).start()
        row = page.locator(f'[data-testid="machine-row"][data-machine="{done["machine_id"]}"]')
        expect(row).to_contain_text("second-box")
        # The list re-reads itself (every 15 s): the new agent shows up online without a reload.
        expect(row.get_by_test_id("status-badge")).to_have_attribute(
            "data-status", "online", timeout=timeout(30) * 1000
        )
        # An unknown code is refused with the relay's message.
        page.get_by_test_id("pairing-code").fill("ACD-EFG")
        page.get_by_test_id("pairing-lookup").click()
        expect(page.get_by_test_id("pairing-error")).to_contain_text("no pending pairing code")
    finally:
        if agent is not None:
            agent.stop()
        pairing.stop()


def test_machine_detail_renames_shows_discovery_and_revokes_after_confirming(core: Core, signed_in: Any) -> None:
    page = signed_in
    home = core.root / "spare"
    spare = pair_agent(core.relay, core.user, home, "spare")
    try:
        page.goto(f"{core.relay.url}/machines/{spare.machine_id}")
        expect(page.get_by_test_id("machine-name")).to_have_text("spare")
        page.get_by_test_id("rename").click()
        page.get_by_test_id("rename-input").fill("spare-renamed")
        page.get_by_test_id("rename-save").click()
        expect(page.get_by_test_id("machine-name")).to_have_text("spare-renamed")
        assert core.user.api("GET", f"/api/machines/{spare.machine_id}").json()["machine"]["name"] == "spare-renamed"

        revoke = page.get_by_test_id("revoke")
        revoke.get_by_test_id("confirm-start").click()
        revoke.get_by_test_id("confirm-no").click()  # changed my mind: nothing happens
        assert core.user.api("GET", f"/api/machines/{spare.machine_id}").json()["machine"]["status"] == "online"
        revoke.get_by_test_id("confirm-start").click()
        revoke.get_by_test_id("confirm-yes").click()
        expect(page).to_have_url(f"{core.relay.url}/machines")
        shown = core.user.api("GET", f"/api/machines/{spare.machine_id}").json()["machine"]
        assert shown["status"] == "revoked"
        wait_until(lambda: spare.proc is not None and spare.proc.popen.poll() is not None, message="agent told")
    finally:
        spare.stop()

    # The stand-in's machine: discovery lists the skill, the command and the MCP server it was given.
    page.goto(f"{core.relay.url}/machines/{core.agent.machine_id}")
    expect(page.get_by_test_id("machine-claude-version")).to_have_text("2.1.197")
    expect(page.get_by_test_id("discovery-skills")).to_contain_text("release-notes")
    expect(page.get_by_test_id("discovery-commands")).to_contain_text("/review")
    expect(page.get_by_test_id("discovery-mcp_servers")).to_contain_text("tracker")


def test_skills_mcp_and_commands_pages_list_each_machines_discovery(core: Core, signed_in: Any) -> None:
    page = signed_in
    for path, testid, expected in [
        ("/skills", "discovery-skills", "Drafts release notes from merged PRs"),
        ("/mcp", "discovery-mcp_servers", "tracker-mcp"),
        ("/commands", "discovery-commands", "Review the current diff"),
    ]:
        page.goto(core.relay.url + path)
        group = page.locator(f'[data-testid="discovery-machine"][data-machine="{core.agent.machine_id}"]')
        expect(group).to_contain_text("workstation")
        expect(group).to_contain_text(expected)
        assert page.get_by_test_id(testid).count() == 1
    page.get_by_test_id("machine-picker").select_option(core.agent.machine_id)
    expect(page).to_have_url(re.compile(rf"machine={core.agent.machine_id}"))
    page.reload()
    expect(page.get_by_test_id("machine-picker")).to_have_value(core.agent.machine_id)


# ---- sessions -------------------------------------------------------------------------------------------------


def test_start_a_bash_session_and_kill_it_from_the_list(core: Core, signed_in: Any) -> None:
    page = signed_in
    page.goto(f"{core.relay.url}/sessions/new")
    page.get_by_test_id("new-machine").select_option(core.agent.machine_id)
    page.get_by_test_id("mode-command").check()
    page.get_by_test_id("new-command").fill("bash --norc -c 'echo \"from the page\"; exec sleep 300'")
    expect(page.get_by_test_id("new-argv")).to_contain_text("4 words")
    page.get_by_test_id("new-cwd").fill(str(core.project_dir))
    page.get_by_test_id("new-start").click()
    expect(page).to_have_url(re.compile(r"/sessions/[0-9a-f-]{36}/terminal$"))
    sid = page.url.rsplit("/", 2)[1]
    session = core.session(sid)
    assert session["command"] == ["bash", "--norc", "-c", 'echo "from the page"; exec sleep 300']
    assert session["project_path"] == str(core.project_dir)
    wait_until(lambda: "from the page" in core.logs(sid), message="the command's output")

    page.goto(f"{core.relay.url}/sessions?machine={core.agent.machine_id}")
    row = page.locator(f'[data-testid="session-row"][data-session="{sid}"]')
    expect(row.get_by_test_id("status-badge")).to_have_attribute("data-status", "running")
    kill = row.get_by_test_id("session-kill")
    kill.get_by_test_id("confirm-start").click()
    kill.get_by_test_id("confirm-yes").click()
    # Live: the badge changes from the watch socket's event, without a reload.
    expect(row.get_by_test_id("status-badge")).to_have_attribute("data-status", re.compile("exited|error"))
    assert core.session(sid)["ended"] is True
    page.get_by_test_id("filter-state").select_option("live")
    expect(row).to_have_count(0)


def test_claude_in_a_shared_project_and_the_filters_survive_a_reload(core: Core, signed_in: Any) -> None:
    page = signed_in
    project = core.user.api(
        "POST", "/api/projects", json={"name": "filterproj", "project_path": str(core.project_dir)}
    ).json()["project"]
    page.goto(f"{core.relay.url}/sessions/new")
    page.get_by_test_id("new-machine").select_option(core.agent.machine_id)
    page.get_by_test_id("new-project").select_option(project["id"])
    expect(page.get_by_test_id("new-cwd")).to_have_value(str(core.project_dir))  # the project's path
    expect(page.get_by_test_id("mode-command")).to_be_disabled()  # project sessions run Claude Code
    page.get_by_test_id("new-start").click()
    expect(page).to_have_url(re.compile(r"/sessions/[0-9a-f-]{36}/terminal$"))
    sid = page.url.rsplit("/", 2)[1]
    assert core.session(sid)["project_id"] == project["id"]

    page.goto(f"{core.relay.url}/sessions")
    page.get_by_test_id("filter-project").select_option(project["id"])
    page.get_by_test_id("filter-state").select_option("idle")
    expect(page).to_have_url(re.compile(rf"project={project['id']}"))
    rows = page.get_by_test_id("session-row")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-session", sid)
    page.reload()
    expect(page.get_by_test_id("filter-project")).to_have_value(project["id"])
    expect(page.get_by_test_id("filter-state")).to_have_value("idle")
    expect(rows).to_have_count(1)
    page.get_by_test_id("filter-clear").click()
    expect(page).to_have_url(f"{core.relay.url}/sessions")
    core.type(sid, "exit")


def test_a_headless_run_from_the_page_shows_its_result_and_cost(core: Core, signed_in: Any) -> None:
    page = signed_in
    page.goto(f"{core.relay.url}/sessions/new?machine={core.agent.machine_id}")
    page.get_by_test_id("mode-headless").check()
    expect(page.get_by_test_id("new-start")).to_be_disabled()  # a headless run needs a prompt
    page.get_by_test_id("new-prompt").fill("summarize the repo")
    page.get_by_test_id("new-cwd").fill(str(core.project_dir))
    page.get_by_test_id("new-start").click()
    expect(page).to_have_url(re.compile(r"/sessions/[0-9a-f-]{36}/terminal$"))
    sid = page.url.rsplit("/", 2)[1]
    page.goto(f"{core.relay.url}/sessions")
    row = page.locator(f'[data-testid="session-row"][data-session="{sid}"]')
    expect(row.get_by_test_id("session-result")).to_contain_text("You said: summarize the repo")
    expect(row.get_by_test_id("session-usage")).to_contain_text("47 tokens, $0.012")
    expect(row.get_by_test_id("status-badge")).to_have_attribute("data-status", "exited")


def test_an_offline_machine_is_refused_with_the_relays_message(core: Core, signed_in: Any) -> None:
    page = signed_in
    home = core.root / "brief"
    brief = pair_agent(core.relay, core.user, home, "brief")
    page.goto(f"{core.relay.url}/sessions/new?machine={brief.machine_id}")
    page.get_by_test_id("mode-command").check()
    page.get_by_test_id("new-command").fill("true")
    expect(page.get_by_test_id("new-machine")).to_have_value(brief.machine_id)
    expect(page.get_by_test_id("new-no-claude")).to_contain_text("Claude Code was not found on brief")
    brief.stop()
    wait_until(
        lambda: core.user.api("GET", f"/api/machines/{brief.machine_id}").json()["machine"]["status"] == "offline",
        message="the machine offline",
    )
    page.get_by_test_id("new-start").click()
    expect(page.get_by_test_id("new-error")).to_contain_text("brief is offline")
    core.user.api("DELETE", f"/api/machines/{brief.machine_id}")


# ---- the approvals inbox --------------------------------------------------------------------------------------


def test_inbox_approves_and_denies_the_stand_in_claudes_requests(core: Core, signed_in: Any, tmp_path: Path) -> None:
    page = signed_in
    sid = core.start_claude()
    page.goto(f"{core.relay.url}/dashboard")
    expect(page.get_by_test_id("approvals-empty")).to_be_visible()

    core.type(sid, "ask Bash rm -rf build")
    card = page.locator(f'[data-testid="permission-card"][data-session="{sid}"]')
    expect(card.get_by_test_id("permission-tool")).to_have_text("Bash")  # live, from the watch socket
    expect(card.get_by_test_id("permission-summary")).to_contain_text("rm -rf build")
    expect(page.get_by_test_id("nav-approvals")).to_have_text("1")
    expect(page.get_by_test_id("tile-waiting_permission")).to_contain_text("1")
    screenshot(page, "dashboard-approval", tmp_path)
    card.get_by_test_id("approve").click()
    wait_until(lambda: "permission: allow" in core.logs(sid), message="the approval reaching claude")
    expect(card).to_have_count(0)
    wait_until(lambda: core.session(sid)["status"] == "idle", message="the turn to finish")
    assert core.session(sid)["pending_permission"] is None

    core.type(sid, "ask Write /etc/passwd")
    expect(card.get_by_test_id("permission-tool")).to_have_text("Write")
    card.get_by_test_id("deny").click()
    card.get_by_test_id("deny-message").fill("not that file")
    card.get_by_test_id("deny-send").click()
    wait_until(lambda: "permission: deny (not that file)" in core.logs(sid), message="the denial with its reason")
    expect(card).to_have_count(0)
    expect(page.get_by_test_id("approvals-empty")).to_be_visible()
    wait_until(lambda: core.session(sid)["status"] == "idle", message="claude going on after the denial")
    core.type(sid, "exit")


def test_inbox_works_with_a_thumb_on_a_phone(core: Core, phone_page: Any, tmp_path: Path) -> None:
    sign_in(phone_page, core.user)
    sid = core.start_claude()
    phone_page.goto(f"{core.relay.url}/dashboard")
    core.type(sid, "ask Bash make deploy")
    card = phone_page.locator(f'[data-testid="permission-card"][data-session="{sid}"]')
    expect(card.get_by_test_id("permission-summary")).to_contain_text("make deploy")
    box = card.get_by_test_id("approve").bounding_box()
    assert box["height"] >= 44
    screenshot(phone_page, "dashboard-approval", tmp_path)
    card.get_by_test_id("approve").tap()
    wait_until(lambda: "permission: allow" in core.logs(sid), message="the approval reaching claude")
    expect(card).to_have_count(0)
    core.type(sid, "exit")


def test_the_inbox_stays_live_across_a_relay_restart(core: Core, signed_in: Any) -> None:
    page = signed_in
    page.goto(f"{core.relay.url}/dashboard")
    expect(page.get_by_test_id("approvals-empty")).to_be_visible()
    core.relay.restart()
    expect(page.get_by_test_id("live-reconnecting")).to_be_visible()  # said, not hidden
    wait_until(
        lambda: core.user.api("GET", f"/api/machines/{core.agent.machine_id}").json()["machine"]["status"] == "online",
        seconds=60,
        message="the agent back online",
    )
    expect(page.get_by_test_id("live-reconnecting")).to_have_count(0, timeout=timeout(40) * 1000)
    sid = core.start_claude()
    core.type(sid, "ask Bash make release")
    card = page.locator(f'[data-testid="permission-card"][data-session="{sid}"]')
    expect(card.get_by_test_id("permission-summary")).to_contain_text("make release")  # no reload
    card.get_by_test_id("approve").click()
    wait_until(lambda: "permission: allow" in core.logs(sid), message="the approval reaching claude")
    core.type(sid, "exit")


# ---- project activity -------------------------------------------------------------------------------------------


def test_dashboard_shows_project_activity_live(core: Core, signed_in: Any) -> None:
    page = signed_in
    project = core.user.api(
        "POST", "/api/projects", json={"name": "feedproj", "project_path": str(core.project_dir)}
    ).json()["project"]
    tasks = f"/api/projects/{project['id']}/tasks"
    assert core.user.api("POST", tasks, json={"title": "first task"}).status_code == 201
    page.goto(f"{core.relay.url}/dashboard")
    feed = page.get_by_test_id("activity")
    expect(feed.get_by_test_id("activity-row").filter(has_text="first task")).to_contain_text("feedproj")
    # A new row arrives over the project's event stream, without a reload (the page's own re-read of the list
    # comes only every 30 s, later than this wait gives up).
    assert core.user.api("POST", tasks, json={"title": "second task"}).status_code == 201
    expect(feed.get_by_test_id("activity-row").first).to_contain_text("second task")


# ---- markup is text ---------------------------------------------------------------------------------------------


def test_markup_in_machine_and_session_names_shows_as_text(core: Core, signed_in: Any) -> None:
    page = signed_in
    page.add_init_script("window.alert = () => { window.__pwned = true; };")
    page.on("dialog", lambda dialog: pytest.fail(f"a dialog opened: {dialog.message}"))
    renamed = core.user.api("PATCH", f"/api/machines/{core.agent.machine_id}", json={"name": MARKUP})
    assert renamed.status_code == 200, renamed.text
    created = core.user.api(
        "POST",
        "/api/sessions",
        json={"machine_id": core.agent.machine_id, "cwd": str(core.project_dir), "command": ["echo", MARKUP]},
    )
    sid = created.json()["session"]["id"]
    try:
        for path in ("/dashboard", "/machines", f"/machines/{core.agent.machine_id}", "/sessions", "/skills"):
            page.goto(core.relay.url + path)
            expect(page.get_by_text(MARKUP).filter(visible=True).first).to_be_visible()
            assert page.locator("img").count() == 0, path
        row = page.locator(f'[data-testid="session-row"][data-session="{sid}"]')
        page.goto(f"{core.relay.url}/sessions")
        expect(row.get_by_test_id("session-terminal-link")).to_have_text(f"echo '{MARKUP}'")
        expect(row.get_by_test_id("session-machine")).to_have_text(MARKUP)
        page.goto(f"{core.relay.url}/sessions/new")
        expect(page.get_by_test_id("new-machine").locator("option", has_text=MARKUP)).to_have_count(1)
        no_script_ran(page)
    finally:
        core.user.api("PATCH", f"/api/machines/{core.agent.machine_id}", json={"name": "workstation"})


# ---- settings -----------------------------------------------------------------------------------------------------


def test_settings_lists_sign_ins_and_tokens_and_revokes_them(core: Core, browser: Any, signed_in: Any) -> None:
    page = signed_in
    other = new_page(browser)
    try:
        sign_in(other, core.user)  # a second browser
        page.goto(f"{core.relay.url}/settings")
        expect(page.get_by_test_id("settings-email")).to_have_text(EMAIL)
        current = page.locator('[data-testid="web-session"][data-current="true"]')
        expect(current).to_have_count(1)
        expect(current.get_by_test_id("web-session-current")).to_have_text("this browser")
        others = page.locator('[data-testid="web-session"][data-current="false"]')
        before = others.count()
        assert before >= 1
        seen = other.request.get(f"{core.relay.url}/api/auth/web-sessions").json()["sessions"]
        second = page.locator(f'[data-testid="web-session"][data-id="{next(s["id"] for s in seen if s["current"])}"]')
        second.get_by_test_id("web-session-revoke").get_by_test_id("confirm-start").click()
        second.get_by_test_id("web-session-revoke").get_by_test_id("confirm-yes").click()
        expect(second).to_have_count(0)
        expect(others).to_have_count(before - 1)
        wait_until(lambda: other.request.get(f"{core.relay.url}/api/me").status == 401, message="revoked browser")
    finally:
        other.context.close()

    page.get_by_test_id("token-name").fill("from-the-page")
    page.get_by_test_id("token-create").click()
    value = page.get_by_test_id("token-value").input_value()
    assert value.startswith("cn_")
    assert core.user.api("GET", "/api/me", headers={"Authorization": f"Bearer {value}"}).status_code == 200
    token = page.locator('[data-testid="token"]', has_text="from-the-page")
    token.get_by_test_id("token-revoke").get_by_test_id("confirm-start").click()
    token.get_by_test_id("token-revoke").get_by_test_id("confirm-yes").click()
    expect(token).to_have_count(0)
    assert core.user.api("GET", "/api/me", headers={"Authorization": f"Bearer {value}"}).status_code == 401


# ---- screenshots ------------------------------------------------------------------------------------------------

# Each page with what shows once its data is in.
PAGES = [
    ("dashboard", "/dashboard", '[data-testid="permission-card"]'),
    ("machines", "/machines", '[data-testid="machine-row"]'),
    ("machine", "/machines/{machine}", '[data-testid="discovery-skills"]'),
    ("sessions", "/sessions", '[data-testid="session-result"]'),
    ("sessions-new", "/sessions/new", '[data-testid="new-machine"] option:nth-child(2)'),
    ("settings", "/settings", '[data-testid="token"]'),
    ("skills", "/skills", '[data-testid="discovery-item"]'),
    ("mcp", "/mcp", '[data-testid="discovery-item"]'),
    ("commands", "/commands", '[data-testid="discovery-item"]'),
    ("not-found", "/no/such/page", '[data-testid="not-found"]'),
]


@pytest.mark.parametrize("phone", [False, True], ids=["desktop", "phone"])
def test_screenshots_of_every_core_page(core: Core, browser: Any, phone: bool, tmp_path: Path) -> None:
    # Something to show: one finished headless run with a result and cost, one session waiting for approval.
    headless = core.user.api(
        "POST",
        "/api/sessions",
        json={"machine_id": core.agent.machine_id, "cwd": str(core.project_dir), "mode": "headless", "prompt": "hi"},
    ).json()["session"]["id"]
    wait_until(lambda: core.session(headless)["ended"], message="the headless run")
    sid = core.start_claude()
    core.type(sid, "ask Bash npm publish")
    wait_until(lambda: core.session(sid)["pending_permission"], message="a pending permission")
    page = new_page(browser, phone=phone)
    try:
        page.goto(f"{core.relay.url}/login")
        expect(page.get_by_test_id("password-form")).to_be_visible()
        screenshot(page, "login", tmp_path)
        sign_in(page, core.user)
        for name, path, ready in PAGES:
            page.goto(core.relay.url + path.format(machine=core.agent.machine_id))
            expect(page.locator(ready).first).to_be_attached()
            screenshot(page, name, tmp_path)
        if phone:
            page.goto(f"{core.relay.url}/dashboard")
            page.get_by_test_id("tab-more").tap()
            expect(page.get_by_test_id("more-menu")).to_be_visible()
            screenshot(page, "more-menu", tmp_path)
            page.get_by_test_id("more-menu").get_by_text("Settings").tap()
            expect(page).to_have_url(f"{core.relay.url}/settings")
        assert page.console_errors == []
    finally:
        page.context.close()
        core.user.api("POST", f"/api/sessions/{sid}/approve")
        core.type(sid, "exit")
