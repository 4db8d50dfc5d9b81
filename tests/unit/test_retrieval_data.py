"""Shape of the labelled retrieval sets (tests/data/retrieval_*.json) that scripts/eval_retrieval.py scores.

Every query has a kind and the first set a split; a query's kind follows from its words: ``paraphrase`` shares no
content word with its answer chunks' content or files (compared as words, as claudenest.text stems, as SQLite FTS5
porter stems and as 6-letter prefixes), ``lexical`` has at least half of its content words in an answer chunk,
``mixed`` is in between. So a paraphrase cannot be found by word overlap; only meaning finds it.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from claudenest.text import STOP_WORDS, stem, tokenize

DATA = Path(__file__).resolve().parent.parent / "data"
FIRST = DATA / "retrieval_set.json"
SECOND = DATA / "retrieval_heldout_2.json"
KINDS = {"paraphrase", "mixed", "lexical"}
CHUNK_TYPES = {"task_completion", "decision", "file_change", "note", "summary"}


def _porter(words: set[str]) -> dict[str, str]:
    """Each word's SQLite FTS5 porter stem (what the keyword index matches on)."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("create virtual table t using fts5(w, tokenize='porter ascii')")
        conn.execute("create virtual table v using fts5vocab(t, 'instance')")
        out = {}
        for w in sorted(words):
            conn.execute("delete from t")
            conn.execute("insert into t(rowid, w) values (1, ?)", (w,))
            terms = [r[0] for r in conn.execute("select term from v")]
            out[w] = terms[0] if terms else w
        return out
    finally:
        conn.close()


def content_words(text: str) -> set[str]:
    """The text's words without stop words (identifiers whole and split into their parts)."""
    return {t for t in tokenize(text) if t not in STOP_WORDS and not t.isdigit() and len(t) > 1}


def _forms(words: set[str], porter: dict[str, str]) -> set[str]:
    forms = set()
    for w in words:
        forms.update({f"w:{w}", f"s:{stem(w)}", f"p:{porter.get(w, w)}"})
        if len(w) >= 6:
            forms.add(f"x:{w[:6]}")
    return forms


def shared_words(query: str, chunk: str) -> set[str]:
    """The query's content words that match a chunk's in any of the compared forms."""
    q, c = content_words(query), content_words(chunk)
    porter = _porter(q | c)
    chunk_forms = _forms(c, porter)
    return {w for w in q if _forms({w}, porter) & chunk_forms}


def query_kind(query: str, answers: list[str]) -> str:
    words = content_words(query)
    shared = set().union(*(shared_words(query, a) for a in answers))
    if not shared:
        return "paraphrase"
    return "lexical" if len(shared) * 2 >= len(words) else "mixed"


def chunk_text(chunk: dict[str, Any]) -> str:
    """What a chunk is found by: its content and its files, as the relay embeds and indexes it."""
    return " ".join([chunk["content"], *chunk["files"]])


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _check_shape(data: dict[str, Any], min_chunks: int, min_queries: int) -> None:
    chunks, queries = data["chunks"], data["queries"]
    assert len(chunks) >= min_chunks
    assert len(queries) >= min_queries
    ids = [c["id"] for c in chunks]
    assert len(ids) == len(set(ids)), "chunk ids must be unique"
    for c in chunks:
        assert set(c) == {"id", "type", "content", "files"}
        assert c["type"] in CHUNK_TYPES
        assert len(c["content"]) >= 40
        assert all(isinstance(f, str) and f for f in c["files"])
    assert {c["type"] for c in chunks} == CHUNK_TYPES
    contents = [c["content"] for c in chunks]
    assert len(contents) == len(set(contents)), "no duplicate chunk texts"
    assert len({q["id"] for q in queries}) == len(queries)
    assert len({q["query"] for q in queries}) == len(queries)
    known = set(ids)
    for q in queries:
        assert q["kind"] in KINDS, q["id"]
        assert q["relevant"], q["id"]
        assert len(q["relevant"]) == len(set(q["relevant"])), q["id"]
        assert not set(q["relevant"]) - known, f"{q['id']} names unknown chunks"


@pytest.mark.parametrize("path", [FIRST, SECOND], ids=["first", "second"])
def test_every_query_kind_follows_from_its_words(path: Path) -> None:
    data = _load(path)
    by_id = {c["id"]: chunk_text(c) for c in data["chunks"]}
    for q in data["queries"]:
        answers = [by_id[cid] for cid in q["relevant"]]
        if q["kind"] == "paraphrase":
            shared = set().union(*(shared_words(q["query"], a) for a in answers))
            assert not shared, f"{q['id']} is labelled a paraphrase but shares {sorted(shared)} with its answers"
        assert q["kind"] == query_kind(q["query"], answers), q["id"]


def test_the_first_set_is_split_into_tuning_and_held_out_parts_of_every_kind() -> None:
    data = _load(FIRST)
    _check_shape(data, 250, 45)
    splits = Counter((q["split"], q["kind"]) for q in data["queries"])
    assert {q["split"] for q in data["queries"]} == {"tune", "heldout"}
    for kind in {q["kind"] for q in data["queries"]}:
        assert abs(splits["tune", kind] - splits["heldout", kind]) <= 1, kind
    assert splits["heldout", "paraphrase"] >= 1


def test_the_second_held_out_set_is_large_and_a_third_paraphrases() -> None:
    data = _load(SECOND)
    _check_shape(data, 200, 60)
    kinds = Counter(q["kind"] for q in data["queries"])
    assert kinds["paraphrase"] * 3 >= len(data["queries"])
    assert all(q.get("split", "heldout") == "heldout" for q in data["queries"])
