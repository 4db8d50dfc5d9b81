"""Shared context for a project: add and search chunks, compile a prompt-sized digest, re-embed on embedder change.

The embedder is chosen in the relay's config.toml (``[context.embedder]``, default the offline hashing embedder);
embedding runs in a worker thread so the event loop keeps serving terminals. The summarizer of completed tasks
(``[context.summarizer]``, default extractive) upgrades ``recent_changes`` lines in the background.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from claudenest.errors import ConfigError, NotFound
from claudenest.relay.embedders import Embedder, make_embedder
from claudenest.relay.summarize import ExtractiveSummarizer, Summarizer, first_sentence, make_summarizer
from claudenest.store import Store
from claudenest.store.activity import Actor
from claudenest.store.context import NewChunk, SearchFilter, SearchResult

log = logging.getLogger(__name__)

CHARS_PER_TOKEN = 4  # the usual estimate for English and code; budgets are approximate by nature
MAX_CHUNK_CHARS = 20_000
EMBED_BATCH = 64  # texts per embedder call in a bulk add: one worker-thread trip each, memory bounded
MAX_PENDING_SUMMARIES = 64  # completions waiting for the summarizer beyond this keep their extractive line


def tokens(text: str) -> int:
    return -(-len(text) // CHARS_PER_TOKEN)  # rounded up, so a sum of estimates never undershoots


@dataclass
class ReembedProgress:
    running: bool = False
    done: int = 0
    total: int = 0
    embedder: str = ""
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "running": self.running,
            "done": self.done,
            "total": self.total,
            "embedder": self.embedder,
            "error": self.error,
        }


def _vector_weight(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 100:
        raise ConfigError(f"[context] vector_weight must be a number above 0 and at most 100, not {value!r}")
    return float(value)


class ContextService:
    def __init__(self, store: Store, config: dict[str, Any] | None = None) -> None:
        self.store = store
        self.embedder: Embedder = make_embedder(dict((config or {}).get("embedder", {"kind": "hashing"})))
        self.vector_weight = _vector_weight((config or {}).get("vector_weight", self.embedder.fusion_weight))
        self.progress = ReembedProgress(embedder=self.embedder.name)
        self._job: asyncio.Task[None] | None = None
        self._indexing: asyncio.Task[None] | None = None
        self.indexed_on_start = 0  # chunks from before the current indexes, indexed by the job start() runs
        self.summarizer: Summarizer = make_summarizer((config or {}).get("summarizer"))
        self._summaries: set[asyncio.Task[None]] = set()
        self._summarizing = asyncio.Semaphore(1)  # one request at a time: a local model serves one anyway

    async def embed(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self.embedder.embed, texts)

    async def add(self, project_id: str, content: str, **fields: Any) -> dict[str, Any]:
        (chunk_id,) = await self.add_many(project_id, [{"content": content, **fields}])
        return await self.store.context.get(project_id, chunk_id)

    async def add_many(self, project_id: str, items: Sequence[Mapping[str, Any]]) -> list[str]:
        """Embed ``items`` (``content`` and the optional fields of :class:`NewChunk`) EMBED_BATCH at a time, one
        embedder call per batch, and store them all in one transaction. Returns their ids, in order."""
        contents = [str(item["content"]).strip()[:MAX_CHUNK_CHARS] for item in items]
        files = [list(item.get("files") or []) for item in items]
        texts = [text + ("\n" + " ".join(names) if names else "") for text, names in zip(contents, files, strict=True)]
        vectors: list[list[float]] = []
        for start in range(0, len(texts), EMBED_BATCH):
            vectors += await self.embed(texts[start : start + EMBED_BATCH])
        chunks = [
            NewChunk(
                content,
                vector,
                type=item.get("type") or "note",
                files=tuple(names),
                instance_id=item.get("instance_id"),
                task_id=item.get("task_id"),
                importance=float(item.get("importance", 0.5)),
                expires_at=item.get("expires_at"),
            )
            for item, content, names, vector in zip(items, contents, files, vectors, strict=True)
        ]
        return await self.store.context.insert(project_id, chunks, embedder=self.embedder.name)

    async def query(
        self, project_id: str, text: str, *, limit: int = 5, types: Sequence[str] = (), mode: str = "hybrid"
    ) -> list[SearchResult]:
        flt = SearchFilter(project_id=project_id, types=types)
        if mode == "keyword":
            ranked = await self.store.context.keyword(flt, text, limit)
            return await self._plain(ranked, keyword=True)
        (vector,) = await self.embed([text])
        if mode == "vector":
            return await self._plain(await self.store.context.vector(flt, vector, limit), keyword=False)
        return await self.store.context.hybrid(flt, text, vector, limit, vector_weight=self.vector_weight)

    async def _plain(self, ranked: list[tuple[int, float]], *, keyword: bool) -> list[SearchResult]:
        chunks = await self.store.context.by_n([n for n, _ in ranked])
        results = []
        for rank, (n, value) in enumerate(ranked, 1):
            result = SearchResult(chunk=chunks[n], score=1 / (60 + rank))
            if keyword:
                result.keyword_rank = rank
            else:
                result.vector_rank, result.distance = rank, round(value, 6)
            results.append(result)
        return results

    # -- compiled context --------------------------------------------------------------------------------------

    async def compile(self, project: dict[str, Any], budget_tokens: int, focus: str | None = None) -> str:
        """Project fields, the chunks most relevant to ``focus`` (the current task), and open tasks: within budget."""
        parts: list[str] = []
        used = 0

        def take(text: str) -> bool:
            nonlocal used
            cost = tokens(text + "\n")  # the newline that joins it to the rest counts too
            if used + cost > budget_tokens:
                return False
            parts.append(text)
            used += cost
            return True

        take(f"# Project {project['name']}")
        for field in ("summary", "architecture", "conventions", "current_focus", "recent_changes"):
            value = (project.get(field) or "").strip()
            if value and not take(f"## {field.replace('_', ' ').title()}\n{value}"):
                room = (budget_tokens - used - tokens(field) - 4) * CHARS_PER_TOKEN
                if room > 80:
                    take(f"## {field.replace('_', ' ').title()}\n{value[:room]}…")
        query = focus or project.get("current_focus") or project.get("summary") or project["name"]
        results = await self.query(project["id"], query, limit=8)
        if results and take("## Relevant shared context"):
            for result in results:
                chunk = result.chunk
                files = f" ({', '.join(chunk['files'][:5])})" if chunk["files"] else ""
                if not take(f"- [{chunk['type']}]{files} {chunk['content']}"):
                    break
        tasks = [t for t in await self.store.tasks.for_project(project["id"]) if t["status"] != "done"]
        if tasks and take("## Open tasks"):
            for task in tasks:
                if not take(f"- [{task['priority']}] {task['status']}: {task['title']} ({task['id'][:8]})"):
                    break
        return "\n".join(parts)

    # -- re-embedding ------------------------------------------------------------------------------------------

    def start_reembed(self) -> ReembedProgress:
        """Re-embed chunks made by another embedder, in the background; progress in ``self.progress``."""
        if self._job is None or self._job.done():
            self._job = asyncio.ensure_future(self._reembed())
        return self.progress

    async def _reembed(self) -> None:
        name = self.embedder.name
        stale_total = await self.store.context.count() - await self.store.context.count(name)
        self.progress = ReembedProgress(running=True, total=stale_total, embedder=name)
        try:
            while batch := await self.store.context.stale(name, limit=128):
                vectors = await self.embed([content for _, content in batch])
                for (n, _), vector in zip(batch, vectors, strict=True):
                    await self.store.context.set_embedding(n, vector, name)
                self.progress.done += len(batch)
        except Exception as exc:
            self.progress.error = str(exc)
            log.exception("re-embedding failed")
        finally:
            self.progress.running = False

    # -- index upgrades ----------------------------------------------------------------------------------------

    def start(self) -> None:
        """Index, in the background, chunks stored before the current indexes (a relay upgraded across
        migration 5). Until then searches do not find them; nothing else waits."""
        if self._indexing is None:
            self._indexing = asyncio.ensure_future(self._index_pending())

    async def _index_pending(self) -> None:
        try:
            pending = await self.store.context.count_unindexed()
            if pending:
                log.info("indexing %d context chunks stored before the current search indexes", pending)
            while done := await self.store.context.index_pending(limit=512):
                self.indexed_on_start += done
            if pending:
                log.info("indexed %d context chunks", self.indexed_on_start)
        except Exception:
            log.exception("indexing stored context chunks failed; searches will not find them until a restart")

    async def indexing_done(self) -> None:
        if self._indexing is not None:
            await self._indexing

    async def stop(self) -> None:
        """Cancel the re-embedding and indexing jobs and pending summaries, and wait for them to end."""
        jobs = [job for job in (self._job, self._indexing) if job is not None]
        tasks = [*self._summaries, *jobs]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- summaries of completed tasks ----------------------------------------------------------------------------

    def upgrade_recent_change(self, project_id: str, title: str, summary: str) -> None:
        """After a completion wrote its extractive line into ``recent_changes``: ask the configured summarizer
        (Ollama) for a better line in the background and put it in that line's place. Never blocks the caller."""
        if isinstance(self.summarizer, ExtractiveSummarizer):
            return
        if len(self._summaries) >= MAX_PENDING_SUMMARIES:
            log.warning("%d summaries pending; %r keeps its extractive line", len(self._summaries), title)
            return
        task = asyncio.create_task(self._upgrade(project_id, title, summary), name=f"summarize {title[:40]}")
        self._summaries.add(task)
        task.add_done_callback(self._summaries.discard)

    async def _upgrade(self, project_id: str, title: str, summary: str) -> None:
        old = recent_change_line(title, first_sentence(summary))
        async with self._summarizing:
            new = recent_change_line(title, await self.summarizer.summarize(title, summary))
        if new == old:  # the summarizer fell back to the extractive line
            return
        try:
            await self.store.projects.update(
                project_id, lambda project: replaced_line(project.get("recent_changes"), old, new), SUMMARIZER_ACTOR
            )
        except NotFound:
            pass  # the project was deleted meanwhile
        except Exception:
            log.exception("could not put the summary of %r into recent_changes", title)


SUMMARIZER_ACTOR = Actor(name="summarizer")


def recent_change_line(title: str, summary_line: str) -> str:
    """The ``recent_changes`` line of a completed task, always one line."""
    return " ".join(f"- {title}: {summary_line}".split())


def updated_recent_changes(current: str | None, title: str, summary: str, keep: int = 10) -> str:
    """Newest first, one line per completed task (its extractive summary), at most ``keep`` lines."""
    lines = [line for line in (current or "").splitlines() if line.strip()]
    return "\n".join([recent_change_line(title, first_sentence(summary)), *lines][:keep])


def replaced_line(current: str | None, old: str, new: str) -> dict[str, str]:
    """The project fields that put ``new`` in the place of the line ``old`` (none if newer lines pushed it out)."""
    lines = [line for line in (current or "").splitlines() if line.strip()]
    if old not in lines:
        return {}
    lines[lines.index(old)] = new
    return {"recent_changes": "\n".join(lines)}
