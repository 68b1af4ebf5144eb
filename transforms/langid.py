"""Offline language ID: py3langid's bundled model by default, fastText lid.176 when the recipe names a model file.

FineWeb and DCLM keep English pages whose fastText lid.176 score is >= 0.65 (data-seeds 3.1, 3.2); py3langid
needs no download, so a pipeline runs with nothing but its PyPI dependencies.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Protocol

from transforms.filters.base import Verdict
from transforms.filters.evidence import Evidence, compared

WRONG_LANGUAGE = "langid.wrong_language"
LOW_SCORE = "langid.low_score"
REASONS = (WRONG_LANGUAGE, LOW_SCORE)
STAT_NAMES = ("langid_score",)
_FASTTEXT_LABEL = "__label__"


@dataclass(frozen=True, kw_only=True, slots=True)
class LangIdConfig:
    """Which languages are kept and how the classifier runs."""

    languages: tuple[str, ...] = ("en",)  # ISO 639-1 codes kept; Blu-WERP, FineWeb and DCLM keep English
    # Lowest score kept. 0.65 is FineWeb's and DCLM's threshold for fastText lid.176. py3langid's normalised
    # probabilities are a different scale (near 1.0 for any clean paragraph), but the default is kept for
    # both; retune from the stored langid_score column.
    min_score: float = 0.65
    model_path: str | None = None  # fastText model file (lid.176.bin); None uses py3langid's bundled model
    # Characters classified, from the start of the text; None is the whole text. py3langid walks every byte in
    # Python: on 162 extracted benchmark pages (median 3,836 chars) the whole text runs at 462 docs/s/core,
    # 1,000 chars at 2,360, and 1,000 chars name the whole text's language on all of them (200 chars: 98.8%).
    # bench/data/extraction_quality.py measures it.
    max_chars: int | None = 1000

    def __post_init__(self) -> None:
        if not self.languages:
            raise ValueError("languages is empty; list at least one ISO 639-1 code, e.g. [en]")
        if not 0.0 <= self.min_score <= 1.0:
            raise ValueError(f"min_score ({self.min_score}) must be in [0, 1]")
        if self.max_chars is not None and self.max_chars < 1:
            raise ValueError(f"max_chars ({self.max_chars}) must be >= 1; use null for the whole text")


class LanguageIdentifier(Protocol):
    def predict(self, text: str) -> tuple[str, float]:
        """The most likely language code and its score in [0, 1]."""


@functools.cache
def _py3langid_model():
    """The bundled model, unpacked once per process (~0.6 s) and shared by every DoFn instance."""
    from py3langid.langid import MODEL_FILE
    from py3langid.langid import LanguageIdentifier as Py3LangId

    return Py3LangId.from_model_file(MODEL_FILE, norm_probs=True)


def _import_fasttext(model_path: str):
    try:
        import fasttext
    except ImportError:
        raise ImportError(f"model_path ({model_path}) needs fastText: pip install 'refinery[fasttext]'") from None
    return fasttext


@functools.cache
def _fasttext_model(path: str):
    """One copy per process and path: lid.176.bin is 126 MB."""
    return _import_fasttext(path).load_model(path)


class Py3LangIdIdentifier:
    """py3langid's naive Bayes over byte n-grams, probabilities normalised over its 97 languages."""

    def __init__(self, *, max_chars: int | None) -> None:
        self.max_chars = max_chars
        self.model = _py3langid_model()

    def predict(self, text: str) -> tuple[str, float]:
        lang, score = self.model.classify(text[: self.max_chars])
        return lang, float(score)


class FastTextIdentifier:
    """fastText lid.176 (Joulin et al. 2016): labels are `__label__<code>`."""

    def __init__(self, model_path: str, *, max_chars: int | None) -> None:
        self.max_chars = max_chars
        self.model = _fasttext_model(model_path)

    def predict(self, text: str) -> tuple[str, float]:
        # fastText predicts one line at a time and rejects newlines.
        labels, scores = self.model.predict(text[: self.max_chars].replace("\n", " "), k=1)
        if not labels:
            return "", 0.0
        return labels[0].removeprefix(_FASTTEXT_LABEL), min(float(scores[0]), 1.0)


def ensure_available(cfg: LangIdConfig) -> None:
    """Fail when the pipeline is built, not on a worker, if the optional fastText package is missing."""
    if cfg.model_path is not None:
        _import_fasttext(cfg.model_path)


def load_identifier(cfg: LangIdConfig) -> LanguageIdentifier:
    """The configured identifier; call it in DoFn.setup (the models load lazily, once per process)."""
    if cfg.model_path is None:
        return Py3LangIdIdentifier(max_chars=cfg.max_chars)
    return FastTextIdentifier(cfg.model_path, max_chars=cfg.max_chars)


def check_language(lang: str, score: float, *, cfg: LangIdConfig) -> Verdict:
    """Keep a page in a listed language with score >= min_score. An unsure guess is low_score, whatever
    language it names; a confident guess outside the list is wrong_language."""
    stats = {"langid_score": score}
    if score < cfg.min_score:
        return Verdict(LOW_SCORE, stats)
    if lang not in cfg.languages:
        return Verdict(WRONG_LANGUAGE, stats)
    return Verdict(None, stats)


def language_evidence(lang: str, score: float, *, cfg: LangIdConfig) -> Evidence:
    """Why check_language dropped a page: its score against min_score, and the language it was taken for."""
    text = compared("langid_score", score, "<" if score < cfg.min_score else ">=", cfg.min_score)
    if score >= cfg.min_score:
        text = f"language {lang or '?'} not in {list(cfg.languages)} ({text})"
    else:
        text = f"{text} (language {lang or '?'})"
    return Evidence("langid_score", float(score), float(cfg.min_score), text)
