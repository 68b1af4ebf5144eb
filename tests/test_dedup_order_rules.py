"""transforms/dedup/order.py: WARC-Date offsets and the 63-bit record-id digest (issue 16 mutation survivors)."""
from __future__ import annotations

import time

import pytest

from transforms.dedup.order import date_seconds, id_digest, order_key

MIDNIGHT_2024_UTC = 1704067200  # 2024-01-01T00:00:00Z: 54 years (13 of them leap) of 86400 s: 19723 days


def test_the_hand_computed_epoch_value() -> None:
    assert (54 * 365 + 13) * 86400 == MIDNIGHT_2024_UTC


@pytest.mark.parametrize("stamp", ["2024-01-01T02:00:00+02:00", "2023-12-31T19:00:00-05:00",
                                   "2024-01-01T05:30:00+05:30"])
def test_a_date_with_an_offset_is_the_same_instant_in_utc(stamp: str) -> None:
    assert date_seconds(stamp) == MIDNIGHT_2024_UTC


@pytest.fixture
def tokyo_local_time(monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_a_naive_date_is_utc_whatever_the_local_zone(tokyo_local_time) -> None:
    assert time.timezone == -9 * 3600  # the zone really is UTC+9 here
    assert date_seconds("2024-01-01T00:00:00") == MIDNIGHT_2024_UTC
    assert date_seconds("2024-01-01T00:00:00Z") == MIDNIGHT_2024_UTC


IDS = [f"<urn:uuid:00000000-0000-4000-8000-{i:012x}>" for i in range(256)]


def test_the_id_digest_is_non_negative_below_2_63_and_uses_all_63_bits() -> None:
    digests = [id_digest(i) for i in IDS]
    assert all(0 <= d < 1 << 63 for d in digests)
    # 256 ids: the top (63rd) bit is set in about half; all clear would have probability 2^-256
    assert sum(d >> 62 for d in digests) > 64
    # and the low bit varies too (a digest of 62 bits shifted up, or a constant, would not)
    assert 64 < sum(d & 1 for d in digests) < 192
    assert len(set(digests)) == len(IDS)


def test_the_id_is_the_tie_breaker_at_one_date() -> None:
    a, b = (order_key(i, "2024-01-01T00:00:00Z") for i in IDS[:2])
    assert a[0] == b[0] == MIDNIGHT_2024_UTC and (a < b) == (id_digest(IDS[0]) < id_digest(IDS[1]))
