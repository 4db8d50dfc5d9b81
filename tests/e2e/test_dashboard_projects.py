"""The dashboard's project pages in a real Chromium against a real relay: creating a project, the task board's
drags through the relay's transitions (assigning to a live instance, an illegal move refused with the relay's 409
and snapping back), tasks with dependencies, markup in a title shown as text, the live activity feed, locks with
their countdown released by the owner, context search with score and ranks, and screenshots of every page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import browser as web
from tests.e2e.browser import screenshot, sign_in
from tests.e2e.coordination_helpers import Instance, new_instance, new_project, new_task
from tests.e2e.harness import Relay, User, add_user, wait_until

browser, page, phone_page = web.browser, web.page, web.phone_page  # the fixtures, for this module
expect = pytest.importorskip("playwright.sync_api", reason="the [dev] extra installs playwright").expect

MARKUP = "<img src=x onerror=alert(1)>"


@dataclass
class Site:
    relay: Relay
    user: User
    project: dict[str, Any]
    alice: Instance

    @property
    def pid(self) -> str:
        return str(self.project["id"])

    def task(self, tid: str) -> dict[str, Any]:
        return dict(self.user.api("GET", f"/api/projects/{self.pid}/tasks/{tid}").json()["task"])

    def open(self, page: Any, path: str) -> None:
        page.goto(self.relay.url + path)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A relay (instances stay live for the whole module), its owner, a project and one registered instance."""
    root = tmp_path_factory.mktemp("projects")
    relay = Relay(root / "relay", extra_env={"CLAUDENEST_INSTANCE_GRACE_SECONDS": "3600"}).start()
    try:
        user = add_user(relay, "owner@example.com", root / "cli")
        project = new_project(user, "nest", "/work/nest")
        alice = new_instance(user, project["id"], "alice")
        yield Site(relay, user, project, alice)
    finally:
        relay.stop()


def drag(page: Any, card: Any, column: Any) -> None:
    """Press on a card, move the mouse onto another column and let go (pointer events, as a person would)."""
    start = card.bounding_box()
    end = column.bounding_box()
    x, y = start["x"] + start["width"] / 2, start["y"] + start["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 12, y + 8, steps=3)
    page.mouse.move(end["x"] + end["width"] / 2, end["y"] + min(end["height"] / 2, 120), steps=12)
    page.mouse.up()


def touch_drag(page: Any, handle: Any, column: Any) -> None:
    """A finger on the card's grip, moved onto another column (real touch input through the DevTools protocol)."""
    start = handle.bounding_box()
    end = column.bounding_box()
    x, y = start["x"] + start["width"] / 2, start["y"] + start["height"] / 2
    tx, ty = end["x"] + end["width"] / 2, end["y"] + min(end["height"] / 2, 40)
    cdp = page.context.new_cdp_session(page)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
    steps = 12
    for n in range(1, steps + 1):
        point = {"x": x + (tx - x) * n / steps, "y": y + (ty - y) * n / steps}
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [point]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    cdp.detach()


def card_in(page: Any, status: str, tid: str) -> Any:
    return page.locator(f'[data-testid="column-{status}"] [data-task-id="{tid}"]')


def test_create_a_project_from_the_list(site: Site, page: Any, tmp_path: Path) -> None:
    sign_in(page, site.user)
    site.open(page, "/projects")
    expect(page.get_by_test_id("project-item").filter(has_text="nest")).to_be_visible()
    page.get_by_test_id("project-new").click()
    page.get_by_test_id("project-name-input").fill("website")
    page.get_by_test_id("project-path-input").fill("/srv/website")
    page.get_by_test_id("project-summary-input").fill("The public site")
    page.get_by_test_id("project-create").click()
    expect(page.get_by_test_id("project-name")).to_have_text("website")
    expect(page.get_by_test_id("text-summary")).to_have_text("The public site")
    names = [p["name"] for p in site.user.api("GET", "/api/projects").json()["projects"]]
    assert "website" in names

    # A second project of the same name: the relay's 409 message is shown.
    site.open(page, "/projects")
    page.get_by_test_id("project-new").click()
    page.get_by_test_id("project-name-input").fill("website")
    page.get_by_test_id("project-path-input").fill("/srv/other")
    page.get_by_test_id("project-create").click()
    expect(page.get_by_test_id("project-form-error")).to_contain_text("website")
    screenshot(page, "projects", tmp_path)


def test_drag_to_in_progress_assigns_the_task_to_the_live_instance(site: Site, page: Any) -> None:
    task = new_task(site.user, site.pid, "wire the board")
    sign_in(page, site.user)
    site.open(page, f"/projects/{site.pid}/tasks")
    card = card_in(page, "pending", task["id"])
    expect(card).to_be_visible()

    drag(page, card, page.get_by_test_id("column-in_progress"))

    expect(card_in(page, "in_progress", task["id"])).to_be_visible()
    wait_until(lambda: site.task(task["id"])["status"] == "in_progress", message="the task to be in progress")
    assert site.task(task["id"])["assigned_to"] == site.alice.id
    expect(card_in(page, "in_progress", task["id"])).to_contain_text("alice")
    assert page.console_errors == []


def test_an_illegal_drag_shows_the_relays_409_and_the_card_snaps_back(site: Site, page: Any) -> None:
    task = new_task(site.user, site.pid, "not started yet")
    sign_in(page, site.user)
    site.open(page, f"/projects/{site.pid}/tasks")
    card = card_in(page, "pending", task["id"])
    expect(card).to_be_visible()

    drag(page, card, page.get_by_test_id("column-done"))

    expect(page.get_by_test_id("board-notice")).to_contain_text("task is pending, not in_progress")
    expect(card_in(page, "pending", task["id"])).to_be_visible()
    expect(card_in(page, "done", task["id"])).to_have_count(0)
    assert site.task(task["id"])["status"] == "pending"


def test_with_several_live_instances_the_board_asks_which_one(site: Site, page: Any) -> None:
    bob = new_instance(site.user, site.pid, "bob")
    task = new_task(site.user, site.pid, "for bob")
    sign_in(page, site.user)
    site.open(page, f"/projects/{site.pid}/tasks")
    drag(page, card_in(page, "pending", task["id"]), page.get_by_test_id("column-in_progress"))
    dialog = page.get_by_test_id("move-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_test_id("move-instance").filter(has_text="bob").click()
    dialog.get_by_test_id("move-submit").click()
    wait_until(lambda: site.task(task["id"])["assigned_to"] == bob.id, message="the task to go to bob")

    # in_progress -> review asks for a summary for the reviewer; review -> done approves it.
    drag(page, card_in(page, "in_progress", task["id"]), page.get_by_test_id("column-review"))
    page.get_by_test_id("move-text").fill("ready for a look")
    page.get_by_test_id("move-submit").click()
    wait_until(lambda: site.task(task["id"])["status"] == "review", message="the task to be in review")
    drag(page, card_in(page, "review", task["id"]), page.get_by_test_id("column-done"))
    wait_until(lambda: site.task(task["id"])["status"] == "done", message="the review to be approved")
    assert site.task(task["id"])["completion_summary"] == "ready for a look"
    expect(card_in(page, "done", task["id"])).to_be_visible()
    # bob stays registered; end him so the single-instance tests keep one live instance
    assert site.user.api("DELETE", f"/api/projects/{site.pid}/instances/{bob.id}").status_code == 200


def test_with_no_live_instance_the_board_shows_the_relays_answer(site: Site, page: Any) -> None:
    empty = new_project(site.user, "no-instances", "/work/empty")
    task = new_task(site.user, empty["id"], "nobody to do it")
    sign_in(page, site.user)
    site.open(page, f"/projects/{empty['id']}/tasks")
    drag(page, card_in(page, "pending", task["id"]), page.get_by_test_id("column-in_progress"))
    expect(page.get_by_test_id("board-notice")).to_contain_text("this project has none")
    expect(card_in(page, "pending", task["id"])).to_be_visible()
    assert site.user.api("GET", f"/api/projects/{empty['id']}/tasks/{task['id']}").json()["task"]["status"] == "pending"


def test_block_asks_why_and_unblock_returns_the_task(site: Site, page: Any) -> None:
    task = new_task(site.user, site.pid, "waits on the vendor")
    sign_in(page, site.user)
    site.open(page, f"/projects/{site.pid}/tasks")
    drag(page, card_in(page, "pending", task["id"]), page.get_by_test_id("column-blocked"))
    expect(page.get_by_test_id("move-dialog")).to_contain_text("Why is")
    page.get_by_test_id("move-text").fill("the vendor's API is down")
    page.get_by_test_id("move-submit").click()
    blocked = card_in(page, "blocked", task["id"])
    expect(blocked).to_contain_text("the vendor's API is down")
    assert site.task(task["id"])["blocked_reason"] == "the vendor's API is down"
    drag(page, blocked, page.get_by_test_id("column-pending"))
    expect(card_in(page, "pending", task["id"])).to_be_visible()
    wait_until(lambda: site.task(task["id"])["status"] == "pending", message="the task to be unblocked")


def test_create_and_edit_a_task_with_a_dependency(site: Site, page: Any, tmp_path: Path) -> None:
    first = new_task(site.user, site.pid, "lay the schema")
    sign_in(page, site.user)
    site.open(page, f"/projects/{site.pid}/tasks")
    page.get_by_test_id("task-new").click()
    dialog = page.get_by_test_id("task-dialog")
    dialog.get_by_test_id("task-title-input").fill("write the queries")
    dialog.get_by_test_id("task-description-input").fill("after the schema")
    dialog.get_by_test_id("task-priority-input").select_option("high")
    dialog.get_by_test_id("task-files-input").fill("src/db.py\nsrc/queries.py")
    dialog.get_by_test_id("task-dependency").filter(has_text="lay the schema").locator("input").check()
    dialog.get_by_test_id("task-save").click()
    expect(dialog).to_have_count(0)

    created = next(
        t
        for t in site.user.api("GET", f"/api/projects/{site.pid}/tasks").json()["tasks"]
        if t["title"] == "write the queries"
    )
    assert created["dependencies"] == [first["id"]]
    assert created["priority"] == "high"
    assert created["files"] == ["src/db.py", "src/queries.py"]
    card = card_in(page, "pending", created["id"])
    expect(card).to_contain_text("waits for 1")

    card.get_by_test_id("task-open").click()
    expect(dialog.get_by_test_id("task-title-input")).to_have_value("write the queries")
    dialog.get_by_test_id("task-title-input").fill("write the SQL queries")
    dialog.get_by_test_id("task-save").click()
    expect(card).to_contain_text("write the SQL queries")
    assert site.task(created["id"])["title"] == "write the SQL queries"
    screenshot(page, "project-tasks", tmp_path)

    # Without dragging (a keyboard): the card's own move buttons. Its dependency is not done: the relay says so.
    card.get_by_test_id("task-open").click()
    dialog.get_by_test_id("task-move-in_progress").click()
    expect(page.get_by_test_id("board-notice")).to_contain_text("depends on unfinished tasks")
    expect(page.get_by_test_id("board-notice")).to_contain_text("lay the schema")
    expect(card_in(page, "pending", created["id"])).to_be_visible()


def test_a_title_with_markup_shows_as_text(site: Site, page: Any) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    task = new_task(site.user, site.pid, MARKUP)
    sign_in(page, site.user)
    site.open(page, f"/projects/{site.pid}/tasks")
    expect(card_in(page, "pending", task["id"]).get_by_test_id("task-title")).to_have_text(MARKUP)
    assert page.locator('[data-testid="board"] img').count() == 0
    site.open(page, f"/projects/{site.pid}")
    expect(page.get_by_test_id("activity-item").filter(has_text=MARKUP).first).to_be_visible()
    assert page.locator("main img").count() == 0
    assert dialogs == []


def test_the_activity_feed_and_the_board_update_live(site: Site, page: Any, tmp_path: Path) -> None:
    sign_in(page, site.user)
    site.open(page, f"/projects/{site.pid}")
    expect(page.get_by_test_id("stream-state")).to_have_text("live")
    expect(page.get_by_test_id("instance").filter(has_text="alice")).to_contain_text("heartbeat")
    task = new_task(site.user, site.pid, "made through the API")
    expect(page.get_by_test_id("activity-item").filter(has_text="made through the API").first).to_be_visible()

    # The overview's fields are edited in place.
    page.get_by_test_id("edit-current_focus").click()
    page.get_by_test_id("input-current_focus").fill("ship the dashboard")
    page.get_by_test_id("save-current_focus").click()
    expect(page.get_by_test_id("text-current_focus")).to_have_text("ship the dashboard")
    assert site.user.api("GET", f"/api/projects/{site.pid}").json()["project"]["current_focus"] == "ship the dashboard"
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "project", tmp_path)

    # On the board, a claim made by an instance elsewhere moves the card.
    page.get_by_test_id("tab-tasks").click()
    expect(card_in(page, "pending", task["id"])).to_be_visible()
    expect(page.get_by_test_id("stream-state")).to_have_text("live")
    claimed = site.alice.api("POST", f"/api/projects/{site.pid}/tasks/{task['id']}/claim")
    assert claimed.status_code == 200, claimed.text
    expect(card_in(page, "in_progress", task["id"])).to_be_visible()


def test_locks_count_down_and_the_owner_releases_one(site: Site, page: Any, tmp_path: Path) -> None:
    locks = f"/api/projects/{site.pid}/locks"
    taken = site.alice.api("POST", locks, json={"path": "src/app.py", "reason": "refactoring", "ttl_seconds": 900})
    assert taken.status_code == 201, taken.text
    fencing = taken.json()["lock"]["fencing"]
    sign_in(page, site.user)
    site.open(page, f"/projects/{site.pid}/locks")
    row = page.locator('[data-testid="lock-row"][data-path="src/app.py"]')
    expect(row.get_by_test_id("lock-holder")).to_have_text("alice")
    expect(row).to_contain_text("refactoring")
    expect(row.get_by_test_id("lock-fencing")).to_have_text(str(fencing))
    countdown = row.get_by_test_id("lock-countdown")
    expect(countdown).to_have_text(re.compile(r"^1[45]:\d\d$"))
    first = countdown.inner_text()
    expect(countdown).not_to_have_text(first)  # it counts down
    screenshot(page, "project-locks", tmp_path)

    row.get_by_test_id("lock-release").click()
    row.get_by_test_id("lock-release-confirm").click()
    expect(row).to_have_count(0)
    expect(page.get_by_test_id("locks-empty")).to_be_visible()
    assert site.user.api("GET", locks).json()["locks"] == []

    # A lock taken meanwhile shows up by itself (the activity stream).
    assert site.alice.api("POST", locks, json={"path": "docs/*", "reason": "docs"}).status_code == 201
    expect(page.locator('[data-testid="lock-row"][data-path="docs/*"]')).to_be_visible()


def test_context_search_shows_score_and_ranks(site: Site, page: Any, tmp_path: Path) -> None:
    added = site.user.api(
        "POST",
        f"/api/projects/{site.pid}/context",
        json={"content": "The relay keeps sessions in SQLite with WAL", "type": "decision", "files": ["store.py"]},
    )
    assert added.status_code == 201, added.text
    sign_in(page, site.user)
    site.open(page, f"/projects/{site.pid}/context")

    # Add a chunk from the page.
    page.get_by_test_id("context-add-open").click()
    page.get_by_test_id("chunk-content").fill("Pointer events drag the task cards, so phones work too")
    page.get_by_test_id("chunk-type").fill("note")
    page.get_by_test_id("chunk-files").fill("web/src/composables/useTaskBoard.ts")
    page.get_by_test_id("chunk-save").click()
    expect(page.get_by_test_id("chunk-notice")).to_contain_text("Added")

    page.get_by_test_id("context-query").fill("sessions SQLite")
    page.get_by_test_id("context-search").click()
    result = page.get_by_test_id("context-result").filter(has_text="keeps sessions in SQLite").first
    expect(result).to_be_visible()
    expect(result.get_by_test_id("result-type")).to_have_text("decision")
    expect(result.get_by_test_id("result-score")).to_have_text(re.compile(r"^\d+\.\d{4}$"))
    expect(result.get_by_test_id("result-keyword-rank")).to_have_text("1")
    expect(result.get_by_test_id("result-vector-rank")).to_have_text(re.compile(r"^\d+$"))
    expect(result).to_contain_text("store.py")
    screenshot(page, "project-context", tmp_path)

    page.get_by_test_id("context-mode").select_option("keyword")
    page.get_by_test_id("context-query").fill("phones pointer")
    page.get_by_test_id("context-search").click()
    found = page.get_by_test_id("context-result").filter(has_text="Pointer events drag").first
    expect(found.get_by_test_id("result-keyword-rank")).to_have_text("1")
    expect(found.get_by_test_id("result-vector-rank")).to_have_text("—")


def test_every_project_page_on_a_phone(site: Site, phone_page: Any, tmp_path: Path) -> None:
    sign_in(phone_page, site.user)
    site.alice.api("POST", f"/api/projects/{site.pid}/locks", json={"path": "src/phone.py", "reason": "on a phone"})
    pages = {
        "projects": "/projects",
        "project": f"/projects/{site.pid}",
        "project-tasks": f"/projects/{site.pid}/tasks",
        "project-locks": f"/projects/{site.pid}/locks",
        "project-context": f"/projects/{site.pid}/context",
    }
    for name, path in pages.items():
        site.open(phone_page, path)
        if name == "projects":
            expect(phone_page.get_by_test_id("project-item").first).to_be_visible()
        else:
            expect(phone_page.get_by_test_id("project-name")).to_have_text("nest")
        if name == "project-tasks":
            expect(phone_page.get_by_test_id("task-card").first).to_be_visible()
        if name == "project-locks":
            expect(phone_page.get_by_test_id("lock-countdown").first).to_be_visible()
        if name == "project-context":
            phone_page.get_by_test_id("context-query").fill("sessions SQLite")
            phone_page.get_by_test_id("context-search").click()
            expect(phone_page.get_by_test_id("result-score").first).to_be_visible()
        width = phone_page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, (name, width)  # nothing wider than the phone
        screenshot(phone_page, name, tmp_path)
    assert phone_page.console_errors == []


def test_a_finger_drags_a_card_by_its_grip(site: Site, phone_page: Any) -> None:
    task = new_task(site.user, site.pid, "dragged on a phone", priority="critical")
    sign_in(phone_page, site.user)
    site.open(phone_page, f"/projects/{site.pid}/tasks")
    card = card_in(phone_page, "pending", task["id"])
    expect(card).to_be_visible()
    touch_drag(phone_page, card.get_by_test_id("task-grip"), phone_page.get_by_test_id("column-in_progress"))
    expect(card_in(phone_page, "in_progress", task["id"])).to_be_visible()
    wait_until(lambda: site.task(task["id"])["status"] == "in_progress", message="the task to be in progress")
    assert site.task(task["id"])["assigned_to"] == site.alice.id


def test_the_project_pages_answer_for_an_unknown_project(site: Site, page: Any) -> None:
    sign_in(page, site.user)
    site.open(page, "/projects/no-such-project/tasks")
    expect(page.get_by_role("alert").first).to_contain_text("no project")
    other = add_user(site.relay, "stranger@example.com", Path(site.user.home).parent / "stranger")
    mine = site.user.api("GET", "/api/projects").json()["projects"][0]
    sign_in(page, other)
    site.open(page, f"/projects/{mine['id']}")
    expect(page.get_by_test_id("project-error")).to_contain_text("no project")
