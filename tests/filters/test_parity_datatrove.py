"""Our Gopher, C4 and FineWeb filters against datatrove 0.10.1 on the extraction-benchmark gold texts.

A disagreement counts as explained only when code shows its cause: we re-run our filter with one
documented difference aligned to datatrove's (its lines, its spaCy tokens, its n-gram measure, its
sentence splitter, its comparisons) and the decision then matches. Run with -s to see the table.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable

import pytest

from tests.conftest import SHARED_DATA, shared_path
from transforms.filters import c4, fineweb, gopher
from transforms.text import TextView, is_punctuation

DATA = SHARED_DATA / "extraction"
_CLEANEVAL_TAG_RE = re.compile(r"<\s*/?\s*[phlPHL]\s*>")
# Measured on 127 gold texts: gopher_repetition 94.5%, gopher_quality 94.5%, c4 100%, fineweb 99.2%.
MIN_AGREEMENT = 0.9


def _read(path: Path) -> str:
    """A gold file as text with Unix newlines (both sides get the same string)."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def load_gold_texts(root: Path = DATA) -> list[tuple[str, str]]:
    """(name, text) for scrapinghub articleBody, CleanEval dev gold (URL line and tags removed), Dragnet gold."""
    docs: list[tuple[str, str]] = []
    truth = json.loads((root / "scrapinghub-aeb" / "ground-truth.json").read_text(encoding="utf-8"))
    docs += [(f"aeb/{key}", item["articleBody"]) for key, item in sorted(truth.items())]
    for path in sorted((root / "cleaneval" / "dev" / "GoldStandard").glob("*.txt")):
        text = _read(path)
        if text.startswith("URL:"):
            text = text.split("\n", 1)[1] if "\n" in text else ""
        docs.append((f"cleaneval/{path.name}", _CLEANEVAL_TAG_RE.sub("", text)))
    docs += [(f"dragnet/{p.name}", _read(p)) for p in sorted((root / "dragnet" / "GoldStandard").glob("*.txt"))]
    return [(name, text) for name, text in docs if text.strip()]


def _view(text: str, **cached: list[str]) -> TextView:
    """A TextView whose named splits are preset (cached_property reads the instance dict first)."""
    view = TextView(text)
    view.__dict__.update(cached)
    return view


def _spacy_tokens(text: str) -> dict[str, list[str]]:
    """datatrove's words (spaCy), as our tokens and words."""
    from datatrove.utils.text import split_into_words

    tokens = split_into_words(text)
    return {"tokens": tokens, "words": [t for t in tokens if not is_punctuation(t)]}


def _explain_gopher_quality(text: str, dt_keep: bool) -> str | None:
    """Which documented difference flips our Gopher quality decision to datatrove's."""
    cfg = gopher.GopherQualityConfig()
    lines = {"lines": text.splitlines()}
    if gopher.gopher_quality(_view(text, **lines), cfg).keep == dt_keep:
        return "line split (str.splitlines vs '\\n')"
    spacy = _spacy_tokens(text)
    if gopher.gopher_quality(_view(text, **lines, **spacy), cfg).keep == dt_keep:
        return "tokenizer (spaCy vs our regex)"
    # datatrove counts distinct stop words without case folding ("The" does not count).
    exact = sum(w in set(spacy["tokens"]) for w in cfg.stop_words)
    folded = gopher.gopher_quality(TextView(text), cfg).stats["gopher_stop_word_count"]
    if not dt_keep and exact < cfg.min_stop_words <= folded:
        return "stop words case-folded"
    return None


def _datatrove_ngram_stats(text: str, tokens: list[str]) -> dict[str, float]:
    """datatrove's top and duplicated n-gram fractions (spaced strings over len(text); later repeats only)."""
    from collections import Counter

    from datatrove.pipeline.filters.gopher_repetition_filter import find_all_duplicate, get_n_grams

    stats = {}
    for n in (2, 3, 4):
        grams = get_n_grams(tokens, n)
        gram, count = Counter(grams).most_common(1)[0] if grams else ("", 0)
        stats[f"gopher_top_{n}gram_char_fraction"] = len(gram) * count / len(text)
    for n in range(5, 11):
        stats[f"gopher_duplicate_{n}gram_char_fraction"] = find_all_duplicate(tokens, n) / len(text)
    return stats


def _explain_gopher_repetition(text: str, dt_keep: bool) -> str | None:
    """Which documented difference flips our Gopher repetition decision to datatrove's."""
    cfg = gopher.GopherRepetitionConfig()
    structure = {"stripped_lines": re.split("\n+", text), "paragraphs": re.split(r"\n{2,}", text.strip())}
    aligned = gopher.gopher_repetition(_view(text, **structure), cfg)
    if aligned.keep == dt_keep:
        return "line/paragraph definition (datatrove keeps blank-space lines unstripped)"
    spacy = _spacy_tokens(text)
    aligned = gopher.gopher_repetition(_view(text, **structure, **spacy), cfg)
    if aligned.keep == dt_keep:
        return "tokenizer (spaCy vs our regex)"
    stats = {**aligned.stats, **_datatrove_ngram_stats(text, spacy["tokens"])}
    if (gopher._repetition_reason(stats, cfg) is None) == dt_keep:
        return "n-gram measure (DCLM covered-word semantics vs datatrove's)"
    return None


def _explain_c4(text: str, dt_keep: bool) -> str | None:
    """Which documented difference flips our C4 decision to datatrove's."""
    from datatrove.utils.text import split_into_sentences

    cfg = c4.C4Config()
    if c4.c4(_view(text, lines=text.splitlines()), cfg).verdict.keep == dt_keep:
        return "line split (str.splitlines vs '\\n')"
    edit = c4.c4(TextView(text), cfg)
    if edit.verdict.reason in (None, c4.TOO_FEW_SENTENCES):
        spacy_count = sum(len(split_into_sentences(line)) for line in edit.text.split("\n") if line)
        if (spacy_count >= cfg.min_sentences) == dt_keep:
            return "sentence splitter (spaCy sentencizer vs our regex) near min_sentences"
    return None


def _explain_fineweb(text: str, dt_keep: bool, cfg: fineweb.FineWebQualityConfig) -> str | None:
    """Which documented difference flips our FineWeb decision to datatrove's."""
    from datatrove.utils.text import TERMINAL_PUNCTUATION

    stats = fineweb.fineweb_quality(TextView(text), cfg).stats
    limits = (cfg.min_punctuated_line_fraction, cfg.max_short_line_fraction, cfg.max_duplicate_line_char_fraction)
    if any(stats[k] == v for k, v in zip(fineweb.STAT_NAMES, limits)):
        return "boundary: a ratio equals its threshold (paper <=/>=, datatrove strict)"
    wide = fineweb.FineWebQualityConfig(**{**_fields(cfg), "terminal_punctuation": tuple(TERMINAL_PUNCTUATION)})
    if fineweb.fineweb_quality(TextView(text), wide).keep == dt_keep:
        return "terminal punctuation set (datatrove's 159 marks vs our common ones)"
    if fineweb.fineweb_quality(_view(text, **_spacy_tokens(text)), cfg).keep == dt_keep:
        return "tokenizer (spaCy vs our regex) in the newline/word ratio"
    return None


def _fields(cfg: object) -> dict[str, object]:
    """A slots dataclass as a dict of its fields."""
    return {name: getattr(cfg, name) for name in cfg.__dataclass_fields__}


def _compare(
    docs: list[tuple[str, str]], ours: Callable[[str], bool], theirs: Callable[[str], bool],
    explain: Callable[[str, bool], str | None],
) -> tuple[int, dict[str, int], list[str]]:
    """Agreements, explained disagreements by cause, and the names of unexplained documents."""
    agree, causes, unexplained = 0, {}, []
    for name, text in docs:
        dt_keep = theirs(text)
        if ours(text) == dt_keep:
            agree += 1
            continue
        cause = explain(text, dt_keep)
        if cause is None:
            unexplained.append(name)
        else:
            causes[cause] = causes.get(cause, 0) + 1
    return agree, causes, unexplained


def _datatrove_keep(block: object) -> Callable[[str], bool]:
    """datatrove's filter(doc) as keep/drop on a fresh Document (C4 rewrites doc.text)."""
    from datatrove.data import Document

    return lambda text: block.filter(Document(text=text, id="x")) is True


def test_parity() -> None:
    """Every disagreement with datatrove has a coded cause, and agreement is high for each filter."""
    shared_path("extraction")
    from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter, GopherQualityFilter,
                                            GopherRepetitionFilter)

    docs = load_gold_texts()
    fw_cfg = fineweb.FineWebQualityConfig(max_newline_per_word_ratio=0.3)
    rows = [
        ("gopher_repetition", lambda t: gopher.gopher_repetition(TextView(t), gopher.GopherRepetitionConfig()).keep,
         _datatrove_keep(GopherRepetitionFilter()), _explain_gopher_repetition),
        ("gopher_quality", lambda t: gopher.gopher_quality(TextView(t), gopher.GopherQualityConfig()).keep,
         _datatrove_keep(GopherQualityFilter()), _explain_gopher_quality),
        ("c4", lambda t: c4.c4(TextView(t), c4.C4Config()).verdict.keep,
         _datatrove_keep(C4QualityFilter(filter_no_terminal_punct=False)), _explain_c4),
        ("fineweb", lambda t: fineweb.fineweb_quality(TextView(t), fw_cfg).keep,
         _datatrove_keep(FineWebQualityFilter(char_duplicates_ratio=0.1, new_line_ratio=0.3)),
         lambda t, k: _explain_fineweb(t, k, fw_cfg)),
    ]
    print(f"\n{len(docs)} gold texts\n| filter | agree | rate | explained disagreements |\n|---|---|---|---|")
    failures = []
    for name, ours, theirs, explain in rows:
        agree, causes, unexplained = _compare(docs, ours, theirs, explain)
        rate = agree / len(docs)
        explained = "; ".join(f"{c}: {n}" for c, n in causes.items()) or "-"
        print(f"| {name} | {agree}/{len(docs)} | {rate:.1%} | {explained} |")
        if unexplained:
            failures.append(f"{name}: unexplained disagreements on {unexplained}")
        if rate < MIN_AGREEMENT:
            failures.append(f"{name}: agreement {rate:.1%} < {MIN_AGREEMENT:.0%}")
    assert not failures, "\n".join(failures)
