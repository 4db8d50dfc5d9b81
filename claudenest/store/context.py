"""Shared project context: chunks, a keyword index and a vector index, searched hybrid (BM25 + KNN, fused by RRF).

- ``context_chunks`` holds each chunk with its float32 embedding, the vector exact rescoring uses.
- ``context_terms`` (FTS5) indexes the chunk's terms as :func:`claudenest.text.index_terms` makes them (the same
  tokenizer as the hashing embedder: identifiers whole and split, stop words dropped, stemmed), with the project id
  in a ``scope`` column so the project filter is part of the match, not a per-row lookup. ``context_terms_vocab``
  gives each term's document frequency, so a query can leave out the terms that match a large part of the project
  (they barely move BM25 and cost most of its time).
- ``context_codes`` (sqlite-vec ``vec0``) holds a 1536-bit code per chunk: the signs of a fixed random projection
  of the embedding. Hamming distance on it estimates the angle (SimHash); KNN over it picks candidates that are
  rescored by exact cosine. The codes are sharded 16 ways per project (the partition key): sqlite-vec's top-k
  selection costs rows x k, so 16 queries of k=32 over a sixteenth of the rows each cost far less than one of
  k=512. Never a full-table ``ORDER BY distance`` on the serving path.

Migration 5 replaced the first indexes (porter FTS5 on raw text, 384-bit codes): chunks written before it carry
``indexed = 0`` until the relay's background job indexes them (:meth:`ContextQueries.index_pending`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import struct
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np

from claudenest.clock import now_iso
from claudenest.errors import NotFound
from claudenest.store.users import as_dict
from claudenest.text import index_terms

if TYPE_CHECKING:
    from claudenest.store.connection import Store

DIM = 384
RRF_K = 60
CODE_BITS = 1536
SHARDS = 16
CANDIDATES_PER_SHARD = 32  # 512 candidates: recall@5 0.99 against exact search at 100k (20: 0.969; docs/benchmarks.md)
MAX_QUERY_TERMS = 8
COMMON_TERM_SHARE = 0.1  # a term in more than this share of the project's chunks is left out when rarer ones exist
TERM_CHARS = "./\\:#@+-_"  # characters our terms keep (see claudenest.text); FTS5 must not split on them

# Migration 5 (claudenest/store/migrations.py). It has shipped once main has it: change the indexes in a new one.
INDEX_SCHEMA = f"""
DROP TABLE context_fts;
DROP TABLE context_vec;
ALTER TABLE context_chunks ADD COLUMN indexed INTEGER NOT NULL DEFAULT 0;
CREATE INDEX context_chunks_unindexed ON context_chunks(indexed) WHERE indexed = 0;
CREATE VIRTUAL TABLE context_terms USING fts5(
    terms, scope, tokenize="unicode61 remove_diacritics 0 tokenchars '{TERM_CHARS}'"
);
CREATE VIRTUAL TABLE context_terms_vocab USING fts5vocab(context_terms, 'row');
CREATE VIRTUAL TABLE context_codes USING vec0(shard TEXT PARTITION KEY, code BIT[{CODE_BITS}], chunk_size=512)
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


@dataclass(frozen=True)
class NewChunk:
    """A chunk to store, embedded already; the fields of ``context_chunks`` a caller chooses."""

    content: str
    embedding: Sequence[float]
    type: str = "note"
    files: Sequence[str] = ()
    instance_id: str | None = None
    task_id: str | None = None
    importance: float = 0.5
    expires_at: str | None = None


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


@cache
def _projection() -> np.ndarray:
    """A fixed DIM x CODE_BITS matrix of +1/-1, from SHAKE-256 so every process and release derives the same one
    (a seeded NumPy generator does not promise the same stream across NumPy versions)."""
    raw = hashlib.shake_256(b"claudenest/context-code/v1").digest(DIM * CODE_BITS // 8)
    bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8)).reshape(DIM, CODE_BITS)
    return bits.astype(np.float32) * 2.0 - 1.0


def codes(vectors: Sequence[Sequence[float]]) -> list[bytes]:
    """The 1536-bit SimHash code of each vector, packed as sqlite-vec's ``bit`` vectors want (LSB first)."""
    if not vectors:
        return []
    # einsum's plain loop, not a BLAS matmul: BLAS worker threads keep spinning after a call, taking the CPU that
    # the search's SQLite threads need (a hybrid search took twice as long). 0.07 ms a vector.
    signs = np.einsum("ij,jk->ik", np.asarray(vectors, dtype=np.float32), _projection()) > 0
    packed = np.packbits(signs, axis=1, bitorder="little")
    return [row.tobytes() for row in packed]


def shard(project_id: str, n: int) -> str:
    return f"{project_id}:{n % SHARDS}"


def quote(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def terms_text(content: str, files: Iterable[str]) -> str:
    return " ".join(index_terms(content + "\n" + " ".join(files)))


def _chunk(row: Any) -> dict[str, Any]:
    chunk = as_dict(row)
    chunk.pop("embedding", None)
    chunk.pop("n", None)
    chunk["files"] = json.loads(chunk["files"])
    return chunk


CHUNK_COLUMNS = (
    "n, id, project_id, type, content, files, instance_id, task_id, importance, expires_at, embedder, created_at"
)
_INSERT_TERMS = "INSERT INTO context_terms (rowid, terms, scope) VALUES (?, ?, ?)"
_INSERT_CODE = "INSERT INTO context_codes (rowid, shard, code) VALUES (?, ?, vec_bit(?))"


class ContextQueries:
    def __init__(self, store: Store) -> None:
        self._store = store
        # Chunks per project, counted once and then kept up to date by add/delete: one relay owns the file (the
        # store's lock), and a COUNT(*) over 100k rows would cost a millisecond on every keyword search.
        self._chunks_in: dict[str, int] = {}
        self._all_chunks: int | None = None

    async def all_chunks(self) -> int:
        if self._all_chunks is None:
            row = await self._store.read("SELECT COUNT(*) FROM context_chunks")
            self._all_chunks = int(row[0][0])
        return self._all_chunks

    async def chunks_in(self, project_id: str) -> int:
        if project_id not in self._chunks_in:
            row = await self._store.read("SELECT COUNT(*) FROM context_chunks WHERE project_id = ?", (project_id,))
            self._chunks_in.setdefault(project_id, int(row[0][0]))
        return self._chunks_in[project_id]

    def _counted(self, project_id: str, change: int) -> None:
        if self._all_chunks is not None:
            self._all_chunks += change
        if project_id in self._chunks_in:
            self._chunks_in[project_id] += change

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
        chunk = NewChunk(content, embedding, type, tuple(files), instance_id, task_id, importance, expires_at)
        (chunk_id,) = await self.insert(project_id, [chunk], embedder=embedder)
        return await self.get(project_id, chunk_id)

    async def insert(self, project_id: str, chunks: Sequence[NewChunk], *, embedder: str) -> list[str]:
        """Store ``chunks`` and index them, in one transaction: all or none. Returns their ids, in order."""
        if not chunks:
            return []

        def prepare() -> tuple[list[bytes], list[bytes], list[str]]:
            # Before the transaction and in a worker thread: a 1 MiB bulk request's terms would hold the event loop.
            embeddings = [c.embedding for c in chunks]
            return [pack(e) for e in embeddings], codes(embeddings), [terms_text(c.content, c.files) for c in chunks]

        blobs, item_codes, item_terms = await asyncio.to_thread(prepare)
        ids = [str(uuid.uuid4()) for _ in chunks]
        now = now_iso()
        async with self._store.write() as db:
            # The numbers SQLite itself would give (MAX(rowid) + 1 on), taken explicitly so the index rows can
            # share them in the same executemany; the write lock keeps them ours.
            row = await db.fetchone("SELECT COALESCE(MAX(n), 0) FROM context_chunks")
            ns = range(int(row[0]) + 1, int(row[0]) + 1 + len(chunks))
            await db.executemany(
                "INSERT INTO context_chunks (n, id, project_id, type, content, files, instance_id, task_id, importance,"
                " expires_at, embedder, embedding, created_at, indexed)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
                [
                    (n, chunk_id, project_id, c.type, c.content, json.dumps(list(c.files)), c.instance_id, c.task_id)
                    + (c.importance, c.expires_at, embedder, blob, now)
                    for n, chunk_id, c, blob in zip(ns, ids, chunks, blobs, strict=True)
                ],
            )
            await db.executemany(_INSERT_TERMS, [(n, t, project_id) for n, t in zip(ns, item_terms, strict=True)])
            await db.executemany(
                _INSERT_CODE, [(n, shard(project_id, n), code) for n, code in zip(ns, item_codes, strict=True)]
            )
        self._counted(project_id, len(chunks))
        return ids

    async def add_many(
        self, project_id: str, items: Sequence[tuple[str, str, Sequence[str], Sequence[float]]], *, embedder: str
    ) -> int:
        """Bulk insert ``(type, content, files, embedding)`` in one transaction (benchmarks, evaluations)."""
        chunks = [NewChunk(content, embedding, kind, tuple(files)) for kind, content, files, embedding in items]
        return len(await self.insert(project_id, chunks, embedder=embedder))

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
            for table in ("context_terms", "context_codes"):
                await db.execute(f"DELETE FROM {table} WHERE rowid = ?", (row[0],))
            await db.execute("DELETE FROM context_chunks WHERE n = ?", (row[0],))
        self._counted(project_id, -1)

    # -- search --------------------------------------------------------------------------------------------------

    async def match_expression(self, project_id: str, query: str) -> str | None:
        """The FTS5 query for ``query`` in one project: its rarest terms, OR-ed, within the project's scope.

        Terms are quoted, so nothing a user types is FTS5 syntax. Terms found nowhere are dropped; so are terms in
        more than COMMON_TERM_SHARE of this project's chunks while a rarer term remains (their IDF is low, and
        scoring every chunk they match is most of a query's time); at most MAX_QUERY_TERMS of the rarest are kept.
        """
        terms = list(dict.fromkeys(index_terms(query)))
        if not terms:
            return None
        marks = ",".join("?" * len(terms))
        rows = await self._store.read(f"SELECT term, doc FROM context_terms_vocab WHERE term IN ({marks})", terms)
        frequency = {r[0]: int(r[1]) for r in rows}
        project_chunks = await self.chunks_in(project_id)
        found = sorted((t for t in terms if t in frequency), key=frequency.__getitem__)
        if not found or not project_chunks:
            return None
        common = int(COMMON_TERM_SHARE * project_chunks)
        if project_chunks < await self.all_chunks():
            # The vocabulary counts every project's chunks: a term common elsewhere may be rare here. Count it in
            # this project, stopping as soon as it is common here too.
            for term in (t for t in found if frequency[t] > common):
                frequency[term] = await self._count_in_project(project_id, term, stop_at=common + 1)
            found.sort(key=frequency.__getitem__)
        kept = [t for t in found if frequency[t] <= common] or found[:1]
        words = " OR ".join(quote(t) for t in kept[:MAX_QUERY_TERMS])
        return f"scope : {quote(project_id.lower())} AND terms : ({words})"

    async def _count_in_project(self, project_id: str, term: str, *, stop_at: int) -> int:
        rows = await self._store.read(
            "SELECT COUNT(*) FROM (SELECT 1 FROM context_terms WHERE context_terms MATCH ? LIMIT ?)",
            (f"scope : {quote(project_id.lower())} AND terms : {quote(term)}", stop_at),
        )
        return int(rows[0][0])

    async def keyword(self, flt: SearchFilter, query: str, limit: int) -> list[tuple[int, float]]:
        """(chunk n, bm25) best first; BM25 in SQLite is lower-is-better."""
        match = await self.match_expression(flt.project_id, query)
        if match is None:
            return []
        if flt.types:
            # Filtered in the same statement, so a rare type still fills the list (one chunk lookup per match).
            sql, params = self._filtered(
                "SELECT context_terms.rowid, bm25(context_terms, 1.0, 0.0) AS rank FROM context_terms"
                " JOIN context_chunks ON context_chunks.n = context_terms.rowid WHERE context_terms MATCH ?",
                flt,
            )
            rows = await self._store.read(sql + " ORDER BY rank LIMIT ?", (match, *params, limit))
            return [(r[0], r[1]) for r in rows]
        rows = await self._store.read(
            "SELECT rowid, bm25(context_terms, 1.0, 0.0) AS rank FROM context_terms WHERE context_terms MATCH ?"
            " ORDER BY rank LIMIT ?",
            (match, limit * 4 if not flt.include_expired else limit),  # room for the few expired ones
        )
        return await self._keep([(r[0], r[1]) for r in rows], flt, limit)

    async def vector(
        self, flt: SearchFilter, embedding: Sequence[float], limit: int, *, exact: bool = False
    ) -> list[tuple[int, float]]:
        """(chunk n, cosine distance) best first: Hamming KNN on the codes per shard, then exact cosine."""
        blob = pack(embedding)
        if exact:  # the reference the codes are measured against (benchmarks), never the serving path
            return await self._exact(flt, blob, limit)
        (code,) = codes([embedding])
        # Two statements, not one with a subquery: run as one, the rescoring serialises concurrent searches (the
        # KNN half alone runs in parallel on the read connections; measured in docs/benchmarks.md).
        per_shard = max(CANDIDATES_PER_SHARD, limit)
        knn = " UNION ALL ".join(
            f"SELECT rowid FROM context_codes WHERE code MATCH vec_bit(?1) AND k = {per_shard} AND shard = ?{i + 2}"
            for i in range(SHARDS)
        )
        candidates = await self._store.read(knn, (code, *(shard(flt.project_id, i) for i in range(SHARDS))))
        if not candidates:
            return []
        marks = ",".join("?" * len(candidates))
        sql, params = self._filtered(
            f"SELECT n, vec_distance_cosine(embedding, ?) AS d FROM context_chunks WHERE n IN ({marks})", flt
        )
        rows = await self._store.read(sql + " ORDER BY d LIMIT ?", (blob, *(r[0] for r in candidates), *params, limit))
        if flt.types and len(rows) < limit:
            # The nearest codes hold too few chunks of the asked types: rank every chunk of those types exactly
            # (a scan of the project's rows, paid only by filtered searches that come up short).
            return await self._exact(flt, blob, limit)
        return [(r[0], r[1]) for r in rows]

    async def _exact(self, flt: SearchFilter, blob: bytes, limit: int) -> list[tuple[int, float]]:
        sql, params = self._filtered(
            "SELECT n, vec_distance_cosine(embedding, ?) AS d FROM context_chunks WHERE project_id = ?", flt
        )
        rows = await self._store.read(sql + " ORDER BY d LIMIT ?", (blob, flt.project_id, *params, limit))
        return [(r[0], r[1]) for r in rows]

    def _filtered(self, sql: str, flt: SearchFilter) -> tuple[str, list[Any]]:
        """``sql`` with the type and expiry conditions of ``flt`` appended, and their parameters."""
        params: list[Any] = []
        if flt.types:
            sql += f" AND type IN ({','.join('?' * len(flt.types))})"
            params += list(flt.types)
        if not flt.include_expired:
            sql += " AND (expires_at IS NULL OR expires_at > ?)"
            params.append(now_iso())
        return sql, params

    async def _keep(self, ranked: list[tuple[int, float]], flt: SearchFilter, limit: int) -> list[tuple[int, float]]:
        """Apply type and expiry filters, keeping order."""
        if not ranked or (not flt.types and flt.include_expired):
            return ranked[:limit]
        marks = ",".join("?" * len(ranked))
        sql, params = self._filtered(f"SELECT n FROM context_chunks WHERE n IN ({marks})", flt)
        allowed = {r[0] for r in await self._store.read(sql, [n for n, _ in ranked] + params)}
        return [(n, s) for n, s in ranked if n in allowed][:limit]

    async def hybrid(
        self,
        flt: SearchFilter,
        query: str,
        embedding: Sequence[float],
        limit: int = 5,
        *,
        vector_weight: float = 1.0,
    ) -> list[SearchResult]:
        """Reciprocal rank fusion of keyword and vector rankings; each result keeps both ranks and its score.

        score = 1 / (RRF_K + keyword rank) + vector_weight / (RRF_K + vector rank). The two searches run at once,
        each on its own read connection."""
        depth = max(limit * 4, 20)
        keyword, vector = await asyncio.gather(self.keyword(flt, query, depth), self.vector(flt, embedding, depth))
        fused: dict[int, SearchResult] = {}
        for rank, (n, _) in enumerate(keyword, 1):
            fused.setdefault(n, SearchResult(chunk={}, score=0.0)).score += 1 / (RRF_K + rank)
            fused[n].keyword_rank = rank
        for rank, (n, distance) in enumerate(vector, 1):
            fused.setdefault(n, SearchResult(chunk={}, score=0.0)).score += vector_weight / (RRF_K + rank)
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
        rows = await self._store.read(
            f"SELECT {CHUNK_COLUMNS} FROM context_chunks WHERE n IN ({','.join('?' * len(ns))})", list(ns)
        )
        return {r["n"]: _chunk(r) for r in rows}

    # -- maintenance ---------------------------------------------------------------------------------------------

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

    async def count_unindexed(self) -> int:
        row = await self._store.fetchone("SELECT COUNT(*) FROM context_chunks WHERE indexed = 0")
        return int(row[0])

    async def index_pending(self, limit: int = 512) -> int:
        """Index up to ``limit`` chunks written before the current indexes (migration 5); returns how many."""
        rows = await self._store.fetchall(
            "SELECT n, project_id, content, files, embedding FROM context_chunks WHERE indexed = 0 ORDER BY n LIMIT ?",
            (limit,),
        )
        if not rows:
            return 0

        def prepare() -> tuple[list[tuple[int, str, str]], list[tuple[int, str, bytes]]]:
            # Python work (terms, codes) in a worker thread: 512 chunks would hold the event loop ~0.1 s.
            vectors = [struct.unpack(f"{DIM}f", r["embedding"]) for r in rows]
            terms = [(r["n"], terms_text(r["content"], json.loads(r["files"])), r["project_id"]) for r in rows]
            vecs = [(r["n"], shard(r["project_id"], r["n"]), c) for r, c in zip(rows, codes(vectors), strict=True)]
            return terms, vecs

        terms, vecs = await asyncio.to_thread(prepare)
        async with self._store.write() as db:
            # Only chunks still waiting: one re-embedded meanwhile (set_embedding) has newer rows than ours.
            marks = ",".join("?" * len(rows))
            waiting = {
                r[0]
                for r in await db.fetchall(
                    f"SELECT n FROM context_chunks WHERE indexed = 0 AND n IN ({marks})", [r["n"] for r in rows]
                )
            }
            terms = [t for t in terms if t[0] in waiting]
            vecs = [v for v in vecs if v[0] in waiting]
            ns = [(n,) for n in waiting]
            # Idempotent: indexing a chunk again replaces its rows.
            await db.executemany("DELETE FROM context_terms WHERE rowid = ?", ns)
            await db.executemany("DELETE FROM context_codes WHERE rowid = ?", ns)
            await db.executemany(_INSERT_TERMS, terms)
            await db.executemany(_INSERT_CODE, vecs)
            await db.executemany("UPDATE context_chunks SET indexed = 1 WHERE n = ?", ns)
        return len(rows)

    async def set_embedding(self, n: int, embedding: Sequence[float], embedder: str) -> None:
        blob = pack(embedding)
        (code,) = codes([embedding])
        async with self._store.write() as db:
            await db.execute(
                "UPDATE context_chunks SET embedding = ?, embedder = ?, indexed = 1 WHERE n = ?", (blob, embedder, n)
            )
            row = await db.fetchone("SELECT project_id, content, files FROM context_chunks WHERE n = ?", (n,))
            if row is not None:
                await self._replace_index(db, n, row[0], row[1], json.loads(row[2]), code)

    @staticmethod
    async def _replace_index(db: Any, n: int, project_id: str, content: str, files: list[str], code: bytes) -> None:
        # vec0 cannot UPDATE a bit column from an expression, and FTS5 rows are simplest replaced whole.
        for table in ("context_terms", "context_codes"):
            await db.execute(f"DELETE FROM {table} WHERE rowid = ?", (n,))
        await db.execute(_INSERT_TERMS, (n, terms_text(content, files), project_id))
        await db.execute(_INSERT_CODE, (n, shard(project_id, n), code))
