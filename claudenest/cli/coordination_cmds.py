"""`claudenest projects ...` (create, list, show, update, delete, watch), plus the `tasks` and `locks` groups
(tasks_cmds.py, locks_cmds.py): several Claude instances sharing one project."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.text import Text

from claudenest.cli.common import (
    err,
    handle_errors,
    json_option,
    out,
    print_json,
    relay_option,
    run,
    table,
    with_client,
)
from claudenest.cli.coordination_common import (
    find_project,
    instance_token_option,
    with_coordination,
)
from claudenest.cli.locks_cmds import locks
from claudenest.cli.tasks_cmds import tasks
from claudenest.client import RelayClient
from claudenest.errors import RelayUnreachable

__all__ = ["locks", "projects", "tasks"]

TEXT_OPTIONS = (
    ("summary", "What the project is."),
    ("architecture", "How it is built."),
    ("conventions", "Rules everyone follows."),
    ("current_focus", "What matters now."),
)


def _text_options(fn: Any) -> Any:
    for name, text in reversed(TEXT_OPTIONS):
        fn = click.option(f"--{name.replace('_', '-')}", name, help=text)(fn)
    return fn


@click.group()
def projects() -> None:
    """Shared projects that several Claude instances work on together."""


@projects.command("create")
@click.argument("name")
@click.option("--path", "project_path", required=True, help="The project's folder on the machines.")
@_text_options
@click.option("--token-budget", type=click.IntRange(100, 1_000_000), help="Compiled-context budget in tokens.")
@relay_option
@json_option
@handle_errors
def projects_create(
    name: str, project_path: str, token_budget: int | None, relay_url: str | None, as_json: bool, **texts: Any
) -> None:
    """Create a project and print its id."""
    if not Path(project_path).expanduser().is_dir():
        # Only a note: the project may live on another machine than this CLI, where the sessions will run.
        err.print(
            f"note: {project_path} is not a directory on this machine; sessions of the project start there on "
            "the machine that runs them, so create it there (or pass another --path)",
            highlight=False,
            markup=False,
        )
    project = run(
        with_client(relay_url, lambda api: api.create_project(name, project_path, token_budget=token_budget, **texts))
    )
    if as_json:
        print_json({"project": project})
    else:
        click.echo(project["id"])


@projects.command("list")
@relay_option
@json_option
@handle_errors
def projects_list(relay_url: str | None, as_json: bool) -> None:
    """Your projects."""
    found = run(with_client(relay_url, lambda api: api.projects()))
    if as_json:
        print_json({"projects": found})
        return
    table(
        ["ID", "NAME", "PATH", "FOCUS", "UPDATED"],
        [(p["id"], p["name"], p["project_path"], p["current_focus"][:50], p["updated_at"]) for p in found],
        empty="No projects yet: create one with `claudenest projects create NAME --path DIR`.",
    )


@projects.command("show")
@click.argument("project", required=False)
@instance_token_option
@relay_option
@json_option
@handle_errors
def projects_show(project: str | None, instance_token: str | None, relay_url: str | None, as_json: bool) -> None:
    """A project's fields, with counts of its tasks by status, its instances and its live locks."""

    async def fetch(api: RelayClient) -> dict[str, Any]:
        found = await find_project(api, project, as_instance=bool(instance_token))
        all_tasks = await api.tasks(found["id"])
        counts: dict[str, int] = {}
        for task in all_tasks:
            counts[task["status"]] = counts.get(task["status"], 0) + 1
        members = await api.instances(found["id"])
        return {
            "project": found,
            "tasks": counts,
            "instances": {s: sum(1 for i in members if i["status"] == s) for s in ("active", "disconnected", "ended")},
            "locks": len(await api.locks(found["id"])),
        }

    shown = with_coordination(relay_url, instance_token, fetch)
    if as_json:
        print_json(shown)
        return
    rows = sorted(shown["project"].items())
    rows += [("tasks", ", ".join(f"{k} {v}" for k, v in sorted(shown["tasks"].items())) or "none")]
    rows += [("instances", ", ".join(f"{k} {v}" for k, v in shown["instances"].items()))]
    rows += [("live locks", shown["locks"])]
    table(["FIELD", "VALUE"], rows)


@projects.command("update")
@click.argument("project")
@click.option("--name", help="New name.")
@click.option("--path", "project_path", help="New folder.")
@_text_options
@click.option("--recent-changes", "recent_changes", help="What changed lately.")
@click.option("--token-budget", type=click.IntRange(100, 1_000_000))
@instance_token_option
@relay_option
@json_option
@handle_errors
def projects_update(
    project: str, instance_token: str | None, relay_url: str | None, as_json: bool, **fields: Any
) -> None:
    """Change a project's fields (only those given)."""

    async def update(api: RelayClient) -> dict[str, Any]:
        found = await find_project(api, project, as_instance=bool(instance_token))
        return await api.update_project(found["id"], **fields)

    updated = with_coordination(relay_url, instance_token, update)
    if as_json:
        print_json({"project": updated})
    else:
        click.echo(updated["id"])


@projects.command("delete")
@click.argument("project")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@relay_option
@handle_errors
def projects_delete(project: str, yes: bool, relay_url: str | None) -> None:
    """Delete a project with its tasks, instances, locks and activity."""

    async def delete(api: RelayClient) -> str:
        found = await find_project(api, project, as_instance=False)
        if not yes and not click.confirm(f"delete project {found['name']} ({found['id']}) and everything in it?"):
            raise click.Abort()
        await api.delete_project(found["id"])
        return str(found["name"])

    name = run(with_client(relay_url, delete))
    err.print(f"deleted project {name}", highlight=False, markup=False)


def _print_event(event: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(event)
        return
    moment = (event.get("created_at") or "")[11:19]
    line = Text(f"{moment} ", style="dim") + Text(f"{event['kind']:<22}", style="bold") + Text(event["message"])
    out.print(line, highlight=False)


@projects.command("watch")
@click.argument("project", required=False)
@click.option("--after", metavar="ID", help="First replay activity after this id (or timestamp).")
@instance_token_option
@relay_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line (NDJSON) for scripts.")
@handle_errors
def projects_watch(
    project: str | None, after: str | None, instance_token: str | None, relay_url: str | None, as_json: bool
) -> None:
    """Print the project's activity as it happens, until Ctrl-C. A watcher the relay drops for falling behind
    reconnects and resumes after the last event it printed."""

    async def watch(api: RelayClient) -> None:
        found = await find_project(api, project, as_instance=bool(instance_token))
        cursor: str | None = after
        announced = False

        def live() -> None:
            nonlocal announced
            if not announced:
                err.print(f"watching {found['name']} ({found['id']}); Ctrl-C stops", highlight=False, markup=False)
                announced = True

        while True:
            final = None
            async for event in api.project_events(found["id"], after=cursor, on_live=live):
                if event.get("id") is None:
                    final = event
                    break
                _print_event(event, as_json)
                cursor = str(event["id"])
            if final is not None and final["kind"] == "stream_dropped":
                err.print(f"[{final['message']}; resuming]", highlight=False, markup=False)
                continue
            if final is not None:
                err.print(f"[{final['message']}]", highlight=False, markup=False)
                return
            raise RelayUnreachable("the relay closed the event stream")

    try:
        with_coordination(relay_url, instance_token, watch)
    except KeyboardInterrupt:
        return  # Ctrl-C is how a watch ends
