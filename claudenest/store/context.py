"""Shared project context: chunks with an FTS5 index and sqlite-vec vectors, searched hybrid (BM25 + KNN, RRF).

Vectors are stored twice: as float32 in ``context_chunks.embedding`` for exact rescoring, and binary-quantized in
the vec0 table ``context_vec`` (partitioned by project) for the KNN prefilter: Hamming KNN over 384 bits is several
times cheaper than cosine over 384 floats, and rescoring a few hundred candidates exactly keeps recall. Never a
full-table ``ORDER BY distance``.
"""

from __future__ import annotations

import json
import re
import struct
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from claudenest.clock import now_iso
from claudenest.errors import NotFound
from claudenest.store.users import as_dict

if TYPE_CHECKING:
    from claudenest.store.connection import Store

DIM = 384
RRF_K = 60
PREFILTER_FACTOR = 16  # binary-KNN candidates per requested result, rescored exactly

SCHEMA = f"""
CREATE TABLE context_chunks (
    n INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    project_id TEXT NOT NULL,
    type TEXT NOT NULL,
    content TEXT NOT NULL,
    files TEXT NOT NULL DEFAULT '[]',
    instance_id TEXT,
    task_id TEXT,
    importance REAL NOT NULL DEFAULT 0.5,
    expires_at TEXT,
    embedder TEXT NOT NULL,
    embedding BLOB NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX context_chunks_project ON context_chunks(project_id, created_at);
CREATE VIRTUAL TABLE context_fts USING fts5(content, files, project_id UNINDEXED, tokenize='porter unicode61');
CREATE VIRTUAL TABLE context_vec USING vec0(project_id TEXT PARTITION KEY, embedding BIT[{DIM}]);
CREATE TABLE context_settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)
"""


@dataclass
class SearchResult:
    chunk: dict[str, Any]
    score: float
    keyword_rank: int | None = None
    vector_rank: int | None = None
    distance: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.chunk,
            "score": round(self.score, 6),
            "keyword_rank": self.keyword_rank,
            "vector_rank": self.vector_rank,
            "distance": self.distance,
        }


@dataclass
class SearchFilter:
    project_id: str
    types: Sequence[str] = ()
    include_expired: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def pack(vector: Sequence[float]) -> bytes:
    if len(vector) != DIM:
        raise ValueError(f"embedding has {len(vector)} dimensions, expected {DIM}")
    return struct.pack(f"{DIM}f", *vector)


def fts_query(text: str) -> str | None:
    """User text -> an FTS5 query that cannot be a syntax error: quoted terms joined by OR."""
    terms = [t for t in re.findall(r"\w+", text.lower()) if len(t) > 1]
    return " OR ".join(f'"{t}"' for t in dict.fromkeys(terms)) or None


def _chunk(row: Any) -> dict[str, Any]:
    chunk = as_dict(row)
    chunk.pop("embedding", None)
    chunk.pop("n", None)
    chunk["files"] = json.loads(chunk["files"])
    return chunk


CHUNK_COLUMNS = (
    "n, id, project_id, type, content, files, instance_id, task_id, importance, expires_at, embedder, created_at"
)


class ContextQueries:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def add(
        self,
        project_id: str,
        content: str,
        embedding: Sequence[float],
        *,
        embedder: str,
        type: str = "note",
        files: Iterable[str] = (),
        instance_id: str | None = None,
        task_id: str | None = None,
        importance: float = 0.5,
        expires_at: str | None = None,
    ) -> dict[str, Any]:
        chunk_id = str(uuid.uuid4())
        blob = pack(embedding)
        files_json = json.dumps(list(files))
        async with self._store.write() as db:
            await db.execute(
                "INSERT INTO context_chunks (id, project_id, type, content, files, instance_id, task_id, importance,"
                " expires_at, embedder, embedding, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    chunk_id,
                    project_id,
                    type,
                    content,
                    files_json,
                    instance_id,
                    task_id,
                    importance,
                    expires_at,
                    embedder,
                    blob,
                    now_iso(),
                ),
            )
            row = await db.fetchone("SELECT n FROM context_chunks WHERE id = ?", (chunk_id,))
            n = row[0]
            await db.execute(
                "INSERT INTO context_fts (rowid, content, files, project_id) VALUES (?, ?, ?, ?)",
                (n, content, " ".join(json.loads(files_json)), project_id),
            )
            await db.execute(
                "INSERT INTO context_vec (rowid, project_id, embedding) VALUES (?, ?, vec_quantize_binary(vec_f32(?)))",
                (n, project_id, blob),
            )
        return await self.get(project_id, chunk_id)

    async def add_many(
        self, project_id: str, items: Sequence[tuple[str, str, Sequence[str], Sequence[float]]], *, embedder: str
    ) -> int:
        """Bulk insert ``(type, content, files, embedding)`` in one transaction (imports, benchmarks)."""
        async with self._store.write() as db:
            row = await db.fetchone("SELECT COALESCE(MAX(n), 0) FROM context_chunks")
            first = int(row[0]) + 1
            now = now_iso()
            chunks, texts, vectors = [], [], []
            for offset, (kind, content, files, embedding) in enumerate(items):
                n, blob = first + offset, pack(embedding)
                chunks.append(
                    (n, str(uuid.uuid4()), project_id, kind, content, json.dumps(list(files)), embedder, blob, now)
                )
                texts.append((n, content, " ".join(files), project_id))
                vectors.append((n, project_id, blob))
            await db.executemany(
                "INSERT INTO context_chunks (n, id, project_id, type, content, files, embedder, embedding, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                chunks,
            )
            await db.executemany(
                "INSERT INTO context_fts (rowid, content, files, project_id) VALUES (?, ?, ?, ?)", texts
            )
            await db.executemany(
                "INSERT INTO context_vec (rowid, project_id, embedding) VALUES (?, ?, vec_quantize_binary(vec_f32(?)))",
                vectors,
            )
        return len(items)

    async def get(self, project_id: str, chunk_id: str) -> dict[str, Any]:
        row = await self._store.fetchone(
            f"SELECT {CHUNK_COLUMNS} FROM context_chunks WHERE id = ? AND project_id = ?", (chunk_id, project_id)
        )
        if row is None:
            raise NotFound(f"no context chunk {chunk_id}")
        return _chunk(row)

    async def recent(self, project_id: str, *, type: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        sql = f"SELECT {CHUNK_COLUMNS} FROM context_chunks WHERE project_id = ?"
        params: list[Any] = [project_id]
        if type:
            sql += " AND type = ?"
            params.append(type)
        sql += " ORDER BY n DESC LIMIT ?"
        params.append(limit)
        return [_chunk(r) for r in await self._store.fetchall(sql, params)]

    async def delete(self, project_id: str, chunk_id: str) -> None:
        async with self._store.write() as db:
            row = await db.fetchone(
                "SELECT n FROM context_chunks WHERE id = ? AND project_id = ?", (chunk_id, project_id)
            )
            if row is None:
                raise NotFound(f"no context chunk {chunk_id}")
            for table in ("context_fts", "context_vec"):
                await db.execute(f"DELETE FROM {table} WHERE rowid = ?", (row[0],))
            await db.execute("DELETE FROM context_chunks WHERE n = ?", (row[0],))

    async def keyword(self, flt: SearchFilter, query: str, limit: int) -> list[tuple[int, float]]:
        """(chunk n, bm25) best first; BM25 in SQLite is lower-is-better."""
        match = fts_query(query)
        if match is None:
            return []
        rows = await self._store.fetchall(
            "SELECT rowid, bm25(context_fts) AS rank FROM context_fts WHERE context_fts MATCH ? AND project_id = ?"
            " ORDER BY rank LIMIT ?",
            (match, flt.project_id, limit * 4),
        )
        return await self._keep([(r[0], r[1]) for r in rows], flt, limit)

    async def vector(
        self, flt: SearchFilter, embedding: Sequence[float], limit: int, *, exact: bool = False
    ) -> list[tuple[int, float]]:
        """(chunk n, cosine distance) best first: binary KNN prefilter, then exact cosine on the candidates."""
        blob = pack(embedding)
        if exact:  # the reference the prefilter is measured against (benchmarks), never the serving path
            rows = await self._store.fetchall(
                "SELECT n, vec_distance_cosine(embedding, ?) AS d FROM context_chunks WHERE project_id = ?"
                " ORDER BY d LIMIT ?",
                (blob, flt.project_id, limit * 4),
            )
            return await self._keep([(r[0], r[1]) for r in rows], flt, limit)
        candidates = await self._store.fetchall(
            "SELECT rowid FROM context_vec WHERE embedding MATCH vec_quantize_binary(vec_f32(?)) AND k = ?"
            " AND project_id = ?",
            (blob, limit * PREFILTER_FACTOR, flt.project_id),
        )
        if not candidates:
            return []
        marks = ",".join("?" * len(candidates))
        rows = await self._store.fetchall(
            f"SELECT n, vec_distance_cosine(embedding, ?) AS d FROM context_chunks WHERE n IN ({marks}) ORDER BY d",
            (blob, *(r[0] for r in candidates)),
        )
        return await self._keep([(r[0], r[1]) for r in rows], flt, limit)

    async def _keep(self, ranked: list[tuple[int, float]], flt: SearchFilter, limit: int) -> list[tuple[int, float]]:
        """Apply type and expiry filters, keeping order."""
        if not ranked or (not flt.types and flt.include_expired):
            return ranked[:limit]
        marks = ",".join("?" * len(ranked))
        sql = f"SELECT n FROM context_chunks WHERE n IN ({marks})"
        params: list[Any] = [n for n, _ in ranked]
        if flt.types:
            sql += f" AND type IN ({','.join('?' * len(flt.types))})"
            params += list(flt.types)
        if not flt.include_expired:
            sql += " AND (expires_at IS NULL OR expires_at > ?)"
            params.append(now_iso())
        allowed = {r[0] for r in await self._store.fetchall(sql, params)}
        return [(n, s) for n, s in ranked if n in allowed][:limit]

    async def hybrid(
        self, flt: SearchFilter, query: str, embedding: Sequence[float], limit: int = 5
    ) -> list[SearchResult]:
        """Reciprocal rank fusion of keyword and vector rankings; each result keeps both ranks and its score."""
        depth = max(limit * 4, 20)
        keyword = await self.keyword(flt, query, depth)
        vector = await self.vector(flt, embedding, depth)
        fused: dict[int, SearchResult] = {}
        for rank, (n, _) in enumerate(keyword, 1):
            fused.setdefault(n, SearchResult(chunk={}, score=0.0)).score += 1 / (RRF_K + rank)
            fused[n].keyword_rank = rank
        for rank, (n, distance) in enumerate(vector, 1):
            fused.setdefault(n, SearchResult(chunk={}, score=0.0)).score += 1 / (RRF_K + rank)
            fused[n].vector_rank = rank
            fused[n].distance = round(distance, 6)
        best = sorted(fused.items(), key=lambda item: -item[1].score)[:limit]
        chunks = await self.by_n([n for n, _ in best])
        for n, result in best:
            result.chunk = chunks[n]
        return [result for _, result in best]

    async def by_n(self, ns: Sequence[int]) -> dict[int, dict[str, Any]]:
        if not ns:
            return {}
        rows = await self._store.fetchall(
            f"SELECT {CHUNK_COLUMNS} FROM context_chunks WHERE n IN ({','.join('?' * len(ns))})", list(ns)
        )
        return {r["n"]: _chunk(r) for r in rows}

    async def stale(self, embedder: str, limit: int = 256) -> list[tuple[int, str]]:
        """Chunks embedded by another embedder than the configured one: (n, content) to re-embed."""
        rows = await self._store.fetchall(
            "SELECT n, content FROM context_chunks WHERE embedder != ? ORDER BY n LIMIT ?", (embedder, limit)
        )
        return [(r[0], r[1]) for r in rows]

    async def count(self, embedder: str | None = None) -> int:
        if embedder is None:
            row = await self._store.fetchone("SELECT COUNT(*) FROM context_chunks")
        else:
            row = await self._store.fetchone("SELECT COUNT(*) FROM context_chunks WHERE embedder = ?", (embedder,))
        return int(row[0])

    async def set_embedding(self, n: int, embedding: Sequence[float], embedder: str) -> None:
        blob = pack(embedding)
        async with self._store.write() as db:
            await db.execute("UPDATE context_chunks SET embedding = ?, embedder = ? WHERE n = ?", (blob, embedder, n))
            # vec0 cannot UPDATE a bit column from an expression: replace the row instead.
            row = await db.fetchone("SELECT project_id FROM context_chunks WHERE n = ?", (n,))
            await db.execute("DELETE FROM context_vec WHERE rowid = ?", (n,))
            await db.execute(
                "INSERT INTO context_vec (rowid, project_id, embedding) VALUES (?, ?, vec_quantize_binary(vec_f32(?)))",
                (n, row[0], blob),
            )
