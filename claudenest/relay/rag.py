"""Shared context for a project: add and search chunks, compile a prompt-sized digest, re-embed on embedder change.

The embedder is chosen in the relay's config.toml (``[context.embedder]``, default the offline hashing embedder);
embedding runs in a worker thread so the event loop keeps serving terminals.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from claudenest.relay.embedders import Embedder, make_embedder
from claudenest.store import Store
from claudenest.store.context import SearchFilter, SearchResult

log = logging.getLogger(__name__)

CHARS_PER_TOKEN = 4  # the usual estimate for English and code; budgets are approximate by nature
MAX_CHUNK_CHARS = 20_000


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


class ContextService:
    def __init__(self, store: Store, config: dict[str, Any] | None = None) -> None:
        self.store = store
        self.embedder: Embedder = make_embedder(dict((config or {}).get("embedder", {"kind": "hashing"})))
        self.progress = ReembedProgress(embedder=self.embedder.name)
        self._job: asyncio.Task[None] | None = None

    async def embed(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self.embedder.embed, texts)

    async def add(self, project_id: str, content: str, **fields: Any) -> dict[str, Any]:
        content = content.strip()[:MAX_CHUNK_CHARS]
        files = fields.get("files") or []
        (vector,) = await self.embed([content + ("\n" + " ".join(files) if files else "")])
        return await self.store.context.add(project_id, content, vector, embedder=self.embedder.name, **fields)

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
        return await self.store.context.hybrid(flt, text, vector, limit)

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

    async def stop(self) -> None:
        if self._job is not None:
            self._job.cancel()


def first_sentence(text: str, limit: int = 200) -> str:
    """The extractive summary: the first sentence, trimmed."""
    sentence = re.split(r"(?<=[.!?])\s", text.strip(), maxsplit=1)[0]
    return sentence if len(sentence) <= limit else sentence[: limit - 1] + "…"


def updated_recent_changes(current: str | None, title: str, summary: str, keep: int = 10) -> str:
    """Newest first, one line per completed task, at most ``keep`` lines."""
    lines = [line for line in (current or "").splitlines() if line.strip()]
    return "\n".join([f"- {title}: {first_sentence(summary)}", *lines][:keep])
