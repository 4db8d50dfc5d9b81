"""Summaries of completed tasks: the extractive default, Ollama's /api/generate against a real loopback stand-in
with every way it can fail falling back to the extractive line, config validation, and the background upgrade of
a project's recent_changes on a real store."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest

from claudenest.errors import ConfigError
from claudenest.relay.rag import ContextService, updated_recent_changes
from claudenest.relay.summarize import (
    DEFAULT_OLLAMA_SUMMARY_MODEL,
    NUM_PREDICT,
    ExtractiveSummarizer,
    OllamaSummarizer,
    Summarizer,
    clean_summary,
    first_sentence,
    make_summarizer,
)
from claudenest.store import Store
from claudenest.store.activity import Actor
from tests.ollama_standin import FakeOllama, refused_url

TITLE = "Add coupon codes"
REPORT = "Coupons are validated at checkout and stored per order. Also refactored the cart totals."
EXTRACTIVE = "Coupons are validated at checkout and stored per order."


@pytest.fixture
def ollama() -> Iterator[FakeOllama]:
    with FakeOllama() as server:
        yield server


def ollama_summarizer(url: str, **options: Any) -> OllamaSummarizer:
    summarizer = make_summarizer({"kind": "ollama", "url": url, **options})
    assert isinstance(summarizer, OllamaSummarizer)
    return summarizer


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


# -------------------------------------------------------------------------------------------------- extractive


async def test_default_is_extractive() -> None:
    for config in (None, {}, {"kind": "extractive"}):
        summarizer = make_summarizer(config)
        assert isinstance(summarizer, ExtractiveSummarizer)
        assert isinstance(summarizer, Summarizer)
        assert summarizer.name == "extractive"
        assert await summarizer.summarize(TITLE, REPORT) == EXTRACTIVE


def test_first_sentence_is_one_bounded_line() -> None:
    assert first_sentence("Fixed the\nlogin   bug. Then more.") == "Fixed the login bug."
    long = first_sentence("word " * 100)
    assert len(long) == 200
    assert long.endswith("…")
    assert updated_recent_changes("- old: line", "T", "Did\nit. Detail.") == "- T: Did it.\n- old: line"


@pytest.mark.parametrize(
    ("answer", "cleaned"),
    [
        ("Coupons are validated at checkout.", "Coupons are validated at checkout."),
        ("  Here is a one-sentence summary:\n\n**Coupons are checked.**\n\nMore text.", "Coupons are checked."),
        ('"Coupons are checked."', "Coupons are checked."),
        ("- Summary: coupons are checked", "coupons are checked"),
        ("Add coupon codes: coupons are checked.", "coupons are checked."),
        ("<think>What did it do?\nHmm.</think>\nCoupons are checked.", "Coupons are checked."),
        ("<think>The task is about coupons and", ""),
        ("", ""),
        ("  \n ... \n", ""),
        ("1.", ""),
    ],
)
def test_clean_summary(answer: str, cleaned: str) -> None:
    assert clean_summary(answer, TITLE) == cleaned


def test_clean_summary_bounds_the_length() -> None:
    line = clean_summary("coupon " * 80)
    assert len(line) == 200
    assert line.endswith("…")


# ---------------------------------------------------------------------------------------------------- config


def test_ollama_defaults() -> None:
    summarizer = make_summarizer({"kind": "ollama"})
    assert isinstance(summarizer, OllamaSummarizer)
    assert (summarizer.url, summarizer.model, summarizer.timeout) == ("http://127.0.0.1:11434", "llama3.2:1b", 60.0)
    assert summarizer.name == f"ollama:{DEFAULT_OLLAMA_SUMMARY_MODEL}"
    assert summarizer.failures == 0
    assert summarizer.last_error is None


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"kind": "gpt"}, r"unknown summarizer kind 'gpt'; choose one of: extractive, ollama"),
        ({"kind": 3}, r"unknown summarizer kind 3"),
        ({"kind": "extractive", "model": "x"}, r"summarizer extractive: unknown option\(s\) model \(known: none\)"),
        ({"kind": "ollama", "modle": "x"}, r"ollama: unknown option\(s\) modle \(known: model, timeout, url"),
        ({"kind": "ollama", "url": "127.0.0.1:11434"}, r"url must start with http:// or https://"),
        ({"kind": "ollama", "url": ""}, r"url must be a non-empty string"),
        ({"kind": "ollama", "model": 7}, r"model must be a non-empty string, not 7"),
        ({"kind": "ollama", "timeout": 0}, r"timeout must be a positive number of seconds, not 0"),
        ({"kind": "ollama", "timeout": True}, r"timeout must be a positive number"),
        ({"kind": "ollama", "timeout": "5"}, r"timeout must be a positive number"),
        ("ollama", r"\[context.summarizer\] in config.toml must be a table"),
    ],
)
def test_config_errors(config: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_summarizer(config)


def test_context_service_reads_the_summarizer_table() -> None:
    store: Any = None  # building the service touches no store
    assert isinstance(ContextService(store).summarizer, ExtractiveSummarizer)
    built = ContextService(store, {"summarizer": {"kind": "ollama", "model": "qwen2.5:0.5b"}}).summarizer
    assert isinstance(built, OllamaSummarizer)
    assert built.model == "qwen2.5:0.5b"
    with pytest.raises(ConfigError, match="unknown summarizer kind"):
        ContextService(store, {"summarizer": {"kind": "nope"}})


# ---------------------------------------------------------------------------------------------------- ollama


async def test_ollama_summarizes_with_generate(ollama: FakeOllama) -> None:
    ollama.plan.reply = "Here is the summary:\n\nCoupon codes are now checked at checkout.\n"
    summarizer = ollama_summarizer(ollama.url + "/", model="qwen2.5:0.5b", timeout=5)
    assert await summarizer.summarize(TITLE, REPORT) == "Coupon codes are now checked at checkout."
    (request,) = ollama.plan.requests
    assert request["path"] == "/api/generate"
    assert request["content_type"].startswith("application/json")
    body = request["body"]
    assert set(body) == {"model", "prompt", "stream", "options"}
    assert (body["model"], body["stream"], body["options"]) == ("qwen2.5:0.5b", False, {"num_predict": NUM_PREDICT})
    assert TITLE in body["prompt"]
    assert REPORT in body["prompt"]
    assert (summarizer.calls, summarizer.failures, summarizer.last_error) == (1, 0, None)


async def test_ollama_prompt_text_is_bounded(ollama: FakeOllama) -> None:
    await ollama_summarizer(ollama.url).summarize(TITLE, "x" * 100_000)
    assert len(ollama.plan.requests[0]["body"]["prompt"]) < 7_000


@pytest.mark.parametrize(
    ("status", "body", "reply", "message"),
    [
        (
            HTTPStatus.NOT_FOUND,
            {"error": 'model "llama3.2:1b" not found, try pulling it first'},
            None,
            r"ollama has no model 'llama3.2:1b' .*run `ollama pull llama3.2:1b`",
        ),
        (
            HTTPStatus.INTERNAL_SERVER_ERROR,
            {"error": "llama runner process has terminated"},
            None,
            r"answered HTTP 500: llama runner process has terminated",
        ),
        (200, b"<html>proxy error</html>", None, r"answered with invalid JSON"),
        (200, {"model": "llama3.2:1b", "done": True}, None, r'the answer has no "response" text'),
        (200, None, "", r"gave an empty or unusable answer"),
        (200, None, "**...**", r"gave an empty or unusable answer"),
    ],
)
async def test_ollama_failures_fall_back_to_extractive(
    ollama: FakeOllama, caplog: pytest.LogCaptureFixture, status: int, body: Any, reply: str | None, message: str
) -> None:
    ollama.plan.status, ollama.plan.body = status, body
    if reply is not None:
        ollama.plan.reply = reply
    summarizer = ollama_summarizer(ollama.url)
    assert await summarizer.summarize(TITLE, REPORT) == EXTRACTIVE
    assert summarizer.failures == 1
    assert summarizer.last_error is not None
    (warning,) = warnings(caplog)
    assert "using the extractive summary" in warning
    assert re.search(message, warning), warning


async def test_ollama_timeout_falls_back(ollama: FakeOllama, caplog: pytest.LogCaptureFixture) -> None:
    ollama.plan.delay = 1.0
    summarizer = ollama_summarizer(ollama.url, timeout=0.2)
    assert await summarizer.summarize(TITLE, REPORT) == EXTRACTIVE
    assert summarizer.failures == 1
    assert "did not answer within 0.2 s" in warnings(caplog)[0]


async def test_ollama_connection_refused_falls_back(caplog: pytest.LogCaptureFixture) -> None:
    url = refused_url()
    summarizer = ollama_summarizer(url, timeout=2)
    assert await summarizer.summarize(TITLE, REPORT) == EXTRACTIVE
    assert f"cannot reach ollama at {url}" in warnings(caplog)[0]


async def test_one_warning_per_change_of_state(ollama: FakeOllama, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="claudenest.relay.summarize")
    summarizer = ollama_summarizer(ollama.url)
    ollama.plan.status, ollama.plan.body = 500, {"error": "busy"}
    for _ in range(5):
        assert await summarizer.summarize(TITLE, REPORT) == EXTRACTIVE
    assert summarizer.failures == 5
    assert len(warnings(caplog)) == 1
    ollama.plan.status, ollama.plan.body = 200, b"not json"  # failing another way is news
    await summarizer.summarize(TITLE, REPORT)
    assert len(warnings(caplog)) == 2
    ollama.plan.status, ollama.plan.body = 200, None
    assert await summarizer.summarize(TITLE, REPORT) == "Added the thing."
    assert summarizer.last_error is None
    assert any("answers again" in r.getMessage() for r in caplog.records if r.levelno == logging.INFO)
    ollama.plan.status, ollama.plan.body = 500, {"error": "busy"}
    await summarizer.summarize(TITLE, REPORT)
    assert len(warnings(caplog)) == 3
    assert (summarizer.calls, summarizer.failures) == (8, 7)


# ------------------------------------------------------------------------------------- recent_changes upgrade


@dataclass
class Nest:
    """A real store with one project, and the context services a test made on it (stopped at teardown)."""

    store: Store
    project: dict[str, Any]
    services: list[ContextService] = field(default_factory=list)

    def service(self, summarizer: dict[str, Any] | None = None) -> ContextService:
        self.services.append(ContextService(self.store, {"summarizer": summarizer} if summarizer else None))
        return self.services[-1]

    async def push(self, title: str, report: str) -> None:
        """The completion's own transaction: the extractive line on top of recent_changes."""
        await self.store.projects.update(
            self.project["id"],
            lambda p: {"recent_changes": updated_recent_changes(p["recent_changes"], title, report)},
            Actor("worker"),
        )

    async def complete(self, service: ContextService, title: str, report: str) -> None:
        """What the completion route does after the task's own transaction."""
        await self.push(title, report)
        service.upgrade_recent_change(self.project["id"], title, report)

    async def recent(self) -> list[str]:
        return str((await self.store.projects.get(self.project["id"]))["recent_changes"]).splitlines()

    async def summarizer_updates(self) -> int:
        activity = await self.store.activity.of_project(self.project["id"], limit=100)
        return sum(a["kind"] == "project_updated" and a["message"].startswith("summarizer ") for a in activity)


@pytest.fixture
async def nest(tmp_path: Path) -> AsyncIterator[Nest]:
    store = await Store.open(tmp_path / "relay.db")
    user = await store.users.create("owner@example.com", is_owner=True)
    made = Nest(store, await store.projects.create(user["id"], name="nest", project_path="/home/me/nest"))
    try:
        yield made
    finally:
        for service in made.services:
            await service.stop()
        await store.close()


async def settled(service: ContextService) -> None:
    while service._summaries:
        await asyncio.gather(*service._summaries)


async def test_the_extractive_line_is_upgraded_in_place(nest: Nest, ollama: FakeOllama) -> None:
    service = nest.service({"kind": "ollama", "url": ollama.url})
    await nest.complete(service, "first", "First thing done. Details.")
    await settled(service)
    ollama.plan.reply = "Coupon codes are checked at checkout."
    await nest.complete(service, TITLE, REPORT)
    assert (await nest.recent())[0] == f"- {TITLE}: {EXTRACTIVE}"  # written at once, extractively
    await settled(service)
    assert await nest.recent() == [f"- {TITLE}: Coupon codes are checked at checkout.", "- first: Added the thing."]
    assert await nest.summarizer_updates() == 2


async def test_a_line_pushed_out_meanwhile_is_left_alone(nest: Nest, ollama: FakeOllama) -> None:
    service = nest.service({"kind": "ollama", "url": ollama.url})
    async with service._summarizing:  # the summarizer is busy while ten newer completions push "old" out
        await nest.complete(service, "old", "Old thing.")
        for n in range(10):
            await nest.push(f"t{n}", "Done.")
    before = await nest.recent()
    await settled(service)
    assert len(ollama.plan.requests) == 1
    assert await nest.recent() == before
    assert await nest.summarizer_updates() == 0


async def test_extractive_summarizer_schedules_nothing(nest: Nest) -> None:
    service = nest.service()
    await nest.complete(service, TITLE, REPORT)
    assert not service._summaries
    assert await nest.recent() == [f"- {TITLE}: {EXTRACTIVE}"]


async def test_ollama_down_keeps_the_extractive_line(nest: Nest) -> None:
    service = nest.service({"kind": "ollama", "url": refused_url(), "timeout": 2})
    await nest.complete(service, TITLE, REPORT)
    await settled(service)
    assert await nest.recent() == [f"- {TITLE}: {EXTRACTIVE}"]
    assert isinstance(service.summarizer, OllamaSummarizer)
    assert service.summarizer.failures == 1
    assert await nest.summarizer_updates() == 0


async def test_stop_cancels_pending_summaries(nest: Nest, ollama: FakeOllama) -> None:
    ollama.plan.delay = 2.0
    service = nest.service({"kind": "ollama", "url": ollama.url})
    for n in range(3):
        await nest.complete(service, f"t{n}", "Done.")
    pending = set(service._summaries)
    assert len(pending) == 3
    await service.stop()  # no "Task was destroyed but it is pending" (warnings are errors here)
    assert all(task.cancelled() for task in pending)
    assert not service._summaries
