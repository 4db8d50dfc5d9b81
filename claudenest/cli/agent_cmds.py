"""`claudenest agent ...`: run the agent daemon, or install it as a systemd user service."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import click

from claudenest.agent import credentials
from claudenest.agent.daemon import Agent
from claudenest.cli.common import err, handle_errors, out
from claudenest.cli.lifecycle import run_until_signal
from claudenest.config import load_settings
from claudenest.errors import AuthError, ConfigError

UNIT_NAME = "claudenest-agent.service"


@click.group()
def agent() -> None:
    """The agent daemon that runs sessions on this machine."""


@agent.command("run")
@click.option("--relay", "relay_url", metavar="URL", help="Relay URL (default: the one this machine paired with).")
@click.option("--claude-path", type=click.Path(dir_okay=False), help="Path to the claude binary.")
@handle_errors
def agent_run(relay_url: str | None, claude_path: str | None) -> None:
    """Connect to the relay and run sessions until stopped (SIGINT/SIGTERM)."""
    settings = load_settings().agent
    if claude_path:
        settings = dataclasses.replace(settings, claude_path=claude_path)
    url = (relay_url or settings.relay_url).rstrip("/")
    if not url:
        raise ConfigError("this machine is not paired: run `claudenest pair --relay URL` first")
    token = credentials.load("machine", url)
    if not token:
        raise AuthError(f"no machine token for {url}: run `claudenest pair --relay {url}`")
    err.print(f"Agent connecting to {url}", highlight=False, markup=False)
    run_until_signal(Agent(url, token, settings).run())


def unit_text(executable: str) -> str:
    """The shipped unit (package data in a wheel, systemd/ in a checkout) pointed at this claudenest."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "systemd_units" / UNIT_NAME, package.parent / "systemd" / UNIT_NAME):
        if candidate.is_file():
            return candidate.read_text().replace("%h/.local/bin/claudenest", executable)
    raise ConfigError(f"{UNIT_NAME} is missing from this installation")


@agent.command("install-service")
@click.option("--print", "just_print", is_flag=True, help="Print the unit and the commands instead of running them.")
@handle_errors
def install_service(just_print: bool) -> None:
    """Write the systemd user unit and enable it (or print what to run where systemd is absent)."""
    executable = shutil.which("claudenest") or f"{sys.executable} -m claudenest"
    unit_dir = Path.home() / ".config" / "systemd" / "user"
    unit_path = unit_dir / UNIT_NAME
    commands = [
        ["systemctl", "--user", "daemon-reload"],
        ["systemctl", "--user", "enable", "--now", UNIT_NAME],
    ]
    text = unit_text(executable)
    has_systemd = shutil.which("systemctl") is not None and Path("/run/systemd/system").is_dir()
    if just_print or not has_systemd:
        if not has_systemd and not just_print:
            err.print(
                "systemd is not running here; to install the agent as a service elsewhere, run:",
                highlight=False,
                markup=False,
            )
        out.print(f"# {unit_path}\n{text}", highlight=False, markup=False)
        for command in commands:
            out.print(" ".join(command), highlight=False, markup=False)
        out.print(
            "loginctl enable-linger $USER   # keep the agent running after you log out",
            highlight=False,
            markup=False,
        )
        return
    unit_dir.mkdir(parents=True, exist_ok=True)
    unit_path.write_text(text)
    for command in commands:
        subprocess.run(command, check=True)
    out.print(f"Installed and started {UNIT_NAME} ({unit_path}).", highlight=False, markup=False)
    out.print(
        "Run `loginctl enable-linger $USER` to keep it running after you log out.",
        highlight=False,
        markup=False,
    )
