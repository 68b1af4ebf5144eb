"""The records that flow through the web pipelines."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Page:
    """One page read from a WARC/ARC/WET file, decoded to text; raw bytes never leave the reader."""

    id: str  # WARC-Record-ID of the record read, e.g. "<urn:uuid:...>"
    url: str  # WARC-Target-URI
    warc_date: str  # WARC-Date, ISO 8601 as written in the record
    html: str  # decoded payload (HTTP transfer and content encodings removed); plain text if `is_text`
    charset: str = ""  # the charset used to decode `html`
    source: str = ""  # file the record came from, for provenance
    is_text: bool = False  # already text (a WET conversion record): extraction passes it through unchanged
    payload_bytes: int | None = None  # bytes of the record's payload before decoding; the read stage's chars_in


@dataclass(slots=True)
class Document:
    """Extracted text plus the metadata and scores every later stage reads and the writer stores."""

    id: str
    url: str
    warc_date: str
    text: str
    extractor: str = ""
    language: str = ""
    language_score: float = 0.0
    source: str = ""
    word_count: int | None = None  # set by the quality steps from their shared split; None = not yet counted
    # Scores computed by filters (ratios, counts); stored as columns so thresholds can be retuned later.
    stats: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record a stage dropped, with the stage and the reason, for the rejected-output audit trail.

    A rule with one numeric statistic also leaves the evidence: the statistic, its value and the limit it
    crossed, and a readable line such as "gopher_duplicate_line_fraction = 0.41 > 0.30" (None when unknown)."""

    id: str
    url: str
    stage: str
    reason: str
    text: str = ""
    statistic: str | None = None
    value: float | None = None
    limit: float | None = None
    evidence: str | None = None
