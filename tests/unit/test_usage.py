"""Token and cost accounting: result lines, transcripts with their duplicated rows, and the stream-json reader."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from claudenest.agent.usage import (
    MAX_LINE_BYTES,
    StreamJsonParser,
    Usage,
    model_price,
    render_event,
    transcript_path,
    usage_from_result,
    usage_from_transcript,
)

# --- result lines ---------------------------------------------------------------------------------------------------

RESULT = {
    "type": "result",
    "subtype": "success",
    "is_error": False,
    "num_turns": 3,
    "total_cost_usd": 0.125,
    # The main loop of the last turn only; modelUsage below is the cumulative, subagent-inclusive view.
    "usage": {"input_tokens": 5, "output_tokens": 7, "cache_creation_input_tokens": 11, "cache_read_input_tokens": 13},
    "modelUsage": {
        "claude-opus-4-8": {
            "inputTokens": 100,
            "outputTokens": 200,
            "cacheReadInputTokens": 3000,
            "cacheCreationInputTokens": 400,
            "webSearchRequests": 0,
            "costUSD": 0.1,
            "contextWindow": 200000,
        },
        "claude-haiku-4-5": {"inputTokens": 10, "outputTokens": 20, "costUSD": 0.025},
    },
}


def test_result_line_sums_model_usage_and_takes_the_reported_cost() -> None:
    usage = usage_from_result(RESULT)
    assert (usage.input_tokens, usage.output_tokens) == (110, 220)
    assert (usage.cache_creation_input_tokens, usage.cache_read_input_tokens) == (400, 3000)
    assert usage.total_tokens == 3730
    assert usage.cost_usd == 0.125
    assert usage.models == {
        "claude-opus-4-8": {
            "input_tokens": 100,
            "output_tokens": 200,
            "cache_creation_input_tokens": 400,
            "cache_read_input_tokens": 3000,
            "cost_usd": 0.1,
        },
        "claude-haiku-4-5": {
            "input_tokens": 10,
            "output_tokens": 20,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cost_usd": 0.025,
        },
    }


def test_result_line_without_model_usage_falls_back_to_usage() -> None:
    line = {k: v for k, v in RESULT.items() if k != "modelUsage"}
    usage = usage_from_result(line)
    assert (usage.input_tokens, usage.output_tokens, usage.cache_creation_input_tokens) == (5, 7, 11)
    assert usage.cache_read_input_tokens == 13
    assert usage.cost_usd == 0.125
    assert usage.models == {}


def test_not_logged_in_result_is_all_zero() -> None:
    line = {
        "type": "result",
        "subtype": "success",
        "is_error": True,
        "result": "Not logged in · Please run /login",
        "total_cost_usd": 0,
        "usage": {"input_tokens": 0, "output_tokens": 0},
        "modelUsage": {},
    }
    assert usage_from_result(line) == Usage()


def test_missing_and_junk_fields_count_as_zero() -> None:
    assert usage_from_result({}) == Usage()
    junk = {
        "total_cost_usd": "lots",
        "usage": ["not", "a", "dict"],
        "modelUsage": {"m": {"inputTokens": "12", "outputTokens": None, "costUSD": float("nan")}, "n": 5},
    }
    usage = usage_from_result(junk)
    assert usage.total_tokens == 0
    assert usage.cost_usd == 0.0
    assert set(usage.models) == {"m", "n"}


def test_cost_falls_back_to_the_sum_of_model_costs() -> None:
    line = {k: v for k, v in RESULT.items() if k != "total_cost_usd"}
    assert usage_from_result(line).cost_usd == pytest.approx(0.125)


def test_usage_to_dict_is_json_ready() -> None:
    data = usage_from_result(RESULT).to_dict()
    assert data["total_tokens"] == 3730
    assert list(data["models"]) == ["claude-haiku-4-5", "claude-opus-4-8"]
    assert json.loads(json.dumps(data)) == data
    hash(usage_from_result(RESULT))  # frozen and hashable despite the models dict


# --- transcripts ----------------------------------------------------------------------------------------------------


def _assistant(
    message_id: str,
    model: str,
    tokens: tuple[int, int, int, int],
    *,
    request_id: str | None = None,
    block: dict[str, Any] | None = None,
) -> dict[str, Any]:
    inp, out, write, read = tokens
    row: dict[str, Any] = {
        "type": "assistant",
        "uuid": f"u-{message_id}-{out}",
        "sessionId": "s1",
        "message": {
            "id": message_id,
            "model": model,
            "role": "assistant",
            "content": [block or {"type": "text", "text": "..."}],
            "usage": {
                "input_tokens": inp,
                "output_tokens": out,
                "cache_creation_input_tokens": write,
                "cache_read_input_tokens": read,
            },
        },
    }
    if request_id is not None:
        row["requestId"] = request_id
    return row


def _write_jsonl(path: Path, rows: list[dict[str, Any] | str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


SONNET, HAIKU, OPUS = "claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-8[1m]"
MSG1 = (100, 50, 1000, 5000)  # one response, written as thinking + text + tool_use rows after a prelim row


@pytest.fixture
def transcripts(tmp_path: Path) -> list[Path]:
    main = _write_jsonl(
        tmp_path / "projects" / "-w" / "s1.jsonl",
        [
            {"type": "user", "message": {"role": "user", "content": "hi"}},
            _assistant("msg_1", SONNET, (100, 1, 1000, 5000), request_id="req_1"),  # streaming placeholder
            _assistant("msg_1", SONNET, MSG1, request_id="req_1", block={"type": "thinking", "thinking": "."}),
            _assistant("msg_1", SONNET, MSG1, request_id="req_1", block={"type": "text", "text": "ok"}),
            _assistant("msg_1", SONNET, MSG1, request_id="req_1", block={"type": "tool_use", "name": "Bash"}),
            _assistant("msg_2", SONNET, (10, 200, 0, 6000), request_id="req_2"),
            # No requestId (a gateway dropped it): grouped by message id alone; the later, smaller row must not win.
            _assistant("msg_3", HAIKU, (20, 30, 0, 0)),
            _assistant("msg_3", HAIKU, (20, 5, 0, 0)),
            _assistant("err_1", "<synthetic>", (999, 999, 999, 999)),
            '{"type": "assistant", "message": {"id": "msg_9", ',  # cut off mid-write
            "[1, 2, 3]",
            "",
        ],
    )
    # A subagent or resumed file that copies earlier rows and adds one of its own.
    copy = _write_jsonl(
        tmp_path / "projects" / "-w" / "s1" / "subagents" / "agent-a.jsonl",
        [
            _assistant("msg_1", SONNET, MSG1, request_id="req_1"),
            _assistant("msg_2", SONNET, (10, 200, 0, 6000), request_id="req_2"),
            _assistant("msg_3", HAIKU, (20, 30, 0, 0)),
            _assistant("msg_5", OPUS, (7, 70, 700, 7000), request_id="req_5"),
        ],
    )
    return [main, copy]


def test_transcript_totals_are_deduplicated(transcripts: list[Path]) -> None:
    usage = usage_from_transcript(transcripts)
    assert usage.models[SONNET] == {
        "input_tokens": 110,
        "output_tokens": 250,
        "cache_creation_input_tokens": 1000,
        "cache_read_input_tokens": 11000,
        "cost_usd": pytest.approx(0.01113),  # 110*3 + 250*15 + 1000*3.75 + 11000*0.30 per Mtok
    }
    assert usage.models[HAIKU] == {
        "input_tokens": 20,
        "output_tokens": 30,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cost_usd": pytest.approx(0.00017),
    }
    assert usage.models[OPUS]["output_tokens"] == 70
    assert usage.models[OPUS]["cost_usd"] == pytest.approx(0.00966)
    assert set(usage.models) == {SONNET, HAIKU, OPUS}  # the synthetic row is not a model
    assert (usage.input_tokens, usage.output_tokens) == (137, 350)
    assert (usage.cache_creation_input_tokens, usage.cache_read_input_tokens) == (1700, 18000)
    assert usage.total_tokens == 20187
    assert usage.cost_usd == pytest.approx(0.01113 + 0.00017 + 0.00966)


def test_naive_sum_would_overcount(transcripts: list[Path]) -> None:
    # Guards the fixture: without deduplication the same rows give far more output tokens.
    naive = 0
    for path in transcripts:
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and row.get("type") == "assistant":
                naive += row["message"]["usage"]["output_tokens"]
    assert naive > 3 * usage_from_transcript(transcripts).output_tokens


def test_file_order_does_not_matter(transcripts: list[Path]) -> None:
    assert usage_from_transcript(reversed(transcripts)) == usage_from_transcript(transcripts)


def test_same_message_id_with_another_request_id_is_another_call(tmp_path: Path) -> None:
    path = _write_jsonl(
        tmp_path / "t.jsonl",
        [
            _assistant("msg_1", SONNET, (1, 10, 0, 0), request_id="req_a"),
            _assistant("msg_1", SONNET, (1, 10, 0, 0), request_id="req_b"),
        ],
    )
    assert usage_from_transcript([path]).output_tokens == 20


def test_missing_files_and_prices(tmp_path: Path, transcripts: list[Path]) -> None:
    assert usage_from_transcript([tmp_path / "gone.jsonl"]) == Usage()
    prices = {SONNET: (1.0, 1.0, 1.0, 1.0), "haiku": (0.0, 0.0, 0.0, 0.0)}
    usage = usage_from_transcript([*transcripts, tmp_path / "gone.jsonl"], prices)
    assert usage.models[SONNET]["cost_usd"] == pytest.approx(12360 / 1e6)  # every sonnet token at $1/Mtok
    assert usage.models[HAIKU]["cost_usd"] == 0.0
    assert usage.models[OPUS]["cost_usd"] == pytest.approx(0.00966)  # still the built-in estimate


def test_unknown_model_has_tokens_but_no_cost(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "t.jsonl", [_assistant("m", "fable-1", (5, 5, 0, 0), request_id="r")])
    usage = usage_from_transcript([path])
    assert (usage.total_tokens, usage.cost_usd) == (10, 0.0)


def test_model_price_lookup_order() -> None:
    assert model_price("claude-opus-4-8[1m]") == (5.0, 25.0, 6.25, 0.50)
    assert model_price("claude-3-7-sonnet-20250219") == (3.0, 15.0, 3.75, 0.30)
    assert model_price("gpt-5") is None
    custom = {"claude-opus": (1.0, 2.0, 3.0, 4.0), "claude-opus-4-8": (9.0, 9.0, 9.0, 9.0)}
    assert model_price("claude-opus-4-8[1m]", custom) == (9.0, 9.0, 9.0, 9.0)  # longest matching key
    assert model_price("claude-opus-4-1", custom) == (1.0, 2.0, 3.0, 4.0)


@pytest.mark.parametrize(
    ("cwd", "directory"),
    [
        ("/home/u/my proj_x.v2", "-home-u-my-proj-x-v2"),  # the example observed in research §6
        ("/srv/café", "-srv-caf-"),  # only ASCII letters and digits survive
        ("/srv/a😀b", "-srv-a--b"),  # one character, two UTF-16 code units
    ],
)
def test_transcript_path(cwd: str, directory: str) -> None:
    path = transcript_path(Path("/cfg"), cwd, "0b4c-uuid")
    assert path == Path("/cfg/projects") / directory / "0b4c-uuid.jsonl"


# --- stream-json parsing --------------------------------------------------------------------------------------------


def test_partial_lines_wait_for_their_newline() -> None:
    parser = StreamJsonParser()
    assert parser.feed(b'{"type":"system","subtype":"in') == []
    assert parser.feed(b'it"}\r\n\n   \n{"type":"result"}') == [{"type": "system", "subtype": "init"}]
    assert parser.feed(b"\n") == [{"type": "result"}]
    assert parser.flush() == []


def test_lines_that_are_not_json_objects_are_returned_unparsed() -> None:
    parser = StreamJsonParser()
    events = parser.feed(b'Error: something\n[1, 2]\n"text"\n\xff\xfe{}\n{"ok": "\xc3\xa9"}\n' + b"[" * 100_000 + b"\n")
    assert events[:4] == [
        {"type": "_unparsed", "text": "Error: something"},
        {"type": "_unparsed", "text": "[1, 2]"},
        {"type": "_unparsed", "text": '"text"'},
        {"type": "_unparsed", "text": "\ufffd\ufffd{}"},
    ]
    assert events[4] == {"ok": "é"}
    assert events[5]["type"] == "_unparsed"  # deep nesting is not a crash
    assert len(events) == 6


def test_flush_parses_a_last_line_without_newline() -> None:
    parser = StreamJsonParser()
    assert parser.feed(b'{"a": 1}\n{"b": 2}') == [{"a": 1}]
    assert parser.flush() == [{"b": 2}]
    assert parser.flush() == []


def test_over_long_line_is_dropped_and_the_stream_continues() -> None:
    parser = StreamJsonParser(max_line_bytes=16)
    events = parser.feed(b'{"x":"0123456"}\n')  # 15 bytes: within the limit
    events += parser.feed(b'{"x":"01234567890')  # 17 bytes and no newline yet: dropped at once
    assert events[0] == {"x": "0123456"}
    assert events[1]["type"] == "_unparsed"
    assert "dropped" in events[1]["error"]
    assert parser.feed(b"more of the same line") == []
    assert parser.feed(b'"}\n{"y":1}\n') == [{"y": 1}]


def test_default_limit_is_ten_mebibytes() -> None:
    parser = StreamJsonParser()
    chunk = b"x" * (1024 * 1024)
    events: list[dict[str, Any]] = []
    for _ in range(10):
        events += parser.feed(chunk)
    assert events == []  # exactly 10 MiB is still allowed
    events += parser.feed(b"x")
    assert len(events) == 1
    assert events[0]["type"] == "_unparsed"
    assert str(MAX_LINE_BYTES) in events[0]["error"]
    assert parser.feed(b'x\n{"after": true}\n') == [{"after": True}]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
stream_lines = st.one_of(
    st.dictionaries(st.text(max_size=8), json_values, max_size=4).map(lambda d: json.dumps(d, ensure_ascii=False)),
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\n\r"), max_size=30),  # mostly not JSON
    st.sampled_from(["", "   ", "[1]", "{", "null"]),
)


@settings(database=None, max_examples=300)
@given(
    lines=st.lists(stream_lines, max_size=12),
    crlf=st.booleans(),
    limit=st.sampled_from([8, 40, MAX_LINE_BYTES]),
    cuts=st.lists(st.integers(0, 4000), max_size=20),
)
def test_chunked_feeding_matches_whole_buffer(lines: list[str], crlf: bool, limit: int, cuts: list[int]) -> None:
    data = ("\r\n" if crlf else "\n").join(lines).encode("utf-8")
    whole = StreamJsonParser(limit)
    expected = whole.feed(data) + whole.flush()

    chunked = StreamJsonParser(limit)
    got: list[dict[str, Any]] = []
    bounds = sorted({0, len(data), *(cut % (len(data) + 1) for cut in cuts)})
    for start, end in zip(bounds, bounds[1:], strict=False):
        got += chunked.feed(data[start:end])
    got += chunked.flush()
    assert got == expected

    if limit == MAX_LINE_BYTES:  # nothing is dropped, so every JSON object line comes back as written
        objects = [value for value in map(_json_or_none, lines) if isinstance(value, dict)]
        assert [event for event in expected if event.get("type") != "_unparsed"] == objects


def _json_or_none(line: str) -> object:
    try:
        return json.loads(line)
    except ValueError:
        return None


# --- rendering ------------------------------------------------------------------------------------------------------


def test_render_init() -> None:
    event = {
        "type": "system",
        "subtype": "init",
        "claude_code_version": "2.1.197",
        "model": "claude-opus-4-8[1m]",
        "cwd": "/home/u/proj",
        "session_id": "s",
    }
    assert render_event(event) == "[claude 2.1.197 model claude-opus-4-8[1m] in /home/u/proj]\r\n"


def test_render_assistant_text_and_tools() -> None:
    event = {
        "type": "assistant",
        "message": {
            "content": [
                {"type": "thinking", "thinking": "secret plan"},
                {"type": "text", "text": "Looking.\nTwo lines."},
                {"type": "tool_use", "name": "Bash", "input": {"command": "ls -la\n  /tmp", "description": "list"}},
                {"type": "tool_use", "name": "Read", "input": {"file_path": "/w/a.py"}},
                {"type": "tool_use", "name": "mcp__x__y", "input": {"n": 1}},
                {"type": "tool_use", "name": "TodoWrite", "input": {}},
            ]
        },
    }
    assert render_event(event) == (
        "Looking.\r\nTwo lines.\r\n"
        "[tool: Bash ls -la /tmp]\r\n"
        "[tool: Read /w/a.py]\r\n"
        '[tool: mcp__x__y {"n":1}]\r\n'
        "[tool: TodoWrite]\r\n"
    )


def test_render_long_tool_input_is_cut() -> None:
    event = {
        "type": "assistant",
        "message": {"content": [{"type": "tool_use", "name": "Bash", "input": {"command": "x" * 500}}]},
    }
    text = render_event(event)
    assert text.startswith("[tool: Bash xxx")
    assert text.endswith("…]\r\n")
    assert len(text) < 100


def test_render_strips_terminal_control_sequences() -> None:
    event = {"type": "assistant", "message": {"content": [{"type": "text", "text": "a\x1b]0;pwned\x07b\x9bc\rd"}]}}
    text = render_event(event)
    assert "\x1b" not in text
    assert "\x07" not in text
    assert "\x9b" not in text
    assert text == "a]0;pwnedbcd\r\n"


@pytest.mark.parametrize(
    ("event", "text"),
    [
        (
            {"type": "result", "subtype": "success", "is_error": False, "total_cost_usd": 0.01234, "num_turns": 3},
            "[result: ok, cost $0.0123, 3 turns]\r\n",
        ),
        (
            {
                "type": "result",
                "subtype": "success",
                "is_error": True,
                "result": "Not logged in · Please run /login",
                "total_cost_usd": 0,
                "num_turns": 1,
            },
            "[result: error, cost $0.0000, 1 turn: Not logged in · Please run /login]\r\n",
        ),
        (
            {"type": "result", "subtype": "error_max_turns", "is_error": True},
            "[result: error (error_max_turns), cost $0.0000]\r\n",
        ),
        (
            {"type": "system", "subtype": "api_retry", "attempt": 2, "max_retries": 10, "error": "overloaded"},
            "[api retry 2/10: overloaded]\r\n",
        ),
        ({"type": "system", "subtype": "hook_progress"}, ""),
        ({"type": "stream_event", "event": {"type": "content_block_delta"}}, ""),
        ({"type": "user", "message": {"content": [{"type": "tool_result", "content": "fine"}]}}, ""),
        (
            {
                "type": "user",
                "message": {"content": [{"type": "tool_result", "is_error": True, "content": "No such file"}]},
            },
            "[tool error: No such file]\r\n",
        ),
        ({"type": "user", "isReplay": True, "message": {"content": "fix the bug"}}, "> fix the bug\r\n"),
        ({"type": "_unparsed", "text": "Error: boom"}, "Error: boom\r\n"),
        ({"type": "something-new"}, ""),
    ],
)
def test_render_other_events(event: dict[str, Any], text: str) -> None:
    assert render_event(event) == text
