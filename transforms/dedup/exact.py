"""Exact dedup on normalised text: the key two copies of a page share despite case, spacing and punctuation."""
from __future__ import annotations

import hashlib
import re
import unicodedata

_PUNCT_RE = re.compile(r"[^\w\s]+")
_SPACE_RE = re.compile(r"\s+")
REASON_DUPLICATE = "exact.duplicate"


def normalize(text: str) -> str:
    """NFKC, lower case, punctuation removed, white space collapsed (datatrove's simplify_text, minus digits)."""
    text = unicodedata.normalize("NFKC", text).lower()
    return _SPACE_RE.sub(" ", _PUNCT_RE.sub(" ", text)).strip()


def exact_key(text: str) -> bytes:
    """A 128-bit digest of the normalised text; collisions are negligible at web scale (2^-64 at 2^32 docs)."""
    return hashlib.blake2b(normalize(text).encode("utf-8"), digest_size=16).digest()
