"""One-line summaries of completed tasks for a project's ``recent_changes``: Ollama when configured, extractive else.

``make_summarizer(config)`` reads the relay's ``[context.summarizer]`` table:

- ``kind = "extractive"`` (the default): the first sentence of the completion summary, no model, no network.
- ``kind = "ollama"``: Ollama's ``POST /api/generate`` (``url``, default ``http://127.0.0.1:11434``; ``model``,
  default ``llama3.2:1b``, about 1.3 GB and quick on a CPU; ``timeout`` in seconds, default 60). Its answer is
  cleaned to one bounded line. When Ollama fails (unreachable, slow, an HTTP error, a malformed or empty answer)
  the extractive line is used instead: a summary is never lost to an LLM outage. Failures are counted in
  ``failures`` and logged once per change of state, not once per call.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Protocol, runtime_checkable

import httpx

from claudenest.errors import ClaudenestError, ConfigError
from claudenest.relay.embedders import DEFAULT_OLLAMA_URL, ollama_error_detail

log = logging.getLogger(__name__)

KINDS = ("extractive", "ollama")
DEFAULT_KIND = "extractive"
DEFAULT_OLLAMA_SUMMARY_MODEL = "llama3.2:1b"
DEFAULT_TIMEOUT = 60.0  # a cold model load on a CPU takes a while; summaries are made in the background anyway
MAX_SUMMARY_CHARS = 200
MAX_PROMPT_TEXT_CHARS = 6000  # the completion summary is cut to this before it goes into the prompt
NUM_PREDICT = 96  # tokens: room for one sentence and a little preamble to strip

PROMPT = (
    "Write one short sentence, at most 25 words, for a changelog: what did this completed software task change? "
    "Answer with that sentence only: no preamble, no quotes, no markdown.\n\n"
    "Task: {title}\n"
    "Report by the developer:\n{text}\n"
)


class SummarizerError(ClaudenestError):
    """A summarizer backend failed; ``kind`` names the failure (timeout, unreachable, no model, http error,
    invalid answer, empty answer) without the details that vary from call to call."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


@runtime_checkable
class Summarizer(Protocol):
    """Turns a completed task's title and summary into one line for ``recent_changes``."""

    name: str

    async def summarize(self, title: str, text: str) -> str: ...


def bounded(text: str, limit: int = MAX_SUMMARY_CHARS) -> str:
    """``text`` if it fits in ``limit`` characters, else cut to ``limit - 1`` and an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def first_sentence(text: str, limit: int = MAX_SUMMARY_CHARS) -> str:
    """The extractive summary: the first sentence, on one line, trimmed."""
    sentence = re.split(r"(?<=[.!?])\s", " ".join(text.split()), maxsplit=1)[0]
    return bounded(sentence, limit)


class ExtractiveSummarizer:
    """The first sentence of the summary: no model, no network, never fails."""

    name = "extractive"

    async def summarize(self, title: str, text: str) -> str:
        return first_sentence(text)


_THINKING = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_MARKERS = re.compile(r"^(?:[-*+•>#]+\s*|\d+[.)]\s+)+")
_LABEL = re.compile(r"^(?:summary|changelog(?: entry)?|sentence|answer)\s*:\s*", re.IGNORECASE)
_QUOTES = "\"'`“”‘’*_"
_WORD = re.compile(r"[^\W\d_]{2,}")


def clean_summary(answer: str, title: str = "", limit: int = MAX_SUMMARY_CHARS) -> str:
    """One line out of a model's answer: reasoning blocks, a "Here is ...:" preamble, list and heading markers,
    a "Summary:" label, the task's title and surrounding quotes removed; whitespace collapsed; at most ``limit``
    characters. "" when nothing that looks like a sentence is left."""
    answer = _THINKING.sub("", answer)
    if "<think>" in answer.lower():  # reasoning cut off by the token limit: no answer in it
        return ""
    lines = [line.strip() for line in answer.splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):  # "Here is a one-sentence summary:"
        lines = lines[1:]
    if not lines:
        return ""
    line = _LABEL.sub("", _MARKERS.sub("", lines[0]))
    if title and line.lower().startswith(title.lower() + ":"):
        line = line[len(title) + 1 :]
    line = " ".join(line.strip(_QUOTES + " ").split())
    if not _WORD.search(line):
        return ""
    return bounded(line, limit)


class OllamaSummarizer:
    """Ollama's ``POST /api/generate`` ``{"model", "prompt", "stream": false, "options"}`` -> ``{"response"}``,
    falling back to the extractive summary on any failure."""

    def __init__(
        self, url: str = DEFAULT_OLLAMA_URL, model: str = DEFAULT_OLLAMA_SUMMARY_MODEL, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"summarizer ollama: url must start with http:// or https://, not {url!r}")
        self.url = url.rstrip("/")
        self.model = model
        self.timeout = timeout
        self.name = f"ollama:{model}"
        self.fallback = ExtractiveSummarizer()
        self.calls = 0
        self.failures = 0
        self.last_error: str | None = None  # None while the last call succeeded (or before the first)
        self._failing: str | None = None  # the kind of the last failure, while failing

    async def summarize(self, title: str, text: str) -> str:
        self.calls += 1
        try:
            line = clean_summary(await self.generate(title, text), title)
            if not line:
                raise SummarizerError(f"ollama model {self.model!r} gave an empty or unusable answer", "empty answer")
        except SummarizerError as exc:
            self._failed(exc)
            return await self.fallback.summarize(title, text)
        if self.last_error is not None:
            log.info("summarizer %s answers again; summaries come from it again", self.name)
            self.last_error = self._failing = None
        return line

    def _failed(self, error: SummarizerError) -> None:
        """Count every failure; log only a change of state (working -> failing, or failing another way)."""
        self.failures += 1
        if error.kind != self._failing:
            log.warning("summarizer %s failed, using the extractive summary until it recovers: %s", self.name, error)
        self.last_error, self._failing = str(error), error.kind

    async def generate(self, title: str, text: str) -> str:
        """The model's raw answer; raises SummarizerError (with what to do about it) when there is none."""
        endpoint = f"{self.url}/api/generate"
        payload = {
            "model": self.model,
            "prompt": PROMPT.format(title=title, text=text[:MAX_PROMPT_TEXT_CHARS]),
            "stream": False,
            "options": {"num_predict": NUM_PREDICT},
        }
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.post(endpoint, json=payload)
        except httpx.TimeoutException as exc:
            raise SummarizerError(f"ollama at {self.url} did not answer within {self.timeout:g} s", "timeout") from exc
        except httpx.HTTPError as exc:
            reason = str(exc) or type(exc).__name__
            raise SummarizerError(f"cannot reach ollama at {self.url}: {reason}", "unreachable") from exc
        if response.status_code != 200:
            detail = ollama_error_detail(response)
            if response.status_code == 404 and "not found" in detail.lower():
                raise SummarizerError(
                    f"ollama has no model {self.model!r} ({detail}); run `ollama pull {self.model}`", "no model"
                )
            raise SummarizerError(f"ollama {endpoint} answered HTTP {response.status_code}: {detail}", "http error")
        try:
            body = response.json()
        except ValueError as exc:
            raise SummarizerError(f"ollama {endpoint} answered with invalid JSON", "invalid answer") from exc
        answer = body.get("response") if isinstance(body, dict) else None
        if not isinstance(answer, str):
            raise SummarizerError(f'ollama {endpoint}: the answer has no "response" text', "invalid answer")
        return answer


def make_summarizer(config: Any = None) -> Summarizer:
    """Build the summarizer that the ``[context.summarizer]`` table names (extractive when it is absent)."""
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise ConfigError(f"[context.summarizer] in config.toml must be a table, not {config!r}")
    options = dict(config)
    kind = options.pop("kind", DEFAULT_KIND)
    known: dict[str, set[str]] = {"extractive": set(), "ollama": {"url", "model", "timeout"}}
    allowed = known.get(kind) if isinstance(kind, str) else None
    if allowed is None:
        raise ConfigError(f"unknown summarizer kind {kind!r}; choose one of: {', '.join(KINDS)}")
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ConfigError(
            f"summarizer {kind}: unknown option(s) {', '.join(unknown)} (known: {', '.join(sorted(allowed)) or 'none'})"
        )
    if kind == "extractive":
        return ExtractiveSummarizer()
    for key in ("url", "model"):
        if key in options and (not isinstance(options[key], str) or not options[key]):
            raise ConfigError(f"summarizer ollama: {key} must be a non-empty string, not {options[key]!r}")
    timeout = options.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise ConfigError(f"summarizer ollama: timeout must be a positive number of seconds, not {timeout!r}")
    return OllamaSummarizer(
        url=options.get("url", DEFAULT_OLLAMA_URL),
        model=options.get("model", DEFAULT_OLLAMA_SUMMARY_MODEL),
        timeout=float(timeout),
    )
