"""How fast the CLI starts, as a person and Claude Code meet it: `claudenest --help`, `claudenest sessions list`
against a running relay, and `claudenest mcp serve` until it answers MCP's `initialize` (Claude Code starts one per
session). Wall time of whole processes, p50 and p90 over --runs runs each, after one unmeasured warm-up run.

    python3 scripts/bench_cli.py [--runs 20] [--json out.json]

Starts `claudenest up --port 0` in a temporary CLAUDENEST_HOME (on 127.0.0.1) and stops it at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

TARGETS = {"--help": 0.3, "sessions list": 0.4, "mcp serve ready": 0.5}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, timeout=60)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{argv} failed ({done.returncode}): {done.stderr.decode()[-500:]}")
    return elapsed


def mcp_ready(env: dict[str, str]) -> float:
    """Spawn `mcp serve`, send `initialize` at once, stop the clock at its answer."""
    request = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "bench", "version": "1"},
        },
    }
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "claudenest", "mcp", "serve"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    proc.stdin.write((json.dumps(request) + "\n").encode())
    proc.stdin.flush()
    deadline = start + 30
    line = b""
    while time.perf_counter() < deadline and not line.endswith(b"\n"):
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.perf_counter()))
        if not ready:
            break
        chunk = os.read(proc.stdout.fileno(), 65536)
        if not chunk:
            break
        line += chunk
    elapsed = time.perf_counter() - start
    proc.kill()
    proc.wait(10)
    if b'"result"' not in line:
        raise SystemExit(f"mcp serve did not answer initialize: {line[:300]!r}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="bench-cli-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAUDENEST_")}
    env.update(CLAUDENEST_HOME=str(home), PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")
    up = subprocess.Popen(
        [sys.executable, "-m", "claudenest", "up", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    results: dict[str, list[float]] = {}
    try:
        assert up.stdout is not None
        url = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and url is None:
            line = up.stdout.readline()
            if match := re.search(r"ClaudeNest is up at (http://\S+)", line):
                url = match.group(1)
        if url is None:
            raise SystemExit("claudenest up did not start")
        token = subprocess.run(
            [sys.executable, "-m", "claudenest", "relay", "token", "create", "--user", "owner@localhost"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        headers = {"Authorization": f"Bearer {token}"}
        project = httpx.post(f"{url}/api/projects", json={"name": "bench", "project_path": str(home)}, headers=headers)
        project_id = project.json()["project"]["id"]
        instance = httpx.post(f"{url}/api/projects/{project_id}/instances", json={"name": "bench"}, headers=headers)
        mcp_env = {
            **env,
            "CLAUDENEST_RELAY_URL": url,
            "CLAUDENEST_INSTANCE_TOKEN": instance.json()["token"],
            "CLAUDENEST_PROJECT_ID": project_id,
            "CLAUDENEST_INSTANCE_ID": instance.json()["instance"]["id"],
        }
        cases = {
            "--help": lambda: timed([sys.executable, "-m", "claudenest", "--help"], env),
            "sessions list": lambda: timed([sys.executable, "-m", "claudenest", "sessions", "list"], env),
            "mcp serve ready": lambda: mcp_ready(mcp_env),
        }
        for name, run in cases.items():
            run()  # warm the page cache
            results[name] = [run() for _ in range(args.runs)]
    finally:
        os.killpg(up.pid, signal.SIGTERM)
        up.wait(30)

    baseline = [timed([sys.executable, "-c", "pass"], env) for _ in range(args.runs)]
    startup = statistics.median(baseline)
    print(f"{'command':<18} {'p50':>8} {'p90':>8} {'target':>8}   (python -c pass: p50 {startup:.3f} s)")
    report: dict[str, Any] = {"runs": args.runs, "python_startup_p50": statistics.median(baseline), "results": {}}
    for name, values in results.items():
        p50, p90 = statistics.median(values), percentile(values, 0.9)
        verdict = "met" if p50 <= TARGETS[name] else "MISSED"
        print(f"{name:<18} {p50:>7.3f}s {p90:>7.3f}s {TARGETS[name]:>7.1f}s   {verdict}")
        report["results"][name] = {"p50": p50, "p90": p90, "target": TARGETS[name], "samples": values}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
