"""Our extractor: Resiliparse's fast DOM and text walk, then a small trained model that keeps or drops each line.

Why our own: trafilatura is the most accurate public extractor but ~15x slower than Resiliparse; Resiliparse's
main-content rules drop lists and keep boilerplate blocks it does not name; jusText needs a stoplist per language.
Here the page is parsed once and walked twice by Resiliparse's C code: once for every visible line with minimal
markup (headings, paragraphs, list items, links, pre; table rows come as tab-separated cells), once for the lines
its main-content rules keep. Each line gets language-free features (no stoplist, no tokenizer); a logistic model
scores it, a second one rescores it with its neighbours' scores (main text comes in runs), and lines above the
threshold are kept in page order, one per line. The weights are trained by `scripts/train_extractor.py` on the
gold-text pages of ../shared/data/extraction and shipped as JSON. Walks that skip boilerplate-like and
article-like containers (`skip_elements`) and Readability's best-container score were tried as features and
gained nothing out of fold (docs/extractor-notes.md), so the page costs two walks, not four.
"""
from __future__ import annotations

import collections
import functools
import html as html_lib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_TAG = re.compile(r"<(/?)([a-z][a-z0-9]*)\b[^>]*>")
_LINK_TEXT = re.compile(r"<a\b[^>]*>(.*?)</a>", re.S)
_SENTENCE_END = tuple(".!?。！？…:;\"'”’»)")
_HEADINGS = {f"h{i}": i for i in range(1, 7)}

FEATURES = ("bias", "log_chars", "log_words", "link_density", "heading", "heading_level", "list_item", "paragraph",
            "pre", "table_row", "main", "position", "sentence_end", "digit_frac", "upper_frac", "punct_frac", "short",
            "has_pipe_or_copyright", "mean_word_len", "prev_main", "next_main", "prev_link", "next_link",
            "doc_main_frac", "doc_log_lines", "long_para", "repeated", "main_run", "main_distance")
_F = {name: i for i, name in enumerate(FEATURES)}
_FLAG_FEATURES = ("link_density", "heading", "heading_level", "list_item", "paragraph", "pre", "table_row", "main",
                  "sentence_end", "has_pipe_or_copyright")
CONTEXT = ("logit", "prev_logit", "next_logit", "window2", "window5", "doc_mean", "rank_frac")


@dataclass(frozen=True, slots=True)
class PageLines:
    """Every visible line of a page and its features, in page order."""

    texts: list[str]
    features: np.ndarray  # (lines, len(FEATURES)) float64


def _norm(line: str) -> str:
    """White space collapsed; a table row keeps one tab between its cells."""
    if "\t" in line:
        return "\t".join(c for cell in line.split("\t") if (c := " ".join(cell.split())))
    return " ".join(line.split())


def _line_set(text: str) -> set[str]:
    return {n for line in text.split("\n") if (n := _norm(line))}


def page_lines(html: str) -> PageLines:
    """Parse once; every line with its markup from one walk, Resiliparse's main-content lines from a second."""
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    tree = HTMLTree.parse(html)
    marked = extract_plain_text(tree, preserve_formatting="minimal_html", links=True, list_bullets=True,
                                alt_texts=False)
    main = _line_set(extract_plain_text(tree, preserve_formatting=True, main_content=True, list_bullets=False,
                                        alt_texts=False, comments=False))
    return _features(marked, main)


@functools.cache
def _char_classes() -> np.ndarray:
    """Bit 1 digit, 2 upper case, 4 word char (str.isalnum or _), for every BMP code point: built once per
    process (~30 ms) so the per-page counts are numpy lookups, not a Python loop over characters."""
    chars = [chr(i) for i in range(0x10000)]
    return np.array([c.isdigit() | c.isupper() << 1 | (c.isalnum() or c == "_") << 2 for c in chars], np.uint8)


def _features(marked: str, main: set[str]) -> PageLines:
    """Per-line features from the marked-up walk and the set of lines Resiliparse's main-content rules keep."""
    texts: list[str] = []
    flags: list[tuple[float, ...]] = []
    heading = list_depth = pre = para = 0
    in_link = False
    for raw in marked.split("\n"):
        line_heading, line_li, line_para, line_pre = heading, list_depth > 0, para > 0, pre > 0
        link_chars = 0
        if "<" in raw:
            link_chars = sum(len(_TAG.sub("", m)) for m in _LINK_TEXT.findall(raw))
            for close, tag in _TAG.findall(raw):
                step = -1 if close else 1
                if tag in _HEADINGS:
                    heading = 0 if close else _HEADINGS[tag]
                    line_heading = line_heading or _HEADINGS[tag]
                elif tag in ("ul", "ol"):
                    list_depth = max(0, list_depth + step)
                    line_li = line_li or list_depth > 0
                elif tag == "li":
                    line_li = True
                elif tag == "p":
                    para = max(0, para + step)
                    line_para = True
                elif tag == "pre":
                    pre = max(0, pre + step)
                    line_pre = True
                elif tag == "a":
                    in_link = not close
            text = html_lib.unescape(_TAG.sub("", raw))
        else:
            text = raw
            if in_link:
                link_chars = len(text)
        norm = _norm(text)
        if not norm:
            continue
        texts.append(norm)
        flags.append((min(1.0, link_chars / len(norm)), line_heading > 0, line_heading, line_li, line_para, line_pre,
                      "\t" in text, norm in main, norm.endswith(_SENTENCE_END), "|" in norm or "©" in norm))
    lines = len(texts)
    x = np.zeros((lines, len(FEATURES)))
    if not lines:
        return PageLines(texts, x)
    x[:, 0] = 1.0
    x[:, [_F[f] for f in _FLAG_FEATURES]] = np.array(flags, dtype=np.float64)
    # Character counts per line, vectorised over the page's joined text.
    codes = np.frombuffer("\n".join(texts).encode("utf-32-le"), dtype=np.uint32)
    classes = _char_classes()[np.minimum(codes, 0xFFFF)]
    starts = np.concatenate(([0], np.flatnonzero(codes == 10) + 1))
    n = np.diff(np.append(starts, len(codes) + 1)) - 1.0
    digits = np.add.reduceat((classes & 1).astype(np.int64), starts)
    upper = np.add.reduceat((classes >> 1 & 1).astype(np.int64), starts)
    word = np.add.reduceat((classes >> 2 & 1).astype(np.int64), starts)
    words = np.add.reduceat(((codes == 32) | (codes == 9)).astype(np.int64), starts) + 1.0
    x[:, _F["log_chars"]] = np.log1p(n)
    x[:, _F["log_words"]] = np.log1p(words)
    x[:, _F["digit_frac"]] = digits / n
    x[:, _F["upper_frac"]] = upper / n
    x[:, _F["punct_frac"]] = 1.0 - (word + words - 1) / n
    x[:, _F["short"]] = words <= 3
    x[:, _F["long_para"]] = words >= 25
    x[:, _F["mean_word_len"]] = word / words
    x[:, _F["position"]] = np.arange(lines) / max(1, lines - 1)
    for name, source in (("prev_main", "main"), ("prev_link", "link_density")):
        x[1:, _F[name]] = x[:-1, _F[source]]
    for name, source in (("next_main", "main"), ("next_link", "link_density")):
        x[:-1, _F[name]] = x[1:, _F[source]]
    weights = x[:, _F["log_chars"]]
    x[:, _F["doc_main_frac"]] = (weights * x[:, _F["main"]]).sum() / weights.sum()
    x[:, _F["doc_log_lines"]] = math.log1p(lines)
    counts = collections.Counter(texts)
    x[:, _F["repeated"]] = [counts[t] > 1 for t in texts]
    x[:, _F["main_run"]], x[:, _F["main_distance"]] = _runs(x[:, _F["main"]] > 0)
    return PageLines(texts, x)


def _runs(flag: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log1p of the length of the run of flagged lines each line is in (0 outside), and log1p of the distance in
    lines to the nearest flagged line (0 on one; log1p(lines) when none is flagged)."""
    n = len(flag)
    idx = np.arange(n)
    change = np.flatnonzero(np.diff(np.concatenate(([0], flag.astype(np.int8), [0]))))
    run = np.zeros(n)
    for start, end in zip(change[::2], change[1::2]):
        run[start:end] = end - start
    if not flag.any():
        return run, np.full(n, math.log1p(n))
    on = np.flatnonzero(flag)
    pos = np.clip(np.searchsorted(on, idx), 1, len(on) - 1) if len(on) > 1 else np.zeros(n, dtype=np.int64)
    nearest = np.minimum(np.abs(idx - on[pos]), np.abs(idx - on[pos - 1]) if len(on) > 1 else np.abs(idx - on[0]))
    return np.log1p(run), np.log1p(nearest)


def _window_mean(v: np.ndarray, radius: int) -> np.ndarray:
    """Mean of v over [i - radius, i + radius], shrunk at the ends."""
    c = np.concatenate(([0.0], np.cumsum(v)))
    i = np.arange(len(v))
    lo, hi = np.maximum(0, i - radius), np.minimum(len(v), i + radius + 1)
    return (c[hi] - c[lo]) / (hi - lo)


def context_features(logit: np.ndarray) -> np.ndarray:
    """The second stage's inputs: a line's first-stage logit and those around it (main text comes in runs)."""
    n = len(logit)
    out = np.zeros((n, len(CONTEXT)))
    if not n:
        return out
    out[:, 0] = logit
    out[1:, 1] = logit[:-1]
    out[:-1, 2] = logit[1:]
    out[:, 3] = _window_mean(logit, 2)
    out[:, 4] = _window_mean(logit, 5)
    out[:, 5] = logit.mean()
    out[:, 6] = np.argsort(np.argsort(-logit)) / max(1, n - 1)
    return out


@dataclass(frozen=True, slots=True)
class LineModel:
    """Two logistic stages and the keep threshold; loaded from the JSON that scripts/train_extractor.py writes."""

    stage1: np.ndarray  # (len(FEATURES),)
    stage2: np.ndarray  # (len(FEATURES) + len(CONTEXT),)
    threshold: float  # keep a line when its second-stage probability exceeds this

    def scores(self, features: np.ndarray) -> np.ndarray:
        """Second-stage probability that each line is main text."""
        logit = np.clip(features @ self.stage1, -30, 30)
        z = np.hstack([features, context_features(logit)]) @ self.stage2
        return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))

    def keep(self, page: PageLines, *, headings: bool = True) -> list[str]:
        """The kept lines in page order. `headings`: also a heading right above kept text (within 3 lines), as
        jusText's heading rule. When no line clears the threshold, Resiliparse's main-content lines instead: a
        page of short lines scores low everywhere, and an empty page where Resiliparse finds text is a loss."""
        if not page.texts:
            return []
        keep = self.scores(page.features) > self.threshold
        if not keep.any():
            keep = page.features[:, _F["main"]] > 0
        elif headings:
            ahead = np.convolve(keep[::-1].astype(np.int8), np.ones(3, np.int8))[:len(keep)][::-1]  # kept in i..i+2
            following = np.append(ahead[1:], 0) > 0
            keep |= (page.features[:, _F["heading"]] > 0) & following
        return [t for t, k in zip(page.texts, keep) if k]

    def to_json(self) -> str:
        return json.dumps({"features": list(FEATURES), "context": list(CONTEXT), "stage1": self.stage1.tolist(),
                           "stage2": self.stage2.tolist(), "threshold": self.threshold}, indent=1)

    @classmethod
    def from_json(cls, text: str, *, where: str = "weights") -> LineModel:
        data = json.loads(text)
        if data.get("features") != list(FEATURES) or data.get("context") != list(CONTEXT):
            raise ValueError(f"{where} was trained for other features; retrain with "
                             "`python -m scripts.train_extractor`")
        return cls(np.array(data["stage1"]), np.array(data["stage2"]), float(data["threshold"]))


@functools.lru_cache(maxsize=4)
def cached_model(path: str) -> LineModel:
    """Each worker process reads the weights once."""
    return LineModel.from_json(Path(path).read_text(encoding="utf-8"), where=path)


def extract_lines(html: str, model: LineModel, *, headings: bool = True) -> str:
    """The kept lines of the page, one per line."""
    return "\n".join(model.keep(page_lines(html), headings=headings))
