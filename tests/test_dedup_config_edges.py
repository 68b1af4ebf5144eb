"""transforms/dedup/config.py's DedupConfig (issue 16, the module's first full mutation run, helper E): its
documented defaults, the inclusive bounds of its validation, and which stages it runs, all written out by hand
from the field comments."""
from __future__ import annotations

import pytest

from transforms.dedup.config import DedupConfig
from transforms.dedup.minhash import MinHashConfig
from transforms.dedup.paragraph import ParagraphDedupConfig


def test_defaults_are_the_documented_ones():
    """Exact dedup on, 8 Large-Star/Small-Star round pairs, verify at 0.7, 2^12 buckets, 64 join partitions."""
    cfg = DedupConfig()
    assert (cfg.order_by, cfg.exact, cfg.minhash, cfg.minhash_rounds, cfg.minhash_verify, cfg.paragraph,
            cfg.ngram_exchange, cfg.bucket_bits, cfg.join_partitions) == (
        "warc_date", True, None, 8, 0.7, None, "auto", 12, 64)


@pytest.mark.parametrize("field,ok,bad", [
    ("minhash_rounds", [1, 2], [0, -1]),
    ("join_partitions", [1, 2], [0, -1]),
    ("bucket_bits", [1, 2, 23, 24], [0, 25]),
    ("minhash_verify", [0.0, 0.5, 1.0], [-0.01, 1.01]),
])
def test_bounds_are_inclusive(field, ok, bad):
    for value in ok:
        assert getattr(DedupConfig(**{field: value}), field) == value
    for value in bad:
        with pytest.raises(ValueError, match=field):
            DedupConfig(**{field: value})


@pytest.mark.parametrize("exact,minhash,paragraph,stages", [
    (False, False, False, []),
    (True, False, False, ["dedup_exact"]),
    (False, True, False, ["dedup_minhash"]),
    (False, False, True, ["dedup_paragraph"]),
    (False, True, True, ["dedup_minhash", "dedup_paragraph"]),
    (True, True, True, ["dedup_exact", "dedup_minhash", "dedup_paragraph"]),
])
def test_stages_run_in_order_and_any_says_whether_one_runs(exact, minhash, paragraph, stages):
    cfg = DedupConfig(exact=exact, minhash=MinHashConfig() if minhash else None,
                      paragraph=ParagraphDedupConfig() if paragraph else None)
    assert cfg.stages == stages
    assert cfg.any is bool(stages)
