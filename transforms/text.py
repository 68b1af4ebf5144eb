"""Split a document once; every filter reads the same lines, words and paragraphs.

datatrove re-tokenises the text in each filter (spaCy/NLTK); a cached view computed on first use is what
makes our filters cheap. Words come from one regular expression (Unicode letters/digits with inner
apostrophes, hyphens and number/address separators; every other non-space character is its own token),
which is close to NLTK's `word_tokenize` and spaCy on English text and much faster.
"""
from __future__ import annotations

import re
from functools import cached_property

# Each separator must sit between word characters, so the pattern cannot backtrack. Keeping "3.5",
# "1,000", "12:30", "and/or" and "a@b.com" whole matches spaCy/NLTK and moved Gopher's alpha-word ratio
# closest to datatrove's on the extraction gold texts (tests/filters/test_parity_datatrove.py).
_WORD_RE = re.compile(r"\w+(?:[-'’.,:/@]\w+)*|[^\w\s]")
_PARAGRAPH_RE = re.compile(r"\n\s*\n")
# Punctuation as Gopher counts it: a "word" made only of these is not a word (Rae et al. 2021, App. A).
PUNCTUATION = frozenset(
    "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
    "‘’“”«»‹›„‚–—―…·•¡¿※"
)


_PUNCTUATION_CHARS = "".join(sorted(PUNCTUATION))


def is_punctuation(token: str) -> bool:
    """True when a token has no character outside the punctuation set (it does not count as a word)."""
    return not token.strip(_PUNCTUATION_CHARS)


class TextView:
    """Lazily split views of one text; each split is computed at most once."""

    __slots__ = ("text", "__dict__")

    def __init__(self, text: str) -> None:
        self.text = text

    @cached_property
    def lines(self) -> list[str]:
        """All newline-separated lines, empty ones included (FineWeb's ratios count them)."""
        return self.text.split("\n")

    @cached_property
    def nonblank_lines(self) -> list[str]:
        """Lines with any non-space character, kept unstripped (datatrove FineWebQualityFilter's lines)."""
        return [line for line in self.lines if line and not line.isspace()]

    @cached_property
    def stripped_lines(self) -> list[str]:
        """Lines without surrounding white space, empty ones dropped."""
        return [s for line in self.nonblank_lines if (s := line.strip())]

    @cached_property
    def paragraphs(self) -> list[str]:
        """Blocks separated by blank lines (Gopher's paragraph definition), stripped, empty ones dropped."""
        return [s for p in _PARAGRAPH_RE.split(self.text) if (s := p.strip())]

    @cached_property
    def tokens(self) -> list[str]:
        """Word and punctuation tokens in order."""
        return _WORD_RE.findall(self.text)

    @cached_property
    def words(self) -> list[str]:
        """Tokens that are not pure punctuation (Gopher's "words")."""
        return [t for t in self.tokens if t.strip(_PUNCTUATION_CHARS)]  # is_punctuation, inlined for speed

    @cached_property
    def whitespace_words(self) -> list[str]:
        """White-space separated chunks, as RefinedWeb and DCLM count words."""
        return self.text.split()


def words_of(text: str) -> list[str]:
    """Words of one line or snippet, with the same tokenizer as TextView.words."""
    return [t for t in _WORD_RE.findall(text) if t.strip(_PUNCTUATION_CHARS)]
