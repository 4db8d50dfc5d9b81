"""What every command shares: running coroutines, turning errors into exit codes, printing tables or JSON."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import sys
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from claudenest.agent import credentials
from claudenest.client import RelayClient
from claudenest.config import load_settings
from claudenest.errors import AuthError, ClaudenestError, NotFound

T = TypeVar("T")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of a table.")
relay_option = click.option(
    "--relay", "relay_url", metavar="URL", help="Relay URL (default: the one you logged in to)."
)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def handle_errors(fn: Callable[..., T]) -> Callable[..., T]:
    """Domain errors become one line on stderr and the documented exit code (docs/cli.md)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except ClaudenestError as exc:
            err.print(Text("error: ", style="red") + Text(str(exc)), highlight=False)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            sys.exit(130)

    return wrapper


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=None, default=str))


def table(
    columns: Iterable[str], rows: Iterable[Iterable[Any]], title: str | None = None, *, empty: str | None = None
) -> None:
    """Values are plain text: a name like ``[/x]`` or ``[red]docs`` from the relay is shown as it is, never read as
    rich markup (which would raise MarkupError or swallow the brackets). With no rows, ``empty`` is said instead of
    an empty table: a sentence with the next command to try."""
    rows = list(rows)
    if not rows and empty:
        out.print(empty, highlight=False, markup=False)
        return
    grid = Table(title=Text(title) if title else None, show_edge=False, header_style="bold")
    for column in columns:
        grid.add_column(column)
    for row in rows:
        grid.add_row(*(Text("" if v is None else str(v)) for v in row))
    out.print(grid)


def relay_url_argument(url: str) -> str:
    """A relay URL as a person types it, checked: http(s)://host[:port], no path (the API lives at its root)."""
    try:
        parsed = urlsplit(url.strip())
        parsed.hostname  # noqa: B018 (raises on a malformed [IPv6] host)
    except ValueError:
        raise click.BadParameter(
            f"{url!r} is not a relay URL: give one like http://box:8700", param_hint="--relay"
        ) from None
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise click.BadParameter(f"{url!r} is not a relay URL: give one like http://box:8700", param_hint="--relay")
    if parsed.path not in ("", "/") or parsed.query or parsed.fragment:
        base = f"{parsed.scheme}://{parsed.netloc}"
        raise click.BadParameter(f"a relay URL has no path: did you mean {base}?", param_hint="--relay")
    try:
        parsed.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        raise click.BadParameter(f"{url!r} has an invalid port", param_hint="--relay") from None
    return f"{parsed.scheme}://{parsed.netloc}"


def resolve_relay(relay_url: str | None) -> str:
    url = relay_url or load_settings().cli_relay_url
    if not url:
        raise AuthError("no relay configured: run `claudenest login --relay URL --token cn_...` (or `claudenest up`)")
    return url.rstrip("/")


def client(relay_url: str | None) -> RelayClient:
    """A client for the logged-in user: token from CLAUDENEST_TOKEN, else the keyring or credentials file."""
    url = resolve_relay(relay_url)
    token = os.environ.get("CLAUDENEST_TOKEN") or credentials.load("user", url)
    if not token:
        raise AuthError(f"not logged in to {url}: run `claudenest login --relay {url} --token cn_...`")
    return RelayClient(url, token)


async def with_client(relay_url: str | None, action: Callable[[RelayClient], Coroutine[Any, Any, T]]) -> T:
    async with client(relay_url) as api:
        return await action(api)


def _complete(fetch: Callable[[RelayClient], Coroutine[Any, Any, list[str]]], incomplete: str) -> list[str]:
    """Shell completion from the relay: quick (2 s at most) and silent on any failure, as a shell expects."""

    async def ask() -> list[str]:
        url = resolve_relay(None)
        token = os.environ.get("CLAUDENEST_TOKEN") or credentials.load("user", url)
        async with RelayClient(url, token, timeout=2) as api:
            return await fetch(api)

    try:
        found = run(asyncio.wait_for(ask(), 2))
    except Exception:  # completion must never print a traceback into the user's prompt
        return []
    return sorted({value for value in found if value.startswith(incomplete)})


def complete_session(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    async def fetch(api: RelayClient) -> list[str]:
        return [s["id"] for s in await api.sessions(limit=200)]

    return _complete(fetch, incomplete)


def complete_machine(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    async def fetch(api: RelayClient) -> list[str]:
        return [m["name"] for m in await api.machines() if not m.get("revoked_at")]

    return _complete(fetch, incomplete)


def short(identifier: str | None) -> str:
    return (identifier or "")[:8]


def pick(found: list[dict[str, Any]], ref: str, what: str) -> dict[str, Any]:
    """The one of ``found`` that ``ref`` names: its id or name exactly, else a unique id prefix."""
    if not ref.strip():
        raise click.BadParameter(f"give a {what} id, name or the first characters of its id")
    exact = [f for f in found if f["id"] == ref or f.get("name") == ref]
    matches = exact or [f for f in found if f["id"].startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise NotFound(f"no {what} {ref!r}")
    raise ClaudenestError(f"{ref!r} matches several of your {what}s: {', '.join(m['id'] for m in matches)}")
