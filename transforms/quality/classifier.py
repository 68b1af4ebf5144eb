"""fastText quality classifier: score a document, then keep it by a fixed threshold or by a top fraction of tokens.

DCLM-Baseline keeps documents by the `__label__hq` probability of its OH-2.5 + ELI5 fastText model (data-seeds
3.1); BETR keeps the top 10% of tokens by its classifier's score (data-seeds 1.6). Scores are stored, the
decision is a recipe setting, so both can be retuned without re-scoring.
"""
from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field
from typing import Iterable, Literal, Sequence

import numpy as np

POSITIVE_LABEL = "__label__hq"  # DCLM's labels (mlfoundations/fasttext-oh-eli5): hq = high quality, cc = crawl
NEGATIVE_LABEL = "__label__cc"
INSTALL_HINT = "pip install 'refinery[quality]'"
SCORE = "classifier_score"  # the filter_stats column that stores each document's score
# Every character Python's str.splitlines() breaks on, plus the ASCII whitespace fastText splits words on.
_SEPARATORS = re.compile(r"[ \t\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]+")


@dataclass(frozen=True, kw_only=True, slots=True)
class ClassifierConfig:
    """Which fastText model scores documents and how its score decides what is kept."""

    model_path: str = ""  # local fastText .bin (required); train one with `python -m pipelines.betr`
    label: str = POSITIVE_LABEL  # the positive label; its probability is the stored score
    # "top_fraction" (Blu-WERP's, from BETR, data-seeds 1.6): keep the highest-scoring documents that hold
    # top_token_fraction of all tokens. "threshold": keep score >= threshold (DCLM).
    mode: Literal["threshold", "top_fraction"] = "top_fraction"
    # Lowest score kept in threshold mode, a probability. 0.5 keeps what the model calls positive; DCLM-Baseline
    # kept >= 0.018112 with its own model, about its top 10% (data-seeds 3.1): a threshold belongs to one model.
    threshold: float = 0.5
    top_token_fraction: float = 0.1  # share of tokens kept in top_fraction mode; BETR's default is 10%

    def __post_init__(self) -> None:
        if not self.model_path:
            raise ValueError("model_path is empty; train a model with `python -m pipelines.betr --output "
                             "model.bin ...` and set model_path to that file")
        if not self.label.startswith("__label__"):
            raise ValueError(f"label ({self.label!r}) must start with '__label__', e.g. {POSITIVE_LABEL!r}")
        if self.mode not in ("threshold", "top_fraction"):
            raise ValueError(f"mode ({self.mode!r}) must be 'threshold' or 'top_fraction'")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold ({self.threshold}) must be a probability in [0, 1]")
        if not 0.0 < self.top_token_fraction <= 1.0:
            raise ValueError(f"top_token_fraction ({self.top_token_fraction}) must be in (0, 1]; BETR uses 0.1")


def fasttext_input(text: str) -> str:
    """One line, case kept: fastText reads one example per line and its predict() rejects '\\n'.

    Same words as DCLM's `" ".join(text.strip().splitlines())`: fastText splits words on ASCII whitespace,
    so collapsing runs of it changes no word, and non-breaking spaces stay inside words as they do there.
    """
    return _SEPARATORS.sub(" ", text).strip()


def import_fasttext():
    """The fastText module, or an ImportError that names the extra to install."""
    try:
        import fasttext
    except ImportError:
        raise ImportError(f"the quality classifier needs fastText: {INSTALL_HINT}") from None
    return fasttext


def ensure_available(cfg: ClassifierConfig) -> None:
    """Fail when the pipeline is built, not on a worker: the package and the model file must be there."""
    import_fasttext()
    if not os.path.isfile(cfg.model_path):
        raise FileNotFoundError(f"fastText model {cfg.model_path!r} not found; train one with "
                                "`python -m pipelines.betr` or fix quality.model_path")


@functools.cache
def load_model(path: str):
    """One copy per process and path (call it in DoFn.setup); a missing file names the trainer."""
    fasttext = import_fasttext()
    if not os.path.isfile(path):
        raise FileNotFoundError(f"fastText model {path!r} not found; train one with `python -m pipelines.betr`")
    return fasttext.load_model(path)


def _positive_probability(labels: Sequence[str], probs: Sequence[float], label: str) -> float:
    """Probability of `label` from a full (k=-1) prediction; fastText's softmax can exceed 1 by ~1e-5."""
    for name, prob in zip(labels, probs):
        if name == label:
            return min(max(float(prob), 0.0), 1.0)
    raise ValueError(f"the model has no label {label!r}; its labels are {', '.join(labels)}")


def score(model, text: str, label: str = POSITIVE_LABEL) -> float:
    """Probability of the positive label, whichever label the model ranks first."""
    labels, probs = model.predict(fasttext_input(text), k=-1)
    return _positive_probability(labels, probs, label)


def score_many(model, texts: Sequence[str], label: str = POSITIVE_LABEL) -> np.ndarray:
    """score() for a batch in one call into fastText (float64, one per text)."""
    labels, probs = model.predict([fasttext_input(t) for t in texts], k=-1)
    return np.array([_positive_probability(ls, ps, label) for ls, ps in zip(labels, probs)], dtype=np.float64)


@dataclass(slots=True)
class ScoreHistogram:
    """Token weight per score bin: the top-fraction threshold over any number of documents in fixed memory.

    Scores are probabilities in [0, 1] cut into `n_bins` equal bins, so a threshold is a bin's lower edge and
    is at most one bin width (1e-4 by default) below the exact sort-based one. Histograms add, so this is a
    Beam CombineFn accumulator as is.
    """

    n_bins: int = 10_000
    weights: np.ndarray | None = field(default=None)  # float64 tokens per bin: exact integers up to 2**53

    def __post_init__(self) -> None:
        if self.n_bins < 1:
            raise ValueError(f"n_bins ({self.n_bins}) must be >= 1")
        if self.weights is None:
            self.weights = np.zeros(self.n_bins, dtype=np.float64)
        elif self.weights.shape != (self.n_bins,):
            raise ValueError(f"weights has shape {self.weights.shape}; expected ({self.n_bins},)")

    def _bins(self, scores: np.ndarray) -> np.ndarray:
        if np.isnan(scores).any():
            raise ValueError("a score is NaN; scores must be probabilities in [0, 1]")
        return np.clip((np.clip(scores, 0.0, 1.0) * self.n_bins).astype(np.int64), 0, self.n_bins - 1)

    def add(self, score_value: float, tokens: float) -> None:
        """Count one document's tokens at its score (clipped into [0, 1])."""
        self.weights[self._bins(np.array([score_value], dtype=np.float64))[0]] += tokens

    def add_many(self, scores: Iterable[float], tokens: Iterable[float]) -> None:
        """add() for arrays of scores and token counts."""
        scores, tokens = np.asarray(scores, dtype=np.float64), np.asarray(tokens, dtype=np.float64)
        self.weights += np.bincount(self._bins(scores), weights=tokens, minlength=self.n_bins)

    def merge(self, others: Iterable[ScoreHistogram]) -> ScoreHistogram:
        """Add the others into this one and return it (Beam's merge_accumulators may reuse the first)."""
        for other in others:
            if other.n_bins != self.n_bins:
                raise ValueError(f"cannot merge histograms of {other.n_bins} and {self.n_bins} bins")
            self.weights += other.weights
        return self

    @property
    def total(self) -> float:
        return float(self.weights.sum())

    def threshold(self, top_fraction: float) -> float:
        """Lowest bin edge s such that documents scoring >= s hold at least top_fraction of all tokens."""
        if not 0.0 < top_fraction <= 1.0:
            raise ValueError(f"top_fraction ({top_fraction}) must be in (0, 1]")
        if self.total <= 0:
            raise ValueError("the histogram holds no tokens; add documents before asking for a threshold")
        tail = np.cumsum(self.weights[::-1])[::-1]  # tail[i]: tokens of documents in bin i or above
        target = top_fraction * self.total * (1 - 1e-12)  # float slack: 0.1 * total must not miss by one ulp
        index = int(np.flatnonzero(tail >= target)[-1])
        return index / self.n_bins

