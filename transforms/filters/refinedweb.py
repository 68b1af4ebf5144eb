"""RefinedWeb line-wise corrections (Penedo et al. 2023, App. G.2) as DCLM runs them (Li et al. 2024, App. C).

Removal rules run first (upper case, numbers, counters, too few words), then the substring edits on short
lines; the page is dropped when the edits removed too many of its words. Blank lines are kept so that
paragraph breaks survive for the paragraph-level dedup that follows.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from transforms.filters.base import Edit, StepSpec, Verdict
from transforms.filters.evidence import Rule
from transforms.text import TextView

TOO_MANY_WORDS_REMOVED = "refinedweb.too_many_words_removed"

# "12 likes", "3.4K views", "1,024 followers" alone on a line (RefinedWeb App. G.2 "counter" lines).
# Linear: no quantified group contains another quantifier over the same characters.
_COUNTER_RE = re.compile(
    r"^\W*\d[\d.,]*[kmb]?\s+(?:like|share|comment|retweet|repost|quote|bookmark|upvote|downvote|download|view"
    r"|follower|reply|replie|vote)s?\W*$"
)


@dataclass(frozen=True, kw_only=True, slots=True)
class RefinedWebLinesConfig:
    """Line corrections; defaults are DCLM's RefinedWeb recipe (dclm_baseline_refinedweb.yaml)."""

    max_uppercase_fraction: float | None = 0.5  # upper-case chars / all chars of the line; RefinedWeb G.2
    drop_numeric_lines: bool = True  # lines made only of digits; RefinedWeb G.2
    drop_counter_lines: bool = True  # "N likes" style lines; RefinedWeb G.2
    min_words_per_line: int | None = 2  # white-space words; DCLM line_length_modifier
    max_words_for_substring_edits: int = 10  # edits below apply to lines of at most this many words; DCLM
    remove_phrases: tuple[str, ...] = ("items in cart",)  # removed anywhere, any case; RefinedWeb G.2
    remove_suffixes: tuple[str, ...] = ("read more...",)  # removed at the line's end, any case; RefinedWeb G.2
    remove_prefixes: tuple[str, ...] = ("sign-in",)  # removed at the line's start, any case; RefinedWeb G.2
    max_removed_word_fraction: float | None = 0.05  # white-space words removed / before; drop if >; G.2

    def __post_init__(self) -> None:
        for name in ("max_uppercase_fraction", "max_removed_word_fraction"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} ({value}) must be within [0, 1]; use a fraction such as 0.05, or None")
        if self.min_words_per_line is not None and self.min_words_per_line < 1:
            raise ValueError(f"min_words_per_line ({self.min_words_per_line}) must be >= 1, or None to turn it off")
        if self.max_words_for_substring_edits < 1:
            raise ValueError(f"max_words_for_substring_edits ({self.max_words_for_substring_edits}) must be >= 1")
        for name in ("remove_phrases", "remove_suffixes", "remove_prefixes"):
            if any(p != p.lower() or not p for p in getattr(self, name)):
                raise ValueError(f"{name} {getattr(self, name)} must be non-empty lower-case strings")


@lru_cache(maxsize=16)
def _phrase_re(phrases: tuple[str, ...]) -> re.Pattern[str]:
    """One case-insensitive alternation of literal phrases, compiled once per config."""
    return re.compile("|".join(map(re.escape, phrases)), re.IGNORECASE)


def _line_removed(line: str, n_words: int, cfg: RefinedWebLinesConfig) -> bool:
    """Whether a non-blank line is upper-case shouting, a bare number, a counter or too short."""
    limit = cfg.max_uppercase_fraction
    if limit is not None and not line.islower() and sum(map(str.isupper, line)) > limit * len(line):
        return True
    stripped = line.strip()
    if cfg.drop_numeric_lines and stripped.isdigit():
        return True
    if cfg.drop_counter_lines and not stripped[0].isalpha() and _COUNTER_RE.match(stripped.lower()):
        return True
    return cfg.min_words_per_line is not None and n_words < cfg.min_words_per_line


def _edit_short_line(line: str, cfg: RefinedWebLinesConfig) -> str:
    """Strip shop, "read more" and sign-in leftovers from a short line."""
    if cfg.remove_phrases:
        line, hits = _phrase_re(cfg.remove_phrases).subn("", line)
        line = " ".join(line.split()) if hits else line
    lower = line.rstrip().lower()
    for suffix in cfg.remove_suffixes:
        if lower.endswith(suffix):
            line = line.rstrip()[: -len(suffix)]
            lower = line.lower()
    lower = line.lstrip().lower()
    for prefix in cfg.remove_prefixes:
        if lower.startswith(prefix):
            line = line.lstrip()[len(prefix):]
            lower = line.lower()
    return line.strip()


def refinedweb_lines(view: TextView, cfg: RefinedWebLinesConfig) -> Edit:
    """Remove navigation and counter lines; drop the page if that took away too much of it."""
    kept: list[str] = []
    removed_lines = 0
    for line in view.lines:
        if not line or line.isspace():
            kept.append("")
            continue
        n_words = len(line.split())
        if _line_removed(line, n_words, cfg):
            removed_lines += 1
            continue
        if n_words <= cfg.max_words_for_substring_edits:
            line = _edit_short_line(line, cfg)
            if not line:
                removed_lines += 1
                continue
        kept.append(line)
    new_text = "\n".join(kept).strip()
    before = len(view.whitespace_words)
    removed = before - len(new_text.split())
    stats = {
        "refinedweb_removed_word_fraction": removed / before if before else 0.0,
        "refinedweb_removed_line_fraction": removed_lines / len(view.lines),
    }
    limit = cfg.max_removed_word_fraction
    reason = TOO_MANY_WORDS_REMOVED if limit is not None and stats["refinedweb_removed_word_fraction"] > limit else None
    return Edit(new_text, Verdict(reason, stats))


STEPS = (
    StepSpec(
        name="refinedweb_lines", kind="editor", fn=refinedweb_lines, config_cls=RefinedWebLinesConfig,
        stat_names=("refinedweb_removed_word_fraction", "refinedweb_removed_line_fraction"),
        reasons=(TOO_MANY_WORDS_REMOVED,),
    ),
)
EVIDENCE = {TOO_MANY_WORDS_REMOVED: Rule("refinedweb_removed_word_fraction", "max_removed_word_fraction", ">")}
NOTES: dict[str, str] = {}
