"""The relay as the dashboard's server, over plain HTTP against a real relay: deep links, assets, local API docs,
security headers, the same-origin rule for cookie-signed changes, and every way to sign a browser in and out."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import httpx
import pytest

from claudenest import tokens
from tests.e2e.conftest import Stack
from tests.e2e.harness import User, cli, timeout

DASHBOARD_PATHS = [
    "/login",
    "/dashboard",
    "/machines",
    "/machines/abc",
    "/sessions",
    "/sessions/new",
    "/sessions/0b4f/terminal",
    "/projects",
    "/projects/p1",
    "/projects/p1/tasks",
    "/projects/p1/locks",
    "/projects/p1/context",
    "/skills",
    "/mcp",
    "/commands",
    "/settings",
]


def get(stack: Stack, path: str, **kwargs: object) -> httpx.Response:
    return httpx.get(stack.relay.url + path, timeout=timeout(10), **kwargs)  # type: ignore[arg-type]


def browser(stack: Stack) -> httpx.Client:
    """A client that behaves like the dashboard's fetch: cookies kept, Origin of the relay on every request."""
    return httpx.Client(base_url=stack.relay.url, headers={"Origin": stack.relay.url}, timeout=timeout(10))


def login_link(stack: Stack, email: str) -> str:
    link = json.loads(cli(stack.relay.home, "relay", "login-link", email, "--json").stdout)
    assert link["url"].startswith(f"{stack.relay.url}/login#code=")
    return str(link["url"].split("#code=", 1)[1])


@pytest.mark.parametrize("path", DASHBOARD_PATHS)
def test_every_dashboard_route_is_a_deep_link_to_the_app(stack: Stack, path: str) -> None:
    response = get(stack, path)
    assert response.status_code == 200
    assert '<div id="app">' in response.text
    assert response.headers["cache-control"] == "no-cache"


def test_unknown_paths_are_404_and_api_paths_stay_json(stack: Stack) -> None:
    page = get(stack, "/nowhere/at/all")
    assert page.status_code == 404
    assert '<div id="app">' in page.text  # the app draws its "not found" page
    for method in ("GET", "POST", "DELETE"):
        api = httpx.request(method, stack.relay.url + "/api/nowhere", timeout=timeout(10))
        assert api.status_code == 404
        assert api.json()["error"] == "not_found"
    refused = httpx.post(stack.relay.url + "/dashboard", timeout=timeout(10))
    assert refused.status_code == 405
    assert refused.headers["allow"] == "GET, HEAD"


def test_assets_are_served_from_the_relay_with_nothing_from_another_host(stack: Stack) -> None:
    index = get(stack, "/dashboard").text
    scripts = re.findall(r'(?:src|href)="([^"]+)"', index)
    assert scripts, index
    for url in scripts:
        assert url.startswith("/"), f"{url} is not served by the relay"
        asset = get(stack, url)
        assert asset.status_code == 200, url
        if url.startswith("/assets/"):
            assert "immutable" in asset.headers["cache-control"]
            assert "http://" not in asset.text.replace("http://www.w3.org", "")  # SVG namespaces are not fetches
    assert "<script>" not in index  # no inline script: the CSP forbids it
    assert get(stack, "/assets/../../config.py").status_code == 404


def test_api_docs_work_offline(stack: Stack) -> None:
    docs = get(stack, "/docs")
    assert docs.status_code == 200
    for url in re.findall(r'(?:src|href)="([^"]+)"', docs.text):
        assert url.startswith("/docs/"), url
        assert get(stack, url).status_code == 200, url
    assert get(stack, "/redoc").status_code == 404
    assert "validatorUrl: null" in get(stack, "/docs/init.js").text


@pytest.mark.parametrize("path", ["/dashboard", "/api/me", "/docs", "/healthz"])
def test_security_headers_on_pages_and_api(stack: Stack, path: str) -> None:
    headers = get(stack, path).headers
    csp = headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "script-src 'self'" in csp
    assert "'unsafe-inline'" not in csp.split("script-src", 1)[1].split(";", 1)[0]
    assert "frame-ancestors 'none'" in csp
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"


def test_a_login_link_signs_in_once_with_a_strict_httponly_cookie(stack: Stack) -> None:
    code = login_link(stack, stack.user.email)
    with browser(stack) as client:
        response = client.post("/api/auth/login-link", json={"code": code})
        assert response.status_code == 200, response.text
        assert response.json()["user"]["email"] == stack.user.email
        cookie = response.headers["set-cookie"].lower()
        assert "httponly" in cookie
        assert "samesite=strict" in cookie
        assert "secure" not in cookie  # plain HTTP here; Secure is set when served over TLS
        assert client.get("/api/me").json()["user"]["email"] == stack.user.email
    with browser(stack) as again:
        reused = again.post("/api/auth/login-link", json={"code": code})
        assert reused.status_code == 401
        assert "already used" in reused.json()["detail"]


def test_password_sign_in(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> None:
    short = cli(stack.relay.home, "relay", "user", "passwd", stack.user.email, input="short\n", check=False)
    assert short.returncode == 2
    assert "at least 8" in short.stderr
    cli(stack.relay.home, "relay", "user", "passwd", stack.user.email, input="correct horse battery\n")
    with browser(stack) as client:
        wrong = client.post("/api/auth/login", json={"email": stack.user.email, "password": "nope nope"})
        assert wrong.status_code == 401
        assert wrong.json()["detail"] == "wrong email or password"
        unknown = client.post("/api/auth/login", json={"email": "ghost@example.com", "password": "nope nope"})
        assert unknown.json()["detail"] == "wrong email or password"  # no account oracle
        right = client.post("/api/auth/login", json={"email": stack.user.email, "password": "correct horse battery"})
        assert right.status_code == 200, right.text
        assert client.get("/api/me").status_code == 200
    row = sqlite3.connect(stack.relay.home / "data" / "relay.db").execute(
        "SELECT password_hash FROM users WHERE email = ?", (stack.user.email,)
    )
    assert row.fetchone()[0].startswith("scrypt$")


def test_failed_password_sign_ins_are_limited(stack: Stack) -> None:
    with browser(stack) as client:
        statuses = [
            client.post("/api/auth/login", json={"email": "target@example.com", "password": f"guess {i}"}).status_code
            for i in range(12)
        ]
    assert statuses[:10] == [401] * 10
    assert statuses[-1] == 429


def test_a_pasted_token_signs_in_and_other_kinds_are_refused(stack: Stack) -> None:
    with browser(stack) as client:
        machine = client.post("/api/auth/token-login", json={"token": "mn_" + "x" * 40})
        assert machine.status_code == 401
        assert "starts with cn_" in machine.json()["detail"]
        bogus = client.post("/api/auth/token-login", json={"token": "cn_" + "x" * 40})
        assert bogus.status_code == 401
        ok = client.post("/api/auth/token-login", json={"token": stack.user.token})
        assert ok.status_code == 200
        assert client.get("/api/me").json()["user"]["email"] == stack.user.email


def test_cookie_signed_changes_must_come_from_the_relays_own_origin(stack: Stack) -> None:
    with browser(stack) as client:
        client.post("/api/auth/token-login", json={"token": stack.user.token})
        forged = client.post("/api/tokens", json={"name": "forged"}, headers={"Origin": "https://evil.example"})
        assert forged.status_code == 403
        assert "evil.example" in forged.json()["detail"]
        no_origin = client.post(
            "/api/tokens", json={"name": "forged"}, headers={"Origin": "", "Sec-Fetch-Site": "cross-site"}
        )
        assert no_origin.status_code == 403
        reads = client.get("/api/machines", headers={"Origin": "https://evil.example"})
        assert reads.status_code == 200  # reads change nothing (and CORS keeps their answer from the other site)
        mine = client.post("/api/tokens", json={"name": "from the dashboard"})
        assert mine.status_code == 201
    names = [t["name"] for t in stack.user.api("GET", "/api/tokens").json()["tokens"]]
    assert "forged" not in names
    assert "from the dashboard" in names
    signed_in_elsewhere = httpx.post(
        stack.relay.url + "/api/auth/login-link",
        json={"code": login_link(stack, stack.user.email)},
        headers={"Origin": "https://evil.example"},
        timeout=timeout(10),
    )
    assert signed_in_elsewhere.status_code == 403  # no login CSRF either


def test_browser_sessions_are_listed_and_revoked(stack: Stack) -> None:
    with browser(stack) as laptop, browser(stack) as phone:
        laptop.post("/api/auth/token-login", json={"token": stack.user.token}, headers={"User-Agent": "laptop-ua"})
        phone.post("/api/auth/token-login", json={"token": stack.user.token}, headers={"User-Agent": "phone-ua"})
        listed = laptop.get("/api/auth/web-sessions").json()["sessions"]
        by_agent = {s["user_agent"]: s for s in listed}
        assert by_agent["laptop-ua"]["current"] is True
        assert by_agent["phone-ua"]["current"] is False
        assert laptop.delete(f"/api/auth/web-sessions/{by_agent['phone-ua']['id']}").status_code == 204
        assert phone.get("/api/me").status_code == 401
        assert laptop.get("/api/me").status_code == 200
        assert laptop.delete(f"/api/auth/web-sessions/{by_agent['phone-ua']['id']}").status_code == 404
        assert laptop.post("/api/auth/logout").status_code == 204
        assert laptop.get("/api/me").status_code == 401


def test_another_users_browser_sessions_are_out_of_reach(stack: Stack, other_user: User) -> None:
    with browser(stack) as mine:
        mine.post("/api/auth/token-login", json={"token": stack.user.token})
        session_id = mine.get("/api/auth/web-sessions").json()["sessions"][0]["id"]
        assert other_user.api("DELETE", f"/api/auth/web-sessions/{session_id}").status_code == 404
        assert mine.get("/api/me").status_code == 200


def test_no_raw_cookie_or_login_code_at_rest(stack: Stack) -> None:
    code = login_link(stack, stack.user.email)
    with browser(stack) as client:
        cookie_value = client.post("/api/auth/login-link", json={"code": code}).cookies["claudenest_session"]
    # Everything the relay keeps at rest: the database, its WAL and lock files, and the session output segments.
    data = b"".join(p.read_bytes() for p in (stack.relay.home / "data").rglob("*") if p.is_file())
    assert cookie_value.encode() not in data
    assert code.encode() not in data
    assert tokens.hash_token(cookie_value).encode() in data
    assert code not in stack.relay.proc.output if stack.relay.proc else True


def test_usage_summary_and_sessions_by_project(stack: Stack) -> None:
    summary = stack.user.api("GET", "/api/usage/summary", params={"tz_offset_minutes": 60}).json()
    assert set(summary) == {"today", "week", "today_starts_at"}
    assert summary["week"]["sessions"] >= summary["today"]["sessions"]
    assert summary["today_starts_at"].endswith("T23:00:00.000Z")  # local midnight at UTC+1
    bad = stack.user.api("GET", "/api/usage/summary", params={"tz_offset_minutes": 5000})
    assert bad.status_code == 422
    project = stack.user.api("POST", "/api/projects", json={"name": "filtered", "project_path": "/p"}).json()
    assert stack.user.api("GET", "/api/sessions", params={"project_id": project["project"]["id"]}).json() == {
        "sessions": []
    }
    plain = stack.user.api("GET", "/api/sessions").json()["sessions"]
    assert all("project_id" in s for s in plain)


@pytest.fixture(scope="module")
def other_user(stack: Stack) -> User:
    from tests.e2e.harness import add_user

    return add_user(stack.relay, "browser-other@example.com", stack.root / "browser-other")


CLIENT_TS = Path(__file__).parents[2] / "web" / "src" / "api" / "client.ts"
REQUEST_CALL = re.compile(r'request<.*?>\(\s*"(GET|POST|PUT|PATCH|DELETE)",\s*(`[^`]*`|"[^"]*")', re.S)


def _template(path: str) -> str:
    path = path.strip('`"')
    path = re.sub(r"\$\{project\([^)]*\)\}", "/api/projects/{}", path)
    return re.sub(r"\$\{[^}]*\}", "{}", path)


def test_the_dashboards_api_client_calls_only_routes_the_relay_documents(stack: Stack) -> None:
    """web/src/api/client.ts is checked against /openapi.json: a renamed route cannot break the dashboard silently."""
    spec = get(stack, "/openapi.json").json()
    documented = {
        (method.upper(), re.sub(r"\{[^}]*\}", "{}", path))
        for path, methods in spec["paths"].items()
        for method in methods
    }
    calls = {(method, _template(path)) for method, path in REQUEST_CALL.findall(CLIENT_TS.read_text())}
    assert len(calls) >= 40, calls
    missing = sorted(call for call in calls if call not in documented)
    assert missing == [], f"client.ts calls routes the relay does not have: {missing}"
