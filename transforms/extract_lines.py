"""Our extractor: Resiliparse's main-content walk, then a small trained model that keeps or drops each line.

Why our own: trafilatura is the most accurate public extractor but ~15x slower than Resiliparse; Resiliparse's
main-content rules keep boilerplate blocks they do not name (teasers, bylines, share bars, captions); jusText
needs a stoplist per language. Here the page is parsed and walked once by Resiliparse's C code, main content only,
with minimal markup (headings, paragraphs, list items, links, pre; table rows come as tab-separated cells). Each
line gets language-free features (markup, lengths, character classes, links, its heading-delimited segment; no
stoplist, no tokenizer); a logistic model scores it, a second one rescores it with its neighbours' scores (main
text comes in runs), and lines above the threshold are kept in page order, one per line. The weights are trained
by `scripts/train_extractor.py` on the gold-text pages of ../shared/data/extraction and shipped as JSON.
Tried and dropped, each measured out of fold on the training folds (docs/extractor-notes.md): a second walk over
the whole page (so lines outside Resiliparse's main content are candidates), walks that skip boilerplate-like
and article-like containers, Readability's best container, trafilatura-style staged article containers, <ul>
read as <ol> (Resiliparse's rules drop bullet lists), gradient-boosted trees instead of the logistic stages.
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
_STOPS = np.array([ord(c) for c in ".!?。！？"], dtype=np.uint32)
_HEADINGS = {f"h{i}": i for i in range(1, 7)}
LONG_WORDS = 25  # a line of this many words is a "long" one: prose, seldom boilerplate

FEATURES = ("bias", "log_chars", "log_words", "link_density", "heading", "heading_level", "list_item", "paragraph",
            "pre", "table_row", "position", "sentence_end", "digit_frac", "upper_frac", "punct_frac", "short",
            "has_pipe_or_copyright", "mean_word_len", "prev_link", "next_link", "doc_log_lines", "long_para",
            "repeated", "links", "prev_words", "next_words", "before_long", "after_long", "long_distance",
            "sentences", "segment_words", "top_segment", "after_top_segment", "segment_link")
_F = {name: i for i, name in enumerate(FEATURES)}
_FLAG_FEATURES = ("link_density", "heading", "heading_level", "list_item", "paragraph", "pre", "table_row",
                  "sentence_end", "has_pipe_or_copyright", "links")
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


def page_lines(html: str) -> PageLines:
    """Parse once, one walk: Resiliparse's main-content lines with their markup, and their features."""
    from resiliparse.extract.html2text import extract_plain_text

    return _features(extract_plain_text(html, preserve_formatting="minimal_html", main_content=True, links=True,
                                        list_bullets=True, alt_texts=False, comments=False))


# Scripts written without spaces between words (CJK, kana, Thai, Lao, Tibetan, Myanmar, Khmer): there two
# characters count as one word, so length features mean the same in every language.
_UNSPACED = ((0x0E00, 0x0FFF), (0x1000, 0x109F), (0x1780, 0x17FF), (0x3040, 0x30FF), (0x3400, 0x4DBF),
             (0x4E00, 0x9FFF), (0xF900, 0xFAFF))


@functools.cache
def _char_classes() -> np.ndarray:
    """Bit 1 digit, 2 upper case, 4 word char (str.isalnum or _), 8 unspaced script, for every BMP code point:
    built once per process (~30 ms) so per-page counts are numpy lookups, not a Python loop over characters."""
    table = np.array([c.isdigit() | c.isupper() << 1 | (c.isalnum() or c == "_") << 2
                      for c in map(chr, range(0x10000))], np.uint8)
    for lo, hi in _UNSPACED:
        table[lo:hi + 1] |= 8
    return table


def _features(marked: str) -> PageLines:
    """Per-line features from the marked-up walk (language-free: markup, lengths, character classes, links)."""
    texts: list[str] = []
    flags: list[tuple[float, ...]] = []
    heading = list_depth = pre = para = 0
    in_link = False
    for raw in marked.split("\n"):
        line_heading, line_li, line_para, line_pre = heading, list_depth > 0, para > 0, pre > 0
        link_chars = links = 0
        if "<" in raw:
            anchors = _LINK_TEXT.findall(raw)
            link_chars, links = sum(len(_TAG.sub("", m)) for m in anchors), len(anchors)
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
                      "\t" in text, norm.endswith(_SENTENCE_END), "|" in norm or "©" in norm, math.log1p(links)))
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

    def per_line(mask: np.ndarray) -> np.ndarray:
        return np.add.reduceat(mask.astype(np.int64), starts)

    digits, upper, word = per_line(classes & 1), per_line(classes >> 1 & 1), per_line(classes >> 2 & 1)
    spaces = per_line((codes == 32) | (codes == 9))
    words = spaces + 1.0 + per_line(classes >> 3 & 1) / 2
    long = np.flatnonzero(words >= LONG_WORDS)
    x[:, _F["log_chars"]] = np.log1p(n)
    x[:, _F["log_words"]] = np.log1p(words)
    x[:, _F["digit_frac"]] = digits / n
    x[:, _F["upper_frac"]] = upper / n
    x[:, _F["punct_frac"]] = 1.0 - (word + spaces) / n
    x[:, _F["short"]] = words <= 3
    x[:, _F["long_para"]] = words >= LONG_WORDS
    x[:, _F["mean_word_len"]] = word / words
    x[:, _F["position"]] = np.arange(lines) / max(1, lines - 1)
    x[1:, _F["prev_link"]] = x[:-1, _F["link_density"]]
    x[:-1, _F["next_link"]] = x[1:, _F["link_density"]]
    x[:, _F["doc_log_lines"]] = math.log1p(lines)
    counts = collections.Counter(texts)
    x[:, _F["repeated"]] = [counts[t] > 1 for t in texts]
    log_words = x[:, _F["log_words"]]
    x[1:, _F["prev_words"]] = log_words[:-1]
    x[:-1, _F["next_words"]] = log_words[1:]
    idx = np.arange(lines)
    if len(long):
        x[:, _F["before_long"]] = idx < long[0]
        x[:, _F["after_long"]] = idx > long[-1]
        right = np.minimum(np.searchsorted(long, idx), len(long) - 1)  # the first long line at or after each line
        left = np.maximum(right - 1, 0)
        x[:, _F["long_distance"]] = np.log1p(np.minimum(np.abs(long[right] - idx), np.abs(idx - long[left])))
    else:
        x[:, _F["long_distance"]] = math.log1p(lines)
    # Segments: the lines from one heading to the next. The article is usually the wordiest; related-post teasers
    # and sidebars come as many small headed segments after it.
    segment = np.cumsum(x[:, _F["heading"]] > 0)
    seg_words = np.bincount(segment, weights=words)
    top = int(np.argmax(seg_words))
    x[:, _F["segment_words"]] = np.log1p(seg_words[segment])
    x[:, _F["top_segment"]] = segment == top
    x[:, _F["after_top_segment"]] = segment > top
    x[:, _F["segment_link"]] = (np.bincount(segment, weights=x[:, _F["link_density"]] * n) / np.maximum(
        1.0, np.bincount(segment, weights=n)))[segment]
    x[:, _F["sentences"]] = np.log1p(per_line(np.isin(codes, _STOPS)))
    return PageLines(texts, x)


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


def stage2_inputs(features: np.ndarray, stage1: np.ndarray) -> np.ndarray:
    """The features and the context of their first-stage logits: what the second stage weighs, in training too."""
    return np.hstack([features, context_features(np.clip(features @ stage1, -30, 30))])


@dataclass(frozen=True, slots=True)
class LineModel:
    """Two logistic stages and the keep threshold; loaded from the JSON that scripts/train_extractor.py writes."""

    stage1: np.ndarray  # (len(FEATURES),)
    stage2: np.ndarray  # (len(FEATURES) + len(CONTEXT),)
    threshold: float  # keep a line when its second-stage probability exceeds this

    def scores(self, features: np.ndarray) -> np.ndarray:
        """Second-stage probability that each line is main text."""
        z = stage2_inputs(features, self.stage1) @ self.stage2
        return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))

    def keep(self, page: PageLines, *, headings: bool = True) -> list[str]:
        """The kept lines in page order. `headings`: also a heading right above kept text (within 3 lines), as
        jusText's heading rule. When no line clears the threshold, Resiliparse's main-content lines instead: a
        page of short lines scores low everywhere, and an empty page where Resiliparse finds text is a loss."""
        if not page.texts:
            return []
        keep = self.scores(page.features) > self.threshold
        if not keep.any():
            return list(page.texts)
        if headings:
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


def load_model(path: str) -> LineModel:
    """The weights file scripts/train_extractor.py writes."""
    return LineModel.from_json(Path(path).read_text(encoding="utf-8"), where=path)


def extract_lines(html: str, model: LineModel, *, headings: bool = True) -> str:
    """The kept lines of the page, one per line."""
    return "\n".join(model.keep(page_lines(html), headings=headings))
