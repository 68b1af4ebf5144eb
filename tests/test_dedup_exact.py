"""Exact dedup keys ignore case, spacing and punctuation, and nothing else; the order key decides who is earlier."""
from __future__ import annotations

import pytest

from transforms.dedup.exact import exact_key, normalize
from transforms.dedup.order import UNDATED, date_seconds, order_key


def test_normalize_folds_case_space_and_punctuation():
    assert normalize("Hello,   World!\n\nIt's  me.") == "hello world it s me"


def test_copies_share_a_key_and_different_texts_do_not():
    assert exact_key("The cat sat.\nOn the mat!") == exact_key("the cat  sat\non the mat")
    assert exact_key("The cat sat on the mat.") != exact_key("The dog sat on the mat.")
    assert len(exact_key("x")) == 16


def test_older_warc_date_is_earlier_and_ids_break_ties():
    old, new = order_key("<urn:b>", "2020-01-01T00:00:00Z"), order_key("<urn:a>", "2024-06-01T12:00:00Z")
    assert old < new
    same_a, same_b = order_key("<urn:a>", "2024-01-01T00:00:00Z"), order_key("<urn:b>", "2024-01-01T00:00:00Z")
    assert same_a != same_b and same_a[0] == same_b[0]
    assert order_key("<urn:a>", "2024-01-01T00:00:00Z") == same_a  # a pure function of the record


def test_dates_parse_with_and_without_zone_and_bad_ones_sort_last():
    assert date_seconds("2024-01-01T00:00:00Z") == date_seconds("2024-01-01T00:00:00") == 1704067200
    assert date_seconds("") == date_seconds("yesterday") == UNDATED
    assert order_key("<urn:a>", "garbage") > order_key("<urn:a>", "2099-01-01T00:00:00Z")


def test_order_by_id_ignores_dates_and_unknown_orders_fail():
    assert order_key("<urn:a>", "2020-01-01T00:00:00Z", "id") == order_key("<urn:a>", "2024-01-01T00:00:00Z", "id")
    with pytest.raises(ValueError, match="order_by"):
        order_key("<urn:a>", "", "url")
