"""`claudenest context ...`: add to, search and compile a project's shared context; re-embed after a change."""

from __future__ import annotations

import asyncio
from typing import Any

import click

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
from claudenest.cli.coordination_common import common_options, find_project, with_coordination
from claudenest.client import RelayClient


@click.group()
def context() -> None:
    """A project's shared context: what the instances did, decided and noted."""


@context.command("add")
@click.argument("text")
@click.option("--type", "kind", default="note", show_default=True, help="note, decision, file_change, summary, ...")
@click.option("--file", "files", multiple=True, help="A file the text is about (repeatable).")
@common_options
@relay_option
@json_option
@handle_errors
def context_add(
    text: str, kind: str, files: tuple[str, ...], project_ref: str | None, instance_token: str | None,
    relay_url: str | None, as_json: bool,
) -> None:  # fmt: skip
    """Add TEXT to the project's shared context."""

    async def add(api: RelayClient) -> dict[str, Any]:
        project = await find_project(api, project_ref, as_instance=bool(instance_token))
        body = {"content": text, "type": kind, "files": list(files)}
        response = await api.request("POST", f"/api/projects/{project['id']}/context", json=body)
        return dict(response.json()["chunk"])

    chunk = with_coordination(relay_url, instance_token, add)
    if as_json:
        print_json({"chunk": chunk})
    else:
        click.echo(chunk["id"])


@context.command("query")
@click.argument("query")
@click.option("--limit", type=click.IntRange(1, 50), default=5, show_default=True)
@click.option("--type", "types", multiple=True, help="Only chunks of this type (repeatable).")
@click.option("--mode", type=click.Choice(["hybrid", "vector", "keyword"]), default="hybrid", show_default=True)
@common_options
@relay_option
@json_option
@handle_errors
def context_query(
    query: str, limit: int, types: tuple[str, ...], mode: str, project_ref: str | None,
    instance_token: str | None, relay_url: str | None, as_json: bool,
) -> None:  # fmt: skip
    """Search the shared context (FTS5 BM25 and vector KNN, fused by reciprocal rank)."""

    async def search(api: RelayClient) -> list[dict[str, Any]]:
        project = await find_project(api, project_ref, as_instance=bool(instance_token))
        body = {"query": query, "limit": limit, "types": list(types), "mode": mode}
        response = await api.request("POST", f"/api/projects/{project['id']}/context/query", json=body)
        return list(response.json()["results"])

    results = with_coordination(relay_url, instance_token, search)
    if as_json:
        print_json({"results": results})  # wrapped in a key, like every other listing
        return
    table(
        ["SCORE", "KW", "VEC", "TYPE", "CONTENT"],
        [
            (f"{r['score']:.4f}", r["keyword_rank"] or "-", r["vector_rank"] or "-", r["type"], r["content"][:90])
            for r in results
        ],
        empty="Nothing in the shared context matches; add notes with `claudenest context add`.",
    )


@context.command("compile")
@click.option("--budget", type=click.IntRange(100, 200_000), help="Tokens (default: the project's token budget).")
@click.option("--task", "task_id", help="Compile for this task (its most relevant chunks).")
@common_options
@relay_option
@handle_errors
def context_compile(
    budget: int | None, task_id: str | None, project_ref: str | None, instance_token: str | None, relay_url: str | None
) -> None:
    """Print the compiled context ClaudeNest appends to a project session's system prompt."""

    async def compile_(api: RelayClient) -> str:
        project = await find_project(api, project_ref, as_instance=bool(instance_token))
        params: dict[str, Any] = {}
        if budget:
            params["budget"] = budget
        if task_id:
            params["task_id"] = task_id
        response = await api.request("GET", f"/api/projects/{project['id']}/context/compiled", params=params)
        return str(response.json()["context"])

    out.print(with_coordination(relay_url, instance_token, compile_), markup=False, highlight=False)


@context.command("reembed")
@click.option("--no-wait", is_flag=True, help="Start the job and return.")
@relay_option
@handle_errors
def context_reembed(no_wait: bool, relay_url: str | None) -> None:
    """Re-embed every chunk with the relay's configured embedder (after changing it), showing progress."""

    async def go(api: RelayClient) -> dict[str, Any]:
        progress = (await api.request("POST", "/api/context/reembed")).json()["progress"]
        while not no_wait and progress["running"]:
            err.print(f"\rre-embedding: {progress['done']}/{progress['total']}", end="", markup=False)
            await asyncio.sleep(0.5)
            progress = (await api.request("GET", "/api/context/reembed")).json()["progress"]
        return dict(progress)

    progress = run(with_client(relay_url, go))
    err.print(f"\rre-embedded {progress['done']} of {progress['total']} with {progress['embedder']}", markup=False)
    if progress["error"]:
        raise click.ClickException(progress["error"])
