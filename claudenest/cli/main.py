"""The `claudenest` command: one CLI for relay, agent and client."""

from __future__ import annotations

import click

from claudenest import __version__
from claudenest.cli.agent_cmds import agent
from claudenest.cli.auth_cmds import login, logout, whoami
from claudenest.cli.common import handle_errors
from claudenest.cli.context_cmds import context
from claudenest.cli.coordination_cmds import locks, projects, tasks
from claudenest.cli.discovery_cmds import mcp, skills
from claudenest.cli.doctor_cmd import doctor
from claudenest.cli.machines_cmds import machines, pair
from claudenest.cli.relay_cmds import relay
from claudenest.cli.sessions_cmds import sessions
from claudenest.cli.tokens_cmds import tokens
from claudenest.cli.up_cmd import up
from claudenest.config import load_settings
from claudenest.logs import setup_logging


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="claudenest")
@click.option(
    "--log-level", default="INFO", show_default=True, type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"])
)
@click.option("--log-format", type=click.Choice(["text", "json"]), help="Log line format on stderr.")
@handle_errors
def cli(log_level: str, log_format: str | None) -> None:
    """Run Claude Code on your own machines and drive it from anywhere."""
    setup_logging(log_level, log_format or load_settings().log_format)


for command in (
    up,
    relay,
    agent,
    pair,
    login,
    logout,
    whoami,
    machines,
    sessions,
    projects,
    tasks,
    locks,
    skills,
    mcp,
    doctor,
    context,
    tokens,
):
    cli.add_command(command)


def main() -> None:
    cli()
