"""`claudenest relay ...`: serve the relay, and administer its accounts on the relay box itself."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sys
from datetime import timedelta
from typing import Any

import click

from claudenest import tokens
from claudenest.cli.common import err, handle_errors, json_option, out, print_json, run, table
from claudenest.config import RelaySettings, load_settings
from claudenest.relay.server import database_path, serve, url_file
from claudenest.store import Store


def relay_settings(**flags: Any) -> RelaySettings:
    """Config file and environment, then the flags that were given."""
    settings = load_settings().relay
    given = {k: v for k, v in flags.items() if v is not None}
    return dataclasses.replace(settings, **given)


@click.group()
def relay() -> None:
    """Run and administer a relay (on the relay's own machine)."""


@relay.command("serve")
@click.option("--host", help="Interface to listen on (default 127.0.0.1; 0.0.0.0 for a home server).")
@click.option("--port", type=int, help="Port (default 8700; 0 picks a free one).")
@click.option("--database", type=click.Path(dir_okay=False), help="SQLite file (default: <data dir>/relay.db).")
@click.option("--public-origin", help="The URL browsers use, e.g. https://nest.example.com (for Origin checks).")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), help="Serve HTTPS with this certificate.")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), help="Private key for --tls-cert.")
@handle_errors
def serve_cmd(**flags: Any) -> None:
    """Serve the HTTP API and WebSocket hub until SIGINT/SIGTERM."""
    settings = relay_settings(**flags)

    def ready(running: Any) -> None:
        err.print(f"ClaudeNest relay listening on {running.url}", highlight=False, markup=False)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(settings, on_ready=ready))


async def _store() -> Store:
    return await Store.open(database_path(load_settings().relay))


async def add_user(email: str, token_name: str, expires_days: int | None, owner: bool = False) -> dict[str, Any]:
    store = await _store()
    try:
        user = await store.users.create(email, is_owner=owner)
        raw = tokens.new_token(tokens.PAT_PREFIX)
        await store.users.add_token(
            user["id"],
            tokens.hash_token(raw),
            name=token_name,
            expires_in=timedelta(days=expires_days) if expires_days else None,
            abilities=["*"],
        )
        return {"user": user, "token": raw}
    finally:
        await store.close()


@relay.group("user")
def user_group() -> None:
    """Accounts on this relay."""


@user_group.command("add")
@click.argument("email")
@click.option("--expires-days", type=click.IntRange(1, 3650), default=30, show_default=True)
@json_option
@handle_errors
def user_add(email: str, expires_days: int, as_json: bool) -> None:
    """Create an account and print a personal access token for it (shown once)."""
    if "@" not in email or len(email) > 254:
        raise click.BadParameter("must be an email address", param_hint="EMAIL")
    created = run(add_user(email, "cli", expires_days))
    if as_json:
        print_json(created)
    else:
        out.print(
            f"Created {created['user']['email']}. Personal access token (shown once):",
            highlight=False,
            markup=False,
        )
        click.echo(created["token"])


@user_group.command("list")
@json_option
@handle_errors
def user_list(as_json: bool) -> None:
    """Every account on this relay."""

    async def fetch() -> list[dict[str, Any]]:
        store = await _store()
        try:
            return await store.users.all()
        finally:
            await store.close()

    users = run(fetch())
    if as_json:
        print_json({"users": users})
    else:
        table(
            ["ID", "EMAIL", "OWNER", "CREATED"],
            [(u["id"], u["email"], u["is_owner"], u["created_at"]) for u in users],
        )


MIN_PASSWORD = 8


@user_group.command("passwd")
@click.argument("email")
@handle_errors
def user_passwd(email: str) -> None:
    """Set the dashboard password of an account (asked twice on a terminal; one line of stdin otherwise)."""
    stdin = sys.stdin
    if stdin.isatty():
        password = click.prompt("New password", hide_input=True, confirmation_prompt=True)
    else:
        password = stdin.readline().rstrip("\r\n")
    if len(password) < MIN_PASSWORD:
        raise click.BadParameter(f"the password needs at least {MIN_PASSWORD} characters", param_hint="password")

    async def store_password() -> None:
        store = await _store()
        try:
            user = await store.users.by_email(email)
            await store.users.set_password(user["id"], tokens.hash_password(password))
        finally:
            await store.close()

    run(store_password())
    out.print(f"Password set for {email}; sign in at /login.", highlight=False, markup=False)


LOGIN_LINK_TTL = timedelta(minutes=10)


def relay_url(settings: RelaySettings) -> str:
    """Where browsers reach this relay: the public origin, else the address the running relay noted, else the
    address it is configured to listen on."""
    if settings.public_origin:
        return settings.public_origin.rstrip("/")
    with contextlib.suppress(OSError):
        noted = url_file(database_path(settings)).read_text().strip()
        if noted:
            return noted
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    scheme = "https" if settings.tls_cert else "http"
    return f"{scheme}://{host}:{settings.port}"


async def new_login_link(store: Store, user_id: str, base_url: str) -> dict[str, Any]:
    """A one-time dashboard sign-in link. The code rides in the URL's fragment, which browsers never send to a
    server, so it reaches no access log; the page posts it once and it is spent."""
    code = tokens.new_secret()
    await store.users.add_login_link(user_id, tokens.hash_token(code), LOGIN_LINK_TTL)
    return {
        "url": f"{base_url}/login#code={code}",
        "expires_in": int(LOGIN_LINK_TTL.total_seconds()),
    }


@relay.command("login-link")
@click.argument("email")
@json_option
@handle_errors
def login_link(email: str, as_json: bool) -> None:
    """Print a one-time link (10 minutes) that signs EMAIL in to the dashboard."""
    settings = load_settings().relay

    async def create() -> dict[str, Any]:
        store = await _store()
        try:
            user = await store.users.by_email(email)
            return {"email": user["email"], **await new_login_link(store, user["id"], relay_url(settings))}
        finally:
            await store.close()

    link = run(create())
    if as_json:
        print_json(link)
    else:
        out.print(f"One-time dashboard login for {link['email']} (10 minutes):", highlight=False, markup=False)
        click.echo(link["url"])


@relay.group("token")
def token_group() -> None:
    """Personal access tokens."""


@token_group.command("create")
@click.option("--user", "email", required=True, help="Email of the account.")
@click.option("--name", default="cli", show_default=True)
@click.option("--expires-days", type=click.IntRange(1, 3650), default=30, show_default=True)
@json_option
@handle_errors
def token_create(email: str, name: str, expires_days: int, as_json: bool) -> None:
    """Make another personal access token for an account (shown once)."""

    async def create() -> dict[str, Any]:
        store = await _store()
        try:
            user = await store.users.by_email(email)
            raw = tokens.new_token(tokens.PAT_PREFIX)
            record = await store.users.add_token(
                user["id"],
                tokens.hash_token(raw),
                name=name,
                expires_in=timedelta(days=expires_days),
                abilities=["*"],
            )
            return {"token": raw, **record}
        finally:
            await store.close()

    created = run(create())
    if as_json:
        print_json(created)
    else:
        click.echo(created["token"])
