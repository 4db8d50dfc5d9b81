"""`claudenest doctor`."""

from __future__ import annotations

import os
import sys

import click

from claudenest.agent.doctor import run_checks
from claudenest.cli.common import handle_errors, json_option, print_json, table
from claudenest.config import load_settings


@click.command()
@click.option("--cwd", default=None, help="Project folder to check workspace trust for (default: here).")
@json_option
@handle_errors
def doctor(cwd: str | None, as_json: bool) -> None:
    """Check Python, SQLite and sqlite-vec, the keyring, Claude Code (path, version, login, trust) and the relay."""
    settings = load_settings()
    checks = run_checks(
        claude_path=settings.agent.claude_path,
        cwd=cwd or os.getcwd(),
        relay_urls=[settings.agent.relay_url, settings.cli_relay_url],
    )
    if as_json:
        print_json({"checks": [c.to_dict() for c in checks], "ok": all(c.ok for c in checks)})
    else:
        table(["CHECK", "OK", "DETAIL"], [(c.name, "yes" if c.ok else "NO", c.detail) for c in checks])
    if not all(c.ok for c in checks):
        sys.exit(1)
