"""`claudenest machines ...` and `claudenest pair`."""

from __future__ import annotations

import sys
from typing import Any

import click

from claudenest import tokens
from claudenest.agent import credentials
from claudenest.agent.pairing import pair as pair_with_relay
from claudenest.cli.common import (
    complete_machine,
    handle_errors,
    json_option,
    out,
    pick,
    print_json,
    relay_option,
    relay_url_argument,
    run,
    short,
    table,
    with_client,
)
from claudenest.client import RelayClient
from claudenest.config import update_config_file
from claudenest.errors import ClaudenestError, NotFound


async def find_machine(api: RelayClient, ref: str | None) -> dict[str, Any]:
    """A machine by id, id prefix or name; with no ref, the only online machine."""
    machines = [m for m in await api.machines() if m["status"] != "revoked"]
    if ref is None:
        online = [m for m in machines if m["status"] == "online"]
        if len(online) == 1:
            return online[0]
        if not online:
            raise NotFound("no machine is online: start `claudenest agent run` on one, or pass --machine")
        names = ", ".join(m["name"] for m in online)
        raise ClaudenestError(f"several machines are online ({names}): pick one with --machine")
    return pick(machines, ref, "machine")


@click.group()
def machines() -> None:
    """Your paired machines."""


@machines.command("list")
@relay_option
@json_option
@handle_errors
def machines_list(relay_url: str | None, as_json: bool) -> None:
    """Every machine paired to your account, with its status."""
    found = run(with_client(relay_url, lambda api: api.machines()))
    if as_json:
        print_json({"machines": found})
        return
    table(
        ["ID", "NAME", "STATUS", "HOSTNAME", "PLATFORM", "CLAUDE", "LAST SEEN"],
        [
            (
                short(m["id"]),
                m["name"],
                m["status"],
                m["hostname"],
                m["platform"],
                m["claude_version"] or "-",
                m["last_seen_at"],
            )
            for m in found
        ],
        empty="No machines yet: on the machine, run `claudenest pair --relay URL`, then approve its code here.",
    )


@machines.command("show")
@click.argument("machine", shell_complete=complete_machine)
@relay_option
@json_option
@handle_errors
def machines_show(machine: str, relay_url: str | None, as_json: bool) -> None:
    """One machine (by id, id prefix or name)."""
    found = run(with_client(relay_url, lambda api: find_machine(api, machine)))
    if as_json:
        print_json({"machine": found})
    else:
        table(["FIELD", "VALUE"], sorted(found.items()))


@machines.command("approve")
@click.argument("code")
@click.option("--name", help="Name for the machine (default: the name the agent asked for).")
@click.option("--yes", "-y", is_flag=True, help="Do not show the machine and ask; approve at once.")
@relay_option
@json_option
@handle_errors
def machines_approve(code: str, name: str | None, yes: bool, relay_url: str | None, as_json: bool) -> None:
    """Pair the machine showing CODE (e.g. A7K-M2X) to your account."""
    if tokens.normalize_pairing_code(code) is None:
        raise click.BadParameter("a pairing code is 6 letters and digits like A7K-M2X", param_hint="CODE")

    async def approve(api: RelayClient) -> dict[str, Any]:
        if not yes and not as_json:
            info = await api.pairing_info(code)
            out.print(
                f"Machine asking to pair: {info['hostname']} ({info['platform']}) from {info['ip']}, "
                f"name {name or info['requested_name']!r}.",
                highlight=False,
                markup=False,
            )
            if not click.confirm("Is this your machine? Approve it", default=False):
                raise ClaudenestError("not approved")
        return await api.approve_pairing(code, name)

    machine = run(with_client(relay_url, approve))
    if as_json:
        print_json({"machine": machine})
    else:
        out.print(f"Paired {machine['name']} ({machine['id']}).", highlight=False, markup=False)


@machines.command("revoke")
@click.argument("machine", shell_complete=complete_machine)
@relay_option
@json_option
@handle_errors
def machines_revoke(machine: str, relay_url: str | None, as_json: bool) -> None:
    """Revoke a machine's token; its agent disconnects and must pair again."""

    async def revoke(api: RelayClient) -> dict[str, Any]:
        return await api.revoke_machine((await find_machine(api, machine))["id"])

    revoked = run(with_client(relay_url, revoke))
    if as_json:
        print_json({"machine": revoked})
    else:
        out.print(f"Revoked {revoked['name']} ({revoked['id']}).", highlight=False, markup=False)


@click.command()
@click.option("--relay", "relay_url", required=True, metavar="URL", help="The relay to pair with.")
@click.option("--name", help="Name for this machine (default: its hostname).")
@click.option("--yes", "-y", is_flag=True, help="Pair again without asking when this machine is already paired.")
@json_option
@handle_errors
def pair(relay_url: str, name: str | None, yes: bool, as_json: bool) -> None:
    """Pair this machine's agent with an account: shows a code to approve, then stores the machine token.

    Ctrl-C while waiting withdraws the code, so it can no longer be approved.
    """
    relay_url = relay_url_argument(relay_url)
    if credentials.load("machine", relay_url) and not yes:
        question = f"This machine is already paired with {relay_url}. Pair it again (a new machine, a new token)?"
        if not sys.stdin.isatty():
            raise click.UsageError(f"this machine is already paired with {relay_url}; pass --yes to pair it again")
        if not click.confirm(question, default=False):
            raise ClaudenestError("not paired again; the existing pairing is unchanged")

    def show(code: dict[str, Any]) -> None:
        if as_json:
            print_json(code)
        else:
            out.print(
                f"Pairing code: [bold]{code['code']}[/bold] (expires {code['expires_at']})\n"
                f"Approve it from a logged-in CLI with `claudenest machines approve {code['code']}`.\nWaiting...",
                highlight=False,
            )

    try:
        result = run(pair_with_relay(relay_url, name, show))
    except ClaudenestError as exc:
        if as_json:
            print_json({"status": "failed", "error": str(exc)})
        raise
    where = credentials.save("machine", relay_url, result["machine_token"])
    update_config_file({"agent": {"relay_url": relay_url, "name": result["machine"]["name"]}})
    if as_json:
        print_json(
            {
                "status": "completed",
                "machine_id": result["machine"]["id"],
                "user": result["user"]["email"],
                "relay": relay_url,
                "stored_in": where,
            }
        )
    else:
        out.print(
            f"Linked as {result['machine']['name']} to {result['user']['email']} on {relay_url}.\n"
            f"Machine token stored in {where}. Start the agent with `claudenest agent run`.",
            highlight=False,
            markup=False,
        )
