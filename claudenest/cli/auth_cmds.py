"""`claudenest login`, `logout`, `whoami`: the CLI's own credentials."""

from __future__ import annotations

import click

from claudenest.agent import credentials
from claudenest.cli.common import (
    handle_errors,
    json_option,
    out,
    print_json,
    relay_url_argument,
    resolve_relay,
    run,
    with_client,
)
from claudenest.client import RelayClient
from claudenest.config import update_config_file
from claudenest.errors import AuthError


@click.command()
@click.option("--relay", "relay_url", required=True, metavar="URL", help="e.g. http://box:8700")
@click.option("--token", prompt=True, hide_input=True, help="A personal access token (cn_...); prompted if omitted.")
@json_option
@handle_errors
def login(relay_url: str, token: str, as_json: bool) -> None:
    """Check a personal access token against the relay and store it for later commands."""
    token = token.strip()
    if not token.startswith("cn_"):
        raise AuthError("that is not a personal access token (they start with cn_)")
    relay_url = relay_url_argument(relay_url)

    async def check() -> dict[str, object]:
        async with RelayClient(relay_url, token) as api:
            return await api.me()

    user = run(check())
    where = credentials.save("user", relay_url, token)
    update_config_file({"cli": {"relay_url": relay_url}})
    if as_json:
        print_json({"user": user, "relay": relay_url, "stored_in": where})
    else:
        out.print(
            f"Logged in to {relay_url} as {user['email']} (token stored in {where}).",
            highlight=False,
            markup=False,
        )


@click.command()
@click.option("--relay", "relay_url", metavar="URL")
@handle_errors
def logout(relay_url: str | None) -> None:
    """Forget the stored token for the relay."""
    url = resolve_relay(relay_url)
    credentials.delete("user", url)
    out.print(f"Logged out of {url}.", highlight=False, markup=False)


@click.command()
@click.option("--relay", "relay_url", metavar="URL")
@json_option
@handle_errors
def whoami(relay_url: str | None, as_json: bool) -> None:
    """Show which account the CLI acts as."""
    user = run(with_client(relay_url, lambda api: api.me()))
    if as_json:
        print_json({"user": user})
    else:
        out.print(f"{user['email']} on {resolve_relay(relay_url)}", highlight=False, markup=False)
