"""Token and cost accounting for Claude Code sessions, and the stream-json reader that feeds it.

There are two sources:

- A headless run (``claude -p --output-format stream-json``) ends each turn with a ``result`` line. Its
  ``total_cost_usd`` and ``modelUsage`` are cumulative for the process, so the caller keeps the latest one.
- An interactive run leaves only its transcript. There, one API response is written as several rows, and a naive sum
  over-counts 1.2-4x (research §6), so rows are deduplicated before they are summed.

Nothing here does I/O except reading the transcript files it is given.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Prices in USD per million tokens: (input, output, cache write, cache read).
Price = tuple[float, float, float, float]
ModelTotals = dict[str, int | float]

TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")

# ESTIMATES. These are the list prices of the current model families, matched by substring of the model id. Older
# generations were priced differently (Opus 4 / 4.1 cost $15/$75). Cache writes are priced at the 5-minute rate, so
# 1-hour writes come out low, and long-context premiums are ignored. Pass ``prices`` to override any of this.
DEFAULT_PRICES: dict[str, Price] = {
    "opus": (5.0, 25.0, 6.25, 0.50),
    "sonnet": (3.0, 15.0, 3.75, 0.30),
    "haiku": (1.0, 5.0, 1.25, 0.10),
}

# Result-line ``modelUsage`` uses camelCase; we normalise to the API's snake_case names.
_MODEL_USAGE_KEYS = {
    "inputTokens": "input_tokens",
    "outputTokens": "output_tokens",
    "cacheCreationInputTokens": "cache_creation_input_tokens",
    "cacheReadInputTokens": "cache_read_input_tokens",
}

SYNTHETIC_MODEL = "<synthetic>"
MAX_LINE_BYTES = 10 * 1024 * 1024
UNPARSED = "_unparsed"


@dataclass(frozen=True)
class Usage:
    """Token counts and estimated cost, in total and per model id."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cost_usd: float = 0.0
    # Per model: the four token fields plus cost_usd. Left out of the hash because a dict cannot be hashed.
    models: dict[str, ModelTotals] = field(default_factory=dict, hash=False)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "total_tokens": self.total_tokens,
            "cost_usd": self.cost_usd,
            "models": {model: dict(totals) for model, totals in sorted(self.models.items())},
        }


def _int(value: object) -> int:
    """A token count from untrusted JSON. Anything that is not a finite number counts as 0."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    return 0


def _float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        return None
    return number if math.isfinite(number) else None


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _usage_from_tokens(
    counts: Mapping[str, Any], cost_usd: float, models: dict[str, ModelTotals] | None = None
) -> Usage:
    return Usage(
        input_tokens=_int(counts.get("input_tokens")),
        output_tokens=_int(counts.get("output_tokens")),
        cache_creation_input_tokens=_int(counts.get("cache_creation_input_tokens")),
        cache_read_input_tokens=_int(counts.get("cache_read_input_tokens")),
        cost_usd=cost_usd,
        models=models or {},
    )


def _usage_from_models(models: dict[str, ModelTotals], cost_usd: float) -> Usage:
    sums = {name: sum(_int(totals.get(name)) for totals in models.values()) for name in TOKEN_FIELDS}
    return _usage_from_tokens(sums, cost_usd, models)


def usage_from_result(line: Mapping[str, Any]) -> Usage:
    """Usage from one stream-json ``result`` line. Missing fields count as 0.

    Token totals are summed over ``modelUsage`` when it is present. The result's own ``usage`` covers only the main
    loop (and only the last turn with stream-json input), while ``modelUsage`` and ``total_cost_usd`` are cumulative and
    include subagents. Summing ``modelUsage`` keeps tokens and cost consistent, which lets the caller keep the latest
    result. ``usage`` is the fallback when ``modelUsage`` is missing.
    """
    models: dict[str, ModelTotals] = {}
    for model, raw in _mapping(line.get("modelUsage")).items():
        stats = _mapping(raw)
        totals: ModelTotals = {ours: _int(stats.get(theirs)) for theirs, ours in _MODEL_USAGE_KEYS.items()}
        totals["cost_usd"] = _float(stats.get("costUSD")) or 0.0
        models[str(model)] = totals
    cost = _float(line.get("total_cost_usd"))
    if cost is None:
        cost = sum(float(totals["cost_usd"]) for totals in models.values())
    if models:
        return _usage_from_models(models, cost)
    return _usage_from_tokens(_mapping(line.get("usage")), cost)


# --- stream-json reading -------------------------------------------------------------------------------------------


def _unparsed(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": UNPARSED, "text": text, **extra}


def _too_long(line_start: bytes, limit: int) -> dict[str, Any]:
    # Only the line's first bytes go in the marker, so it comes out the same however the line arrived in chunks.
    # Any over-long line has more than ``limit`` bytes, so a preview within ``limit`` is always complete.
    preview = bytes(line_start[: min(200, limit)]).decode("utf-8", "replace")
    return _unparsed(preview, error=f"line longer than {limit} bytes dropped")


def _parse_line(line: bytes, limit: int) -> dict[str, Any] | None:
    if len(line) > limit:
        return _too_long(line, limit)
    if not line.strip():
        return None
    try:
        value = json.loads(line.decode("utf-8"))
    except (ValueError, RecursionError):  # ValueError covers bad JSON and bad UTF-8
        value = None
    if isinstance(value, dict):
        return value
    return _unparsed(line.decode("utf-8", "replace").rstrip("\r"))


class StreamJsonParser:
    """Turns a byte stream of newline-delimited JSON into objects, whatever the chunk boundaries.

    A line that is not a JSON object becomes ``{"type": "_unparsed", "text": ...}``, because a stray print on stdout
    must not take the session down. A line longer than ``max_line_bytes`` is dropped with an ``_unparsed`` marker as
    soon as it crosses the limit, so one runaway line cannot hold memory.
    """

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self._limit = max_line_bytes
        self._buffer = bytearray()
        self._scanned = 0  # the first _scanned bytes of _buffer hold no newline, so searches skip them
        self._dropping = False  # inside an over-long line: discard bytes until its newline

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        self._buffer += data
        start = 0
        while (end := self._buffer.find(b"\n", max(start, self._scanned))) != -1:
            if self._dropping:
                self._dropping = False
            else:
                self._append(bytes(self._buffer[start:end]), events)
            start = end + 1
        del self._buffer[:start]
        self._scanned = len(self._buffer)
        if self._buffer and not self._dropping and len(self._buffer) > self._limit:
            events.append(_too_long(bytes(self._buffer), self._limit))
            self._dropping = True
        if self._dropping:
            self._buffer.clear()
            self._scanned = 0
        return events

    def flush(self) -> list[dict[str, Any]]:
        """At end of stream: parse a last line that had no newline, and reset."""
        events: list[dict[str, Any]] = []
        if not self._dropping:
            self._append(bytes(self._buffer), events)
        self._buffer.clear()
        self._scanned = 0
        self._dropping = False
        return events

    def _append(self, line: bytes, events: list[dict[str, Any]]) -> None:
        event = _parse_line(line, self._limit)
        if event is not None:
            events.append(event)


# --- rendering for viewers -----------------------------------------------------------------------------------------

# Model text and tool input reach a viewer's terminal. Without this, an ESC in them could drive that terminal.
_CONTROL_CHARS = {code: None for code in [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)] if code not in (0x09, 0x0A)}
_SUMMARY_KEYS = ("command", "file_path", "notebook_path", "path", "pattern", "url", "query", "description", "skill")
_SUMMARY_LIMIT = 80


def _terminal_text(text: str) -> str:
    """Text made safe for a terminal, with every line ending in CRLF."""
    text = text.replace("\r\n", "\n").translate(_CONTROL_CHARS)
    return text.replace("\n", "\r\n") + "\r\n"


def _one_line(text: str, limit: int = _SUMMARY_LIMIT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _tool_summary(tool_input: object) -> str:
    """The input field a reader recognises (the command, the file, the pattern), else compact JSON."""
    fields = _mapping(tool_input)
    for key in _SUMMARY_KEYS:
        value = fields.get(key)
        if isinstance(value, str) and value.strip():
            return _one_line(value)
    if not fields:
        return ""
    return _one_line(json.dumps(fields, ensure_ascii=False, separators=(",", ":"), default=str))


def _render_blocks(content: object, *, tool_results: bool) -> str:
    if isinstance(content, str):
        return _terminal_text(content) if content.strip() else ""
    if not isinstance(content, list):
        return ""
    out: list[str] = []
    for block in content:
        block = _mapping(block)
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str) and block["text"].strip():
            out.append(_terminal_text(block["text"]))
        elif kind == "tool_use":
            summary = _tool_summary(block.get("input"))
            out.append(_terminal_text(f"[tool: {block.get('name', '?')}{' ' + summary if summary else ''}]"))
        elif kind == "tool_result" and tool_results and block.get("is_error") is True:
            out.append(_terminal_text(f"[tool error: {_one_line(_result_text(block.get('content')))}]"))
    return "".join(out)


def _result_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(_mapping(b).get("text", "")) for b in content)
    return ""


def _render_user(event: Mapping[str, Any]) -> str:
    content = _mapping(event.get("message")).get("content")
    if isinstance(content, str):  # a prompt echoed back by --replay-user-messages
        return _terminal_text(f"> {content}") if content.strip() else ""
    return _render_blocks(content, tool_results=True)


def _render_result(event: Mapping[str, Any]) -> str:
    """``[result: ok, cost $0.0123, 3 turns]``, or for errors ``[result: error (subtype), cost ..., 1 turn: message]``.

    ``is_error`` decides, not ``subtype``: a failed run can still say ``subtype: "success"``.
    """
    failed = event.get("is_error") is True
    head = "result: error" if failed else "result: ok"
    subtype = event.get("subtype")
    if failed and isinstance(subtype, str) and subtype != "success":
        head += f" ({subtype})"
    parts = [head, f"cost ${_float(event.get('total_cost_usd')) or 0.0:.4f}"]
    turns = event.get("num_turns")
    if isinstance(turns, int) and not isinstance(turns, bool):
        parts.append(f"{turns} turn{'' if turns == 1 else 's'}")
    text = ", ".join(parts)
    message = event.get("result")
    if failed and isinstance(message, str) and message.strip():
        text += f": {_one_line(message, 200)}"
    return _terminal_text(f"[{text}]")


def _render_system(event: Mapping[str, Any]) -> str:
    subtype = event.get("subtype")
    if subtype == "init":
        version, model, cwd = (event.get(key) or "?" for key in ("claude_code_version", "model", "cwd"))
        return _terminal_text(f"[claude {version} model {model} in {cwd}]")
    if subtype == "api_retry":
        attempt, most = event.get("attempt", "?"), event.get("max_retries", "?")
        return _terminal_text(f"[api retry {attempt}/{most}: {_one_line(str(event.get('error') or ''))}]")
    if subtype == "informational" and isinstance(event.get("content"), str):
        return _terminal_text(f"[{event.get('level') or 'info'}: {_one_line(event['content'], 200)}]")
    if subtype == "compact_boundary":
        return _terminal_text("[context compacted]")
    return ""  # hook progress, status and task events are noise in a transcript view


def render_event(event: Mapping[str, Any]) -> str:
    """Human-readable text for one stream-json event, CRLF line endings, or "" for events a viewer need not see.

    ``stream_event`` partial deltas are not rendered: the complete ``assistant`` message follows and would repeat them.
    Thinking blocks are not rendered either.
    """
    kind = event.get("type")
    if kind == "assistant":
        return _render_blocks(_mapping(event.get("message")).get("content"), tool_results=False)
    if kind == "user":
        return _render_user(event)
    if kind == "result":
        return _render_result(event)
    if kind == "system":
        return _render_system(event)
    if kind == UNPARSED:
        return _terminal_text(str(event.get("text", "")))
    return ""


# --- transcripts ---------------------------------------------------------------------------------------------------


def transcript_path(config_dir: Path, cwd: str, session_id: str) -> Path:
    """Where Claude Code writes the transcript of a session started in ``cwd``.

    Every character that is not an ASCII letter or digit becomes ``-``. Claude Code works on UTF-16 code units, so a
    character outside the BMP (an emoji) becomes ``--``. Claude Code truncates names longer than 200 characters and
    appends a hash, which is not reproduced here. For such paths, look for the directory that shares the first 200
    characters.
    """
    encoded = "".join(ch if ch.isascii() and ch.isalnum() else "-" * (2 if ord(ch) > 0xFFFF else 1) for ch in cwd)
    return config_dir / "projects" / encoded / f"{session_id}.jsonl"


def _json_rows(path: Path) -> Iterator[Mapping[str, Any]]:
    """The JSON objects in a JSONL file. Malformed lines are skipped, and a file that cannot be read yields nothing."""
    try:
        with path.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                try:
                    row = json.loads(line)
                except (ValueError, RecursionError):
                    continue
                if isinstance(row, dict):
                    yield row
    except OSError:
        return


def _billable(row: Mapping[str, Any]) -> tuple[tuple[str, str | None], str, Mapping[str, Any]] | None:
    """(dedup key, model, usage) for an assistant row that records a real API call, else None."""
    if row.get("type") != "assistant":
        return None
    message = _mapping(row.get("message"))
    model, message_id = message.get("model"), message.get("id")
    if not isinstance(model, str) or model == SYNTHETIC_MODEL or not isinstance(message_id, str):
        return None
    request_id = row.get("requestId")
    return (message_id, request_id if isinstance(request_id, str) else None), model, _mapping(message.get("usage"))


def model_price(model: str, prices: Mapping[str, Price] | None = None) -> Price | None:
    """The per-Mtok price of ``model``: an exact key of ``prices``, then the longest matching substring key of
    ``prices``, then the built-in estimates. None when nothing matches."""
    for table in (prices or {}, DEFAULT_PRICES):
        if model in table:
            return table[model]
        matches = [key for key in table if key and key in model]
        if matches:
            return table[max(matches, key=len)]
    return None


def _cost(totals: ModelTotals, price: Price | None) -> float:
    if price is None:
        return 0.0
    counts = (totals[name] for name in TOKEN_FIELDS)
    # TOKEN_FIELDS order is input, output, cache write, cache read, which is the order of Price.
    return sum(count * rate for count, rate in zip(counts, price, strict=True)) / 1_000_000


def usage_from_transcript(paths: Iterable[Path], prices: Mapping[str, Price] | None = None) -> Usage:
    """Tokens and estimated cost from transcript files (a session's main file plus its ``subagents/*.jsonl``).

    Rows are grouped by (``message.id``, ``requestId``), or by ``message.id`` alone when ``requestId`` is missing,
    across all files, and each group keeps its row with the most ``output_tokens``. Grouping is needed because one
    response is written once per content block with the full usage repeated, streaming writes early rows with
    placeholder output counts, and resumed or forked files copy earlier rows. Synthetic error rows, rows without a
    message id and unreadable files are ignored.
    """
    best: dict[tuple[str, str | None], tuple[int, str, Mapping[str, Any]]] = {}
    for path in paths:
        for row in _json_rows(path):
            billable = _billable(row)
            if billable is None:
                continue
            key, model, usage = billable
            output = _int(usage.get("output_tokens"))
            if key not in best or output > best[key][0]:
                best[key] = (output, model, usage)
    models: dict[str, ModelTotals] = {}
    for _, model, usage in best.values():
        totals = models.setdefault(model, {name: 0 for name in TOKEN_FIELDS})
        for name in TOKEN_FIELDS:
            totals[name] += _int(usage.get(name))
    for model, totals in models.items():
        totals["cost_usd"] = _cost(totals, model_price(model, prices))
    return _usage_from_models(models, sum(float(totals["cost_usd"]) for totals in models.values()))
