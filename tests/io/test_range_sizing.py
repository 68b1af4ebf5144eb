"""Range sizing against hand-computed cases: the bench corpus on 2 workers, the built-in sample, a crawl."""
from __future__ import annotations

import pytest

from transforms.io.range_sizing import MIN_SPLIT_BYTES, byte_ranges, split_bytes_for, useful_workers

MIB = 1 << 20
BENCH_CORPUS = 45_228_588  # bench/out/corpus.warc.gz, 2,000 captures: 43.1 MiB
RECIPE_MAX = 64 * MIB  # configs/werp/*.yaml read.split_bytes


def test_bench_corpus_on_two_workers_is_sixteen_ranges_of_equal_size() -> None:
    # 45,228,588 / (2 workers x 8 ranges) = 2,826,786.75 -> 2,826,787 bytes; 16 ranges, bounds 45,228,588 * i // 16.
    split = split_bytes_for(total_bytes=BENCH_CORPUS, workers=2, max_split_bytes=RECIPE_MAX)
    assert split == 2_826_787
    ranges = byte_ranges(BENCH_CORPUS, split)
    assert len(ranges) == 16
    assert ranges[0] == (0, 2_826_786) and ranges[-1] == (42_401_801, BENCH_CORPUS)
    assert {stop - start for start, stop in ranges} == {2_826_786, 2_826_787}


def test_one_worker_keeps_the_recipe_size() -> None:
    assert split_bytes_for(total_bytes=BENCH_CORPUS, workers=1, max_split_bytes=RECIPE_MAX) == RECIPE_MAX
    assert byte_ranges(BENCH_CORPUS, RECIPE_MAX) == [(0, BENCH_CORPUS)]  # the 1.0x of issue 15: one range


def test_a_small_input_is_one_range_not_many_tiny_ones() -> None:
    # The built-in sample (60,251 bytes): 60,251 / 16 = 3,766 bytes, raised to the 1 MiB floor -> one range.
    assert split_bytes_for(total_bytes=60_251, workers=2, max_split_bytes=RECIPE_MAX) == MIN_SPLIT_BYTES
    assert byte_ranges(60_251, MIN_SPLIT_BYTES) == [(0, 60_251)]


def test_a_crawl_on_many_workers_is_capped_by_the_recipe() -> None:
    # 90,000 files of 1 GiB on 1,000 workers: 90,000 GiB / 8,000 = 11.25 GiB per range, capped at 64 MiB:
    # 16 ranges per file.
    split = split_bytes_for(total_bytes=90_000 << 30, workers=1000, max_split_bytes=RECIPE_MAX)
    assert split == RECIPE_MAX
    assert len(byte_ranges(1 << 30, split)) == 16


def test_four_workers_and_ranges_per_worker() -> None:
    # 100 MiB on 4 workers x 8 = 32 ranges of 3.125 MiB; with 2 per worker, 8 of 12.5 MiB.
    assert split_bytes_for(total_bytes=100 * MIB, workers=4, max_split_bytes=RECIPE_MAX) == 3_276_800
    assert split_bytes_for(total_bytes=100 * MIB, workers=4, max_split_bytes=RECIPE_MAX,
                           ranges_per_worker=2) == 13_107_200


def test_a_recipe_size_below_the_floor_wins() -> None:
    # Tests split 16 KiB files finely; the recipe's cap is obeyed even below MIN_SPLIT_BYTES.
    assert split_bytes_for(total_bytes=10 * MIB, workers=2, max_split_bytes=16 << 10) == 16 << 10


def test_workers_worth_starting() -> None:
    # 8 MiB per worker: the bench corpus (43.1 MiB) keeps both of 2 cores and 5 of 8; the sample and a 1.7 MB
    # crawl stay in one process; a crawl keeps every core.
    assert useful_workers(total_bytes=BENCH_CORPUS, workers=2) == 2
    assert useful_workers(total_bytes=BENCH_CORPUS, workers=8) == 5  # 45,228,588 // 8,388,608 = 5
    assert useful_workers(total_bytes=60_251, workers=8) == 1
    assert useful_workers(total_bytes=1_711_972, workers=2) == 1
    assert useful_workers(total_bytes=64_000 << 30, workers=64) == 64
    assert useful_workers(total_bytes=0, workers=4) == 1


def test_byte_ranges_by_hand() -> None:
    # 10 bytes in ranges of at most 3: ceil(10/3) = 4 ranges, bounds 10*i//4 = 0, 2, 5, 7, 10.
    assert byte_ranges(10, 3) == [(0, 2), (2, 5), (5, 7), (7, 10)]
    assert byte_ranges(9, 3) == [(0, 3), (3, 6), (6, 9)]
    assert byte_ranges(5, 10) == [(0, 5)]
    assert byte_ranges(0, 10) == []


@pytest.mark.parametrize("size,split", [(1, 1), (7, 2), (45_228_588, 5_653_574), (1 << 30, 64 * MIB), (999, 1000)])
def test_byte_ranges_cover_the_file_once_each_within_the_limit(size: int, split: int) -> None:
    ranges = byte_ranges(size, split)
    assert ranges[0][0] == 0 and ranges[-1][1] == size
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    lengths = [stop - start for start, stop in ranges]
    assert max(lengths) <= split and max(lengths) - min(lengths) <= 1


@pytest.mark.parametrize("kwargs", [dict(total_bytes=-1, workers=2), dict(total_bytes=1, workers=0)])
def test_bad_arguments_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="must be"):
        split_bytes_for(max_split_bytes=RECIPE_MAX, **kwargs)
    with pytest.raises(ValueError, match="split_bytes"):
        byte_ranges(10, 0)
    with pytest.raises(ValueError, match="min_bytes_per_worker"):
        useful_workers(total_bytes=1, workers=1, min_bytes_per_worker=0)
