"""Turn raw rewriter outputs into documents or explicit drop reasons, so every lost sample is counted by cause.

Behaviour follows the SwallowCode/SwallowMath scripts (data-seeds.md §2.1, §2.3; Fujii et al. 2025,
arXiv 2505.02881), with fences read line by line so a "###" comment or a "```" inside code cannot cut a block.
"""
from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass

SGCR_NO_SECTION = "sgcr.no_improved_code_section"
SGCR_NO_CODE_BLOCK = "sgcr.no_code_block"
SGCR_EMPTY_CODE = "sgcr.empty_code_block"
SCOR_TOO_SHORT = "scor.too_short"
SCOR_NO_CODE_BLOCK = "scor.no_code_block"
SCOR_EMPTY_CODE = "scor.empty_code_block"
MATH_TOO_SHORT = "math.too_short"
REPETITION = "rewrite.degenerate_repetition"  # for the shell that applies has_degenerate_repetition

# Outputs of 50 characters or fewer are dropped (scor_python.py and finemath-4+-rewrite-v1.py).
MIN_OUTPUT_CHARS = 51
NO_SCORE = -1.0  # an Evaluation the parser cannot read, as in the original (score -1)
_SCORE = re.compile(r"^\s*\**\s*(\d+(?:\.\d+)?)\s*\**\s*(?:/\s*10\b.*)?$")
_ANSWER = re.compile(r"^\s*####\s*(.*?)\s*$")


@dataclass(frozen=True, slots=True)
class SgcrResult:
    """An SGCR answer: score and suggestions are kept even when the code is missing."""

    raw: str
    score: float  # 1..10 as the model wrote it, NO_SCORE if absent, unreadable or out of range
    suggestions: tuple[str, ...]
    code: str | None  # the ```python block of the Improved Code section, stripped
    reason: str | None = None

    @property
    def keep(self) -> bool:
        return self.reason is None


@dataclass(frozen=True, slots=True)
class ScorResult:
    """A SCOR answer: the first complete fenced block, stripped and ending in one newline."""

    raw: str
    code: str | None
    reason: str | None = None

    @property
    def keep(self) -> bool:
        return self.reason is None


@dataclass(frozen=True, slots=True)
class MathResult:
    """A SwallowMath answer: the whole rewrite is the document; the "####" answer is extracted for checks."""

    raw: str
    text: str | None
    final_answer: str | None  # the text after the last "#### " line, None if the model wrote none
    reason: str | None = None

    @property
    def keep(self) -> bool:
        return self.reason is None


def normalize_newlines(text: str) -> str:
    """CRLF and lone CR to LF, so line rules hold for every client's output."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _is_fence(line: str) -> bool:
    """A line that opens or closes a fenced block (indented fences count, as in list items)."""
    return line.lstrip().startswith("```")


def _first_block(lines: list[str], *, tag: str | None) -> tuple[str | None, bool]:
    """(content, found) of the first complete fenced block; `tag` set means the opening line must be ```tag."""
    start = None
    for i, line in enumerate(lines):
        if start is None:
            opener = line.strip()
            if opener.startswith("```") and (tag is None or opener == f"```{tag}"):
                start = i + 1
        elif line.strip() == "```":
            return "\n".join(lines[start:i]).strip(), True
    return None, False


def _sections(lines: list[str]) -> list[tuple[str, list[str]]]:
    """(header, body lines) for each line starting with "###" outside a code fence."""
    sections: list[tuple[str, list[str]]] = []
    in_fence = False
    for line in lines:
        if _is_fence(line):
            in_fence = not in_fence
        if not in_fence and line.startswith("###"):
            sections.append((line.lstrip("#").strip(), []))
        elif sections:
            sections[-1][1].append(line)
    return sections


def parse_score(value: str) -> float:
    """"7", "7.5", "7/10" or "**7**" -> 7.0; anything else, or outside 1..10, -> NO_SCORE (never clamped)."""
    match = _SCORE.match(value)
    if match is None:
        return NO_SCORE
    score = float(match.group(1))
    return score if 1.0 <= score <= 10.0 else NO_SCORE


def parse_sgcr(text: str) -> SgcrResult:
    """Split an SGCR answer on its "###" headers into score, suggestions and the improved python block."""
    score, suggestions, body = NO_SCORE, (), None
    for header, lines in _sections(normalize_newlines(text).split("\n")):
        name, _, rest = header.partition(":")
        name = name.strip("* ").lower()
        if name.startswith("evaluation") and score == NO_SCORE:
            first = next((ln for ln in lines if ln.strip()), "")
            score = parse_score(rest) if rest.strip() else parse_score(first)
        elif name == "suggestions" and not suggestions:
            suggestions = tuple(ln.strip() for ln in lines if ln.strip())
        elif name == "improved code" and body is None:
            body = lines
    if body is None:
        return SgcrResult(text, score, suggestions, None, SGCR_NO_SECTION)
    code, found = _first_block(body, tag="python")
    if not found:
        return SgcrResult(text, score, suggestions, None, SGCR_NO_CODE_BLOCK)
    if not code:
        return SgcrResult(text, score, suggestions, None, SGCR_EMPTY_CODE)
    return SgcrResult(text, score, suggestions, code)


def parse_scor(text: str, *, min_chars: int = MIN_OUTPUT_CHARS) -> ScorResult:
    """The first complete fenced block of a SCOR answer (any language tag), or why there is none."""
    if len(text) < min_chars:
        return ScorResult(text, None, SCOR_TOO_SHORT)
    code, found = _first_block(normalize_newlines(text).split("\n"), tag=None)
    if not found:
        return ScorResult(text, None, SCOR_NO_CODE_BLOCK)
    if not code:
        return ScorResult(text, None, SCOR_EMPTY_CODE)
    return ScorResult(text, code + "\n")


def parse_math(text: str, *, min_chars: int = MIN_OUTPUT_CHARS) -> MathResult:
    """The whole SwallowMath rewrite (stripped) as the document, plus its final "####" answer if any."""
    if len(text) < min_chars:
        return MathResult(text, None, None, MATH_TOO_SHORT)
    body = normalize_newlines(text).strip()
    answers = [m.group(1) for m in map(_ANSWER.match, body.split("\n")) if m is not None]
    final = answers[-1] if answers and answers[-1] else None
    return MathResult(text, body + "\n", final)


def has_degenerate_repetition(text: str, *, min_chars: int = 1000, min_period: int = 100) -> bool:
    """True if a text of >= min_chars has a span of >= min_period chars immediately repeated (a looping model).

    Same answer as the original regex `(.{100,})(\\1)+` with DOTALL (remove_repetition.py, data-seeds §2.1),
    which backtracks in O(n^3). Here: a square of period L >= min_period has a first half that contains a
    whole aligned block of k = ceil(min_period / 2) chars, so the block also occurs exactly L later. Index
    the aligned blocks, find each later occurrence with one dict lookup per position, and check each
    candidate (b, L) with two memcmp-speed slice comparisons: O(n) lookups plus O(log L) per candidate.
    """
    n = len(text)
    if n < min_chars or n < 2 * min_period:
        return False
    k = (min_period + 1) // 2
    blocks: dict[str, list[int]] = {}
    for b in range(0, n - k + 1, k):
        blocks.setdefault(text[b : b + k], []).append(b)
    for p in range(min_period, n - k + 1):
        starts = blocks.get(text[p : p + k])
        if starts is None:
            continue
        # Only periods min_period <= p - b <= n // 2 can fit a square in the text.
        for i in range(bisect_left(starts, p - n // 2), bisect_right(starts, p - min_period)):
            if _square_through(text, block=starts[i], period=p - starts[i]):
                return True
    return False


def _square_through(text: str, *, block: int, period: int) -> bool:
    """Whether the run of text[j] == text[j + period] around `block` is at least `period` long."""
    lo, hi = 0, min(block, period)  # longest matching stretch just before `block`, by binary search
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if text[block - mid : block] == text[block - mid + period : block + period]:
            lo = mid
        else:
            hi = mid - 1
    need = period - lo
    return block + period + need <= len(text) and text[block : block + need] == text[block + period : block + period + need]
