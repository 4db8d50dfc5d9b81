"""`claudenest skills list` and `claudenest mcp list`: what Claude Code can use on your machines."""

from __future__ import annotations

import os
from typing import Any

import click

from claudenest.cli.common import (
    complete_machine,
    handle_errors,
    json_option,
    print_json,
    relay_option,
    run,
    table,
    with_client,
)
from claudenest.cli.machines_cmds import find_machine
from claudenest.client import RelayClient


async def _collect(api: RelayClient, machine: str | None, key: str) -> list[dict[str, Any]]:
    targets = (
        [await find_machine(api, machine)] if machine else [m for m in await api.machines() if m["status"] != "revoked"]
    )
    rows = []
    for target in targets:
        found = (await api.discovery(target["id"]))["discovery"] or {}
        rows += [{**item, "machine": target["name"], "machine_id": target["id"]} for item in found.get(key, [])]
    return rows


@click.group()
def skills() -> None:
    """Claude Code skills, slash commands and subagents on your machines."""


@skills.command("list")
@click.option("--machine", help="Only this machine (name or id).", shell_complete=complete_machine)
@click.option("--kind", type=click.Choice(["skills", "commands", "agents"]), default="skills", show_default=True)
@relay_option
@json_option
@handle_errors
def skills_list(machine: str | None, kind: str, relay_url: str | None, as_json: bool) -> None:
    """What each agent found in ~/.claude and in the projects its sessions use (reported on connect and change)."""
    rows = run(with_client(relay_url, lambda api: _collect(api, machine, kind)))
    if as_json:
        print_json({kind: rows})
        return
    table(
        ["MACHINE", "NAME", "SCOPE", "DESCRIPTION"],
        [(r["machine"], r["name"], r["scope"], (r.get("description") or "")[:70]) for r in rows],
        empty=f"No {kind} found on your machines (agents report ~/.claude and their projects' .claude/ folders).",
    )


@click.group()
def mcp() -> None:
    """MCP: the servers Claude Code has on your machines, and ClaudeNest's own server."""


@mcp.command("serve")
@handle_errors
def mcp_serve() -> None:
    """Run the stdio MCP server for one Claude instance (the agent configures this; see docs/coordination.md).

    Reads CLAUDENEST_RELAY_URL, CLAUDENEST_INSTANCE_TOKEN, CLAUDENEST_PROJECT_ID and CLAUDENEST_INSTANCE_ID.
    """
    from claudenest.mcp.config import INSTRUCTIONS, McpConfig
    from claudenest.mcp.handshake import answer_early

    config = McpConfig.from_env()
    # Claude Code waits for the answer to `initialize`; it goes out before the SDK's 0.5 s import (handshake.py).
    forwarder = answer_early(INSTRUCTIONS)
    from claudenest.mcp.server import serve

    try:
        serve(config)
    finally:
        if forwarder is not None:
            os.close(1)  # the SDK's output pipe: the forwarder drains it, then stops
            forwarder.join(5)


@mcp.command("list")
@click.option("--machine", help="Only this machine (name or id).", shell_complete=complete_machine)
@relay_option
@json_option
@handle_errors
def mcp_list(machine: str | None, relay_url: str | None, as_json: bool) -> None:
    """MCP servers from ~/.claude.json and projects' .mcp.json (secrets in env and headers are never reported)."""
    rows = run(with_client(relay_url, lambda api: _collect(api, machine, "mcp_servers")))
    if as_json:
        print_json({"mcp_servers": rows})
        return
    table(
        ["MACHINE", "NAME", "SCOPE", "TYPE", "COMMAND / URL"],
        [
            (
                r["machine"],
                r["name"],
                r["scope"],
                r.get("type", ""),
                r.get("url") or " ".join([r.get("command", ""), *r.get("args", [])]),
            )
            for r in rows
        ],
        empty="No MCP servers found in ~/.claude.json or projects' .mcp.json on your machines.",
    )
