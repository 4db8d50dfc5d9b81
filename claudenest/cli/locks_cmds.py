"""`claudenest locks ...`: expiring file locks of a project. Taking one needs an instance (--instance-token or
CLAUDENEST_INSTANCE_TOKEN)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from claudenest.cli.common import handle_errors, json_option, print_json, relay_option, table
from claudenest.cli.coordination_common import LOCK_COLUMNS, common_options, find_project, lock_rows, with_coordination
from claudenest.client import RelayClient

T = TypeVar("T")

TTL = click.IntRange(1, 86400)


@click.group()
def locks() -> None:
    """File locks of a shared project: a path or glob, a holder, an expiry, a fencing number."""


def _in_project(
    project_ref: str | None,
    instance_token: str | None,
    relay_url: str | None,
    action: Callable[[RelayClient, str], Awaitable[T]],
) -> T:
    async def go(api: RelayClient) -> T:
        project = await find_project(api, project_ref, as_instance=bool(instance_token))
        return await action(api, project["id"])

    return with_coordination(relay_url, instance_token, go)


def _show(lock: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json({"lock": lock})
    else:
        table(LOCK_COLUMNS, lock_rows([lock]))


@locks.command("acquire")
@click.argument("path")
@click.option("--reason", default="", help="Why (shown to others).")
@click.option("--ttl", type=TTL, default=1800, show_default=True, help="Seconds until it expires.")
@common_options
@relay_option
@json_option
@handle_errors
def locks_acquire(
    path: str,
    reason: str,
    ttl: int,
    project_ref: str | None,
    instance_token: str | None,
    relay_url: str | None,
    as_json: bool,
) -> None:
    """Lock PATH (a project-relative path or a glob) for the instance; exit 6 naming the holder when taken."""
    lock = _in_project(
        project_ref,
        instance_token,
        relay_url,
        lambda api, pid: api.acquire_lock(pid, path, reason=reason, ttl_seconds=ttl),
    )
    _show(lock, as_json)


@locks.command("renew")
@click.argument("path")
@click.option("--ttl", type=TTL, default=1800, show_default=True, help="Seconds from now.")
@common_options
@relay_option
@json_option
@handle_errors
def locks_renew(
    path: str, ttl: int, project_ref: str | None, instance_token: str | None, relay_url: str | None, as_json: bool
) -> None:
    """Extend a lock the instance holds (a new fencing number too)."""
    _show(_in_project(project_ref, instance_token, relay_url, lambda api, pid: api.renew_lock(pid, path, ttl)), as_json)


@locks.command("release")
@click.argument("path")
@common_options
@relay_option
@json_option
@handle_errors
def locks_release(
    path: str, project_ref: str | None, instance_token: str | None, relay_url: str | None, as_json: bool
) -> None:
    """Release the lock on PATH (its holder, or the project's owner for any lock)."""
    released = _in_project(project_ref, instance_token, relay_url, lambda api, pid: api.release_lock(pid, path))
    if as_json:
        print_json({"released": released})
    else:
        click.echo("released" if released else "no lock was held on that path")


@locks.command("check")
@click.argument("paths", nargs=-1, required=True)
@common_options
@relay_option
@json_option
@handle_errors
def locks_check(
    paths: tuple[str, ...], project_ref: str | None, instance_token: str | None, relay_url: str | None, as_json: bool
) -> None:
    """For each PATH, the lock covering it (same path, or a glob either way), if any."""
    found = _in_project(project_ref, instance_token, relay_url, lambda api, pid: api.check_locks(pid, list(paths)))
    if as_json:
        print_json({"locks": found})
        return
    table(
        ["PATH", "LOCKED BY", "LOCK", "EXPIRES"],
        [
            (p, lk["holder_name"] if lk else "-", lk["path"] if lk else "", lk["expires_at"] if lk else "")
            for p, lk in found.items()
        ],
    )


@locks.command("list")
@common_options
@relay_option
@json_option
@handle_errors
def locks_list(project_ref: str | None, instance_token: str | None, relay_url: str | None, as_json: bool) -> None:
    """The project's live locks."""
    found = _in_project(project_ref, instance_token, relay_url, lambda api, pid: api.locks(pid))
    if as_json:
        print_json({"locks": found})
    else:
        table(LOCK_COLUMNS, lock_rows(found), empty="No file is locked in this project.")
