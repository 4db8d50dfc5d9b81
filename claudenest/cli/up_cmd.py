"""`claudenest up`: a relay and an agent for this machine; one machine is a complete setup.

The relay runs in this process and the agent in a child process (`claudenest agent run`) that `up` supervises:
two event loops on two cores, as fast as running them apart (docs/cli.md says why not a thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import platform
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from typing import Any

import click

from claudenest import tokens
from claudenest.agent import credentials
from claudenest.cli.common import handle_errors, out
from claudenest.cli.relay_cmds import new_login_link, relay_settings
from claudenest.config import update_config_file
from claudenest.errors import AuthError, ConfigError
from claudenest.relay.server import RunningRelay, serve
from claudenest.store import Store

log = logging.getLogger(__name__)

OWNER_EMAIL = "owner@localhost"
RESTART_FIRST = 1.0  # seconds before the first restart of an agent that died; doubled each time, up to the cap
RESTART_CAP = 30.0
HEALTHY_AFTER = 60.0  # an agent that ran this long starts the backoff afresh when it dies
STOP_GRACE = 10.0  # the agent ends its sessions (SIGHUP, SIGTERM, SIGKILL: up to 8 s) before it exits
# Exits that a restart is unlikely to cure: the relay refused the machine token (revoked, or another agent took it
# over), or the configuration is unusable. Such an agent is started again only FATAL_RETRIES times: enough to take
# the token back from a stale agent (one left running by an `up` killed with SIGKILL; the relay keeps the newest
# connection of a machine), not a loop against a revoked token.
FATAL_EXITS = {
    AuthError.exit_code: "the relay refused this machine's token",
    ConfigError.exit_code: "bad configuration",
}
FATAL_RETRIES = 2


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


def agent_argv(url: str, log_options: list[str]) -> list[str]:
    """`claudenest agent run` for this relay. The agent reads the machine token that prepare_local_setup stored for
    ``url`` (keyring or the 0600 credentials file): it is on no command line and in no environment, where `ps` or
    /proc would show it."""
    return [sys.executable, "-m", "claudenest", *log_options, "agent", "run", "--relay", url]


def describe_exit(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


async def supervise_agent(argv: list[str]) -> None:
    """Run the agent until cancelled, restarting it with backoff when it dies; cancelling stops it (SIGTERM, then
    SIGKILL after STOP_GRACE or at a second cancel). Its log lines go to our stderr, its stdout too: up's stdout
    holds only the next steps."""
    delay, refusals = RESTART_FIRST, 0
    while True:
        started = time.monotonic()
        try:
            # Its own session: a Ctrl-C at the terminal reaches only `up`, which stops the agent once, in order.
            agent = await asyncio.create_subprocess_exec(
                *argv, stdin=subprocess.DEVNULL, stdout=sys.stderr.fileno(), start_new_session=True
            )
        except OSError as exc:
            log.error("cannot start the agent (%s); the relay keeps running without it", exc)
            return
        log.info("agent started (pid %d)", agent.pid)
        try:
            code = await agent.wait()
        finally:
            if agent.returncode is None:
                await stop_agent(agent)
        if time.monotonic() - started >= HEALTHY_AFTER:
            delay, refusals = RESTART_FIRST, 0
        if code in FATAL_EXITS:
            refusals += 1
            if refusals > FATAL_RETRIES:
                log.error("the agent stopped: %s (exit code %d); not restarting it", FATAL_EXITS[code], code)
                return
            log.warning("the agent stopped: %s (exit code %d); trying again in %.0f s", FATAL_EXITS[code], code, delay)
        else:
            log.warning(
                "the agent (pid %d) ended unexpectedly (%s); restarting it in %.0f s",
                agent.pid,
                describe_exit(code),
                delay,
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, RESTART_CAP)


async def stop_agent(agent: asyncio.subprocess.Process) -> None:
    """SIGTERM, then SIGKILL after STOP_GRACE, or at once when cancelled again (a second Ctrl-C)."""
    with contextlib.suppress(ProcessLookupError):
        agent.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(agent.wait(), STOP_GRACE)
    except TimeoutError:
        log.warning("the agent (pid %d) did not stop within %.0f s; killing it", agent.pid, STOP_GRACE)
        agent.kill()
        await agent.wait()
    except asyncio.CancelledError:
        with contextlib.suppress(ProcessLookupError):
            agent.kill()
        await agent.wait()
        raise


@click.command()
@click.option("--host", help="Interface for the relay (default 127.0.0.1).")
@click.option("--port", type=int, help="Port (default 8700; 0 picks a free one).")
@click.option("--database", type=click.Path(dir_okay=False), help="SQLite file (default: <data dir>/relay.db).")
@handle_errors
def up(**flags: Any) -> None:
    """Run a relay and this machine's agent together, signed in as the local owner."""
    settings = relay_settings(**flags)
    state: dict[str, str] = {}
    options = click.get_current_context().find_root().params  # the agent logs as `up` was told to
    log_options = ["--log-level", str(options.get("log_level") or "INFO")]
    if options.get("log_format"):
        log_options += ["--log-format", str(options["log_format"])]

    async def prepare(store: Store, url: str) -> None:
        state.update(await prepare_local_setup(store, url), url=url)

    def ready(running: RunningRelay) -> None:
        url = state["url"]
        running.companions.append(asyncio.ensure_future(supervise_agent(agent_argv(url, log_options))))
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
