"""The README's commands, pasted into fresh shells with fresh homes, all work: the one-machine section, and the
home-server section (server, laptop and machine as three homes on this host).

The code blocks are read from README.md itself, so an example that stops working fails here. What the test changes,
and why: `pip install .` is already done (this is the installed package); `claudenest up` gets `--port 0`, since
8700 may be taken on a shared machine; lines that attach need a terminal and are covered by test_attach.py; the
stand-in `claude` (tests/fakes/claude) is on PATH, so the Claude examples have a Claude Code to run.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx

from tests.e2e.harness import Proc, claudenest, role_env, timeout

README = Path(__file__).parents[2] / "README.md"
FAKES = Path(__file__).parents[1] / "fakes"


def one_machine_blocks() -> list[str]:
    section = README.read_text().split("## Run it (one machine)", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)```", section, re.S)


def test_the_readme_run_it_section_works_when_pasted(tmp_path: Path) -> None:
    install, sessions, projects = one_machine_blocks()
    assert install.strip() == "pip install . && claudenest up"

    home = tmp_path / "home"
    home.mkdir()
    env = role_env(tmp_path / "claudenest", HOME=str(home))
    env["PATH"] = f"{FAKES}:{env['PATH']}"
    up = Proc([*claudenest("up", "--port", "0")], env)
    try:
        up.wait_for(r"ClaudeNest is up at http://")
        up.wait_for(r"connected to ws://")
        pasted = [
            line
            for line in (sessions + projects).splitlines()
            if "--attach" not in line and "sessions attach" not in line
        ]
        command = f"{sys.executable} -m claudenest "  # this test's interpreter, whatever is first on PATH
        script = "set -euo pipefail\n" + "\n".join(pasted).replace("claudenest ", command)
        script = script.replace(f"{command}doctor", f"{command}doctor || true")  # doctor exits 1 on a failed check
        done = subprocess.run(
            ["bash", "-c", script], env=env, cwd=home, capture_output=True, text=True, timeout=timeout(180)
        )
        assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
        assert "hello" in done.stdout  # sessions logs | tail shows what `send` typed
        assert "You said: summarize this repo" in done.stdout  # the headless run's answer, with --wait
        assert "No sessions match." in done.stdout  # nothing waits for permission
        assert "CHECK" in done.stdout  # doctor's table
        assert (home / "src" / "shop").is_dir()
        assert "Traceback" not in done.stderr
    finally:
        up.stop()


def home_server_block() -> str:
    section = README.read_text().split("## A home server and several machines", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```bash\n(.*?)```", section, re.S)
    return str(block)


def by_role(block: str) -> dict[str, list[str]]:
    """The block's commands under each `# on ...` heading, without their trailing comments."""
    roles: dict[str, list[str]] = {}
    role = ""
    for line in block.splitlines():
        if line.startswith("# on "):
            role = line[len("# on ") :]
            roles[role] = []
        elif line.strip():
            roles[role].append(line.split("  #", 1)[0].strip())
    return roles


def test_the_readme_home_server_section_works_when_pasted(tmp_path: Path) -> None:
    """Server, laptop and machine are three homes on this host; `box:8700` is the relay's real address."""
    roles = by_role(home_server_block())
    server = roles["the server"]
    laptop = roles["your laptop (the CLI)"]
    machine = roles["each machine that should run Claude Code"]
    assert server[0] == "claudenest relay serve --host 0.0.0.0 --port 8700"
    assert [line.split()[1] for line in machine] == ["pair", "machines", "agent"]

    homes = {role: tmp_path / role for role in ("server", "laptop", "machine")}
    env = {role: role_env(home) for role, home in homes.items()}

    def run(role: str, line: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "claudenest", *line.split()[1:]]
        done = subprocess.run(argv, env=env[role], input=stdin, capture_output=True, text=True, timeout=timeout(60))
        assert done.returncode == 0, f"{line}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
        return done

    def paste(line: str) -> str:
        return line.replace("http://box:8700", url)

    relay = Proc([sys.executable, "-m", "claudenest", *server[0].replace("8700", "0").split()[1:]], env["server"])
    agent: Proc | None = None
    try:
        url = "http://127.0.0.1:" + relay.wait_for(r"listening on http://[^:]+:(\d+)").group(1)
        token = re.search(r"cn_[A-Za-z0-9_-]+", run("server", server[1]).stdout)
        assert token is not None, "relay user add prints the token"
        run("server", server[2], "correct horse battery staple\n")  # one line of stdin: no terminal here

        run("laptop", paste(laptop[0]).replace("cn_...", token.group(0)))

        pairing = Proc([sys.executable, "-m", "claudenest", *paste(machine[0]).split()[1:]], env["machine"])
        code = pairing.wait_for(r"\b([A-Z0-9]{3}-[A-Z0-9]{3})\b").group(1)
        # "from any logged-in CLI": it shows the machine asking and asks to confirm; the user answers y.
        approved = run("laptop", machine[1].replace("A7K-M2X", code), "y\n")
        assert "name 'laptop'" in approved.stdout
        assert pairing.wait(seconds=30) == 0, pairing.output
        agent = Proc([sys.executable, "-m", "claudenest", *machine[2].split()[1:]], env["machine"])
        agent.wait_for(r"connected to ws://")

        listed = run("laptop", "claudenest machines list").stdout
        assert "laptop" in listed
        assert "online" in listed
        assert httpx.get(f"{url}/login", timeout=timeout(10)).status_code == 200  # "browse to http://box:8700/login"
    finally:
        if agent is not None:
            agent.stop()
        relay.stop()
