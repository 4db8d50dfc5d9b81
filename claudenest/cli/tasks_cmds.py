"""`claudenest tasks ...`: a project's task DAG. Claiming needs an instance (--instance-token or
CLAUDENEST_INSTANCE_TOKEN); the project's owner can do everything else."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import click

from claudenest.cli.common import handle_errors, json_option, print_json, relay_option, table
from claudenest.cli.coordination_common import (
    TASK_COLUMNS,
    common_options,
    find_project,
    find_task,
    task_rows,
    with_coordination,
)
from claudenest.client import RelayClient

PRIORITIES = click.Choice(["low", "medium", "high", "critical"])
STATUSES = click.Choice(["pending", "in_progress", "blocked", "review", "done"])


@click.group()
def tasks() -> None:
    """Tasks of a shared project: a dependency graph that Claude instances claim one by one."""


def _show(task: dict[str, Any] | None, as_json: bool) -> None:
    if as_json:
        print_json({"task": task})
    elif task is None:
        click.echo("nothing to claim")
    else:
        table(TASK_COLUMNS, task_rows([task]))


def _on_task(
    project_ref: str | None,
    instance_token: str | None,
    relay_url: str | None,
    task_ref: str | None,
    action: Callable[[RelayClient, str, str], Awaitable[dict[str, Any] | None]],
) -> dict[str, Any] | None:
    """Resolve the project (and task, if given), then run ``action(api, project_id, task_id)``."""

    async def go(api: RelayClient) -> dict[str, Any] | None:
        project = await find_project(api, project_ref, as_instance=bool(instance_token))
        task_id = (await find_task(api, project["id"], task_ref))["id"] if task_ref else ""
        return await action(api, project["id"], task_id)

    return with_coordination(relay_url, instance_token, go)


@tasks.command("create")
@click.argument("title")
@click.option("--description", "-d", default="", help="What to do, in detail.")
@click.option("--priority", type=PRIORITIES, default="medium", show_default=True)
@click.option("--depends-on", "dependencies", multiple=True, metavar="TASK", help="A task to finish first (repeat).")
@click.option("--file", "files", multiple=True, metavar="PATH", help="A file the task touches (repeat).")
@click.option("--estimate", help="e.g. 2h.")
@common_options
@relay_option
@json_option
@handle_errors
def tasks_create(
    title: str,
    description: str,
    priority: str,
    dependencies: tuple[str, ...],
    files: tuple[str, ...],
    estimate: str | None,
    project_ref: str | None,
    instance_token: str | None,
    relay_url: str | None,
    as_json: bool,
) -> None:
    """Add a task; prints its id."""

    async def create(api: RelayClient, pid: str, _: str) -> dict[str, Any]:
        deps = [(await find_task(api, pid, ref))["id"] for ref in dependencies]
        return await api.create_task(
            pid,
            title,
            description=description,
            priority=priority,
            dependencies=deps,
            files=list(files),
            estimate=estimate,
        )

    task = _on_task(project_ref, instance_token, relay_url, None, create)
    assert task is not None
    if as_json:
        print_json({"task": task})
    else:
        click.echo(task["id"])


@tasks.command("list")
@click.option("--status", type=STATUSES, help="Only this status.")
@click.option("--assigned-to", metavar="INSTANCE", help="Only tasks of this instance id.")
@common_options
@relay_option
@json_option
@handle_errors
def tasks_list(
    status: str | None,
    assigned_to: str | None,
    project_ref: str | None,
    instance_token: str | None,
    relay_url: str | None,
    as_json: bool,
) -> None:
    """The project's tasks, highest priority first, then oldest."""

    async def fetch(api: RelayClient) -> list[dict[str, Any]]:
        project = await find_project(api, project_ref, as_instance=bool(instance_token))
        return await api.tasks(project["id"], status=status, assigned_to=assigned_to)

    found = with_coordination(relay_url, instance_token, fetch)
    if as_json:
        print_json({"tasks": found})
    else:
        table(
            TASK_COLUMNS,
            task_rows(found),
            empty="No tasks match."
            if status or assigned_to
            else "No tasks yet: add one with `claudenest tasks create TITLE`.",
        )


@tasks.command("show")
@click.argument("task")
@common_options
@relay_option
@json_option
@handle_errors
def tasks_show(
    task: str, project_ref: str | None, instance_token: str | None, relay_url: str | None, as_json: bool
) -> None:
    """One task, every field."""

    async def fetch(api: RelayClient, pid: str, tid: str) -> dict[str, Any]:
        return await api.task(pid, tid)

    found = _on_task(project_ref, instance_token, relay_url, task, fetch)
    if as_json:
        print_json({"task": found})
    else:
        table(["FIELD", "VALUE"], sorted((found or {}).items()))


@tasks.command("update")
@click.argument("task")
@click.option("--title")
@click.option("--description", "-d")
@click.option("--priority", type=PRIORITIES)
@click.option("--depends-on", "dependencies", multiple=True, metavar="TASK", help="Replace the dependencies (repeat).")
@click.option("--no-dependencies", is_flag=True, help="Remove every dependency.")
@click.option("--file", "files", multiple=True, metavar="PATH", help="Replace the files (repeat).")
@click.option("--estimate")
@common_options
@relay_option
@json_option
@handle_errors
def tasks_update(
    task: str,
    title: str | None,
    description: str | None,
    priority: str | None,
    dependencies: tuple[str, ...],
    no_dependencies: bool,
    files: tuple[str, ...],
    estimate: str | None,
    project_ref: str | None,
    instance_token: str | None,
    relay_url: str | None,
    as_json: bool,
) -> None:
    """Change a task's fields (only those given)."""

    async def update(api: RelayClient, pid: str, tid: str) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "title": title,
            "description": description,
            "priority": priority,
            "estimate": estimate,
        }
        if no_dependencies:
            fields["dependencies"] = []
        elif dependencies:
            fields["dependencies"] = [(await find_task(api, pid, ref))["id"] for ref in dependencies]
        if files:
            fields["files"] = list(files)
        return await api.update_task(pid, tid, **fields)

    _show(_on_task(project_ref, instance_token, relay_url, task, update), as_json)


def _transition(name: str, doc: str, call: Callable[[RelayClient, str, str], Awaitable[dict[str, Any] | None]]) -> None:
    @tasks.command(name, help=doc)
    @click.argument("task")
    @common_options
    @relay_option
    @json_option
    @handle_errors
    def command(
        task: str, project_ref: str | None, instance_token: str | None, relay_url: str | None, as_json: bool
    ) -> None:
        _show(_on_task(project_ref, instance_token, relay_url, task, call), as_json)


_transition(
    "claim",
    "Claim TASK for the instance (it must be pending with every dependency done).",
    lambda a, p, t: a.claim_task(p, t),
)
_transition(
    "release", "Put TASK back to pending (its instance, or the project's owner).", lambda a, p, t: a.release_task(p, t)
)
_transition(
    "unblock", "Unblock TASK: back to its instance if still active, else pending.", lambda a, p, t: a.unblock_task(p, t)
)


@tasks.command("claim-next")
@common_options
@relay_option
@json_option
@handle_errors
def tasks_claim_next(project_ref: str | None, instance_token: str | None, relay_url: str | None, as_json: bool) -> None:
    """Claim the highest-priority, oldest task whose dependencies are done (needs an instance token)."""
    _show(_on_task(project_ref, instance_token, relay_url, None, lambda a, p, _: a.claim_next_task(p)), as_json)


def _with_summary(
    name: str, doc: str, call: Callable[[RelayClient, str, str, str, list[str]], Awaitable[dict[str, Any]]]
) -> None:
    """A command on TASK that reports what was done: --summary and the files modified."""

    @tasks.command(name, help=doc)
    @click.argument("task")
    @click.option("--summary", "-s", required=True, help="What was done.")
    @click.option("--file-modified", "files", multiple=True, metavar="PATH", help="A file changed (repeat).")
    @common_options
    @relay_option
    @json_option
    @handle_errors
    def command(
        task: str,
        summary: str,
        files: tuple[str, ...],
        project_ref: str | None,
        instance_token: str | None,
        relay_url: str | None,
        as_json: bool,
    ) -> None:
        _show(
            _on_task(project_ref, instance_token, relay_url, task, lambda a, p, t: call(a, p, t, summary, list(files))),
            as_json,
        )


_with_summary(
    "complete",
    "Mark TASK done with a summary (its instance, or the project's owner).",
    lambda a, p, t, summary, files: a.complete_task(p, t, summary, files),
)
_with_summary(
    "review",
    "Ask for a review of TASK (in progress -> review); another instance or the owner approves it.",
    lambda a, p, t, summary, files: a.request_review(p, t, summary, files),
)


@tasks.command("approve")
@click.argument("task")
@click.option("--note", "-n", help="A word on the review.")
@common_options
@relay_option
@json_option
@handle_errors
def tasks_approve(
    task: str,
    note: str | None,
    project_ref: str | None,
    instance_token: str | None,
    relay_url: str | None,
    as_json: bool,
) -> None:
    """Approve TASK in review: it is done, with the summary given for review (not by its own assignee)."""
    _show(_on_task(project_ref, instance_token, relay_url, task, lambda a, p, t: a.approve_task(p, t, note)), as_json)


@tasks.command("request-changes")
@click.argument("task")
@click.option("--reason", "-r", required=True, help="What to change.")
@common_options
@relay_option
@json_option
@handle_errors
def tasks_request_changes(
    task: str, reason: str, project_ref: str | None, instance_token: str | None, relay_url: str | None, as_json: bool
) -> None:
    """Send TASK in review back to its assignee (in progress) with what to change."""
    _show(
        _on_task(project_ref, instance_token, relay_url, task, lambda a, p, t: a.request_changes(p, t, reason)),
        as_json,
    )


@tasks.command("block")
@click.argument("task")
@click.option("--reason", "-r", required=True, help="What it waits for.")
@common_options
@relay_option
@json_option
@handle_errors
def tasks_block(
    task: str, reason: str, project_ref: str | None, instance_token: str | None, relay_url: str | None, as_json: bool
) -> None:
    """Mark TASK blocked, with the reason."""
    _show(_on_task(project_ref, instance_token, relay_url, task, lambda a, p, t: a.block_task(p, t, reason)), as_json)
