"""Paragraph n-gram dedup in BFF's "old-both" mode, computed exactly and in parallel (data-seeds.md §1.5).

BFF streams documents through a Bloom filter: a paragraph (newline-delimited segment) whose 13-gram windows
are more than 80% already seen is removed, otherwise its n-grams are inserted; a document whose n-grams are more
than 80% already seen is dropped whole. We compute the same test without the filter: every n-gram occurrence
is keyed by its hash, its owner is the earliest (document order key, paragraph) that has it, and an occurrence
is "contained" when its owner is strictly earlier. That is exact (no Bloom false positives) and independent of
file order, so any runner gives the same answer.

Deviation from sequential BFF, by design: BFF does not insert the n-grams of a paragraph it removes, so a later
copy of such a paragraph is compared only with what survived; here every occurrence owns its n-grams, removed or
not. A paragraph can therefore be marked contained by the n-grams of a removed one, which only matters when the
overlap sits near the threshold; tests compare the two on planted corpora (>= 99% agreement).
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from transforms.dedup.hashing import SpanHasher, char_classes, code_points, window_hashes

REASON_DUPLICATE = "paragraph.duplicate_document"
# UAX#29 word segmentation, approximated: letters/digits joined by ' . : (and , between digits) are one word,
# every other non-space character is a token of its own, white space is dropped. BFF uses the same rules via
# Rust's unicode-segmentation; a regex avoids a dependency for the cases that matter in web text.
_TOKEN_RE = re.compile(r"\w+(?:(?:[.'’:]|(?<=\d),(?=\d))\w+)*|[^\w\s]")
_JOINERS = np.array([ord(c) for c in ".'’:"], dtype=np.uint32)
HASH_SEED = 0xBFF0_13_0_DEC0DE  # fixes token hashing; changing it changes no decision, only the hash values


@dataclass(frozen=True, kw_only=True, slots=True)
class ParagraphDedupConfig:
    """BFF's reference invocation in DCLM: 13-grams, threshold 0.8, old-both."""

    ngram: int = 13  # tokens per n-gram; paragraphs with fewer tokens have no n-grams and are never removed
    paragraph_threshold: float = 0.8  # remove a paragraph when more than this fraction of its n-grams is contained
    document_threshold: float = 0.8  # drop the document when more than this fraction of all its n-grams is

    def __post_init__(self) -> None:
        if self.ngram < 1:
            raise ValueError(f"ngram ({self.ngram}) must be >= 1")
        for name in ("paragraph_threshold", "document_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} ({getattr(self, name)}) must be within [0, 1]")


@dataclass(frozen=True, slots=True)
class ParagraphDecision:
    """What the dedup did to one document."""

    text: str  # the text with removed paragraphs cut out ("" when the document is dropped)
    removed: tuple[int, ...]  # indices of the removed paragraphs (all of them when the document is dropped)
    dropped: bool  # the whole document is a duplicate

    @property
    def removed_paragraphs(self) -> int:
        return len(self.removed)


def tokenize(paragraph: str) -> list[str]:
    """Word tokens as BFF sees them: case and punctuation kept, white space dropped (the reference tokenizer)."""
    return _TOKEN_RE.findall(paragraph)


@functools.cache
def _hasher() -> SpanHasher:
    return SpanHasher(HASH_SEED)


def token_spans(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[start, end) of every token of `tokenize`, in order, from code-point classes instead of a regex loop."""
    cls = char_classes()
    word, digit = cls["word"][points], cls["digit"][points]
    before, after = np.r_[False, word[:-1]], np.r_[word[1:], False]
    joined = word | (np.isin(points, _JOINERS) & before & after)
    joined |= (points == ord(",")) & np.r_[False, digit[:-1]] & np.r_[digit[1:], False]
    run_start = np.flatnonzero(joined & ~np.r_[False, joined[:-1]])
    run_end = np.flatnonzero(joined & ~np.r_[joined[1:], False]) + 1
    punct = np.flatnonzero(~joined & ~cls["space"][points])  # every other visible character is a token
    starts, ends = np.concatenate([run_start, punct]), np.concatenate([run_end, punct + 1])
    order = np.argsort(starts, kind="stable")
    return starts[order], ends[order]


def paragraph_windows(text: str, n: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(n-gram hashes, paragraph of each, number of paragraphs): windows never span a newline."""
    points = code_points(text)
    starts, ends = token_spans(points)
    paras = np.searchsorted(np.flatnonzero(points == ord("\n")), starts).astype(np.uint32)
    grams = window_hashes(_hasher().hash_spans(points, starts, ends), n)
    if grams.size:
        inside = paras[: grams.size] == paras[n - 1:]
        grams, paras = grams[inside], paras[: grams.size][inside]
    else:
        paras = paras[:0]
    return grams, paras, text.count("\n") + 1


OCCURRENCE = np.dtype([("hash", "<u8"), ("date", "<i8"), ("digest", "<u8"), ("para", "<u4"), ("count", "<u4")])


def occurrences(text: str, key: tuple[int, int], n: int) -> np.ndarray:
    """One 32-byte record per distinct n-gram of each paragraph: what a document sends to the shuffle."""
    grams, paras, _ = paragraph_windows(text, n)
    if grams.size == 0:
        return np.empty(0, dtype=OCCURRENCE)
    order = np.lexsort((grams, paras))
    grams, paras = grams[order], paras[order]
    first = np.flatnonzero(np.r_[True, (grams[1:] != grams[:-1]) | (paras[1:] != paras[:-1])])
    table = np.empty(first.size, dtype=OCCURRENCE)
    table["hash"], table["para"] = grams[first], paras[first]
    table["count"] = np.diff(np.r_[first, grams.size])
    table["date"], table["digest"] = key
    return table


def contained_counts(table: np.ndarray) -> np.ndarray:
    """Of all occurrences of a set of n-grams, the counts per (document, paragraph) that an earlier one owns.

    Sorting by (hash, date, digest, paragraph) puts each n-gram's owner first in its run; every other row of
    the run is contained. Vectorised over a whole shuffle bucket, so no Python loop runs per n-gram.
    """
    if table.size == 0:
        return np.empty(0, dtype=OCCURRENCE)
    order = np.lexsort((table["para"], table["digest"], table["date"], table["hash"]))
    rows = table[order]
    starts = np.flatnonzero(np.r_[True, rows["hash"][1:] != rows["hash"][:-1]])
    owner = np.repeat(starts, np.diff(np.r_[starts, rows.size]))
    mask = np.ones(rows.size, dtype=bool)
    mask[starts] = False  # the owner itself; a run's other rows are other (document, paragraph) positions
    mask &= (rows["date"] != rows["date"][owner]) | (rows["digest"] != rows["digest"][owner]) | (
        rows["para"] != rows["para"][owner])
    return rows[mask]


def decide(text: str, contained: Mapping[int, int], cfg: ParagraphDedupConfig) -> ParagraphDecision:
    """Apply BFF's two tests to one document, given how many n-grams of each paragraph an earlier one owns."""
    grams, paras, count = paragraph_windows(text, cfg.ngram)
    if grams.size and sum(contained.values()) / grams.size > cfg.document_threshold:
        return ParagraphDecision(text="", removed=tuple(range(count)), dropped=True)
    totals = np.bincount(paras, minlength=count)
    removed = tuple(j for j, c in sorted(contained.items()) if totals[j] and c / totals[j] > cfg.paragraph_threshold)
    paragraphs = text.split("\n")
    gone = set(removed)
    return ParagraphDecision(text="\n".join(p for j, p in enumerate(paragraphs) if j not in gone), removed=removed,
                             dropped=False)
