"""Which copy is "earlier": one deterministic order key shared by every dedup stage, so runs are reproducible.

BFF and FineWeb keep the first occurrence in whatever order files were read, so their results change with file
order and sharding (data-seeds.md §1.5). We order documents by a key computed from the document alone: the
WARC-Date (older first), ties broken by a 63-bit digest of the WARC-Record-ID. Record ids are random UUIDs, so
ordering by their digest is as good a tie-breaker as ordering by the id string, and keeps the key two small
ints — it is carried once per n-gram through the paragraph-dedup shuffle, where bytes count.
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Literal

OrderBy = Literal["warc_date", "id"]
OrderKey = tuple[int, int]
UNDATED = (1 << 62) - 1  # documents without a parseable date sort after every dated one


def id_digest(doc_id: str) -> int:
    """A 63-bit digest of the record id: non-negative so Beam's varint coder keeps it compact."""
    return int.from_bytes(hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest(), "big") >> 1


def date_seconds(warc_date: str) -> int:
    """Seconds since the epoch of an ISO 8601 WARC-Date (naive dates are UTC); UNDATED when absent or malformed."""
    if not warc_date:
        return UNDATED
    try:
        parsed = datetime.fromisoformat(warc_date.replace("Z", "+00:00"))
    except ValueError:
        return UNDATED
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return int(parsed.timestamp())


def order_key(doc_id: str, warc_date: str, order_by: OrderBy = "warc_date") -> OrderKey:
    """(date, id digest): smaller is earlier, and the earliest copy is the one every dedup stage keeps."""
    if order_by not in ("warc_date", "id"):
        raise ValueError(f"order_by {order_by!r}: choose 'warc_date' (then id) or 'id'")
    return (date_seconds(warc_date) if order_by == "warc_date" else 0, id_digest(doc_id))
