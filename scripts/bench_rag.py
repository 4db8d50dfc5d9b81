"""Shared-context speed: insert rate, and hybrid / vector-only query latency at 10k and 100k chunks of 384 dims,
with the served vector search's recall@5 against exact cosine search. Standalone; a temporary SQLite file.

    python scripts/bench_rag.py            # 10k and 100k chunks (about 5 minutes on 2 cores)
    python scripts/bench_rag.py --quick    # 10k only
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from claudenest.relay.embedders import make_embedder
from claudenest.store import Store
from claudenest.store.context import SearchFilter

SET = Path(__file__).parents[1] / "tests" / "data" / "retrieval_set.json"
QUERIES = 200


def corpus(n: int, seed: int = 7) -> list[tuple[str, str, list[str]]]:
    """n chunks: the labelled set's chunks, then recombinations of their sentences (realistic vocabulary)."""
    data = json.loads(SET.read_text())
    base = [(c["type"], c["content"], c.get("files", [])) for c in data["chunks"]]
    sentences = [s.strip() for _, text, _ in base for s in text.split(".") if len(s.strip()) > 20]
    rng = random.Random(seed)
    out = list(base)
    while len(out) < n:
        kind, _, files = rng.choice(base)
        out.append((kind, ". ".join(rng.sample(sentences, 3)) + ".", files))
    return out[:n]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def run(size: int, embedder_kind: str) -> dict[str, float]:
    embedder = make_embedder({"kind": embedder_kind})
    chunks = corpus(size)
    queries = [q["query"] for q in json.loads(SET.read_text())["queries"]]
    with tempfile.TemporaryDirectory() as tmp:
        store = await Store.open(Path(tmp) / "bench.db")
        started = time.perf_counter()
        vectors = await asyncio.to_thread(embedder.embed, [c[1] for c in chunks])
        embed_s = time.perf_counter() - started
        started = time.perf_counter()
        for i in range(0, size, 2000):
            batch = [(k, t, f, v) for (k, t, f), v in zip(chunks[i : i + 2000], vectors[i : i + 2000], strict=True)]
            await store.context.add_many("p", batch, embedder=embedder.name)
        insert_s = time.perf_counter() - started
        flt = SearchFilter(project_id="p")
        hybrid, vector, overlap = [], [], []
        qvecs = embedder.embed(queries)
        for i in range(QUERIES):
            text, qv = queries[i % len(queries)], qvecs[i % len(queries)]
            t0 = time.perf_counter()
            await store.context.hybrid(flt, text, qv, 5)
            hybrid.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            fast = await store.context.vector(flt, qv, 5)
            vector.append((time.perf_counter() - t0) * 1000)
            if i < len(queries):
                exact = await store.context.vector(flt, qv, 5, exact=True)
                overlap.append(len({n for n, _ in fast} & {n for n, _ in exact}) / 5)
        await store.close()
    return {
        "chunks": size,
        "embed_per_s": size / embed_s,
        "insert_per_s": size / insert_s,
        "hybrid_p50_ms": statistics.median(hybrid),
        "hybrid_p99_ms": pct(hybrid, 0.99),
        "vector_p50_ms": statistics.median(vector),
        "vector_p99_ms": pct(vector, 0.99),
        "prefilter_recall_at_5": statistics.mean(overlap),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--embedder", default="hashing")
    parser.add_argument("--json", dest="json_out")
    args = parser.parse_args()
    sizes = [10_000] if args.quick else [10_000, 100_000]
    rows = [asyncio.run(run(size, args.embedder)) for size in sizes]
    header = list(rows[0])
    print(" | ".join(header))
    for row in rows:
        print(" | ".join(f"{row[k]:.3f}" if isinstance(row[k], float) else str(row[k]) for k in header))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
