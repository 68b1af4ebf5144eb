"""Gopher/MassiveText quality and repetition rules (Rae et al. 2021, App. A, Table A1) over a shared TextView.

Definitions follow datatrove 0.10.1 (FineWeb) where the paper is silent, except duplicated n-grams: see
`_ngram_fractions`. Every statistic is computed for every document so the columns are fixed.
"""
from __future__ import annotations

from collections import Counter
from itertools import compress
from dataclasses import dataclass

from transforms.filters.base import StepSpec, Verdict
from transforms.filters.evidence import Rule
from transforms.text import TextView

TOO_FEW_WORDS = "gopher.too_few_words"
TOO_MANY_WORDS = "gopher.too_many_words"
WORDS_TOO_SHORT = "gopher.words_too_short"
WORDS_TOO_LONG = "gopher.words_too_long"
TOO_MANY_HASHES = "gopher.too_many_hashes"
TOO_MANY_ELLIPSES = "gopher.too_many_ellipses"
TOO_MANY_BULLET_LINES = "gopher.too_many_bullet_lines"
TOO_MANY_ELLIPSIS_LINES = "gopher.too_many_ellipsis_lines"
TOO_FEW_ALPHA_WORDS = "gopher.too_few_alpha_words"
TOO_FEW_STOP_WORDS = "gopher.too_few_stop_words"
TOO_MANY_DUPLICATE_LINES = "gopher.too_many_duplicate_lines"
TOO_MANY_DUPLICATE_PARAGRAPHS = "gopher.too_many_duplicate_paragraphs"
TOO_MANY_DUPLICATE_LINE_CHARS = "gopher.too_many_duplicate_line_chars"
TOO_MANY_DUPLICATE_PARAGRAPH_CHARS = "gopher.too_many_duplicate_paragraph_chars"
TOP_NGRAM_REASONS = {n: f"gopher.top_{n}gram_too_frequent" for n in (2, 3, 4)}
DUP_NGRAM_REASONS = {n: f"gopher.too_many_duplicate_{n}grams" for n in range(5, 11)}

# The eight English stop words of Gopher (Rae et al. 2021, App. A.1.1).
GOPHER_STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")


def _check_fraction(name: str, value: float | None) -> None:
    """Reject a ratio threshold outside [0, 1]."""
    if value is not None and not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} ({value}) must be within [0, 1]; use a fraction such as 0.3, or None to turn it off")


@dataclass(frozen=True, kw_only=True, slots=True)
class GopherQualityConfig:
    """Gopher quality thresholds; defaults are the paper's (Rae et al. 2021, App. A.1.1)."""

    min_words: int | None = 50  # non-punctuation words, inclusive; Gopher App. A.1.1
    max_words: int | None = 100_000  # non-punctuation words, inclusive; Gopher App. A.1.1
    min_mean_word_length: float | None = 3.0  # characters per word; Gopher App. A.1.1
    max_mean_word_length: float | None = 10.0  # characters per word; Gopher App. A.1.1
    max_hash_ratio: float | None = 0.1  # '#' count per token (datatrove's denominator); Gopher App. A.1.1
    max_ellipsis_ratio: float | None = 0.1  # '...' and '…' count per token; Gopher App. A.1.1
    max_bullet_line_fraction: float | None = 0.9  # lines (all, as datatrove) starting with a bullet; Gopher
    max_ellipsis_line_fraction: float | None = 0.3  # lines ending with '...' or '…'; Gopher App. A.1.1
    min_alpha_word_fraction: float | None = 0.8  # tokens with a letter, punctuation tokens included; Gopher
    min_stop_words: int | None = 2  # distinct stop words present, case-folded; Gopher App. A.1.1
    stop_words: tuple[str, ...] = GOPHER_STOP_WORDS  # lower case; Gopher App. A.1.1
    bullet_prefixes: tuple[str, ...] = ("•", "-")  # line starts counted as bullets; datatrove 0.10.1

    def __post_init__(self) -> None:
        for name in ("min_words", "max_words", "min_stop_words"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} ({value}) must be >= 0; use a count such as 50, or None to turn it off")
        if self.min_words is not None and self.max_words is not None and self.min_words > self.max_words:
            raise ValueError(f"min_words ({self.min_words}) > max_words ({self.max_words}); lower min_words")
        lo, hi = self.min_mean_word_length, self.max_mean_word_length
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"min_mean_word_length ({lo}) > max_mean_word_length ({hi}); swap them")
        for name in ("max_hash_ratio", "max_ellipsis_ratio", "max_bullet_line_fraction",
                     "max_ellipsis_line_fraction", "min_alpha_word_fraction"):
            _check_fraction(name, getattr(self, name))
        if any(w != w.lower() for w in self.stop_words):
            raise ValueError(f"stop_words {self.stop_words} must be lower case; words are case-folded first")


@dataclass(frozen=True, kw_only=True, slots=True)
class GopherRepetitionConfig:
    """Gopher repetition thresholds (drop when above); defaults are Rae et al. 2021, Table A1."""

    max_duplicate_line_fraction: float | None = 0.30  # repeated lines / lines; Table A1
    max_duplicate_paragraph_fraction: float | None = 0.30  # repeated paragraphs / paragraphs; Table A1
    max_duplicate_line_char_fraction: float | None = 0.20  # chars in repeated lines / text chars; Table A1
    max_duplicate_paragraph_char_fraction: float | None = 0.20  # same for paragraphs; Table A1
    # Chars of the most frequent n-gram times its count / chars of all words, for n = 2, 3, 4; Table A1.
    max_top_ngram_char_fractions: tuple[float, ...] | None = (0.20, 0.18, 0.16)
    # Chars of words covered by a repeated n-gram / chars of all words, for n = 5..10; Table A1.
    max_duplicate_ngram_char_fractions: tuple[float, ...] | None = (0.15, 0.14, 0.13, 0.12, 0.11, 0.10)

    def __post_init__(self) -> None:
        for name in ("max_duplicate_line_fraction", "max_duplicate_paragraph_fraction",
                     "max_duplicate_line_char_fraction", "max_duplicate_paragraph_char_fraction"):
            _check_fraction(name, getattr(self, name))
        for name, size in (("max_top_ngram_char_fractions", 3), ("max_duplicate_ngram_char_fractions", 6)):
            values = getattr(self, name)
            if values is not None and len(values) != size:
                raise ValueError(f"{name} has {len(values)} values, needs {size} (one per n); or None to turn off")
            for v in values or ():
                _check_fraction(name, v)


def _ratio(num: float, den: float) -> float:
    """num / den, 0.0 for an empty denominator (an empty document has no repetition and no words)."""
    return num / den if den else 0.0


def gopher_quality(view: TextView, cfg: GopherQualityConfig) -> Verdict:
    """Drop pages that do not look like prose: too short or long, odd word lengths, symbols, no stop words."""
    tokens, words, lines, text = view.tokens, view.words, view.lines, view.text
    n_tokens = len(tokens)
    stats = {
        "gopher_word_count": float(len(words)),
        "gopher_mean_word_length": _ratio(sum(map(len, words)), len(words)),
        "gopher_hash_ratio": _ratio(text.count("#"), n_tokens),
        "gopher_ellipsis_ratio": _ratio(text.count("...") + text.count("…"), n_tokens),
        "gopher_bullet_line_fraction": _ratio(
            sum(ln.lstrip().startswith(cfg.bullet_prefixes) for ln in lines), len(lines)),
        "gopher_ellipsis_line_fraction": _ratio(sum(ln.rstrip().endswith(("...", "…")) for ln in lines), len(lines)),
        "gopher_alpha_word_fraction": _ratio(sum(t.isalpha() or any(c.isalpha() for c in t) for t in tokens), n_tokens),
        "gopher_stop_word_count": float(len({w.lower() for w in set(words)}.intersection(cfg.stop_words))),
    }
    return Verdict(_quality_reason(stats, cfg), stats)


def _quality_reason(s: dict[str, float], cfg: GopherQualityConfig) -> str | None:
    """The first failed quality rule, in the paper's order."""
    checks = (
        (cfg.min_words, lambda t: s["gopher_word_count"] < t, TOO_FEW_WORDS),
        (cfg.max_words, lambda t: s["gopher_word_count"] > t, TOO_MANY_WORDS),
        (cfg.min_mean_word_length, lambda t: s["gopher_mean_word_length"] < t, WORDS_TOO_SHORT),
        (cfg.max_mean_word_length, lambda t: s["gopher_mean_word_length"] > t, WORDS_TOO_LONG),
        (cfg.max_hash_ratio, lambda t: s["gopher_hash_ratio"] > t, TOO_MANY_HASHES),
        (cfg.max_ellipsis_ratio, lambda t: s["gopher_ellipsis_ratio"] > t, TOO_MANY_ELLIPSES),
        (cfg.max_bullet_line_fraction, lambda t: s["gopher_bullet_line_fraction"] > t, TOO_MANY_BULLET_LINES),
        (cfg.max_ellipsis_line_fraction, lambda t: s["gopher_ellipsis_line_fraction"] > t, TOO_MANY_ELLIPSIS_LINES),
        (cfg.min_alpha_word_fraction, lambda t: s["gopher_alpha_word_fraction"] < t, TOO_FEW_ALPHA_WORDS),
        (cfg.min_stop_words, lambda t: s["gopher_stop_word_count"] < t, TOO_FEW_STOP_WORDS),
    )
    return next((reason for limit, fails, reason in checks if limit is not None and fails(limit)), None)


def _duplicates(items: list[str]) -> tuple[int, int]:
    """Count and total length of the items that repeat an earlier one (first occurrences do not count)."""
    seen: set[str] = set()
    count = chars = 0
    for item in items:
        if item in seen:
            count += 1
            chars += len(item)
        else:
            seen.add(item)
    return count, chars


def _ngram_fractions(words: list[str]) -> tuple[list[float], list[float]]:
    """Top 2/3/4-gram and duplicated 5..10-gram character fractions, over the characters of all words.

    Duplicated n-grams use DCLM's (and RedPajama-v2's) semantics: every word covered by an n-gram that
    occurs at least twice counts once, first occurrence included. We chose it because it is the paper's
    "fraction of characters in duplicate n-grams" with overlaps counted once and it does not depend on
    scan order; datatrove 0.10.1 instead counts only later occurrences and jumps n words after each hit.
    An n-gram can only repeat where its (n-1)-gram prefix repeats, so each level only revisits those
    positions; on normal prose almost nothing survives past n = 3.
    """
    lengths = list(map(len, words))
    total = sum(lengths)
    table: dict[str, int] = {}
    ids = [table.setdefault(w, len(table)) for w in words]
    n_words = len(words)
    positions, prefix = list(range(n_words)), ids  # start positions still repeating, their (n-1)-gram ids
    top: list[float] = []
    dup: list[float] = []
    for n in range(2, 11):
        while positions and positions[-1] > n_words - n:  # no room for an n-gram (positions are sorted)
            positions.pop()
        keys = list(zip(prefix, [ids[i + n - 1] for i in positions]))
        counts = Counter(keys)
        repeated = [(i, k) for i, k in zip(positions, keys) if counts[k] > 1]
        if n <= 4:
            best = max(repeated, key=lambda ik: counts[ik[1]], default=None)  # first of the most frequent
            top.append(_ratio(counts[best[1]] * sum(lengths[best[0]:best[0] + n]), total) if best else 0.0)
        else:
            covered = bytearray(n_words)
            for i, _ in repeated:
                covered[i:i + n] = b"\x01" * n
            dup.append(_ratio(sum(compress(lengths, covered)), total) if repeated else 0.0)
        intern: dict[tuple[int, int], int] = {}
        positions = [i for i, _ in repeated]
        prefix = [intern.setdefault(k, len(intern)) for _, k in repeated]
    return top, dup


def gopher_repetition(view: TextView, cfg: GopherRepetitionConfig) -> Verdict:
    """Drop pages made of repeated lines, paragraphs or phrases (menus, boilerplate, spam)."""
    lines, paragraphs, n_chars = view.stripped_lines, view.paragraphs, len(view.text)
    dup_lines, dup_line_chars = _duplicates(lines)
    dup_paras, dup_para_chars = _duplicates(paragraphs)
    top, dup = _ngram_fractions(view.words)
    stats = {
        "gopher_duplicate_line_fraction": _ratio(dup_lines, len(lines)),
        "gopher_duplicate_paragraph_fraction": _ratio(dup_paras, len(paragraphs)),
        "gopher_duplicate_line_char_fraction": _ratio(dup_line_chars, n_chars),
        "gopher_duplicate_paragraph_char_fraction": _ratio(dup_para_chars, n_chars),
        **{f"gopher_top_{n}gram_char_fraction": v for n, v in zip((2, 3, 4), top)},
        **{f"gopher_duplicate_{n}gram_char_fraction": v for n, v in zip(range(5, 11), dup)},
    }
    return Verdict(_repetition_reason(stats, cfg), stats)


def _repetition_reason(s: dict[str, float], cfg: GopherRepetitionConfig) -> str | None:
    """The first repetition measure above its threshold, in Table A1's order."""
    checks = [
        (cfg.max_duplicate_line_fraction, "gopher_duplicate_line_fraction", TOO_MANY_DUPLICATE_LINES),
        (cfg.max_duplicate_paragraph_fraction, "gopher_duplicate_paragraph_fraction", TOO_MANY_DUPLICATE_PARAGRAPHS),
        (cfg.max_duplicate_line_char_fraction, "gopher_duplicate_line_char_fraction", TOO_MANY_DUPLICATE_LINE_CHARS),
        (cfg.max_duplicate_paragraph_char_fraction, "gopher_duplicate_paragraph_char_fraction",
         TOO_MANY_DUPLICATE_PARAGRAPH_CHARS),
    ]
    for n, limit in zip((2, 3, 4), cfg.max_top_ngram_char_fractions or ()):
        checks.append((limit, f"gopher_top_{n}gram_char_fraction", TOP_NGRAM_REASONS[n]))
    for n, limit in zip(range(5, 11), cfg.max_duplicate_ngram_char_fractions or ()):
        checks.append((limit, f"gopher_duplicate_{n}gram_char_fraction", DUP_NGRAM_REASONS[n]))
    return next((reason for limit, key, reason in checks if limit is not None and s[key] > limit), None)


_REPETITION_STATS = (
    "gopher_duplicate_line_fraction", "gopher_duplicate_paragraph_fraction",
    "gopher_duplicate_line_char_fraction", "gopher_duplicate_paragraph_char_fraction",
    *(f"gopher_top_{n}gram_char_fraction" for n in (2, 3, 4)),
    *(f"gopher_duplicate_{n}gram_char_fraction" for n in range(5, 11)),
)
_QUALITY_STATS = (
    "gopher_word_count", "gopher_mean_word_length", "gopher_hash_ratio", "gopher_ellipsis_ratio",
    "gopher_bullet_line_fraction", "gopher_ellipsis_line_fraction", "gopher_alpha_word_fraction",
    "gopher_stop_word_count",
)
STEPS = (
    StepSpec(
        name="gopher_repetition", kind="filter", fn=gopher_repetition, config_cls=GopherRepetitionConfig,
        stat_names=_REPETITION_STATS,
        reasons=(TOO_MANY_DUPLICATE_LINES, TOO_MANY_DUPLICATE_PARAGRAPHS, TOO_MANY_DUPLICATE_LINE_CHARS,
                 TOO_MANY_DUPLICATE_PARAGRAPH_CHARS, *TOP_NGRAM_REASONS.values(), *DUP_NGRAM_REASONS.values()),
    ),
    StepSpec(
        name="gopher_quality", kind="filter", fn=gopher_quality, config_cls=GopherQualityConfig,
        stat_names=_QUALITY_STATS,
        reasons=(TOO_FEW_WORDS, TOO_MANY_WORDS, WORDS_TOO_SHORT, WORDS_TOO_LONG, TOO_MANY_HASHES, TOO_MANY_ELLIPSES,
                 TOO_MANY_BULLET_LINES, TOO_MANY_ELLIPSIS_LINES, TOO_FEW_ALPHA_WORDS, TOO_FEW_STOP_WORDS),
    ),
)
# Per drop reason, the statistic, the config field holding its limit and the comparison that drops (the checks above).
EVIDENCE = {
    TOO_FEW_WORDS: Rule("gopher_word_count", "min_words", "<"),
    TOO_MANY_WORDS: Rule("gopher_word_count", "max_words", ">"),
    WORDS_TOO_SHORT: Rule("gopher_mean_word_length", "min_mean_word_length", "<"),
    WORDS_TOO_LONG: Rule("gopher_mean_word_length", "max_mean_word_length", ">"),
    TOO_MANY_HASHES: Rule("gopher_hash_ratio", "max_hash_ratio", ">"),
    TOO_MANY_ELLIPSES: Rule("gopher_ellipsis_ratio", "max_ellipsis_ratio", ">"),
    TOO_MANY_BULLET_LINES: Rule("gopher_bullet_line_fraction", "max_bullet_line_fraction", ">"),
    TOO_MANY_ELLIPSIS_LINES: Rule("gopher_ellipsis_line_fraction", "max_ellipsis_line_fraction", ">"),
    TOO_FEW_ALPHA_WORDS: Rule("gopher_alpha_word_fraction", "min_alpha_word_fraction", "<"),
    TOO_FEW_STOP_WORDS: Rule("gopher_stop_word_count", "min_stop_words", "<"),
    TOO_MANY_DUPLICATE_LINES: Rule("gopher_duplicate_line_fraction", "max_duplicate_line_fraction", ">"),
    TOO_MANY_DUPLICATE_PARAGRAPHS: Rule("gopher_duplicate_paragraph_fraction", "max_duplicate_paragraph_fraction", ">"),
    TOO_MANY_DUPLICATE_LINE_CHARS: Rule("gopher_duplicate_line_char_fraction", "max_duplicate_line_char_fraction", ">"),
    TOO_MANY_DUPLICATE_PARAGRAPH_CHARS: Rule("gopher_duplicate_paragraph_char_fraction",
                                             "max_duplicate_paragraph_char_fraction", ">"),
    **{reason: Rule(f"gopher_top_{n}gram_char_fraction", "max_top_ngram_char_fractions", ">", index=i)
       for i, (n, reason) in enumerate(TOP_NGRAM_REASONS.items())},
    **{reason: Rule(f"gopher_duplicate_{n}gram_char_fraction", "max_duplicate_ngram_char_fractions", ">", index=i)
       for i, (n, reason) in enumerate(DUP_NGRAM_REASONS.items())},
}
NOTES: dict[str, str] = {}
