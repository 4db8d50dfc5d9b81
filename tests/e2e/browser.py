"""A real Chromium (Debian's package) driven by Playwright against a real relay, for the dashboard's tests.

``playwright install`` (a browser download) cannot work offline, so the tests launch the system Chromium at
``CLAUDENEST_CHROMIUM`` (default /usr/bin/chromium) with the flags a closed network needs. Screenshots go to
``CLAUDENEST_SCREENSHOTS`` when set (scripts/screenshots copies them into docs/), else to the test's temp dir.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import User, timeout

playwright_sync = pytest.importorskip("playwright.sync_api", reason="the [dev] extra installs playwright")

# Read when the module is imported: the autouse fixture in tests/conftest.py clears CLAUDENEST_* during each test.
CHROMIUM = os.environ.get("CLAUDENEST_CHROMIUM", "/usr/bin/chromium")
REQUIRE_BROWSER = os.environ.get("CLAUDENEST_REQUIRE_BROWSER") == "1"
SCREENSHOTS = os.environ.get("CLAUDENEST_SCREENSHOTS")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


# Module scope, not session: Playwright's sync API keeps an asyncio loop running in this thread while it is open,
# which would break every async test and asyncio.run() of the modules after the browser tests. Each test module
# that imports these fixtures gets its own browser, closed when the module ends.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        if REQUIRE_BROWSER:
            pytest.fail(f"{CHROMIUM} is missing: scripts/test installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    with playwright_sync.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def new_page(browser: Any, *, phone: bool = False) -> Any:
    """A fresh browser context (its own cookies) and page, desktop 1280x800 or phone 390x844 with touch."""
    if phone:
        context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    else:
        context = browser.new_context(viewport=DESKTOP)
    context.set_default_timeout(timeout(15) * 1000)
    page = context.new_page()
    page.console_errors = []  # type: ignore[attr-defined]
    page.on("pageerror", lambda error: page.console_errors.append(str(error)))  # type: ignore[attr-defined]
    return page


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    page = new_page(browser)
    try:
        yield page
    finally:
        page.context.close()


@pytest.fixture
def phone_page(browser: Any) -> Iterator[Any]:
    page = new_page(browser, phone=True)
    try:
        yield page
    finally:
        page.context.close()


def sign_in(page: Any, user: User) -> None:
    """A dashboard session cookie for ``user`` by pasting their token (the login page's third way in)."""
    response = page.request.post(
        f"{user.relay_url}/api/auth/token-login",
        data={"token": user.token},
        headers={"Origin": user.relay_url},
    )
    assert response.ok, response.text()


def screenshot(page: Any, name: str, tmp_path: Path) -> Path:
    """Save a screenshot named after the page and the viewport (``sessions-1280x800.png``)."""
    size = page.viewport_size
    target = Path(SCREENSHOTS or tmp_path)
    target.mkdir(parents=True, exist_ok=True)
    path = target / f"{re.sub(r'[^a-z0-9-]+', '-', name.lower())}-{size['width']}x{size['height']}.png"
    page.screenshot(path=str(path))
    return path
