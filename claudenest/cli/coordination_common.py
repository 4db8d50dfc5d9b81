"""What the `projects`, `tasks` and `locks` commands share: the instance-token option, finding a project or a task
by id, id prefix or name, and rendering rows."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click

from claudenest import tokens
from claudenest.cli.common import client, pick, resolve_relay, run, short
from claudenest.client import RelayClient
from claudenest.errors import AuthError, ClaudenestError, NotFound

T = TypeVar("T")

INSTANCE_TOKEN_ENV = "CLAUDENEST_INSTANCE_TOKEN"

project_option = click.option(
    "--project",
    "-p",
    "project_ref",
    metavar="PROJECT",
    help="Project id, id prefix or name (default: the instance's project, or your only project).",
)
instance_token_option = click.option(
    "--instance-token",
    metavar="ci_...",
    envvar=INSTANCE_TOKEN_ENV,
    help=f"Act as this Claude instance (or set {INSTANCE_TOKEN_ENV}); prefer the variable: options show up in ps.",
)


def coordination_client(relay_url: str | None, instance_token: str | None) -> RelayClient:
    """The user's client, or one that sends the instance's ``ci_`` token."""
    if not instance_token:
        return client(relay_url)
    if not instance_token.startswith(tokens.INSTANCE_PREFIX):
        raise AuthError(
            f"--instance-token must be an instance token (ci_...), set with {INSTANCE_TOKEN_ENV} or the option"
        )
    return RelayClient(resolve_relay(relay_url), instance_token)


def with_coordination(
    relay_url: str | None,
    instance_token: str | None,
    action: Callable[[RelayClient], Coroutine[Any, Any, T]],
) -> T:
    async def go() -> T:
        async with coordination_client(relay_url, instance_token) as api:
            return await action(api)

    return run(go())


async def find_project(api: RelayClient, ref: str | None, *, as_instance: bool) -> dict[str, Any]:
    """A project by id, id prefix or name; with no ref, the instance's project or the user's only project."""
    if as_instance:
        project = (await api.whoami_instance())["project"]
        if ref is not None:
            pick([project], ref, "project reachable with this instance token")
        return dict(project)
    if ref is not None and _is_uuid(ref):
        return await api.project(ref)
    projects = await api.projects()
    if ref is None:
        if len(projects) == 1:
            return projects[0]
        if not projects:
            raise NotFound("you have no project yet: create one with `claudenest projects create NAME --path DIR`")
        raise ClaudenestError(
            f"you have several projects ({', '.join(p['name'] for p in projects)}): pick one with --project"
        )
    return pick(projects, ref, "project")


async def find_task(api: RelayClient, project_id: str, ref: str) -> dict[str, Any]:
    if _is_uuid(ref):
        return await api.task(project_id, ref)
    return pick(await api.tasks(project_id), ref, "task")


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def task_rows(tasks: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (
            short(t["id"]),
            t["priority"],
            t["status"],
            t["title"][:60],
            short(t["assigned_to"]) or "",
            ",".join(short(d) for d in t["dependencies"]),
            (t["blocked_reason"] or t["completion_summary"] or "")[:50],
        )
        for t in tasks
    ]


TASK_COLUMNS = ["ID", "PRIORITY", "STATUS", "TITLE", "ASSIGNED", "DEPENDS ON", "NOTE"]


def lock_rows(locks: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(lk["path"], lk["holder_name"], lk["fencing"], lk["expires_at"], lk["reason"]) for lk in locks]


LOCK_COLUMNS = ["PATH", "HOLDER", "FENCING", "EXPIRES", "REASON"]


def common_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--project, --instance-token (in that order of parameters)."""
    return project_option(instance_token_option(fn))
