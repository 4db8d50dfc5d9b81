"""The README's one-machine commands, pasted into a fresh shell with a fresh HOME, all work.

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
