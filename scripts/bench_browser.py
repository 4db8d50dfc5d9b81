#!/usr/bin/env python3
"""Dashboard speed in a real Chromium: first-load bytes, keystroke to screen and a 50 MB flood, beside wetty 3.2.

    python scripts/bench_browser.py [--keys 500] [--rounds 5] [--flood-mb 50] [--json out.json]
    python scripts/bench_browser.py --keys 100 --flood-mb 5          # a quick run

Starts, all on 127.0.0.1: ``claudenest up --port 0`` (a real relay with this machine's agent) under a fresh
CLAUDENEST_HOME, and wetty 3.2.0 (npm; xterm.js over socket.io; installed into .tools/wetty when missing) running
``bash --norc`` locally (as root wetty runs its --command without ssh). Debian's /usr/bin/chromium is driven by
Playwright with the flags of tests/e2e/browser.py, one browser context per tool, viewport 1280x800. Then measures:

1. the JavaScript + CSS that Chromium fetches on a first load of /dashboard when signed in (every script and
   stylesheet response until the network is idle): raw bytes, the bytes each body gzips to (Python's gzip, level 9)
   and the bytes on the wire (responseBodySize; equal to raw while the relay does not compress);
2. keystroke to screen: a trusted key (page.keyboard.press, CDP Input.dispatchKeyEvent) goes to xterm's textarea;
   t0 = performance.now() in a capturing keydown listener on window (runs before xterm's own handler), t1 =
   performance.now() in a MutationObserver on xterm's ``.xterm-rows`` when the rows' text (whitespace removed) ends
   with the last eight typed characters. Both terminals run ``bash --norc`` and then ``stty raw -echo; exec cat``,
   so every key comes back as one byte. The keys are split into rounds, the tools' order reversed every round, each
   round in a fresh tab (only one terminal tab open at a time), 20 unmeasured keys first, a random 0-33 ms pause
   after each echo (so keys land at every phase of the 60 Hz frame). An init script also notes the first WebSocket
   send after the keydown and the last message before t1: the medians split each key into page -> server -> page ->
   rows. One more row explains the cursor: ``wetty-blink`` is wetty with cursorBlink on (a CSS animation that keeps
   Chromium drawing frames, and each echo then waits for the next one); the dashboard's cursor is steady since this
   benchmark found that (``--no-variants`` skips the row);
3. flood: ``head -c N /dev/zero | tr '\\0' Z | fold -w 100; echo END-$((6*7))-MARK`` typed into bash in a fresh
   tab (fold writes each 100-byte line on its own: many small writes); the time from the Enter keydown until
   ``END-42-MARK`` is in the rows (the same MutationObserver), the largest gap between ticks of a 50 ms setInterval
   from Enter until 0.5 s after the marker (and the longest Long Task), the tab's JS heap (CDP
   Performance.getMetrics JSHeapUsedSize) before, right after, and after a forced GC, and the CPU seconds of the
   serving process (claudenest up: relay and agent in one process; wetty's node). ``--flood-rounds`` (default 2)
   floods per tool, the order alternating.

Same renderer for both: wetty 3.2 loads xterm's WebGL addon when WebGL2 exists (SwiftShader here) and then has no
``.xterm-rows``; the script makes ``canvas.getContext('webgl'|'webgl2')`` return null in every page (an init script),
so wetty takes its own fallback, xterm's DOM renderer, which is what the dashboard uses (both bundle xterm.js 6.0.0).
``--wetty-webgl`` adds wetty as shipped (WebGL renderer) measured on window.wetty_term's buffer (onWriteParsed):
a different, earlier end point, shown apart and not comparable with the rows.

Every wait is bounded; a watchdog ends the run (and everything it started) if it overruns.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import platform
import random
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
WETTY_VERSION = "3.2.0"
CHROMIUM = os.environ.get("CLAUDENEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
VIEWPORT = {"width": 1280, "height": 800}
SHELL = ["bash", "--norc", "--noprofile"]
KEYS = "abcdefghijklmnopqrstuvwxyz0123456789"
SUFFIX = 8
MARKER_CMD = "END-$((6*7))-MARK"
MARKER = "END-42-MARK"
VARIANTS = ("wetty-blink",)  # keys only: the cursor-blink explanation


class BenchError(Exception):
    """The benchmark cannot go on (a tool did not start, a page did not load): said in one line, then cleaned up."""


# ---------------------------------------------------------------------------------------------------------------
# Processes


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (from /proc), so PTY children in their own sessions are found too."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class Child:
    """A child process in its own process group, its merged output collected line by line."""

    registry: list[Child] = []

    def __init__(self, name: str, argv: list[str], env: dict[str, str], cwd: Path | None = None) -> None:
        self.name = name
        self.lines: list[str] = []
        self.popen = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        Child.registry.append(self)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        with contextlib.suppress(ValueError, OSError):
            for line in self.popen.stdout:
                self.lines.append(line.rstrip("\n"))

    def output(self, last: int = 30) -> str:
        return "\n".join(self.lines[-last:])

    def wait_for(self, pattern: str, seconds: float) -> re.Match[str]:
        regex = re.compile(pattern)
        deadline = time.monotonic() + seconds
        seen = 0
        while time.monotonic() < deadline:
            lines = self.lines
            for line in lines[seen:]:
                match = regex.search(line)
                if match:
                    return match
            seen = len(lines)
            if self.popen.poll() is not None:
                time.sleep(0.1)
                raise BenchError(f"{self.name} exited with {self.popen.returncode}:\n{self.output()}")
            time.sleep(0.02)
        raise BenchError(f"timed out after {seconds:.0f}s waiting for {pattern!r} from {self.name}:\n{self.output()}")

    def stop(self, grace: float = 10) -> None:
        below = descendants(self.popen.pid)
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.popen.wait(5)
        for pid in below:  # PTY children live in sessions of their own: no process group reaches them
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        self._reader.join(2)

    def kill_now(self) -> None:
        for pid in [self.popen.pid, *descendants(self.popen.pid)]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    @classmethod
    def stop_all(cls) -> None:
        for child in reversed(cls.registry):
            child.stop()
        cls.registry.clear()


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process (not its children)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAUDENEST_")}
    env.update(
        CLAUDENEST_HOME=str(home / "claudenest"),
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
        PYTHONUNBUFFERED="1",
        NO_COLOR="1",
        COLUMNS="500",  # rich wraps at 80 columns without a terminal: keep the login link on one line
        HISTFILE="/dev/null",
        TERM="xterm-256color",
    )
    return env


@dataclass
class ClaudeNest:
    url: str
    login_code: str
    proc: Child


def start_claudenest(home: Path) -> ClaudeNest:
    proc = Child("claudenest up", [sys.executable, "-m", "claudenest", "up", "--port", "0"], base_env(home), cwd=home)
    url = proc.wait_for(r"ClaudeNest is up at (http://127\.0\.0\.1:\d+)", 60).group(1)
    code = proc.wait_for(r"#code=(\S+)", 10).group(1)
    return ClaudeNest(url=url, login_code=code, proc=proc)


def ensure_wetty(prefix: Path) -> Path:
    """wetty 3.2.0 in ``prefix`` (npm install once, like scripts/test does for claude)."""
    main = prefix / "node_modules" / "wetty" / "build" / "main.js"
    manifest = prefix / "node_modules" / "wetty" / "package.json"
    if main.exists() and json.loads(manifest.read_text())["version"] == WETTY_VERSION:
        return main
    npm = shutil.which("npm")
    if npm is None:
        raise BenchError("npm is missing: wetty is an npm package (apt-get install npm)")
    print(f"installing wetty {WETTY_VERSION} into {prefix} ...", flush=True)
    prefix.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [npm, "install", "--no-save", "--no-audit", "--no-fund", "--loglevel=error", "--prefix", str(prefix)]
        + [f"wetty@{WETTY_VERSION}"],
        check=True,
        timeout=600,
    )
    return main


def start_wetty(main: Path, home: Path) -> tuple[str, Child]:
    if os.getuid() != 0:
        # wetty runs --command itself only as root on localhost; otherwise it logs in over ssh.
        raise BenchError("wetty runs a local command only when started as root (else it goes through ssh)")
    node = shutil.which("node")
    if node is None:
        raise BenchError("node is missing")
    port = free_port()
    argv = [node, str(main), "--host", "127.0.0.1", "--port", str(port), "--command", " ".join(SHELL)]
    proc = Child("wetty", argv, base_env(home), cwd=home)
    proc.wait_for(r"Server started", 60)
    return f"http://127.0.0.1:{port}/", proc


# ---------------------------------------------------------------------------------------------------------------
# In the page

NO_WEBGL = """
(() => {
  const original = HTMLCanvasElement.prototype.getContext;
  HTMLCanvasElement.prototype.getContext = function (type, ...rest) {
    if (type === "webgl" || type === "webgl2" || type === "experimental-webgl") return null;
    return original.call(this, type, ...rest);
  };
})();
"""

# Timestamps of WebSocket traffic around each measured key: the first send after the keydown and the first message
# after that send (a breakdown of the key's time: page -> server -> page -> rows). Installed before the page's code.
WS_MARKS = """
(() => {
  const marks = (window.__wsMarks = { armed: false, send: null, recv: null, last: null, count: 0 });
  const NativeWebSocket = window.WebSocket;
  const nativeSend = NativeWebSocket.prototype.send;
  NativeWebSocket.prototype.send = function (data) {
    if (marks.armed && marks.send === null) marks.send = performance.now();
    return nativeSend.call(this, data);
  };
  class MarkedWebSocket extends NativeWebSocket {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", () => {
        if (!marks.armed || marks.send === null) return;
        marks.last = performance.now();
        marks.count += 1;
        if (marks.recv === null) marks.recv = marks.last;
      });
    }
  }
  window.WebSocket = MarkedWebSocket;
})();
"""

PROBE = """
(source) => {
  if (window.__bench) return true;
  const b = { t0: 0, want: null, done: null, pending: null, source };
  window.__bench = b;
  window.addEventListener("keydown", () => { b.t0 = performance.now(); }, true);
  const rows = () => document.querySelector(".xterm-rows");
  const term = () => window.wetty_term;
  b.lines = () => {
    if (source === "buffer") {
      const t = term(), buf = t.buffer.active, out = [];
      for (let i = 0; i < t.rows; i++) out.push(buf.getLine(buf.viewportY + i)?.translateToString(true) ?? "");
      return out;
    }
    const el = rows();
    return el ? Array.from(el.children, (r) => r.textContent.replace(/\\u00a0/g, " ").trimEnd()) : [];
  };
  b.flat = () => (source === "buffer" ? b.lines().join("") : rows()?.textContent ?? "").replace(/\\s+/g, "");
  const check = () => {
    if (!b.want) return;
    let ok = false;
    try { ok = b.want(); } catch (e) { ok = false; }
    if (ok) {
      const t1 = performance.now(), done = b.done;
      b.want = null; b.done = null;
      done(t1);
    }
  };
  if (source === "buffer") term().onWriteParsed(check);
  else new MutationObserver(check).observe(rows(), { childList: true, subtree: true, characterData: true });
  b.arm = (kind, arg) => {
    const m = window.__wsMarks;
    if (m) { m.armed = true; m.send = null; m.recv = null; m.last = null; m.count = 0; }
    b.pending = new Promise((resolve) => { b.done = resolve; });
    if (kind === "suffix") b.want = () => b.flat().endsWith(arg);
    else if (kind === "includes") b.want = () => b.flat().includes(arg);
    else b.want = () => b.lines().some((line) => new RegExp(arg).test(line));
    check();
    return true;
  };
  b.result = async (ms) => {
    let timer;
    const t1 = await Promise.race([b.pending, new Promise((r) => { timer = setTimeout(() => r(null), ms); })]);
    clearTimeout(timer);
    const m = window.__wsMarks || {};
    m.armed = false;
    if (t1 === null) { b.want = null; return null; }
    return { t0: b.t0, t1, send: m.send ?? null, recv: m.recv ?? null, last: m.last ?? null, count: m.count ?? 0 };
  };
  b.stallStart = () => {
    b.maxGap = 0; b.ticks = 0; b.longTasks = [];
    let last = performance.now();
    b.stallTick = () => { const now = performance.now(); b.maxGap = Math.max(b.maxGap, now - last); last = now; };
    b.interval = setInterval(() => { b.ticks++; b.stallTick(); }, 50);
    try {
      b.po = new PerformanceObserver((list) => { for (const e of list.getEntries()) b.longTasks.push(e.duration); });
      b.po.observe({ type: "longtask" });
    } catch (e) { b.po = null; }
    return true;
  };
  b.stallStop = () => {
    b.stallTick();
    clearInterval(b.interval);
    if (b.po) { b.longTasks.push(...b.po.takeRecords().map((e) => e.duration)); b.po.disconnect(); }
    return { maxGap: b.maxGap, ticks: b.ticks, longTasks: b.longTasks.length,
             longestTask: b.longTasks.length ? Math.max(...b.longTasks) : 0 };
  };
  return true;
}
"""


@dataclass
class Tool:
    name: str  # "claudenest", "wetty", "wetty-webgl"
    context: Any
    source: str  # "rows" (DOM renderer, .xterm-rows) or "buffer" (window.wetty_term)
    open_terminal: Any  # () -> page, a fresh terminal running SHELL
    setup: Any = None  # (page) -> None, after the shell is ready
    samples: list[float] = field(default_factory=list)
    parts: list[dict[str, float]] = field(default_factory=list)
    round_p50s: list[float] = field(default_factory=list)
    reopened: int = 0
    server_pid: int = 0  # the process serving this tool (claudenest up: relay + agent; wetty's node)


def install_probe(page: Any, source: str, seconds: float) -> None:
    if source == "rows":
        page.wait_for_selector(".xterm-rows", state="attached", timeout=seconds * 1000)
    else:
        page.wait_for_function("() => window.wetty_term && window.wetty_term.buffer", timeout=seconds * 1000)
    page.evaluate(PROBE, source)


def wait_text(page: Any, kind: str, arg: str, seconds: float, what: str) -> dict[str, float]:
    page.evaluate("([k, a]) => window.__bench.arm(k, a)", [kind, arg])
    got = page.evaluate("(ms) => window.__bench.result(ms)", int(seconds * 1000))
    if got is None:
        lines = page.evaluate("() => window.__bench.lines()")
        shown = "\n".join(line for line in lines if line.strip())
        raise BenchError(f"timed out after {seconds:.0f}s waiting for {what}; screen:\n{shown[-2000:]}")
    return got  # type: ignore[no-any-return]


def open_ready(tool: Tool, prepare: Any, attempts: int = 3) -> Any:
    """A fresh terminal tab made ready by ``prepare(page, tool)``; reopened when that fails (e.g. the dashboard was
    rebuilt under the running relay and the page asked for a chunk that no longer exists)."""
    from playwright.sync_api import Error as PlaywrightError

    for attempt in range(1, attempts + 1):
        page = tool.open_terminal()
        try:
            prepare(page, tool)
            return page
        except (BenchError, PlaywrightError) as exc:
            close_terminal(page)
            tool.reopened += 1
            print(f"  {tool.name}: terminal tab not ready (attempt {attempt}/{attempts}): {exc}"[:300], flush=True)
            if attempt == attempts:
                raise BenchError(f"{tool.name}: no ready terminal after {attempts} tabs: {exc}") from exc
            time.sleep(2)
    raise AssertionError("unreachable")


def close_terminal(page: Any) -> None:
    page.close()
    done = getattr(page, "bench_done", None)
    if done is not None:
        with contextlib.suppress(Exception):
            done()


def focus(page: Any) -> None:
    page.locator(".xterm-helper-textarea").first.focus()


def prepare_shell(page: Any, tool: Tool) -> None:
    install_probe(page, tool.source, 30)
    focus(page)
    wait_text(page, "regex", r"bash-[0-9.]+[#$]", 30, f"{tool.name}'s bash prompt")
    if tool.name.startswith("claudenest"):
        # The prompt may come from the log (scrollback) before the socket is live; keys typed then are dropped.
        page.wait_for_function("() => !document.querySelector('[data-testid=connection-state]')", timeout=30_000)


def type_line(page: Any, text: str) -> None:
    page.keyboard.type(text)
    page.keyboard.press("Enter")


def start_cat(page: Any, tool: Tool) -> None:
    prepare_shell(page, tool)
    page.keyboard.type("unset HISTFILE; stty raw -echo; echo READY-$((2+3)); exec cat")
    wait_text(page, "includes", "READY-$((2+3))", 20, "the typed command")
    page.keyboard.press("Enter")
    wait_text(page, "regex", "^READY-5$", 20, f"{tool.name}'s cat to start")


def key_echo(page: Any, typed: str, timeout_s: float) -> dict[str, float]:
    page.evaluate("([k, a]) => window.__bench.arm(k, a)", ["suffix", typed[-SUFFIX:]])
    page.keyboard.press(typed[-1])
    got = page.evaluate("(ms) => window.__bench.result(ms)", int(timeout_s * 1000))
    if got is None:
        lines = page.evaluate("() => window.__bench.lines()")
        shown = "\n".join(line for line in lines if line.strip())
        raise BenchError(f"no echo of {typed[-1]!r} after {timeout_s}s; screen:\n{shown[-2000:]}")
    return got  # type: ignore[no-any-return]


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        position = q * (len(ordered) - 1)
        low = int(position)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (position - low)

    return {
        "n": len(ordered),
        "p50_ms": round(at(0.50), 2),
        "p90_ms": round(at(0.90), 2),
        "p99_ms": round(at(0.99), 2),
        "max_ms": round(ordered[-1], 2),
        "mean_ms": round(statistics.fmean(ordered), 2),
        "min_ms": round(ordered[0], 2),
    }


# ---------------------------------------------------------------------------------------------------------------
# 1. First load


def first_load(context: Any, url: str) -> dict[str, Any]:
    """Every script and stylesheet response of a first (empty cache) load of ``url`` until the network is idle."""
    page = context.new_page()
    seen: list[Any] = []
    page.on("response", lambda response: seen.append(response))
    try:
        page.goto(url, wait_until="load", timeout=60_000)
        with contextlib.suppress(Exception):
            page.wait_for_load_state("networkidle", timeout=10_000)
        page.wait_for_timeout(500)
        files = []
        for response in list(seen):
            kind = response.request.resource_type
            path = urlsplit(response.url).path
            if kind not in ("script", "stylesheet") and not path.endswith((".js", ".css", ".mjs")):
                continue
            body = response.body()
            sizes = response.request.sizes()
            files.append(
                {
                    "path": path,
                    "type": "css" if kind == "stylesheet" or path.endswith(".css") else "js",
                    "status": response.status,
                    "raw_bytes": len(body),
                    "gzip9_bytes": len(gzip.compress(body, compresslevel=9)),
                    "content_encoding": response.headers.get("content-encoding", ""),
                    "wire_body_bytes": sizes.get("responseBodySize", -1),
                }
            )
        final_path = urlsplit(page.url).path
    finally:
        page.close()
    return {
        "url_path": urlsplit(url).path,
        "landed_on": final_path,
        "files": files,
        "raw_bytes": sum(f["raw_bytes"] for f in files),
        "gzip9_bytes": sum(f["gzip9_bytes"] for f in files),
        "wire_body_bytes": sum(max(0, f["wire_body_bytes"]) for f in files),
        "compressed_by_server": sorted({f["content_encoding"] for f in files if f["content_encoding"]}),
    }


# ---------------------------------------------------------------------------------------------------------------
# 3. Flood


def heap(cdp: Any) -> dict[str, float]:
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    return {"used": metrics.get("JSHeapUsedSize", 0.0), "total": metrics.get("JSHeapTotalSize", 0.0)}


def flood(tool: Tool, megabytes: float, seconds: float) -> dict[str, Any]:
    page = open_ready(tool, prepare_shell)
    try:
        type_line(page, "unset HISTFILE; stty size")
        wait_text(page, "regex", r"^\d+ \d+$", 20, "stty size")
        size = next(
            line for line in reversed(page.evaluate("() => window.__bench.lines()")) if re.match(r"^\d+ \d+$", line)
        )
        rows, cols = (int(x) for x in size.split())
        nbytes = int(megabytes * 1_000_000)
        command = f"head -c {nbytes} /dev/zero | tr '\\0' Z | fold -w 100; echo {MARKER_CMD}"
        page.keyboard.type(command)
        wait_text(page, "includes", MARKER_CMD, 20, "the typed flood command")
        cdp = page.context.new_cdp_session(page)
        cdp.send("Performance.enable")
        cdp.send("HeapProfiler.enable")
        cdp.send("HeapProfiler.collectGarbage")
        before = heap(cdp)
        cpu_before = cpu_seconds(tool.server_pid)
        page.evaluate("() => window.__bench.stallStart()")
        page.evaluate("([k, a]) => window.__bench.arm(k, a)", ["includes", MARKER])
        page.keyboard.press("Enter")
        got = page.evaluate("(ms) => window.__bench.result(ms)", int(seconds * 1000))
        if got is None:
            lines = page.evaluate("() => window.__bench.lines()")
            raise BenchError(f"{tool.name}: no {MARKER} after {seconds:.0f}s; screen:\n" + "\n".join(lines[-5:]))
        cpu_server = cpu_seconds(tool.server_pid) - cpu_before
        page.wait_for_timeout(500)
        stall = page.evaluate("() => window.__bench.stallStop()")
        after = heap(cdp)
        cdp.send("HeapProfiler.collectGarbage")
        after_gc = heap(cdp)
        notice = ""
        with contextlib.suppress(Exception):
            el = page.query_selector("[data-testid=terminal-notice]")
            notice = el.inner_text() if el else ""
        elapsed_ms = got["t1"] - got["t0"]
        return {
            "bytes": nbytes + nbytes // 100,  # the Zs and fold's newlines (the PTY adds a CR to each)
            "terminal": {"rows": rows, "cols": cols},
            "last_line_ms": round(elapsed_ms, 1),
            "mb_per_s": round((nbytes + nbytes // 100) / 1e6 / (elapsed_ms / 1000), 2),
            "longest_gap_ms": round(stall["maxGap"], 1),
            "interval_ticks": stall["ticks"],
            "long_tasks": stall["longTasks"],
            "longest_task_ms": round(stall["longestTask"], 1),
            "heap_before_mb": round(before["used"] / 1e6, 1),
            "heap_after_mb": round(after["used"] / 1e6, 1),
            "heap_after_gc_mb": round(after_gc["used"] / 1e6, 1),
            "server_cpu_s": round(cpu_server, 2),
            "notice": notice,
        }
    finally:
        close_terminal(page)


# ---------------------------------------------------------------------------------------------------------------
# Run


def new_context(browser: Any, timeout_s: float, *, webgl: bool = False, storage: Any = None) -> Any:
    context = browser.new_context(viewport=VIEWPORT, storage_state=storage)
    context.set_default_timeout(timeout_s * 1000)
    if not webgl:
        context.add_init_script(NO_WEBGL)
    context.add_init_script(WS_MARKS)
    return context


def claudenest_tools(browser: Any, cn: ClaudeNest, timeout_s: float) -> tuple[list[Tool], dict[str, Any]]:
    """The dashboard as shipped (its first load measured on the way)."""
    context = new_context(browser, timeout_s)
    signed = context.request.post(
        f"{cn.url}/api/auth/login-link", data={"code": cn.login_code}, headers={"Origin": cn.url}
    )
    if not signed.ok:
        raise BenchError(f"login link refused: {signed.status} {signed.text()}")
    load = first_load(context, f"{cn.url}/dashboard")  # before anything else fills the cache
    if load["landed_on"] != "/dashboard":
        raise BenchError(f"the first load of /dashboard ended on {load['landed_on']} (not signed in?)")
    machines = context.request.get(f"{cn.url}/api/machines").json()["machines"]
    if not machines:
        raise BenchError("claudenest up registered no machine")
    machine_id = machines[0]["id"]

    def opener(ctx: Any) -> Any:
        def open_terminal() -> Any:
            created = ctx.request.post(
                f"{cn.url}/api/sessions",
                data={"machine_id": machine_id, "command": SHELL, "cols": 120, "rows": 40},
                headers={"Origin": cn.url},
            )
            if not created.ok:
                raise BenchError(f"POST /api/sessions: {created.status} {created.text()}")
            session_id = created.json()["session"]["id"]
            page = ctx.new_page()
            page.goto(f"{cn.url}/sessions/{session_id}/terminal", wait_until="load")
            page.bench_done = lambda: ctx.request.post(  # type: ignore[attr-defined]
                f"{cn.url}/api/sessions/{session_id}/terminate", headers={"Origin": cn.url}
            )
            return page

        return open_terminal

    return [Tool("claudenest", context, "rows", opener(context))], load


def wetty_tools(browser: Any, url: str, timeout_s: float, webgl: bool) -> list[Tool]:
    """wetty (DOM renderer), the same with cursorBlink on (the dashboard's setting), and optionally with WebGL."""

    def opener(ctx: Any) -> Any:
        def open_terminal() -> Any:
            page = ctx.new_page()
            page.goto(url, wait_until="load")
            return page

        return open_terminal

    def blink(page: Any) -> None:
        page.evaluate("() => { window.wetty_term.options.cursorBlink = true; }")

    plain = new_context(browser, timeout_s)
    blinking = new_context(browser, timeout_s)
    tools = [
        Tool("wetty", plain, "rows", opener(plain)),
        Tool("wetty-blink", blinking, "rows", opener(blinking), setup=blink),
    ]
    if webgl:
        gl = new_context(browser, timeout_s, webgl=True)
        tools.append(Tool("wetty-webgl", gl, "buffer", opener(gl)))
    return tools


def run_keys(tools: list[Tool], keys: int, rounds: int, warmup: int, rng: random.Random) -> None:
    """Rounds of keys, the tools' order reversed every round; each round a fresh terminal page, only one open."""
    per_round = [keys // rounds + (1 if r < keys % rounds else 0) for r in range(rounds)]
    for r, count in enumerate(per_round):
        for tool in tools if r % 2 == 0 else list(reversed(tools)):
            page = open_ready(tool, start_cat)
            try:
                if tool.setup is not None:
                    tool.setup(page)
                typed = ""
                first = len(tool.samples)
                for i in range(warmup + count):
                    typed += KEYS[len(typed) % len(KEYS)]
                    got = key_echo(page, typed, 10)
                    time.sleep(rng.uniform(0, 0.033))
                    if i < warmup:
                        continue
                    tool.samples.append(got["t1"] - got["t0"])
                    if got["send"] is not None and got["last"] is not None:
                        tool.parts.append(
                            {
                                "keydown_to_send": got["send"] - got["t0"],
                                "send_to_message": got["last"] - got["send"],
                                "message_to_rows": got["t1"] - got["last"],
                                "messages": got["count"],
                            }
                        )
                tool.round_p50s.append(round(statistics.median(tool.samples[first:]), 2))
            finally:
                close_terminal(page)
        print(f"  keys round {r + 1}/{rounds} done", flush=True)


def versions(wetty_main: Path | None) -> dict[str, str]:
    out = {"python": platform.python_version(), "machine": platform.machine(), "cpus": str(os.cpu_count())}
    with contextlib.suppress(Exception):
        out["chromium"] = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, timeout=30).stdout
        out["chromium"] = out["chromium"].strip()
    with contextlib.suppress(Exception):
        pkg = ROOT / "web" / "node_modules" / "@xterm" / "xterm" / "package.json"
        out["dashboard_xterm"] = json.loads(pkg.read_text())["version"]
    if wetty_main is not None:
        with contextlib.suppress(Exception):
            pkg = wetty_main.parents[2] / "@xterm" / "xterm" / "package.json"
            out["wetty_xterm"] = json.loads(pkg.read_text())["version"]
    with contextlib.suppress(Exception):
        static = ROOT / "claudenest" / "relay" / "static"
        entry = re.search(r'src="(/assets/[^"]+\.js)"', (static / "index.html").read_text())
        built = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime((static / "index.html").stat().st_mtime))
        out["dashboard_build"] = f"{entry.group(1) if entry else '?'} built {built}"
    with contextlib.suppress(Exception):
        git = ["git", "-C", str(ROOT), "log", "-1", "--format=%h %cI"]
        commit = subprocess.run(git, capture_output=True, text=True, timeout=10)
        out["git_head"] = commit.stdout.strip()
    with contextlib.suppress(Exception):
        out["node"] = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    return out


def fmt_bytes(n: float) -> str:
    return f"{n / 1000:.1f} KB"


def print_report(result: dict[str, Any]) -> None:
    print()
    env = result["env"]
    print(
        f"Chromium: {env.get('chromium', '?')}; {env.get('cpus')} CPUs; load average at start"
        f" {result['loadavg_start']}, at end {result.get('loadavg_end')}"
    )
    print(
        f"dashboard: {env.get('dashboard_build', '?')} (git {env.get('git_head', '?')}), xterm"
        f" {env.get('dashboard_xterm', '?')}; wetty {WETTY_VERSION}, xterm {env.get('wetty_xterm', '?')}"
    )
    load = result.get("first_load")
    if load:
        print()
        print("1. JS + CSS fetched on a first load of /dashboard (signed in)")
        print(f"   {'file':52} {'raw':>10} {'gzip -9':>10} {'on wire':>10}")
        for f in load["claudenest"]["files"]:
            print(
                f"   {f['path'][:52]:52} {fmt_bytes(f['raw_bytes']):>10} {fmt_bytes(f['gzip9_bytes']):>10}"
                f" {fmt_bytes(f['wire_body_bytes']):>10}"
            )
        for name, data in load.items():
            enc = ",".join(data["compressed_by_server"]) or "none"
            print(
                f"   {name + ' total (' + str(len(data['files'])) + ' files)':52} {fmt_bytes(data['raw_bytes']):>10}"
                f" {fmt_bytes(data['gzip9_bytes']):>10} {fmt_bytes(data['wire_body_bytes']):>10}"
                f"  server compression: {enc}"
            )
        print("   target: claudenest at most 300 KB gzipped")
    keys = result.get("keys")
    if keys:
        print()
        print("2. Keystroke to screen (keydown -> character in the rows), ms")
        print(f"   {'tool':20} {'n':>5} {'min':>7} {'p50':>7} {'p90':>7} {'p99':>7} {'max':>7} {'mean':>7}")
        for name, p in keys.items():
            print(
                f"   {name:20} {p['n']:>5} {p['min_ms']:>7.2f} {p['p50_ms']:>7.2f} {p['p90_ms']:>7.2f}"
                f" {p['p99_ms']:>7.2f} {p['max_ms']:>7.2f} {p['mean_ms']:>7.2f}"
            )
        for name, p50s in result.get("keys_round_p50_ms", {}).items():
            print(f"   {name:20} p50 of each round: {', '.join(f'{x:.1f}' for x in p50s)}")
        for name, parts in result.get("keys_breakdown_p50_ms", {}).items():
            print(
                f"   {name:20} medians: keydown->WebSocket send {parts['keydown_to_send']:.2f},"
                f" send->first message {parts['send_to_message']:.2f}, message->rows {parts['message_to_rows']:.2f}"
            )
        print("   target: claudenest p50 at most wetty's")
    floods = result.get("flood")
    if floods:
        print()
        mb = next(iter(floods.values()))[0]["bytes"] / 1e6
        print(f"3. Flood of {mb:.1f} MB into an open terminal")
        print(
            f"   {'tool':20} {'size':>8} {'last line':>10} {'MB/s':>6} {'max gap':>8} {'longtask':>9}"
            f" {'heap before':>12} {'after':>7} {'after GC':>9} {'server CPU':>11}"
        )
        for name, f, i in [(name, f, i) for name, runs in floods.items() for i, f in enumerate(runs, 1)]:
            size = f"{f['terminal']['cols']}x{f['terminal']['rows']}"
            print(
                f"   {name + ' #' + str(i):20} {size:>8} {f['last_line_ms'] / 1000:>9.2f}s {f['mb_per_s']:>6.1f}"
                f" {f['longest_gap_ms']:>6.0f}ms {f['longest_task_ms']:>7.0f}ms {f['heap_before_mb']:>10.1f}MB"
                f" {f['heap_after_mb']:>5.1f}MB {f['heap_after_gc_mb']:>7.1f}MB {f['server_cpu_s']:>10.2f}s"
                + (f"  notice: {f['notice']}" if f["notice"] else "")
            )
        print("   target: longest gap of the 50 ms interval at most 250 ms")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise BenchError(f"{CHROMIUM} is missing (apt-get install chromium)")
    rng = random.Random(args.seed)
    wetty_main = ensure_wetty(Path(args.wetty_prefix)) if not args.no_wetty else None
    home = Path(tempfile.mkdtemp(prefix="bench-browser-"))
    result: dict[str, Any] = {
        "params": {k: v for k, v in vars(args).items() if k != "json"},
        "env": versions(wetty_main),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    try:
        cn = start_claudenest(home)
        print(f"claudenest up at {cn.url}", flush=True)
        wetty_url = ""
        if wetty_main is not None:
            wetty_url, wetty_proc = start_wetty(wetty_main, home)
            print(f"wetty {WETTY_VERSION} at {wetty_url}", flush=True)
        with sync_playwright() as p:
            if args.headed and not os.environ.get("DISPLAY"):
                raise BenchError("--headed needs a display: run under xvfb-run -a (apt-get install xvfb)")
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=not args.headed)
            try:
                cn_tools, load = claudenest_tools(browser, cn, args.step_timeout)
                tools = list(cn_tools)
                for tool in cn_tools:
                    tool.server_pid = cn.proc.popen.pid
                if wetty_main is not None:
                    for tool in wetty_tools(browser, wetty_url, args.step_timeout, args.wetty_webgl):
                        tool.server_pid = wetty_proc.popen.pid
                        tools.append(tool)
                if args.no_variants:
                    tools = [t for t in tools if t.name not in VARIANTS]
                result["first_load"] = {"claudenest": load}
                if wetty_main is not None:
                    scratch = browser.new_context(viewport=VIEWPORT)
                    try:
                        result["first_load"]["wetty"] = first_load(scratch, wetty_url)
                    finally:
                        scratch.close()
                print("first load measured", flush=True)
                if args.keys > 0:
                    run_keys(tools, args.keys, max(1, min(args.rounds, args.keys)), args.warmup, rng)
                    result["keys"] = {t.name: percentiles(t.samples) for t in tools}
                    result["keys_breakdown_p50_ms"] = {
                        t.name: {
                            part: round(statistics.median(p[part] for p in t.parts), 2)
                            for part in ("keydown_to_send", "send_to_message", "message_to_rows", "messages")
                        }
                        for t in tools
                        if t.parts
                    }
                    result["keys_round_p50_ms"] = {t.name: t.round_p50s for t in tools}
                    result["keys_raw_ms"] = {t.name: [round(s, 3) for s in t.samples] for t in tools}
                if args.flood_mb > 0:
                    result["flood"] = {}
                    budget = max(120.0, args.flood_mb * 12)
                    flooded = [t for t in tools if t.name not in VARIANTS]
                    for r in range(max(1, args.flood_rounds)):
                        for tool in flooded if r % 2 == 0 else list(reversed(flooded)):
                            print(f"  flood {tool.name} (round {r + 1}) ...", flush=True)
                            result["flood"].setdefault(tool.name, []).append(flood(tool, args.flood_mb, budget))
                result["reopened_tabs"] = {t.name: t.reopened for t in tools}
                for tool in tools:
                    tool.context.close()
            finally:
                browser.close()
    finally:
        Child.stop_all()
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    result["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    build_end = versions(None).get("dashboard_build")
    if build_end != result["env"].get("dashboard_build"):
        result["dashboard_rebuilt_during_run"] = build_end
        print(f"warning: the dashboard was rebuilt during the run (now {build_end})", flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=500, help="measured keystrokes per tool (default 500; 0 skips)")
    parser.add_argument("--rounds", type=int, default=5, help="the keys alternate between tools in this many rounds")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured keys first in each new tab (default 20)")
    parser.add_argument("--flood-mb", type=float, default=50, help="megabytes (10^6) of output (default 50; 0 skips)")
    parser.add_argument("--flood-rounds", type=int, default=2, help="floods per tool, order alternating (default 2)")
    parser.add_argument("--wetty-webgl", action="store_true", help="also wetty as shipped (WebGL), on its buffer")
    parser.add_argument("--no-variants", action="store_true", help="skip wetty-blink in the keys test")
    parser.add_argument(
        "--headed", action="store_true", help="a windowed Chromium (frames paced like a display): under xvfb-run -a"
    )
    parser.add_argument("--no-wetty", action="store_true", help="only the dashboard")
    parser.add_argument("--wetty-prefix", default=str(ROOT / ".tools" / "wetty"), help="npm prefix for wetty")
    parser.add_argument("--step-timeout", type=float, default=30, help="seconds for each page step")
    parser.add_argument("--deadline", type=float, default=1800, help="the watchdog ends the run after this (s)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the pauses between keys")
    parser.add_argument("--json", metavar="FILE", help="also write every number to FILE")
    parser.add_argument("--keep", action="store_true", help="keep the temporary homes (for debugging)")
    args = parser.parse_args()

    def overrun() -> None:
        print(f"bench_browser: watchdog: over {args.deadline:.0f}s, stopping everything", file=sys.stderr, flush=True)
        for child in Child.registry:
            child.kill_now()
        os._exit(3)

    watchdog = threading.Timer(args.deadline, overrun)
    watchdog.daemon = True
    watchdog.start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        result = run(args)
    except BenchError as exc:
        print(f"bench_browser: {exc}", file=sys.stderr)
        return 1
    finally:
        watchdog.cancel()
        Child.stop_all()
    print_report(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
