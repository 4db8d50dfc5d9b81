"""Coordination throughput through the relay's HTTP API: task claims/s and file-lock ops/s with concurrent clients.

A real relay subprocess (``python -m claudenest relay serve --port 0`` in a temporary CLAUDENEST_HOME), one user, one
project and one instance (``ci_`` token) per client. Each client keeps its own keep-alive connection and is driven
from this process's event loop (or from several worker processes with ``--procs``). The default client is a minimal
HTTP/1.1 client, so the relay's cost is what is measured; ``--client httpx`` uses httpx instead (which spends about
as much CPU per request as the relay, on the same cores).

Phases:
  create     the clients create the tasks (POST .../tasks)
  claim      every client loops POST .../tasks/claim-next until it gets null; every task must be claimed exactly once
  cycle      claim-next then complete, over a fresh set of tasks (what an agent does)
  locks      each client acquires and releases its own path (uncontended), then all race for a few hot paths

Usage: python scripts/bench_coordination.py [--clients 16] [--tasks 20000] [--client raw|httpx] [--procs 1]
                                           [--json out.json] [--quick]
Exit status 0 when every measurement ran and every check held (goals met or not), 1 otherwise. A run stops after
15 minutes (5 with --quick) at the latest, and always stops the relay it started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

CLAIM_GOAL = 1000.0  # claims per second, 16 clients, this 2-core machine


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- the relay ------------------------------------------------------------------------------------------------------


class RelayProcess:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CLAUDENEST_")}
        self.env.update(CLAUDENEST_HOME=str(home), PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "claudenest", "relay", "serve", "--port", "0"],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"relay exited with {self.proc.wait()}")
            match = re.search(r"listening on (http://\S+)", line)
            if match:
                self.url = match.group(1)
                # Keep draining its output so a chatty relay never blocks on a full pipe.
                threading.Thread(target=self._drain, daemon=True).start()
                return
        raise RuntimeError("the relay did not start within 30 s")

    def _drain(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        for _ in self.proc.stdout:
            pass

    def user_token(self) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "claudenest", "relay", "user", "add", "bench@example.com", "--json"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return str(json.loads(result.stdout)["token"])

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def machine_busy_seconds() -> float:
    """CPU seconds every process on the machine has used so far (user + nice + system, from /proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    return (int(fields[0]) + int(fields[1]) + int(fields[2])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


# -- measuring ------------------------------------------------------------------------------------------------------


def percentiles(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {"p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 3),
        "max_ms": round(ordered[-1] * 1000, 3),
    }


@dataclass
class Reply:
    method: str
    path: str
    status_code: int
    body: Any


class RawClient:
    """A minimal keep-alive HTTP/1.1 client on one connection: the relay's cost, not a client library's, is what
    is measured (httpx spends more CPU per request than the relay does, on the same two cores)."""

    def __init__(self, url: str, token: str) -> None:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        self.host, self.port = host, int(port)
        self.head = f"Host: {host}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: Any = None) -> Reply:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            self.writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        assert self.reader is not None
        payload = json.dumps(body).encode() if body is not None else b""
        self.writer.write(
            f"{method} {path} HTTP/1.1\r\n{self.head}Content-Length: {len(payload)}\r\n\r\n".encode() + payload
        )
        status = int((await self.reader.readline()).split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        data = await self.reader.readexactly(length) if length else b""
        return Reply(method, path, status, json.loads(data) if data else None)

    async def aclose(self) -> None:
        if self.writer is not None:
            self.writer.close()


class HttpxClient:
    def __init__(self, url: str, token: str) -> None:
        self.http = httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)

    async def request(self, method: str, path: str, body: Any = None) -> Reply:
        response = await self.http.request(method, path, json=body)
        return Reply(method, path, response.status_code, response.json() if response.content else None)

    async def aclose(self) -> None:
        await self.http.aclose()


Client = RawClient | HttpxClient
CLIENTS: dict[str, type[RawClient] | type[HttpxClient]] = {"raw": RawClient, "httpx": HttpxClient}


async def timed(latencies: list[float], client: Client, method: str, path: str, body: Any = None) -> Reply:
    started = time.perf_counter()
    reply = await client.request(method, path, body)
    latencies.append(time.perf_counter() - started)
    return reply


def expect(reply: Reply | httpx.Response, *statuses: int) -> Any:
    if isinstance(reply, httpx.Response):
        reply = Reply(
            reply.request.method, reply.request.url.path, reply.status_code, reply.json() if reply.content else None
        )
    if reply.status_code not in statuses:
        raise RuntimeError(f"{reply.method} {reply.path}: {reply.status_code} {reply.body}")
    return reply.body


async def run_workers(
    url: str, tokens: list[str], kind: str, work: Callable[[Client, int], Awaitable[dict[str, Any]]]
) -> tuple[float, list[dict[str, Any]]]:
    clients = [CLIENTS[kind](url, t) for t in tokens]
    try:
        for client in clients:  # open every connection before the clock starts
            expect(await client.request("GET", "/api/instance"), 200)
        started, cpu = time.perf_counter(), time.process_time()
        results = await asyncio.gather(*(work(client, n) for n, client in enumerate(clients)))
        elapsed = time.perf_counter() - started
        results[0]["client_cpu"] = time.process_time() - cpu
        return elapsed, list(results)
    finally:
        for client in clients:
            await client.aclose()


# -- phases (each runs in one process over a slice of the clients) --------------------------------------------------


async def phase_create(url: str, pid: str, tokens: list[str], kind: str, count: int, offset: int) -> dict[str, Any]:
    async def work(client: Client, n: int) -> dict[str, Any]:
        latencies: list[float] = []
        mine = range(n, count, len(tokens))
        priorities = ("low", "medium", "high", "critical")
        for i in mine:
            body = {"title": f"task {offset + i}", "priority": priorities[i % 4]}
            expect(await timed(latencies, client, "POST", f"/api/projects/{pid}/tasks", body), 201)
        return {"latencies": latencies}

    elapsed, results = await run_workers(url, tokens, kind, work)
    return {
        "elapsed": elapsed,
        "client_cpu": results[0]["client_cpu"],
        "latencies": [x for r in results for x in r["latencies"]],
    }


async def phase_claim(url: str, pid: str, tokens: list[str], kind: str, complete: bool) -> dict[str, Any]:
    async def work(client: Client, n: int) -> dict[str, Any]:
        claims: list[float] = []
        completes: list[float] = []
        got: list[str] = []
        while True:
            task = expect(await timed(claims, client, "POST", f"/api/projects/{pid}/tasks/claim-next"), 200)["task"]
            if task is None:
                claims.pop()  # the final empty answer is not a claim
                return {"claims": claims, "completes": completes, "got": got}
            got.append(task["id"])
            if complete:
                path = f"/api/projects/{pid}/tasks/{task['id']}/complete"
                expect(await timed(completes, client, "POST", path, {"summary": "done"}), 200)

    elapsed, results = await run_workers(url, tokens, kind, work)
    return {
        "elapsed": elapsed,
        "client_cpu": results[0]["client_cpu"],
        "latencies": [x for r in results for x in r["claims"]],
        "complete_latencies": [x for r in results for x in r["completes"]],
        "got": [x for r in results for x in r["got"]],
    }


async def phase_locks(url: str, pid: str, tokens: list[str], kind: str, rounds: int, hot: int) -> dict[str, Any]:
    async def work(client: Client, n: int) -> dict[str, Any]:
        latencies: list[float] = []
        fencing: list[int] = []
        won = refused = 0
        base = f"/api/projects/{pid}/locks"
        for i in range(rounds):
            lock = expect(await timed(latencies, client, "POST", base, {"path": f"own/{n}/{i}.py"}), 201)["lock"]
            fencing.append(lock["fencing"])
            expect(await timed(latencies, client, "POST", base + "/release", {"path": lock["path"]}), 200)
        for i in range(rounds):
            path = f"hot/{i % hot}.py"
            reply = await timed(latencies, client, "POST", base, {"path": path, "ttl_seconds": 60})
            body = expect(reply, 201, 409)
            if reply.status_code == 201:
                won += 1
                fencing.append(body["lock"]["fencing"])
                expect(await timed(latencies, client, "POST", base + "/release", {"path": path}), 200)
            else:
                refused += 1
                if not body["detail"].startswith("locked by "):
                    raise RuntimeError(f"a refusal that does not name the holder: {body}")
        return {"latencies": latencies, "fencing": fencing, "won": won, "refused": refused}

    elapsed, results = await run_workers(url, tokens, kind, work)
    return {
        "elapsed": elapsed,
        "client_cpu": results[0]["client_cpu"],
        "latencies": [x for r in results for x in r["latencies"]],
        "fencing": [x for r in results for x in r["fencing"]],
        "won": sum(r["won"] for r in results),
        "refused": sum(r["refused"] for r in results),
    }


def _in_child(args: tuple[str, tuple[Any, ...]]) -> dict[str, Any]:
    name, params = args
    phase = {"create": phase_create, "claim": phase_claim, "locks": phase_locks}[name]
    return asyncio.run(phase(*params))  # type: ignore[operator]


def run_phase(pool: Any, name: str, url: str, pid: str, tokens: list[str], procs: int, *extra: Any) -> dict[str, Any]:
    """Run a phase over all clients, split across ``procs`` processes (1: in this process)."""
    if procs <= 1 or pool is None:
        return _in_child((name, (url, pid, tokens, *extra)))
    slices = [tokens[i::procs] for i in range(procs)]
    jobs = []
    for i, part in enumerate(slices):
        params: tuple[Any, ...] = (url, pid, part, *extra)
        if name == "create":  # split the task count between processes
            kind, count, offset = extra
            share = count // procs + (1 if i < count % procs else 0)
            params = (url, pid, part, kind, share, offset + i * (count // procs + 1))
        jobs.append((name, params))
    parts = pool.map(_in_child, jobs)
    merged: dict[str, Any] = {"elapsed": max(p["elapsed"] for p in parts)}
    for key in parts[0]:
        if key == "elapsed":
            continue
        if isinstance(parts[0][key], list):
            merged[key] = [x for p in parts for x in p[key]]
        else:
            merged[key] = sum(p[key] for p in parts)
    return merged


# -- main -----------------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--tasks", type=int, default=20000, help="tasks for the claim phase")
    parser.add_argument("--cycle-tasks", type=int, default=4000, help="tasks for the claim+complete phase")
    parser.add_argument("--lock-rounds", type=int, default=250, help="per client, per lock sub-phase")
    parser.add_argument("--procs", type=int, default=1, help="client processes (the relay is always one)")
    parser.add_argument(
        "--client", choices=sorted(CLIENTS), default="raw", help="raw: minimal HTTP/1.1 client (default); httpx"
    )
    parser.add_argument("--quick", action="store_true", help="a smaller run (about 20 s)")
    parser.add_argument("--json", dest="json_out", help="also write every number to this file")
    args = parser.parse_args()
    if args.quick:
        args.tasks, args.cycle_tasks, args.lock_rounds = 4000, 1000, 60

    home = Path(tempfile.mkdtemp(prefix="bench-coord-"))
    relay = RelayProcess(home)
    pool = multiprocessing.get_context("spawn").Pool(args.procs) if args.procs > 1 else None
    report: dict[str, Any] = {
        "clients": args.clients,
        "client": args.client,
        "procs": args.procs,
        "cpus": os.cpu_count(),
    }
    ok = True

    def too_long(*_: Any) -> None:
        raise TimeoutError("the benchmark ran past its time limit")

    signal.signal(signal.SIGALRM, too_long)
    signal.alarm(300 if args.quick else 900)
    try:
        relay.start()
        token = relay.user_token()
        user = httpx.Client(base_url=relay.url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        pid = expect(user.post("/api/projects", json={"name": "bench", "project_path": "/bench"}), 201)["project"]["id"]
        tokens = [
            expect(user.post(f"/api/projects/{pid}/instances", json={"name": f"agent-{n}"}), 201)["token"]
            for n in range(args.clients)
        ]
        log(f"relay {relay.url}, {args.clients} clients in {args.procs} process(es)")

        def phase(name: str, *extra: Any) -> dict[str, Any]:
            cpu, busy, own, wall = relay.cpu_seconds(), machine_busy_seconds(), own_cpu_seconds(), time.monotonic()
            result = run_phase(pool, name, relay.url, pid, tokens, args.procs, *extra)
            wall = time.monotonic() - wall
            relay_cpu = relay.cpu_seconds() - cpu
            others = machine_busy_seconds() - busy - relay_cpu - (own_cpu_seconds() - own)
            if pool is not None:  # worker processes are not waited for yet, so their CPU is not in own_cpu_seconds
                others -= result["client_cpu"]
            result["other_cpu"] = round(max(0.0, others) / wall, 2)
            if result["other_cpu"] > 0.1:
                log(f"  noise: other processes used {result['other_cpu']:.2f} cores during {name}")
            result["relay_cpu"] = round(relay_cpu / result["elapsed"], 2)
            result["client_cpu"] = round(result["client_cpu"] / result["elapsed"], 2)
            return result

        log(f"create: {args.tasks} tasks")
        created = phase("create", args.client, args.tasks, 0)
        report["create"] = {
            "tasks": args.tasks,
            "per_s": round(args.tasks / created["elapsed"]),
            "relay_cpu_cores": created["relay_cpu"],
            "client_cpu_cores": created["client_cpu"],
            "other_cpu_cores": created["other_cpu"],
            **percentiles(created["latencies"]),
        }
        log("claim: claim-next until the queue is empty")
        claimed = phase("claim", args.client, False)
        got = claimed["got"]
        in_progress = expect(user.get(f"/api/projects/{pid}/tasks", params={"status": "in_progress"}), 200)["tasks"]
        checks = {
            "every_task_claimed": len(set(got)) == args.tasks,
            "no_double_claims": len(got) == len(set(got)),
            "relay_agrees": len(in_progress) == args.tasks and {t["id"] for t in in_progress} == set(got),
        }
        report["claim"] = {
            "claims": len(got),
            "per_s": round(len(got) / claimed["elapsed"]),
            "relay_cpu_cores": claimed["relay_cpu"],
            "client_cpu_cores": claimed["client_cpu"],
            "other_cpu_cores": claimed["other_cpu"],
            **percentiles(claimed["latencies"]),
            "checks": checks,
            "goal_per_s": CLAIM_GOAL,
        }
        ok &= all(checks.values())
        log(f"cycle: claim-next + complete over {args.cycle_tasks} tasks")
        phase("create", args.client, args.cycle_tasks, args.tasks)
        cycled = phase("claim", args.client, True)
        done = expect(user.get(f"/api/projects/{pid}/tasks", params={"status": "done"}), 200)["tasks"]
        cycle_checks = {
            "no_double_claims": len(cycled["got"]) == len(set(cycled["got"])) == args.cycle_tasks,
            "all_done": len(done) == args.cycle_tasks,
        }
        report["cycle"] = {
            "tasks": len(cycled["got"]),
            "tasks_per_s": round(len(cycled["got"]) / cycled["elapsed"]),
            "requests_per_s": round(2 * len(cycled["got"]) / cycled["elapsed"]),
            "relay_cpu_cores": cycled["relay_cpu"],
            "client_cpu_cores": cycled["client_cpu"],
            "other_cpu_cores": cycled["other_cpu"],
            "claim": percentiles(cycled["latencies"]),
            "complete": percentiles(cycled["complete_latencies"]),
            "checks": cycle_checks,
        }
        ok &= all(cycle_checks.values())
        log(f"locks: {args.lock_rounds} own acquire+release and {args.lock_rounds} hot-path attempts per client")
        locked = phase("locks", args.client, args.lock_rounds, 4)
        fencing = locked["fencing"]
        lock_checks = {
            "fencing_unique": len(fencing) == len(set(fencing)),
            "every_attempt_answered": locked["won"] + locked["refused"] == args.lock_rounds * args.clients,
        }
        report["locks"] = {
            "ops": len(locked["latencies"]),
            "ops_per_s": round(len(locked["latencies"]) / locked["elapsed"]),
            "hot_won": locked["won"],
            "hot_refused": locked["refused"],
            "relay_cpu_cores": locked["relay_cpu"],
            "client_cpu_cores": locked["client_cpu"],
            "other_cpu_cores": locked["other_cpu"],
            **percentiles(locked["latencies"]),
            "checks": lock_checks,
        }
        ok &= all(lock_checks.values())
        user.close()
    except Exception as exc:
        log(f"benchmark failed: {exc}")
        ok = False
    finally:
        signal.alarm(0)
        if pool is not None:
            pool.terminate()
        relay.stop()
        shutil.rmtree(home, ignore_errors=True)

    print(json.dumps(report, indent=2))
    if "claim" in report:
        rate = report["claim"]["per_s"]
        verdict = "met" if rate >= CLAIM_GOAL else f"missed by {CLAIM_GOAL - rate:.0f}/s ({rate / CLAIM_GOAL:.0%})"
        print(f"claims/s {rate} (goal {CLAIM_GOAL:.0f}: {verdict})")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
