"""`claudenest up`: a relay and an agent for this machine in one process; one machine is a complete setup."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import platform
import socket
from datetime import timedelta
from typing import Any

import click

from claudenest import tokens
from claudenest.agent import credentials
from claudenest.agent.daemon import Agent
from claudenest.cli.common import handle_errors, out
from claudenest.cli.relay_cmds import new_login_link, relay_settings
from claudenest.config import load_settings, update_config_file
from claudenest.relay.server import RunningRelay, serve
from claudenest.store import Store

OWNER_EMAIL = "owner@localhost"


async def prepare_local_setup(store: Store, url: str) -> dict[str, str]:
    """Owner account, CLI token and this machine's token, reusing what is still valid. Returns a login code."""
    owner = await store.users.owner()
    if owner is None:
        owner = await store.users.create(OWNER_EMAIL, is_owner=True)
    stored = credentials.load("user", url)
    user = await store.users.user_for_token(tokens.hash_token(stored)) if stored else None
    if user is None or user["id"] != owner["id"]:
        raw = tokens.new_token(tokens.PAT_PREFIX)
        await store.users.add_token(
            owner["id"],
            tokens.hash_token(raw),
            name="claudenest up",
            expires_in=timedelta(days=365),
            abilities=["*"],
        )
        credentials.save("user", url, raw)
    machine_token = credentials.load("machine", url)
    machine = await store.machines.by_token(tokens.hash_token(machine_token)) if machine_token else None
    if machine is None or machine["user_id"] != owner["id"]:
        machine_token = tokens.new_token(tokens.MACHINE_PREFIX)
        await store.machines.create(
            owner["id"],
            name=socket.gethostname(),
            hostname=socket.gethostname(),
            platform=f"{platform.system()} {platform.machine()}",
            token_hash=tokens.hash_token(machine_token),
        )
        credentials.save("machine", url, machine_token)
    update_config_file({"cli": {"relay_url": url}})
    link = await new_login_link(store, owner["id"], url)
    return {"email": owner["email"], "login_url": link["url"]}


@click.command()
@click.option("--host", help="Interface for the relay (default 127.0.0.1).")
@click.option("--port", type=int, help="Port (default 8700; 0 picks a free one).")
@click.option("--database", type=click.Path(dir_okay=False), help="SQLite file (default: <data dir>/relay.db).")
@handle_errors
def up(**flags: Any) -> None:
    """Run a relay and this machine's agent together, signed in as the local owner."""
    settings = relay_settings(**flags)
    agent_settings = load_settings().agent
    state: dict[str, str] = {}

    async def prepare(store: Store, url: str) -> None:
        state.update(await prepare_local_setup(store, url), url=url)

    def ready(running: RunningRelay) -> None:
        url = state["url"]
        token = credentials.load("machine", url)
        assert token is not None
        agent = Agent(url, token, dataclasses.replace(agent_settings, relay_url=url))
        running.companions.append(asyncio.ensure_future(agent.run()))
        # What to do next goes to stdout (logs go to stderr), so `claudenest up > start.txt` keeps just this.
        out.print(
            f"ClaudeNest is up at {url}\n"
            f"  Dashboard: {url}/dashboard\n"
            f"  Open this one-time link to sign the browser in (10 minutes): {state['login_url']}\n"
            f"  Signed in on this machine as {state['email']}: try `claudenest sessions new --command bash`.\n"
            f"  Something not working? `claudenest doctor` checks Python, SQLite, Claude Code and the relay.",
            highlight=False,
            markup=False,
        )

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(settings, on_ready=ready, prepare=prepare))
