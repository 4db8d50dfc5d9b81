"""`claudenest context ...`: add to, search and compile a project's shared context; re-embed after a change."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import IO, Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

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
from claudenest.errors import ClaudenestError, InvalidRequest

MAX_BATCH = 500  # the relay's most chunks a bulk request (routes/context.py MAX_BULK_CHUNKS)
BODY_BUDGET = 960 << 10  # JSON bytes a request, under the relay's 1 MiB body limit (relay/app.py MAX_BODY_BYTES)


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


@context.command("import")
@click.argument("source", metavar="FILE.jsonl", type=click.File("r", encoding="utf-8"))
@click.option("--batch", type=click.IntRange(1, MAX_BATCH), default=100, show_default=True, help="Chunks a request.")
@common_options
@relay_option
@json_option
@handle_errors
def context_import(
    source: IO[str], batch: int, project_ref: str | None, instance_token: str | None, relay_url: str | None,
    as_json: bool,
) -> None:  # fmt: skip
    """Add every chunk of FILE.jsonl (- for stdin) to the project's shared context, in batches.

    One JSON object a line: "content" and optionally "type", "files", "task_id", "importance", "expires_at". The
    whole file is checked before anything is sent: a bad line stops the import (exit 2) and names its number."""
    chunks = read_chunks(source)
    if not chunks:
        raise InvalidRequest(f"{source.name}: no chunks to import (one JSON object a line)")

    async def send(api: RelayClient) -> dict[str, Any]:
        project = await find_project(api, project_ref, as_instance=bool(instance_token))
        ids: list[str] = []
        result: dict[str, Any] = {}
        columns = (TextColumn("importing"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, console=err, disable=as_json or not err.is_terminal, transient=True) as bar:
            task = bar.add_task("import", total=len(chunks))
            for part in batches(chunks, batch):
                try:
                    result = await api.add_context_chunks(project["id"], part)
                except ClaudenestError:
                    if ids:
                        err.print(f"{len(ids)} of {len(chunks)} chunks were imported before this error", markup=False)
                    raise
                ids += result["ids"]
                bar.advance(task, len(part))
        return {"project": project["id"], "ids": ids, "created": len(ids), "project_chunks": result["project_chunks"]}

    result = with_coordination(relay_url, instance_token, send)
    if as_json:
        print_json(result)
    else:
        click.echo(f"imported {result['created']} chunks ({result['project_chunks']} in the project now)")


def read_chunks(source: IO[str]) -> list[dict[str, Any]]:
    """Each non-blank line of ``source`` as a chunk, checked as the relay checks it; InvalidRequest names the
    first bad line."""
    from pydantic import ValidationError

    from claudenest.relay.routes.context import ChunkCreate  # the relay's own rules, so a bad line fails here

    chunks = []
    for number, line in enumerate(source, 1):
        if not line.strip():
            continue
        where = f"{source.name} line {number}"
        try:
            value = json.loads(line)
        except ValueError as exc:
            raise InvalidRequest(f"{where}: not JSON ({exc})") from None
        if not isinstance(value, dict):
            raise InvalidRequest(f'{where}: expected a JSON object like {{"content": "..."}}')
        try:
            chunk = ChunkCreate.model_validate(value)
        except ValidationError as exc:
            problem = exc.errors()[0]
            field = ".".join(str(p) for p in problem["loc"]) or "line"
            raise InvalidRequest(f"{where}: {field}: {problem['msg']}") from None
        chunks.append(chunk.model_dump(exclude_unset=True))
    return chunks


def batches(chunks: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    """Runs of at most ``size`` chunks whose JSON stays within BODY_BUDGET (a chunk over it goes alone)."""
    part: list[dict[str, Any]] = []
    used = 0
    for chunk in chunks:
        cost = len(json.dumps(chunk).encode()) + 2
        if part and (len(part) == size or used + cost > BODY_BUDGET):
            yield part
            part, used = [], 0
        part.append(chunk)
        used += cost
    if part:
        yield part


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
