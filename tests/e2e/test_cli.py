"""The CLI as a user meets it: help everywhere, clear errors with documented exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import click
import click.testing
import httpx
import pytest

from claudenest.cli.main import cli as root
from tests.e2e.conftest import Stack
from tests.e2e.harness import cli


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    context = click.Context(group)
    for name in group.list_commands(context):  # the root group loads its commands lazily
        command = group.get_command(context, name)
        assert command is not None, name
        if isinstance(command, click.Group):
            found += _commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


@pytest.mark.parametrize("words", _commands(root), ids=lambda w: " ".join(w) or "claudenest")
def test_every_command_has_help(words: tuple[str, ...]) -> None:
    result = click.testing.CliRunner().invoke(root, [*words, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output


def test_commands_without_login_say_how_to_log_in(tmp_path: Path) -> None:
    result = cli(tmp_path, "sessions", "list", check=False)
    assert result.returncode == 4
    assert "claudenest login" in result.stderr


def test_unreachable_relay_is_exit_7(tmp_path: Path) -> None:
    result = cli(tmp_path, "login", "--relay", "http://127.0.0.1:9", "--token", "cn_" + "x" * 43, check=False)
    assert result.returncode == 7
    assert "cannot reach the relay" in result.stderr


def test_agent_without_pairing_says_to_pair(tmp_path: Path) -> None:
    result = cli(tmp_path, "agent", "run", check=False)
    assert result.returncode == 2
    assert "claudenest pair" in result.stderr


def test_busy_port_and_bad_config_are_clear_errors(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli(tmp_path, "relay", "serve", "--port", str(port), check=False)
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
    config = tmp_path / "config" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("[relay]\nport = 'eighty'\n")
    result = cli(tmp_path, "machines", "list", check=False)
    assert result.returncode == 2
    assert "relay.port" in result.stderr
    assert "Traceback" not in result.stderr


def test_error_messages_are_printed_literally(stack: Stack) -> None:
    result = stack.user.cli("sessions", "show", "[bold]x[/]", check=False)
    assert result.returncode == 5
    assert "no session '[bold]x[/]'" in result.stderr


def test_install_service_prints_the_unit_where_systemd_is_absent(tmp_path: Path) -> None:
    result = cli(tmp_path, "agent", "install-service", "--print")
    assert "ExecStart=" in result.stdout
    assert "agent run" in result.stdout
    assert "systemctl --user enable --now claudenest-agent.service" in result.stdout
    assert "%h/.local/bin" not in result.stdout  # pointed at this installation's claudenest


def test_relay_unit_is_hardened() -> None:
    unit = (Path(__file__).parents[2] / "systemd" / "claudenest-relay.service").read_text()
    for setting in ("NoNewPrivileges=yes", "ProtectSystem=strict", "StateDirectory=claudenest", "ProtectHome=yes"):
        assert setting in unit


HOSTILE_NAMES = ["[/x] closes nothing", "[red]docs", "[bold]<img src=x onerror=alert(1)>"]


def test_markup_in_names_from_the_relay_is_shown_as_typed(stack: Stack) -> None:
    """A project, task or session command holding rich markup must neither crash a table nor lose its brackets."""
    for index, name in enumerate(HOSTILE_NAMES):
        project = stack.user.api("POST", "/api/projects", json={"name": f"{name} {index}", "project_path": "/p"})
        assert project.status_code == 201, project.text
        project_id = project.json()["project"]["id"]
        stack.user.api("POST", f"/api/projects/{project_id}/tasks", json={"title": name})
        stack.user.api("POST", "/api/sessions", json={"machine_id": stack.agent.machine_id, "command": ["echo", name]})
    wide = {"COLUMNS": "250"}  # one row per line, so each name can be found whole
    listed = stack.user.cli("projects", "list", env=wide)
    sessions = stack.user.cli("sessions", "list", env=wide)
    for index, name in enumerate(HOSTILE_NAMES):
        assert f"{name} {index}" in listed.stdout
        tasks = stack.user.cli("tasks", "list", "-p", f"{name} {index}", env=wide)
        assert name in tasks.stdout, tasks.stdout
    assert "[red]docs" in sessions.stdout
    assert "[/x]" in sessions.stdout


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("notaurl", "is not a relay URL: give one like http://box:8700"),
        ("ftp://box:8700", "is not a relay URL"),
        ("http://127.0.0.1:8700/api", "has no path: did you mean http://127.0.0.1:8700?"),
        ("http://127.0.0.1:99999", "invalid port"),
        ("http://[bold]x[/]:9", "is not a relay URL"),
    ],
)
def test_a_relay_url_that_cannot_work_is_named_before_anything_is_sent(tmp_path: Path, url: str, says: str) -> None:
    for command in (["login", "--relay", url, "--token", "cn_" + "x" * 43], ["pair", "--relay", url]):
        result = cli(tmp_path, *command, check=False)
        assert result.returncode == 2, result.stderr
        assert says in result.stderr
        assert "Traceback" not in result.stderr


def test_sessions_send_types_stdin_or_a_file_of_any_size(stack: Stack, tmp_path: Path) -> None:
    sid = json.loads(
        stack.user.cli("sessions", "new", "--command", "bash -c 'stty raw -echo; cat > /dev/null'", "--json").stdout
    )["session"]["id"]
    big = b"y" * (300 << 10)  # 300 KiB: several of the relay's 64 KiB requests
    sent = json.loads(stack.user.cli("sessions", "send", sid, "-", "--no-enter", "--json", input=big.decode()).stdout)
    assert sent == {"sent": len(big)}
    path = tmp_path / "lines.txt"
    path.write_bytes(b"a\rb\r")
    sent = json.loads(stack.user.cli("sessions", "send", sid, "--file", str(path), "--json").stdout)
    assert sent == {"sent": 5}
    both = stack.user.cli("sessions", "send", sid, "x", "--file", str(path), check=False)
    assert both.returncode == 2
    empty = stack.user.cli("sessions", "show", "", check=False)
    assert empty.returncode == 2
    assert "give a session id" in empty.stderr
    stack.user.cli("sessions", "kill", sid)


def test_attach_without_a_terminal_says_so_and_exits_2(stack: Stack) -> None:
    sid = json.loads(stack.user.cli("sessions", "new", "--command", "sleep 60", "--json").stdout)["session"]["id"]
    for stdin in ("", "some piped text\n"):  # </dev/null-like and a pipe: neither is a terminal
        result = stack.user.cli("sessions", "attach", sid, input=stdin, check=False, seconds=20)
        assert result.returncode == 2
        assert "needs a terminal" in result.stderr
        assert "sessions logs" in result.stderr
        assert "Traceback" not in result.stderr
    before = len(json.loads(stack.user.cli("sessions", "list", "--json").stdout)["sessions"])
    started = stack.user.cli("sessions", "new", "--command", "sleep 60", "--attach", check=False, input="")
    assert started.returncode == 2
    assert len(json.loads(stack.user.cli("sessions", "list", "--json").stdout)["sessions"]) == before  # none started
    stack.user.cli("sessions", "kill", sid)


def test_a_database_that_cannot_be_opened_is_one_clean_line_exit_3(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "data").mkdir(parents=True)
    (home / "data" / "relay.db").write_bytes(b"this is not a database " * 100)
    # The race that printed aiosqlite's "Event loop is closed" thread traceback hit about one run in four.
    for command in [("relay", "user", "add", "a@example.com")] * 4 + [("relay", "serve", "--port", "0")]:
        result = cli(home, *command, check=False)
        assert result.returncode == 3, result.stderr
        assert result.stderr.strip().splitlines() == [
            f"error: cannot open database {home / 'data' / 'relay.db'}: file is not a database"
        ]


def test_a_data_directory_that_cannot_be_made_is_exit_3_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = cli(blocker / "home", "up", "--port", "0", check=False)
    assert result.returncode == 3
    assert f"cannot create {blocker / 'home' / 'config'}: Not a directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_pair_interrupted_withdraws_its_code_and_a_paired_home_asks_first(stack: Stack, tmp_path: Path) -> None:
    import signal as signals

    from tests.e2e.harness import Proc, claudenest, role_env

    pairing = Proc(claudenest("pair", "--relay", stack.relay.url, "--name", "gone", "--json"), role_env(tmp_path))
    code = json.loads(pairing.wait_for(r'^\{"code"').string)["code"]
    machines_before = stack.user.api("GET", "/api/machines").json()["machines"]
    pairing.popen.send_signal(signals.SIGINT)  # Ctrl-C
    assert pairing.wait(seconds=15) != 0
    refused = stack.user.api("POST", f"/api/pairing/{code}/approve")
    assert refused.status_code == 410
    assert "withdrawn" in refused.json()["detail"]
    assert stack.user.api("GET", "/api/machines").json()["machines"] == machines_before  # no tokenless machine

    again = cli(stack.agent.home, "pair", "--relay", stack.relay.url, check=False, seconds=20)
    assert again.returncode == 2
    assert "already paired" in again.stderr
    assert "--yes" in again.stderr


def test_empty_listings_say_so_with_the_next_command(stack: Stack) -> None:
    from tests.e2e.harness import add_user

    newcomer = add_user(stack.relay, "newcomer@example.com", stack.root / "newcomer-cli")
    for words, says in [
        (("sessions", "list"), "claudenest sessions new --command bash"),
        (("machines", "list"), "claudenest pair --relay URL"),
        (("projects", "list"), "claudenest projects create NAME --path DIR"),
        (("skills", "list"), "No skills found"),
        (("mcp", "list"), "No MCP servers found"),
    ]:
        result = newcomer.cli(*words)
        assert says in result.stdout, (words, result.stdout)
        assert "┃" not in result.stdout  # a sentence, not an empty table


def test_sessions_list_names_the_machine(stack: Stack) -> None:
    sid = json.loads(stack.user.cli("sessions", "new", "--command", "sleep 30", "--json").stdout)["session"]["id"]
    listed = stack.user.cli("sessions", "list", env={"COLUMNS": "250"}).stdout
    row = next(line for line in listed.splitlines() if line.strip().startswith(sid[:8]))
    assert "laptop" in row  # the machine's name from the stack fixture, not an id prefix
    stack.user.cli("sessions", "kill", sid)


def test_tokens_list_create_and_revoke(stack: Stack) -> None:
    created = json.loads(stack.user.cli("tokens", "create", "ci-bot", "--expires-days", "7", "--json").stdout)
    assert created["token"].startswith("cn_")
    listed = json.loads(stack.user.cli("tokens", "list", "--json").stdout)["tokens"]
    assert "ci-bot" in [t["name"] for t in listed]
    assert all("token" not in t for t in listed)  # only hashes are kept: a token is shown once
    ok = httpx.get(stack.relay.url + "/api/me", headers={"Authorization": f"Bearer {created['token']}"}, timeout=10)
    assert ok.status_code == 200
    stack.user.cli("tokens", "revoke", "ci-bot")
    refused = httpx.get(
        stack.relay.url + "/api/me", headers={"Authorization": f"Bearer {created['token']}"}, timeout=10
    )
    assert refused.status_code == 401
    assert "ci-bot" not in stack.user.cli("tokens", "list", env={"COLUMNS": "250"}).stdout
    assert "ci-bot" in stack.user.cli("tokens", "list", "--all", env={"COLUMNS": "250"}).stdout
    missing = stack.user.cli("tokens", "revoke", "no-such-token", check=False)
    assert missing.returncode == 5


def test_the_root_help_line_of_each_command_matches_its_own_help() -> None:
    from claudenest.cli.main import COMMANDS

    context = click.Context(root)
    for name, (_, _, short) in COMMANDS.items():
        command = root.get_command(context, name)
        assert command is not None
        own = (command.help or "").split("\n")[0].strip()
        assert own.startswith(short.removesuffix("...")), (name, short, own)


def test_help_and_listings_do_not_import_the_relay_or_numpy() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from claudenest.cli.main import cli; "
        "sys.argv = ['claudenest', '--help']\n"
        "try:\n    cli()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('fastapi', 'numpy', 'uvicorn', 'claudenest.store') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout + result.stderr


def test_sessions_rm_and_prune_remove_only_ended_sessions(stack: Stack) -> None:
    from tests.e2e.harness import wait_until

    def new(command: str) -> str:
        return str(
            json.loads(stack.user.cli("sessions", "new", "--command", command, "--json").stdout)["session"]["id"]
        )

    def ids() -> set[str]:
        return {s["id"] for s in json.loads(stack.user.cli("sessions", "list", "--json").stdout)["sessions"]}

    done, live, old = new("true"), new("sleep 60"), new("true")
    wait_until(lambda: all(json.loads(stack.user.cli("sessions", "show", s, "--json").stdout)["session"]["ended"]
                           for s in (done, old)), message="both ended")  # fmt: skip
    refused = stack.user.cli("sessions", "rm", live, check=False)
    assert refused.returncode == 6
    assert "end it first" in refused.stderr
    removed = json.loads(stack.user.cli("sessions", "rm", done, "--json").stdout)
    assert removed == {"removed": [done]}
    assert done not in ids()
    assert stack.user.api("GET", f"/api/sessions/{done}/logs").status_code == 404
    kept = json.loads(stack.user.cli("sessions", "prune", "--older-than", "1d", "--json").stdout)
    assert old not in kept["matched"]  # it ended seconds ago
    trial = json.loads(stack.user.cli("sessions", "prune", "--older-than", "0s", "--dry-run", "--json").stdout)
    assert old in trial["matched"]
    assert trial["removed"] == []
    assert old in ids()
    pruned = json.loads(stack.user.cli("sessions", "prune", "--older-than", "0s", "--json").stdout)
    assert old in pruned["removed"]
    assert live not in pruned["removed"]
    assert old not in ids()
    assert live in ids()
    bad = stack.user.cli("sessions", "prune", "--older-than", "a week", check=False)
    assert bad.returncode == 2
    assert "like 30m, 12h or 7d" in bad.stderr
    stack.user.cli("sessions", "kill", live)


def test_shell_completion_offers_commands_session_ids_and_machine_names(stack: Stack) -> None:
    import subprocess
    import sys

    from tests.e2e.harness import role_env

    sid = json.loads(stack.user.cli("sessions", "new", "--command", "sleep 30", "--json").stdout)["session"]["id"]

    def complete(words: str) -> list[str]:
        env = role_env(stack.user.home, _CLAUDENEST_COMPLETE="bash_complete", COMP_WORDS=words)
        env["COMP_CWORD"] = str(len(words.split(" ")) - 1)
        done = subprocess.run(
            [sys.executable, "-c", "from claudenest.cli.main import cli; cli(prog_name='claudenest')"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        return [line.split(",", 1)[1] for line in done.stdout.splitlines() if "," in line]

    assert "sessions" in complete("claudenest ses")
    assert sid in complete(f"claudenest sessions attach {sid[:6]}")
    assert complete("claudenest sessions new --machine lap") == ["laptop"]
    assert complete("claudenest sessions attach zzzz-no-such") == []
    stack.user.cli("sessions", "kill", sid)


def test_projects_create_notes_a_path_that_is_not_here(stack: Stack, tmp_path: Path) -> None:
    missing = stack.user.cli("projects", "create", "far-away", "--path", str(tmp_path / "nowhere"))
    assert "is not a directory on this machine" in missing.stderr
    assert missing.stdout.strip()  # still created: the path may be on another machine
    here = stack.user.cli("projects", "create", "right-here", "--path", str(tmp_path))
    assert here.stderr == ""
