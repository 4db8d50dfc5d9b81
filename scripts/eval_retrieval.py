#!/usr/bin/env python3
"""Retrieval quality of the shared-context embedders: vector, keyword (FTS5 BM25) and hybrid (RRF) search.

    python scripts/eval_retrieval.py [--embedders hashing,static,sentence-transformers,ollama] [--json [PATH]]
    python scripts/eval_retrieval.py --parts tune,heldout,heldout2 [--embedders ...] [--json [PATH]]
    python scripts/eval_retrieval.py --split heldout        # one part of --set, the single table as before

Loads the labelled set (tests/data/retrieval_set.json: ~300 chunks, ~60 queries with the ids of the chunks that
answer them), embeds every chunk (its content, then its files, as the relay does) with each embedder that can be had
here, and for every query ranks the chunks by

- vector: exact cosine KNN in a sqlite-vec ``vec0`` table (``MATCH ? AND k = ?``, a brute-force scan), or with
  --bit-candidates the relay's path: Hamming KNN on sign bits, then exact cosine on those candidates;
- keyword: SQLite FTS5 BM25 (porter stemming) over content and files, the query's words quoted and OR-ed;
- hybrid: reciprocal rank fusion of the two lists (each cut at --depth), score = sum of 1 / (rrf_k + rank).

Reports recall@K (share of a query's relevant chunks found in the top K, averaged over queries), MRR (1 / rank of
the first relevant chunk, 0 if none in the list) and hit@K (share of queries with a relevant chunk in the top K),
plus embedding speed. Everything runs in memory via claudenest.store.sqlite.connect(':memory:'), which has FTS5 and
sqlite-vec. Embedders that cannot be had (sentence-transformers not installed, no Ollama listening) are skipped
with the reason. See docs/benchmarks.md.

Honest evaluation: every query has a kind (paraphrase, mixed, lexical: how many of its content words its answers
share, tests/unit/test_retrieval_data.py) and the first set a split ('tune' for choosing parameters, 'heldout' for
reporting). --parts reports each part separately, overall and per kind: tune and heldout are the first set's
splits, heldout2 is tests/data/retrieval_heldout_2.json (another project, used for nothing but reporting). Each
set's chunks are embedded once; a part is a subset of its set's queries ranked against all of that set's chunks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import sqlite_vec  # noqa: E402

from claudenest.errors import ClaudenestError  # noqa: E402
from claudenest.relay.embedders import DIM, Embedder, make_embedder  # noqa: E402
from claudenest.store import Store  # noqa: E402
from claudenest.store.context import SearchFilter  # noqa: E402
from claudenest.store.sqlite import connect, versions  # noqa: E402
from claudenest.text import STOP_WORDS  # noqa: E402

DEFAULT_SET = REPO / "tests" / "data" / "retrieval_set.json"
HELDOUT_2 = REPO / "tests" / "data" / "retrieval_heldout_2.json"
# --parts: name -> (set, split of its queries; None = all of them)
PARTS: dict[str, tuple[Path, str | None]] = {
    "tune": (DEFAULT_SET, "tune"),
    "heldout": (DEFAULT_SET, "heldout"),
    "all": (DEFAULT_SET, None),
    "heldout2": (HELDOUT_2, None),
}
KINDS = ("paraphrase", "mixed", "lexical")
ROW_MODES = ("vector", "hybrid", "relay keyword", "relay vector", "relay hybrid")
MODES = ("vector", "keyword", "hybrid")


@dataclass
class Scores:
    recall: float
    mrr: float
    hit: float
    per_query: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class EmbedderRun:
    name: str
    kind: str
    load_s: float = 0.0
    chunks_per_s: float = 0.0
    query_ms: float = 0.0
    scores: dict[str, Scores] = field(default_factory=dict)
    skipped: str = ""
    vector_weight: float = 1.0


def load_set(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return data["chunks"], data["queries"]


def fts_query(text: str, drop_stop_words: bool = False) -> str:
    """The query's words, each quoted (so FTS5 syntax in user text cannot raise), OR-ed together."""
    words = dict.fromkeys(w.lower() for w in re.findall(r"\w+", text) if len(w) > 1)
    if drop_stop_words:
        words = {w: None for w in words if w not in STOP_WORDS}
    return " OR ".join(f'"{w}"' for w in words)


class Index:
    """The chunks in an in-memory SQLite: an FTS5 table always, a vec0 table per embedder run."""

    def __init__(self, chunks: list[dict[str, Any]], drop_stop_words: bool = False, with_files: bool = True) -> None:
        self.drop_stop_words = drop_stop_words
        self.bit_candidates = 0
        self.conn = connect(":memory:")
        self.ids = [c["id"] for c in chunks]
        self.conn.execute(
            "create virtual table fts using fts5(content, files, tokenize='porter unicode61 remove_diacritics 2')"
        )
        self.conn.executemany(
            "insert into fts(rowid, content, files) values (?, ?, ?)",
            [(i + 1, c["content"], " ".join(c["files"]) if with_files else "") for i, c in enumerate(chunks)],
        )

    def keyword(self, query: str, depth: int) -> list[str]:
        match = fts_query(query, self.drop_stop_words)
        if not match:
            return []
        rows = self.conn.execute(
            "select rowid from fts where fts match ? order by rank limit ?", (match, depth)
        ).fetchall()
        return [self.ids[r[0] - 1] for r in rows]

    def load_vectors(self, vectors: list[list[float]]) -> None:
        self.conn.execute("drop table if exists vec")
        self.conn.execute("drop table if exists vec_bits")
        self.conn.execute(f"create virtual table vec using vec0(embedding float[{DIM}] distance_metric=cosine)")
        self.conn.execute(f"create virtual table vec_bits using vec0(embedding bit[{DIM}])")
        blobs = [(i + 1, sqlite_vec.serialize_float32(v)) for i, v in enumerate(vectors)]
        self.conn.executemany("insert into vec(rowid, embedding) values (?, ?)", blobs)
        self.conn.executemany(
            "insert into vec_bits(rowid, embedding) values (?, vec_quantize_binary(vec_f32(?)))", blobs
        )

    def vector(self, query_vector: list[float], depth: int) -> list[str]:
        blob = sqlite_vec.serialize_float32(query_vector)
        if self.bit_candidates:
            # The relay's serving path: Hamming KNN on sign bits for candidates, then exact cosine on those.
            candidates = [
                r[0]
                for r in self.conn.execute(
                    "select rowid from vec_bits where embedding match vec_quantize_binary(vec_f32(?)) and k = ?",
                    (blob, self.bit_candidates),
                )
            ]
            marks = ",".join("?" * len(candidates))
            rows = self.conn.execute(
                "select rowid, vec_distance_cosine(embedding, ?) as d from vec"
                f" where rowid in ({marks}) order by d, rowid limit ?",
                (blob, *candidates, depth),
            ).fetchall()
        else:
            rows = self.conn.execute(
                "select rowid from vec where embedding match ? and k = ? order by distance", (blob, depth)
            ).fetchall()
        return [self.ids[r[0] - 1] for r in rows]


def served_rankings(
    chunks: list[dict[str, Any]],
    vectors: list[list[float]],
    queries: list[dict[str, Any]],
    query_vectors: list[list[float]],
    depth: int,
    with_files: bool,
    vector_weight: float,
) -> dict[str, list[list[str]]]:
    """Each mode's ranked chunk ids as the relay serves them: a real Store on a temporary file, its keyword index,
    its 1536-bit codes rescored exactly, its fusion (claudenest/store/context.py), depth results per query."""

    async def run() -> dict[str, list[list[str]]]:
        with tempfile.TemporaryDirectory() as tmp:
            store = await Store.open(Path(tmp) / "eval.db")
            try:
                items = [
                    (c["type"], c["content"], c["files"] if with_files else [], v)
                    for c, v in zip(chunks, vectors, strict=True)
                ]
                await store.context.add_many("eval", items, embedder="eval")
                by_n = {i + 1: c["id"] for i, c in enumerate(chunks)}
                by_uuid = {r[1]: by_n[r[0]] for r in await store.fetchall("SELECT n, id FROM context_chunks")}
                flt = SearchFilter(project_id="eval")
                out: dict[str, list[list[str]]] = {"keyword": [], "vector": [], "hybrid": []}
                for q, qv in zip(queries, query_vectors, strict=True):
                    out["keyword"].append([by_n[n] for n, _ in await store.context.keyword(flt, q["query"], depth)])
                    out["vector"].append([by_n[n] for n, _ in await store.context.vector(flt, qv, depth)])
                    fused = await store.context.hybrid(flt, q["query"], qv, depth, vector_weight=vector_weight)
                    out["hybrid"].append([by_uuid[r.chunk["id"]] for r in fused])
                return out
            finally:
                await store.close()

    return asyncio.run(run())


def rrf(lists: list[list[str]], rrf_k: int, weights: list[float] | None = None) -> list[str]:
    """Reciprocal rank fusion: score = sum of weight / (rrf_k + rank) over the lists a chunk is in."""
    score: dict[str, float] = {}
    best: dict[str, int] = {}
    for ranked, weight in zip(lists, weights or [1.0] * len(lists), strict=True):
        for rank, cid in enumerate(ranked, 1):
            score[cid] = score.get(cid, 0.0) + weight / (rrf_k + rank)
            best[cid] = min(best.get(cid, rank), rank)
    return sorted(score, key=lambda cid: (-score[cid], best[cid], cid))


def evaluate(rankings: list[list[str]], queries: list[dict[str, Any]], k: int) -> Scores:
    recall = mrr = hit = 0.0
    per_query = []
    for ranked, q in zip(rankings, queries, strict=True):
        relevant = set(q["relevant"])
        top = ranked[:k]
        found = len(relevant.intersection(top))
        first = next((i for i, cid in enumerate(ranked, 1) if cid in relevant), 0)
        recall += found / len(relevant)
        mrr += 1.0 / first if first else 0.0
        hit += 1.0 if found else 0.0
        per_query.append(
            {
                "id": q["id"],
                "kind": q.get("kind"),
                "first_relevant_rank": first,
                "found_in_top_k": found,
                "recall": found / len(relevant),
                "top": top,
            }
        )
    n = len(queries)
    return Scores(recall / n, mrr / n, hit / n, per_query)


def subset(scores: Scores, ids: set[str], kind: str | None = None) -> tuple[Scores, int]:
    """The scores over the queries in ids (of one kind, if given), from the per-query results."""
    rows = [r for r in scores.per_query if r["id"] in ids and (kind is None or r["kind"] == kind)]
    if not rows:
        return Scores(0.0, 0.0, 0.0, []), 0
    n = len(rows)
    recall = sum(r["recall"] for r in rows) / n
    mrr = sum(1.0 / r["first_relevant_rank"] for r in rows if r["first_relevant_rank"]) / n
    hit = sum(1.0 for r in rows if r["found_in_top_k"]) / n
    return Scores(recall, mrr, hit, rows), n


def embedder_configs(names: list[str], ollama_url: str, ollama_model: str) -> list[tuple[str, dict[str, Any]]]:
    configs: list[tuple[str, dict[str, Any]]] = []
    for name in names:
        if name == "ollama":
            configs.append((name, {"kind": "ollama", "url": ollama_url, "model": ollama_model, "timeout": 60.0}))
        else:
            configs.append((name, {"kind": name}))
    return configs


def run_embedder(
    kind: str,
    config: dict[str, Any],
    index: Index,
    chunks: list[dict[str, Any]],
    queries: list[dict[str, Any]],
    args: argparse.Namespace,
) -> EmbedderRun:
    run = EmbedderRun(name=kind, kind=kind)
    started = time.perf_counter()
    try:
        embedder: Embedder = make_embedder(config)
        run.name = embedder.name
        embedder.embed(["warm up: load the model, open the connection"])
    except ClaudenestError as exc:
        run.skipped = str(exc)
        return run
    run.load_s = time.perf_counter() - started
    # What the relay embeds: the content, then the files on a line of their own.
    texts = [c["content"] + ("\n" + " ".join(c["files"]) if args.with_files and c["files"] else "") for c in chunks]
    if kind == "hashing":
        # A fresh embedder's caches are cold; measure that, not a re-run over texts already seen.
        from claudenest import text
        from claudenest.relay import embedders

        embedders._bucket.cache_clear()
        text.stem.cache_clear()
    started = time.perf_counter()
    vectors = embedder.embed(texts)
    run.chunks_per_s = len(texts) / (time.perf_counter() - started)
    index.load_vectors(vectors)
    started = time.perf_counter()
    query_vectors = [embedder.embed([q["query"]])[0] for q in queries]
    run.query_ms = 1000 * (time.perf_counter() - started) / len(queries)
    vector_lists = [index.vector(v, args.depth) for v in query_vectors]
    keyword_lists = [index.keyword(q["query"], args.depth) for q in queries]
    run.scores["vector"] = evaluate(vector_lists, queries, args.k)
    run.vector_weight = embedder.fusion_weight if args.vector_weight is None else args.vector_weight
    served = served_rankings(chunks, vectors, queries, query_vectors, args.depth, args.with_files, run.vector_weight)
    for mode, rankings in served.items():
        run.scores[f"relay {mode}"] = evaluate(rankings, queries, args.k)
    run.scores["hybrid"] = evaluate(
        [rrf([v, kw], args.rrf_k, [run.vector_weight, 1.0]) for v, kw in zip(vector_lists, keyword_lists, strict=True)],
        queries,
        args.k,
    )
    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", type=Path, default=DEFAULT_SET, help="labelled set (default: %(default)s)")
    parser.add_argument(
        "--embedders",
        default="hashing,static,sentence-transformers,ollama",
        help="comma-separated embedder kinds to try (default: %(default)s)",
    )
    parser.add_argument("--k", type=int, default=5, help="cut-off for recall@K and hit@K (default: 5)")
    parser.add_argument("--depth", type=int, default=20, help="results taken from each side before fusion (20)")
    parser.add_argument("--rrf-k", type=int, default=60, help="reciprocal rank fusion constant (default: 60)")
    parser.add_argument(
        "--vector-weight",
        type=float,
        default=None,
        help="weight of the vector list in the fusion (keyword: 1.0; default: the embedder's, as the relay uses)",
    )
    parser.add_argument(
        "--fts-stop-words", action="store_true", help="drop the hashing embedder's stop words from FTS5 queries"
    )
    parser.add_argument(
        "--content-only",
        dest="with_files",
        action="store_false",
        help="embed and index the chunk content alone (default: content plus its files, as the relay does)",
    )
    parser.add_argument(
        "--bit-candidates",
        type=int,
        default=0,
        metavar="N",
        help="vector search as the relay serves it: N candidates by Hamming distance on sign bits, rescored by "
        "exact cosine (default 0: exact cosine over every chunk)",
    )
    parser.add_argument("--ollama-url", default="http://127.0.0.1:11434")
    parser.add_argument("--ollama-model", default="all-minilm")
    parser.add_argument(
        "--split",
        choices=("tune", "heldout"),
        default=None,
        help="score only the queries of this split of --set (default: all of them)",
    )
    parser.add_argument(
        "--parts",
        default="",
        metavar="LIST",
        help=f"comma-separated parts to report separately, overall and per query kind, instead of the single table: "
        f"{', '.join(PARTS)} (e.g. tune,heldout,heldout2)",
    )
    parser.add_argument("--json", nargs="?", const="-", metavar="PATH", help="write every number as JSON (- = stdout)")
    args = parser.parse_args()
    if args.parts:
        return run_parts(args)

    chunks, queries = load_set(args.set)
    if args.split:
        queries = [q for q in queries if q.get("split") == args.split]
    index = Index(chunks, drop_stop_words=args.fts_stop_words, with_files=args.with_files)
    index.bit_candidates = args.bit_candidates
    keyword = evaluate([index.keyword(q["query"], args.depth) for q in queries], queries, args.k)
    runs: list[EmbedderRun] = []
    for kind, config in embedder_configs(args.embedders.split(","), args.ollama_url, args.ollama_model):
        print(f"embedding {len(chunks)} chunks with {kind} ...", file=sys.stderr)
        run = run_embedder(kind, config, index, chunks, queries, args)
        if run.skipped:
            print(f"  skipped: {run.skipped}", file=sys.stderr)
        runs.append(run)

    k = args.k
    machine = f"{platform.machine()}, {platform.processor() or 'cpu'}, Python {platform.python_version()}"
    print(
        f"\n{len(chunks)} chunks, {len(queries)} queries; depth {args.depth} per side, RRF k={args.rrf_k}, "
        f"vector weight {'per embedder' if args.vector_weight is None else args.vector_weight}"
        f"{'; FTS5 query without stop words' if args.fts_stop_words else ''}"
        f"{'; content only' if not args.with_files else '; content + files'}"
        f"{f'; vector via {args.bit_candidates} bit-KNN candidates' if args.bit_candidates else ''}; "
        f"{machine}"
    )
    header = f"{'embedder':<40} {'mode':<14} {f'recall@{k}':>9} {'MRR':>6} {f'hit@{k}':>6}"
    print(header)
    print("-" * len(header))
    print(f"{'(none: FTS5 BM25)':<40} {'keyword':<14} {keyword.recall:>9.3f} {keyword.mrr:>6.3f} {keyword.hit:>6.3f}")
    for run in runs:
        if run.skipped:
            print(f"{run.name:<40} skipped: {run.skipped[:120]}")
            continue
        for mode in ("vector", "hybrid", "relay keyword", "relay vector", "relay hybrid"):
            s = run.scores[mode]
            print(f"{run.name:<40} {mode:<14} {s.recall:>9.3f} {s.mrr:>6.3f} {s.hit:>6.3f}")
    print()
    speed_header = f"{'embedder':<40} {'load s':>7} {'chunks/s':>9} {'ms/query':>9}"
    print(speed_header)
    print("-" * len(speed_header))
    for run in runs:
        if not run.skipped:
            print(f"{run.name:<40} {run.load_s:>7.2f} {run.chunks_per_s:>9.0f} {run.query_ms:>9.2f}")

    if args.json:
        report = {
            "set": str(args.set),
            "chunks": len(chunks),
            "queries": len(queries),
            "k": k,
            "depth": args.depth,
            "rrf_k": args.rrf_k,
            "vector_weight": args.vector_weight,
            "fts_stop_words": args.fts_stop_words,
            "with_files": args.with_files,
            "bit_candidates": args.bit_candidates,
            "machine": machine,
            "sqlite": versions(),
            "keyword": _scores_json(keyword),
            "embedders": [
                {
                    "name": run.name,
                    "kind": run.kind,
                    "skipped": run.skipped or None,
                    "load_s": round(run.load_s, 3),
                    "chunks_per_s": round(run.chunks_per_s, 1),
                    "query_ms": round(run.query_ms, 3),
                    "vector_weight": run.vector_weight,
                    "modes": {mode: _scores_json(s) for mode, s in run.scores.items()},
                }
                for run in runs
            ],
        }
        text = json.dumps(report, indent=1)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n", encoding="utf-8")
    return 0


def run_set(
    path: Path, args: argparse.Namespace
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], Scores, list[EmbedderRun]]:
    """Every mode of every embedder over all of one set's queries."""
    chunks, queries = load_set(path)
    index = Index(chunks, drop_stop_words=args.fts_stop_words, with_files=args.with_files)
    index.bit_candidates = args.bit_candidates
    keyword = evaluate([index.keyword(q["query"], args.depth) for q in queries], queries, args.k)
    runs = []
    for kind, config in embedder_configs(args.embedders.split(","), args.ollama_url, args.ollama_model):
        print(f"{path.name}: embedding {len(chunks)} chunks with {kind} ...", file=sys.stderr)
        run = run_embedder(kind, config, index, chunks, queries, args)
        if run.skipped:
            print(f"  skipped: {run.skipped}", file=sys.stderr)
        runs.append(run)
    return chunks, queries, keyword, runs


def run_parts(args: argparse.Namespace) -> int:
    names = [p for p in args.parts.split(",") if p]
    unknown = [p for p in names if p not in PARTS]
    if unknown:
        print(f"unknown parts {unknown}; known: {', '.join(PARTS)}", file=sys.stderr)
        return 2
    results = {path: run_set(path, args) for path in dict.fromkeys(PARTS[p][0] for p in names)}
    k = args.k
    machine = f"{platform.machine()}, {platform.processor() or 'cpu'}, Python {platform.python_version()}"
    print(
        f"\ndepth {args.depth} per side, RRF k={args.rrf_k}, vector weight "
        f"{'per embedder' if args.vector_weight is None else args.vector_weight}"
        f"{'; content only' if not args.with_files else '; content + files'}"
        f"{f'; vector via {args.bit_candidates} bit-KNN candidates' if args.bit_candidates else ''}; {machine}"
    )
    groups = ("all", *KINDS)
    report: dict[str, Any] = {"k": k, "depth": args.depth, "rrf_k": args.rrf_k, "machine": machine, "parts": {}}
    for name in names:
        path, split = PARTS[name]
        chunks, queries, keyword, runs = results[path]
        part = [q for q in queries if split is None or q.get("split") == split]
        ids = {q["id"] for q in part}
        counts = {g: sum(1 for q in part if g == "all" or q.get("kind") == g) for g in groups}
        print(
            f"\n== {name}: {path.name}{f' split {split}' if split else ''}: {len(part)} queries "
            f"({', '.join(f'{counts[g]} {g}' for g in KINDS)}) over {len(chunks)} chunks; "
            f"each cell recall@{k} / MRR / hit@{k}"
        )
        header = f"{'embedder':<34} {'mode':<14}" + "".join(f" {f'{g} ({counts[g]})':^20}" for g in groups)
        print(header)
        print("-" * len(header))
        rows: list[tuple[str, str, Scores]] = [("(none: FTS5 BM25)", "keyword", keyword)]
        for run in runs:
            if run.skipped:
                print(f"{run.name:<34} skipped: {run.skipped[:100]}")
                continue
            rows.extend((run.name, mode, run.scores[mode]) for mode in ROW_MODES)
        part_json: dict[str, Any] = {"set": str(path), "split": split, "queries": counts, "rows": []}
        for embedder_name, mode, scores in rows:
            cells = []
            row_json: dict[str, Any] = {"embedder": embedder_name, "mode": mode}
            for g in groups:
                s, n = subset(scores, ids, None if g == "all" else g)
                cells.append(f"{s.recall:.3f} {s.mrr:.3f} {s.hit:.3f}" if n else "-")
                row_json[g] = {"recall": round(s.recall, 4), "mrr": round(s.mrr, 4), "hit": round(s.hit, 4), "n": n}
            part_json["rows"].append(row_json)
            print(f"{embedder_name:<34} {mode:<14}" + "".join(f" {c:^20}" for c in cells))
        report["parts"][name] = part_json
    if args.json:
        text = json.dumps(report, indent=1)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n", encoding="utf-8")
    return 0


def _scores_json(s: Scores) -> dict[str, Any]:
    return {"recall": round(s.recall, 4), "mrr": round(s.mrr, 4), "hit": round(s.hit, 4), "per_query": s.per_query}


if __name__ == "__main__":
    sys.exit(main())
