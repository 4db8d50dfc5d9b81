"""Shared context on a real SQLite file: FTS5 + sqlite-vec hybrid search, filters, re-embedding, compiled context."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from claudenest.relay.rag import ContextService, tokens, updated_recent_changes
from claudenest.store import Store
from claudenest.store.context import SearchFilter

CHUNKS = [
    (
        "decision",
        "We store sessions in SQLite with WAL mode and one writer connection.",
        ["claudenest/store/connection.py"],
    ),
    (
        "task_completion",
        "Added Stripe webhook verification for billing events; invoices are idempotent.",
        ["billing/webhooks.py"],
    ),
    ("file_change", "Refactored the job queue retry policy to use exponential backoff with jitter.", ["jobs/retry.py"]),
    ("note", "The search service indexes product titles with a trigram tokenizer.", ["search/index.py"]),
    ("decision", "Passwords are hashed with scrypt; tokens are SHA-256 at rest.", ["auth/tokens.py"]),
]


@pytest.fixture
async def service(tmp_path: Path) -> Any:
    store = await Store.open(tmp_path / "relay.db")
    service = ContextService(store)
    yield service
    await service.stop()
    await store.close()


async def seed(service: ContextService, project: str = "p1") -> list[dict[str, Any]]:
    return [await service.add(project, content, type=kind, files=files) for kind, content, files in CHUNKS]


async def test_hybrid_search_finds_by_words_and_by_meaning_with_both_ranks(service: ContextService) -> None:
    await seed(service)
    results = await service.query("p1", "how are billing webhooks verified?", limit=3)
    assert results[0].chunk["files"] == ["billing/webhooks.py"]
    top = results[0]
    assert top.keyword_rank == 1
    assert top.vector_rank is not None
    assert top.score == pytest.approx(1 / 61 + 1 / (60 + top.vector_rank))
    keyword_only = await service.query("p1", "exponential backoff", mode="keyword")
    assert keyword_only[0].chunk["files"] == ["jobs/retry.py"]
    assert keyword_only[0].vector_rank is None


async def test_search_is_filtered_by_project_type_and_expiry(service: ContextService) -> None:
    await seed(service, "p1")
    await service.add("p2", "Billing webhooks in the other project.", type="note")
    await service.add("p1", "Expired note about billing webhooks.", type="note", expires_at="2000-01-01T00:00:00.000Z")
    results = await service.query("p1", "billing webhooks", limit=10)
    assert {r.chunk["project_id"] for r in results} == {"p1"}
    assert all("Expired" not in r.chunk["content"] for r in results)
    decisions = await service.query("p1", "billing webhooks tokens", limit=10, types=["decision"])
    assert decisions
    assert {r.chunk["type"] for r in decisions} == {"decision"}


async def test_binary_prefilter_agrees_with_exact_search(service: ContextService) -> None:
    await seed(service)
    for i in range(200):
        await service.add("p1", f"Filler note number {i} about unrelated topic {i % 17}.", type="note")
    flt = SearchFilter(project_id="p1")
    (vector,) = await service.embed(["job queue retries and backoff"])
    fast = await service.store.context.vector(flt, vector, 5)
    exact = await service.store.context.vector(flt, vector, 5, exact=True)
    # 320 candidates from the 1536-bit codes, rescored exactly: at this size every candidate is the whole project.
    assert fast == exact


async def test_delete_removes_a_chunk_from_every_index(service: ContextService) -> None:
    chunks = await seed(service)
    await service.store.context.delete("p1", chunks[1]["id"])
    results = await service.query("p1", "stripe billing webhook", limit=5)
    assert chunks[1]["id"] not in [r.chunk["id"] for r in results]


async def test_reembedding_converts_chunks_of_another_embedder(service: ContextService) -> None:
    await seed(service)
    await service.store.execute("UPDATE context_chunks SET embedder = 'old-model'")
    assert await service.store.context.count(service.embedder.name) == 0
    progress = service.start_reembed()
    await service._job  # noqa: SLF001 (waiting for the background job in a test)
    assert service.progress.done == len(CHUNKS)
    assert service.progress.error is None
    assert await service.store.context.count(service.embedder.name) == len(CHUNKS)
    assert progress is not None


async def test_query_text_is_never_fts_syntax(service: ContextService) -> None:
    await seed(service)
    for text in ['"; DROP TABLE x; -- NEAR(a b)', "scope : p2 OR *", "?!", "AND OR NOT", 'tokens^ \\ "sha-256"']:
        results = await service.query("p1", text, mode="keyword")
        assert all(r.chunk["project_id"] == "p1" for r in results)
    matched = await service.query("p1", 'tokens" OR "sha-256 (at rest)', mode="keyword")
    assert matched[0].chunk["files"] == ["auth/tokens.py"]


async def test_common_words_are_left_out_of_the_keyword_query(service: ContextService) -> None:
    for i in range(40):
        await service.add("p1", f"Routine note {i}: the deploy pipeline ran.", type="note")
    await service.add("p1", "The deploy pipeline pins terraform 1.7 for the staging stack.", type="decision")
    match = await service.store.context.match_expression("p1", "which terraform version does the deploy pipeline pin")
    assert match is not None
    assert '"terraform"' in match
    assert '"deploy"' not in match
    assert '"pipelin"' not in match
    results = await service.query("p1", "which terraform version does the deploy pipeline pin", mode="keyword")
    assert results[0].chunk["type"] == "decision"
    # A query of common words only still searches: its rarest word is kept.
    assert await service.query("p1", "deploy pipeline", mode="keyword")


def test_recent_changes_newest_first_and_bounded() -> None:
    text = None
    for i in range(12):
        text = updated_recent_changes(text, f"task {i}", f"Did thing {i}. More detail.")
    lines = text.splitlines()
    assert len(lines) == 10
    assert lines[0] == "- task 11: Did thing 11."


def test_token_estimate() -> None:
    assert tokens("x" * 400) == 100
    assert tokens("x" * 401) == 101


async def test_chunks_from_before_migration_5_are_indexed_in_the_background(tmp_path: Path) -> None:
    """A relay upgraded from the first context schema keeps its chunks and finds them once they are re-indexed."""
    from claudenest.relay.embedders import HashingEmbedder
    from claudenest.store import sqlite
    from claudenest.store.context import pack
    from claudenest.store.migrations import MIGRATIONS

    path = tmp_path / "old.db"
    conn = sqlite.connect(str(path))
    conn.execute("CREATE TABLE _migrations (id INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT)")
    for number, name, sql in MIGRATIONS[:4]:
        conn.executescript(sql)
        conn.execute("INSERT INTO _migrations (id, name, applied_at) VALUES (?, ?, '')", (number, name))
    embedder = HashingEmbedder()
    for n, (kind, content, files) in enumerate(CHUNKS, 1):
        blob = pack(embedder.embed_one(content))
        conn.execute(
            "INSERT INTO context_chunks (n, id, project_id, type, content, files, embedder, embedding, created_at)"
            " VALUES (?, ?, 'p1', ?, ?, ?, ?, ?, '2026-01-01T00:00:00.000Z')",
            (n, f"chunk-{n}", kind, content, f'["{files[0]}"]', embedder.name, blob),
        )
        conn.execute(
            "INSERT INTO context_fts (rowid, content, files, project_id) VALUES (?, ?, ?, 'p1')", (n, content, files[0])
        )
        conn.execute(
            "INSERT INTO context_vec (rowid, project_id, embedding) VALUES (?, 'p1', vec_quantize_binary(vec_f32(?)))",
            (n, blob),
        )
    conn.commit()
    conn.close()

    store = await Store.open(path)
    service = ContextService(store)
    try:
        assert 5 in await store.applied_migrations()
        assert await store.context.count_unindexed() == len(CHUNKS)
        assert await service.query("p1", "stripe webhook verification") == []  # not indexed yet: found by nothing
        service.start()
        await service.indexing_done()
        assert await store.context.count_unindexed() == 0
        results = await service.query("p1", "stripe webhook verification")
        assert results[0].chunk["id"] == "chunk-2"
        assert results[0].keyword_rank == 1
        assert results[0].vector_rank == 1
    finally:
        await service.stop()
        await store.close()


async def test_vector_weight_comes_from_the_embedder_or_the_config(tmp_path: Path) -> None:
    from claudenest.errors import ConfigError

    store = await Store.open(tmp_path / "relay.db")
    try:
        assert ContextService(store).vector_weight == 1.0  # hashing: BM25's equal
        weighted = ContextService(store, {"vector_weight": 3})
        await seed(weighted)
        top = (await weighted.query("p1", "how are billing webhooks verified?", limit=3))[0]
        assert top.keyword_rank is not None
        assert top.vector_rank is not None
        assert top.score == pytest.approx(1 / (60 + top.keyword_rank) + 3 / (60 + top.vector_rank))
        for bad in (0, -1, "2", True, 1000):
            with pytest.raises(ConfigError, match="vector_weight"):
                ContextService(store, {"vector_weight": bad})
    finally:
        await store.close()


async def test_a_word_common_in_another_project_is_still_searched_where_it_is_rare(service: ContextService) -> None:
    for i in range(60):
        await service.add("busy", f"Kubernetes note {i}: the cluster autoscaler ran.", type="note")
    for i in range(20):
        await service.add("calm", f"Quiet note {i} about release planning.", type="note")
    await service.add("calm", "We deploy the staging stack to kubernetes with helm.", type="decision")
    match = await service.store.context.match_expression("calm", "kubernetes helm")
    assert match is not None
    assert '"kubernet"' in match  # rare in this project, though common in 'busy'
    assert '"helm"' in match
    quiet_notes = await service.store.context.match_expression("calm", "quiet kubernetes")
    assert quiet_notes is not None
    assert '"quiet"' not in quiet_notes  # common in this project: left out while a rarer term remains


async def test_a_rare_type_still_fills_the_results_of_a_filtered_search(service: ContextService) -> None:
    notes = [f"Billing webhook retry note {i}: Stripe event {i * 7919 % 1000} is retried." for i in range(3000)]
    vectors = await service.embed(notes)
    items = [("note", text, [], v) for text, v in zip(notes, vectors, strict=True)]
    await service.store.context.add_many("p1", items, embedder=service.embedder.name)
    decisions = [
        await service.add("p1", text, type="decision")
        for text in ("We chose Postgres over MySQL.", "Uploads go to S3.", "Deploys happen on Tuesdays.")
    ]
    flt = SearchFilter(project_id="p1", types=["decision"])
    (vector,) = await service.embed(["billing webhook retries for stripe events"])
    found = await service.store.context.vector(flt, vector, 5)
    decision_ns = {r[0] for r in await service.store.fetchall("SELECT n FROM context_chunks WHERE type = 'decision'")}
    assert {n for n, _ in found} == decision_ns  # none of them is near the query, and yet all three come back
    results = await service.query("p1", "billing webhook retries for stripe events", types=["decision"], limit=5)
    assert {r.chunk["id"] for r in results} == {d["id"] for d in decisions}
