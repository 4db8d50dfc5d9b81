"""`claudenest sessions ...`: start, list, attach to, type into, read and end sessions."""

from __future__ import annotations

import asyncio
import re
import shlex
import shutil
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from claudenest.cli.attach import DEFAULT_DETACH_KEY, OutputFollower, attach
from claudenest.cli.common import (
    complete_machine,
    complete_session,
    err,
    handle_errors,
    json_option,
    out,
    print_json,
    relay_option,
    run,
    short,
    table,
    with_client,
)
from claudenest.cli.coordination_common import find_project
from claudenest.cli.machines_cmds import find_machine
from claudenest.client import RelayClient
from claudenest.clock import iso
from claudenest.errors import ClaudenestError, NotFound


async def find_session(api: RelayClient, ref: str) -> dict[str, Any]:
    """A session by full id, or by a unique id prefix among your recent sessions."""
    if not ref.strip():
        raise click.BadParameter("give a session id or its first characters (`sessions list` shows them)")
    try:
        uuid.UUID(ref)
        return await api.session(ref)
    except ValueError:
        pass
    found = [s for s in await api.sessions(limit=1000) if s["id"].startswith(ref)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise NotFound(f"no session {ref!r}")
    shown = ", ".join(s["id"] for s in found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
    raise ClaudenestError(f"{ref!r} matches {len(found)} sessions ({shown}): give more characters")


def _money(session: dict[str, Any]) -> str:
    if not session["total_tokens"]:
        return ""
    return f"{session['total_tokens']:,} / ${session['total_cost']:.4f}"


def _session_rows(sessions: list[dict[str, Any]], machine_names: dict[str, str]) -> list[tuple[Any, ...]]:
    return [
        (
            short(s["id"]),
            machine_names.get(s["machine_id"], short(s["machine_id"])),
            s["status"] + (" (ended)" if s["ended"] and s["status"] not in ("exited", "error") else ""),
            " ".join(s["command"]) if s["command"] else f"claude ({s['mode']})",
            s["project_path"],
            s["exit_code"] if s["exit_code"] is not None else "",
            _money(s),
            (s["status_detail"] or "")[:60],
        )
        for s in sessions
    ]


@click.group()
def sessions() -> None:
    """Claude Code (or other) sessions running in PTYs on your machines."""


@sessions.command("new")
@click.option(
    "--machine", help="Machine name or id (default: the only online machine).", shell_complete=complete_machine
)
@click.option("--cwd", help="Working directory on the machine (default: the project's path, else ~).")
@click.option(
    "--project",
    "project_ref",
    metavar="PROJECT",
    help="Run Claude Code as an instance of this shared project (id, id prefix or name): the claudenest MCP "
    "server, the edit-lock hook and the project's compiled context are wired in.",
)
@click.option("--command", "command", help="Run this command line instead of Claude Code, e.g. 'bash'.")
@click.option("--headless", is_flag=True, help="Run `claude -p` with --prompt instead of an interactive session.")
@click.option("--prompt", help="Prompt for a headless session.")
@click.option("--cols", type=click.IntRange(1, 1000), help="Terminal width (default: this terminal's).")
@click.option("--rows", type=click.IntRange(1, 1000), help="Terminal height (default: this terminal's).")
@click.option("--attach", "then_attach", is_flag=True, help="Attach to the session once it has started.")
@click.option(
    "--wait",
    is_flag=True,
    help="Print the output until the session ends, then its status and cost; exit with its exit code.",
)
@relay_option
@json_option
@handle_errors
def sessions_new(
    machine: str | None,
    cwd: str | None,
    project_ref: str | None,
    command: str | None,
    headless: bool,
    prompt: str | None,
    cols: int | None,
    rows: int | None,
    then_attach: bool,
    wait: bool,
    relay_url: str | None,
    as_json: bool,
) -> None:
    """Start a session and print its id (with --wait: its output, then how it ended)."""
    argv = shlex.split(command) if command else None
    if command is not None and not argv:
        raise click.BadParameter("is empty", param_hint="--command")
    if headless and not prompt:
        raise click.BadParameter("--headless needs --prompt", param_hint="--prompt")
    if project_ref is not None and command is not None:
        raise click.BadParameter("project sessions run Claude Code; leave out --command", param_hint="--project")
    if then_attach and wait:
        raise click.UsageError("--attach and --wait do not go together: attach shows the output live already")
    if then_attach:
        need_terminal("ID")  # before anything is started
    size = shutil.get_terminal_size((120, 40)) if sys.stdout.isatty() else (120, 40)

    async def create(api: RelayClient) -> dict[str, Any]:
        target = await find_machine(api, machine)
        project = await find_project(api, project_ref, as_instance=False) if project_ref is not None else None
        return await api.create_session(
            machine_id=target["id"],
            cwd=cwd or (project["project_path"] if project else "~"),
            project_id=project["id"] if project else None,
            command=argv,
            mode="headless" if headless else "interactive",
            prompt=prompt,
            cols=cols or size[0],
            rows=rows or size[1],
        )

    session = run(with_client(relay_url, create))
    if wait and session["status"] != "error":
        _wait_for_end(session["id"], relay_url, as_json)
    if as_json:
        print_json({"session": session})
    elif session["status"] == "error":
        err.print(
            f"session {session['id']} failed to start: {session['status_detail']}",
            highlight=False,
            markup=False,
        )
    else:
        click.echo(session["id"])
    if session["status"] == "error":
        sys.exit(1)
    if then_attach:
        _attach(session["id"], relay_url, read_only=False, detach_key=DEFAULT_DETACH_KEY)


def _wait_for_end(session_id: str, relay_url: str | None, as_json: bool) -> None:
    """Stream the session's output to stdout (unless --json) until it ends; then say how it ended and exit with
    its code: Claude's own failure (a headless result with is_error) exits 1 even when the process exited 0."""

    def write(chunk: bytes) -> None:
        if not as_json:
            sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()

    async def follow(api: RelayClient) -> dict[str, Any]:
        await OutputFollower(api, session_id, from_offset=0, read_only=True, write=write).run()
        return await api.session(session_id)

    ended = run(with_client(relay_url, follow))
    code = ended["exit_code"] if ended["exit_code"] is not None else 1
    if ended["status"] == "error" and code == 0:
        code = 1
    if as_json:
        print_json({"session": ended})
    else:
        detail = f": {ended['status_detail']}" if ended["status"] == "error" and ended["status_detail"] else ""
        err.print(
            f"\n[session {ended['status']}, exit {code}, {_money(ended) or 'no cost recorded'}{detail}]",
            highlight=False,
            markup=False,
        )
    sys.exit(code)


@sessions.command("list")
@click.option("--machine", help="Only this machine (name or id).", shell_complete=complete_machine)
@click.option(
    "--status",
    type=click.Choice(["starting", "running", "idle", "waiting_permission", "error", "exited"]),
    help="Only this status.",
)
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@relay_option
@json_option
@handle_errors
def sessions_list(machine: str | None, status: str | None, limit: int, relay_url: str | None, as_json: bool) -> None:
    """Your sessions, newest first."""

    async def fetch(api: RelayClient) -> tuple[list[dict[str, Any]], dict[str, str]]:
        machine_id = (await find_machine(api, machine))["id"] if machine else None
        found = await api.sessions(machine_id=machine_id, status=status, limit=limit)
        names = {m["id"]: m["name"] for m in await api.machines()} if found and not as_json else {}
        return found, names

    found, names = run(with_client(relay_url, fetch))
    if as_json:
        print_json({"sessions": found})
    else:
        table(
            ["ID", "MACHINE", "STATUS", "COMMAND", "CWD", "EXIT", "TOKENS / COST", "DETAIL"],
            _session_rows(found, names),
            empty="No sessions"
            + (" match." if machine or status else " yet: start one with `claudenest sessions new --command bash`."),
        )


@sessions.command("show")
@click.argument("session", shell_complete=complete_session)
@relay_option
@json_option
@handle_errors
def sessions_show(session: str, relay_url: str | None, as_json: bool) -> None:
    """One session's details."""
    found = run(with_client(relay_url, lambda api: find_session(api, session)))
    if as_json:
        print_json({"session": found})
    else:
        table(["FIELD", "VALUE"], sorted(found.items()))


def need_terminal(session_ref: str) -> None:
    """Attaching puts the terminal in raw mode and reads keys from it: without a terminal there is nothing to read
    keys from (a pipe would only hang, /dev/null cannot be put in raw mode). Say what works instead."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise click.UsageError(
            "sessions attach needs a terminal on stdin and stdout; to watch from a script use "
            f"`claudenest sessions logs {session_ref} --follow`, to type `claudenest sessions send`"
        )


def _attach(session_id: str, relay_url: str | None, *, read_only: bool, detach_key: bytes) -> None:
    need_terminal(session_id[:8])
    banner = f"[attached{' read-only' if read_only else ''}; {_key_name(detach_key)} detaches]"
    result = run(
        with_client(
            relay_url,
            lambda api: attach(api, session_id, read_only=read_only, detach_key=detach_key, banner=banner),
        )
    )
    if result.detached:
        err.print("\r\n[detached; the session keeps running]", highlight=False, markup=False)
        return
    code = "" if result.exit_code is None else f" with code {result.exit_code}"
    err.print(f"\r\n[session {result.status}{code}]", highlight=False, markup=False)


def _key_name(key: bytes) -> str:
    if len(key) == 1 and key[0] < 32:
        return "Ctrl-" + chr(key[0] + 64)
    return repr(key)


def _parse_key(text: str) -> bytes:
    """``ctrl-X`` where X is a letter or one of @ [ \\ ] ^ _ (the keys that have a control code)."""
    text = text.strip()
    if text.lower().startswith("ctrl-") and len(text) == 6:
        code = ord(text[-1].upper()) - 64
        if 0 <= code < 32:
            return bytes([code])
    raise click.BadParameter("use ctrl-X with X a letter or one of @[\\]^_, e.g. ctrl-]", param_hint="--detach-key")


@sessions.command("attach")
@click.argument("session", shell_complete=complete_session)
@click.option("--read-only", is_flag=True, help="Watch without typing or resizing.")
@click.option("--detach-key", default="ctrl-]", show_default=True, help="Key that detaches (ctrl-X form).")
@relay_option
@handle_errors
def sessions_attach(session: str, read_only: bool, detach_key: str, relay_url: str | None) -> None:
    """Attach this terminal to a session: keys go in, output comes out, resizes follow."""
    key = _parse_key(detach_key)
    found = run(with_client(relay_url, lambda api: find_session(api, session)))
    _attach(found["id"], relay_url, read_only=read_only, detach_key=key)


@sessions.command("send")
@click.argument("session", shell_complete=complete_session)
@click.argument("text", required=False)
@click.option("--file", "from_file", type=click.File("rb"), help="Type the contents of this file ('-': stdin).")
@click.option("--no-enter", is_flag=True, help="Do not press Enter after the text.")
@relay_option
@click.option("--json", "as_json", is_flag=True, help='Print {"sent": BYTES} for scripts.')
@handle_errors
def sessions_send(
    session: str, text: str | None, from_file: Any, no_enter: bool, relay_url: str | None, as_json: bool
) -> None:
    """Type TEXT into the session, then Enter (a carriage return, as a terminal sends it).

    TEXT '-' reads standard input; --file types a file. Any size: it is sent in pieces, in order.
    """
    if (text is None) == (from_file is None):
        raise click.UsageError("give TEXT (or '-' for stdin) or --file, not both")
    if text == "-":
        body = sys.stdin.buffer.read()
    elif from_file is not None:
        body = from_file.read()
    else:
        body = (text or "").encode()
    data = body + (b"" if no_enter else b"\r")

    async def send(api: RelayClient) -> int:
        return await api.send_input((await find_session(api, session))["id"], data)

    sent = run(with_client(relay_url, send))
    if as_json:
        print_json({"sent": sent})


@sessions.command("logs")
@click.argument("session", shell_complete=complete_session)
@click.option("--follow", "-f", is_flag=True, help="Keep printing new output until the session ends.")
@click.option("--from", "from_offset", type=click.IntRange(0), default=0, help="Start at this byte offset.")
@relay_option
@handle_errors
def sessions_logs(session: str, follow: bool, from_offset: int, relay_url: str | None) -> None:
    """Print the session's output so far (raw bytes, as the terminal received them)."""

    async def logs(api: RelayClient) -> None:
        found = await find_session(api, session)
        offset = from_offset
        while True:
            start, data, end, ended = await api.logs(found["id"], offset)
            if start > offset:
                err.print(f"[{start - offset} older bytes are no longer kept]", highlight=False, markup=False)
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
            offset = start + len(data)
            if not data or offset >= end:
                break
        if not follow or ended:
            return

        def write(chunk: bytes) -> None:
            sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()

        follower = OutputFollower(api, found["id"], from_offset=offset, read_only=True, write=write)
        await follower.run()

    with_follow = with_client(relay_url, logs)
    try:
        run(with_follow)
    except (BrokenPipeError, asyncio.CancelledError):
        pass


@sessions.command("rm")
@click.argument("session_refs", metavar="SESSION...", nargs=-1, required=True, shell_complete=complete_session)
@relay_option
@json_option
@handle_errors
def sessions_rm(session_refs: tuple[str, ...], relay_url: str | None, as_json: bool) -> None:
    """Remove ended sessions and their output (a live one is refused: end it with `sessions kill`)."""

    async def remove(api: RelayClient) -> list[str]:
        removed = []
        for ref in session_refs:
            found = await find_session(api, ref)
            await api.delete_session(found["id"])
            removed.append(found["id"])
        return removed

    removed = run(with_client(relay_url, remove))
    if as_json:
        print_json({"removed": removed})
    else:
        out.print(f"Removed {len(removed)} session(s).", highlight=False, markup=False)


DURATION = re.compile(r"^(\d+)([smhd])$")


def parse_duration(text: str) -> timedelta:
    match = DURATION.match(text.strip())
    if match is None:
        raise click.BadParameter(f"{text!r}: give a number and a unit, like 30m, 12h or 7d", param_hint="--older-than")
    number, unit = int(match.group(1)), match.group(2)
    return timedelta(**{{"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[unit]: number})


@sessions.command("prune")
@click.option("--older-than", "older_than", default="7d", show_default=True, help="Ended at least this long ago.")
@click.option("--dry-run", is_flag=True, help="List what would be removed, remove nothing.")
@relay_option
@json_option
@handle_errors
def sessions_prune(older_than: str, dry_run: bool, relay_url: str | None, as_json: bool) -> None:
    """Remove every ended session (exited, failed to start, or ended in error) older than --older-than."""
    cutoff = iso(datetime.now(UTC) - parse_duration(older_than))

    async def prune(api: RelayClient) -> list[dict[str, Any]]:
        old = [s for s in await api.sessions(limit=1000) if s["ended"] and (s["completed_at"] or "") <= cutoff]
        if not dry_run:
            for session in old:
                await api.delete_session(session["id"])
        return old

    pruned = run(with_client(relay_url, prune))
    if as_json:
        print_json({"removed": [] if dry_run else [s["id"] for s in pruned], "matched": [s["id"] for s in pruned]})
        return
    verb = "Would remove" if dry_run else "Removed"
    out.print(f"{verb} {len(pruned)} session(s) that ended before {cutoff}.", highlight=False, markup=False)


def _answer_permission(session: str, behavior: str, message: str | None, relay_url: str | None, as_json: bool) -> None:
    async def answer(api: RelayClient) -> dict[str, Any]:
        session_id = (await find_session(api, session))["id"]
        return await (api.approve(session_id) if behavior == "allow" else api.deny(session_id, message))

    answered = run(with_client(relay_url, answer))
    if as_json:
        print_json(answered)
    else:
        what = answered["answered"].get("summary") or answered["answered"].get("tool_name")
        out.print(f"{'Allowed' if behavior == 'allow' else 'Denied'}: {what}", markup=False)


@sessions.command("approve")
@click.argument("session", shell_complete=complete_session)
@relay_option
@json_option
@handle_errors
def sessions_approve(session: str, relay_url: str | None, as_json: bool) -> None:
    """Allow the tool use Claude is waiting for permission on."""
    _answer_permission(session, "allow", None, relay_url, as_json)


@sessions.command("deny")
@click.argument("session", shell_complete=complete_session)
@click.option("--message", help="Tell Claude why (it sees this).")
@relay_option
@json_option
@handle_errors
def sessions_deny(session: str, message: str | None, relay_url: str | None, as_json: bool) -> None:
    """Deny the tool use Claude is waiting for permission on."""
    _answer_permission(session, "deny", message, relay_url, as_json)


@sessions.command("kill")
@click.argument("session", shell_complete=complete_session)
@relay_option
@json_option
@handle_errors
def sessions_kill(session: str, relay_url: str | None, as_json: bool) -> None:
    """End the session's processes (SIGHUP, then SIGTERM, then SIGKILL)."""

    async def kill(api: RelayClient) -> dict[str, Any]:
        found = await find_session(api, session)
        await api.terminate(found["id"])
        for _ in range(100):  # the agent escalates within ~8 s; report the final state when we have it
            found = await api.session(found["id"])
            if found["ended"]:
                break
            await asyncio.sleep(0.1)
        return found

    ended = run(with_client(relay_url, kill))
    if as_json:
        print_json({"session": ended})
    else:
        out.print(f"{ended['id']}: {ended['status']}", highlight=False, markup=False)
