"""`claudenest tokens ...`: your personal access tokens on the relay (list, create, revoke)."""

from __future__ import annotations

from typing import Any

import click

from claudenest.cli.common import (
    handle_errors,
    json_option,
    out,
    pick,
    print_json,
    relay_option,
    run,
    table,
    with_client,
)
from claudenest.client import RelayClient


@click.group()
def tokens() -> None:
    """Personal access tokens (cn_...) for the CLI and scripts."""


@tokens.command("list")
@click.option("--all", "show_all", is_flag=True, help="Also revoked and expired tokens.")
@relay_option
@json_option
@handle_errors
def tokens_list(show_all: bool, relay_url: str | None, as_json: bool) -> None:
    """Your tokens, oldest first (never the tokens themselves: only their hashes are kept)."""
    found = run(with_client(relay_url, lambda api: api.tokens()))
    if not show_all:
        found = [t for t in found if not t["revoked_at"]]
    if as_json:
        print_json({"tokens": found})
        return
    table(
        ["ID", "NAME", "CREATED", "EXPIRES", "LAST USED", "REVOKED"],
        [
            (t["id"], t["name"], t["created_at"], t["expires_at"] or "never", t["last_used_at"] or "-", t["revoked_at"])
            for t in found
        ],
        empty="No tokens: create one with `claudenest tokens create NAME`.",
    )


@tokens.command("create")
@click.argument("name")
@click.option("--expires-days", type=click.IntRange(1, 3650), default=30, show_default=True)
@click.option("--never-expires", is_flag=True, help="A token without an expiry date.")
@relay_option
@json_option
@handle_errors
def tokens_create(name: str, expires_days: int, never_expires: bool, relay_url: str | None, as_json: bool) -> None:
    """Make a token named NAME and print it once (store it now: the relay keeps only its hash)."""
    created = run(with_client(relay_url, lambda api: api.create_token(name, None if never_expires else expires_days)))
    if as_json:
        print_json(created)
        return
    expiry = f"expires {created['expires_at']}" if created["expires_at"] else "never expires"
    out.print(f"Token {created['name']} ({expiry}), shown once:", highlight=False, markup=False)
    click.echo(created["token"])


@tokens.command("revoke")
@click.argument("token")
@relay_option
@json_option
@handle_errors
def tokens_revoke(token: str, relay_url: str | None, as_json: bool) -> None:
    """Revoke TOKEN (its id, name or an id prefix): it stops working at once."""

    async def revoke(api: RelayClient) -> dict[str, Any]:
        found = pick([t for t in await api.tokens() if not t["revoked_at"]], token, "token")
        await api.revoke_token(found["id"])
        return found

    revoked = run(with_client(relay_url, revoke))
    if as_json:
        print_json({"revoked": revoked["id"]})
    else:
        out.print(f"Revoked token {revoked['name']} ({revoked['id']}).", highlight=False, markup=False)
