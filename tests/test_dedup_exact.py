"""Exact dedup keys ignore case, spacing and punctuation, and nothing else."""
from __future__ import annotations

from transforms.dedup.exact import exact_key, keeps_over, normalize


def test_normalize_folds_case_space_and_punctuation():
    assert normalize("Hello,   World!\n\nIt's  me.") == "hello world it s me"


def test_copies_share_a_key_and_different_texts_do_not():
    assert exact_key("The cat sat.\nOn the mat!") == exact_key("the cat  sat\non the mat")
    assert exact_key("The cat sat on the mat.") != exact_key("The dog sat on the mat.")
    assert len(exact_key("x")) == 16


def test_smallest_id_survives_whatever_the_order():
    assert keeps_over("<urn:a>", "<urn:b>") and not keeps_over("<urn:b>", "<urn:a>")
