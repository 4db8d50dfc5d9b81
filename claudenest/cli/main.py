"""The `claudenest` command: one CLI for relay, agent and client.

Command modules are imported only when their command runs: the relay's FastAPI, the store's numpy and the agent
are heavy, and `claudenest --help`, `sessions list` or `mcp serve` (started once per Claude session) must not pay
for them. The help line of each command lives in COMMANDS so `--help` imports none of them.
"""

from __future__ import annotations

import importlib

import click

from claudenest import __version__
from claudenest.cli.common import handle_errors
from claudenest.config import load_settings
from claudenest.logs import setup_logging

# name -> (module, attribute, one-line help shown by `claudenest --help`)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "up": ("up_cmd", "up", "Run a relay and this machine's agent together, signed in as the local owner."),
    "relay": ("relay_cmds", "relay", "Run and administer a relay (on the relay's own machine)."),
    "agent": ("agent_cmds", "agent", "The agent daemon that runs sessions on this machine."),
    "pair": (
        "machines_cmds",
        "pair",
        "Pair this machine's agent with an account: shows a code to approve, then stores the machine token.",
    ),
    "login": ("auth_cmds", "login", "Check a personal access token against the relay and store it for later commands."),
    "logout": ("auth_cmds", "logout", "Forget the stored token for the relay."),
    "whoami": ("auth_cmds", "whoami", "Show which account the CLI acts as."),
    "machines": ("machines_cmds", "machines", "Your paired machines."),
    "sessions": ("sessions_cmds", "sessions", "Claude Code (or other) sessions running in PTYs on your machines."),
    "projects": ("coordination_cmds", "projects", "Shared projects that several Claude instances work on together."),
    "tasks": (
        "coordination_cmds",
        "tasks",
        "Tasks of a shared project: a dependency graph that Claude instances claim one by one.",
    ),
    "locks": (
        "coordination_cmds",
        "locks",
        "File locks of a shared project: a path or glob, a holder, an expiry, a fencing number.",
    ),
    "context": ("context_cmds", "context", "A project's shared context: what the instances did, decided and noted."),
    "skills": ("discovery_cmds", "skills", "Claude Code skills, slash commands and subagents on your machines."),
    "mcp": ("discovery_cmds", "mcp", "MCP: the servers Claude Code has on your machines, and ClaudeNest's own server."),
    "tokens": ("tokens_cmds", "tokens", "Personal access tokens (cn_...) for the CLI and scripts."),
    "doctor": (
        "doctor_cmd",
        "doctor",
        "Check Python, SQLite and sqlite-vec, the keyring, Claude Code (path, version, login, trust) and the relay.",
    ),
}


class LazyGroup(click.Group):
    """A group whose commands are imported on first use (click's documented lazy-loading pattern)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attribute, _ = COMMANDS[cmd_name]
        command = getattr(importlib.import_module(f"claudenest.cli.{module}"), attribute)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, short) for name, (_, _, short) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="claudenest")
@click.option(
    "--log-level", default="INFO", show_default=True, type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"])
)
@click.option("--log-format", type=click.Choice(["text", "json"]), help="Log line format on stderr.")
@handle_errors
def cli(log_level: str, log_format: str | None) -> None:
    """Run Claude Code on your own machines and drive it from anywhere."""
    setup_logging(log_level, log_format or load_settings().log_format)


def main() -> None:
    cli()
