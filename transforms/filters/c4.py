"""C4's line clean-up as FineWeb runs it (Raffel et al. 2020, Sec. 2.2; datatrove 0.10.1 C4QualityFilter).

One editor step: it removes lines, then may drop the whole page. Line rules run in datatrove's order, so
a "lorem ipsum" or "{" only drops the page when it sits in a line that survived the earlier line rules.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from transforms.filters.base import Edit, StepSpec, Verdict
from transforms.filters.evidence import Rule
from transforms.text import TextView

LOREM_IPSUM = "c4.lorem_ipsum"
CURLY_BRACKET = "c4.curly_bracket"
TOO_FEW_SENTENCES = "c4.too_few_sentences"

# Wikipedia-style citation marks: [1], [], [edit], [citation needed] (TFDS c4_utils; datatrove 0.10.1).
_CITATION_RE = re.compile(r"\[\d*\]|\[edit\]|\[citation needed\]")
# A sentence ends at terminal punctuation, optional closing quotes/brackets, then space before more text.
# Approximates spaCy's sentencizer (datatrove's) without a model; one linear scan, no nested quantifiers.
_SENTENCE_END_RE = re.compile(r"[.!?…。！？]+[\"'”’)\]]*\s+(?=\S)")
# Policy and cookie boilerplate (TFDS c4_utils `_POLICY_SUBSTRINGS`, as in datatrove 0.10.1).
C4_POLICY_PHRASES = (
    "terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies",
)


@dataclass(frozen=True, kw_only=True, slots=True)
class C4Config:
    """C4 line and page rules; defaults are FineWeb's choice (all of C4 but the terminal-punctuation rule)."""

    max_word_length: int | None = 1000  # chars of the longest white-space word in a kept line; TFDS c4_utils
    remove_citations: bool = True  # strip [1], [edit], [citation needed]; TFDS c4_utils
    min_words_per_line: int | None = 3  # white-space words, counted before citation removal; C4 paper 2.2
    drop_javascript_lines: bool = True  # drop lines containing "javascript" (any case); C4 paper 2.2
    drop_policy_lines: bool = True  # drop lines containing a policy phrase; TFDS c4_utils
    policy_phrases: tuple[str, ...] = C4_POLICY_PHRASES  # lower case substrings; TFDS c4_utils
    # Keep only lines ending in . ! ? " (not "..."). Off in FineWeb (Penedo et al. 2024, Sec. 3.3); C4 has it on.
    require_terminal_punctuation: bool = False
    drop_lorem_ipsum: bool = True  # drop the page if a kept line says "lorem ipsum"; C4 paper 2.2
    drop_curly_bracket: bool = True  # drop the page if a kept line contains "{"; C4 paper 2.2
    min_sentences: int | None = 5  # sentences in the kept lines; C4 paper 2.2

    def __post_init__(self) -> None:
        for name in ("max_word_length", "min_words_per_line", "min_sentences"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} ({value}) must be >= 1; use a positive count, or None to turn it off")
        if any(p != p.lower() for p in self.policy_phrases):
            raise ValueError(f"policy_phrases {self.policy_phrases} must be lower case; lines are lower-cased first")


def count_sentences(line: str) -> int:
    """Sentences in one non-empty line: sentence-ending punctuation followed by more text, plus one."""
    return len(_SENTENCE_END_RE.findall(line)) + 1 if any(c in line for c in ".!?…。！？") else 1


def _shape_ok(line: str, words: list[str], cfg: C4Config) -> bool:
    """The line rules C4 applies before looking at content: terminal punctuation and word count."""
    if cfg.require_terminal_punctuation and (not line.endswith((".", "?", "!", '"', "'")) or line.endswith("...")):
        return False
    return cfg.min_words_per_line is None or len(words) >= cfg.min_words_per_line


def c4(view: TextView, cfg: C4Config) -> Edit:
    """Remove C4's boilerplate lines, then drop pages with placeholder text, code braces or too few sentences."""
    kept: list[str] = []
    reasons: list[str] = []
    sentences = 0
    max_len = cfg.max_word_length
    for raw in view.lines:
        line = raw.strip()
        words = line.split()  # before citation removal, as datatrove counts them
        if max_len is not None and len(line) > max_len and any(len(w) > max_len for w in words):
            continue
        if cfg.remove_citations and "[" in line:
            line = _CITATION_RE.sub("", line)
        if not _shape_ok(line, words, cfg):
            continue
        lower = line.lower()
        if cfg.drop_lorem_ipsum and "lorem ipsum" in lower:
            reasons.append(LOREM_IPSUM)
        if cfg.drop_javascript_lines and "javascript" in lower:
            continue
        if cfg.drop_curly_bracket and "{" in line:
            reasons.append(CURLY_BRACKET)
        if cfg.drop_policy_lines and any(p in lower for p in cfg.policy_phrases):
            continue
        sentences += count_sentences(line)
        kept.append(line)
    if cfg.min_sentences is not None and sentences < cfg.min_sentences:
        reasons.append(TOO_FEW_SENTENCES)
    new_text = "\n".join(kept).strip()
    n_lines = len(view.lines)
    stats = {
        "c4_sentence_count": float(sentences),
        "c4_removed_line_fraction": (n_lines - len(kept)) / n_lines,
        "c4_removed_char_fraction": 1.0 - len(new_text) / len(view.text) if view.text else 0.0,
    }
    return Edit(new_text, Verdict(reasons[0] if reasons else None, stats))


STEPS = (
    StepSpec(
        name="c4", kind="editor", fn=c4, config_cls=C4Config,
        stat_names=("c4_sentence_count", "c4_removed_line_fraction", "c4_removed_char_fraction"),
        reasons=(LOREM_IPSUM, CURLY_BRACKET, TOO_FEW_SENTENCES),
    ),
)
EVIDENCE = {TOO_FEW_SENTENCES: Rule("c4_sentence_count", "min_sentences", "<")}
NOTES = {LOREM_IPSUM: 'a kept line contains "lorem ipsum"', CURLY_BRACKET: 'a kept line contains "{"'}
