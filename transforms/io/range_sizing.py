"""How a reader cuts its input into byte ranges: large enough that a range's fixed cost is noise, small and many
enough that every worker gets several ranges of about the same size.

Beam's local runner hands out a stage's input once, up front, in equal counts per worker (no work stealing), so
one 64 MiB range over a 43 MiB file keeps a second worker idle. Pure: the Beam reader (transforms/beam/read.py)
and the jobs that choose a range size (pipelines/werp.py) share it.
"""
from __future__ import annotations

import math

# A range costs ~1 ms to plan, hand out, open and find its first record in on an idle core, up to 5 ms under load
# (bench/data/range_balance.py, BENCHMARKS.md §16); one MiB of Common Crawl gzip holds ~45 pages, ~0.9 s of jusText and
# ~60 ms of resiliparse work, so the floor costs under 1 % with jusText and a few % at most with resiliparse.
MIN_SPLIT_BYTES = 1 << 20
# Several ranges per worker even out pages that cost more than others (static assignment cannot rebalance): on the
# bench corpus (jusText CPU time per page, ranges dealt out in turn) the busier of 2 workers carried 4-7 % more
# than the mean with 4 ranges each, 0.4-2.5 % with 8 (three runs; BENCHMARKS.md §16).
RANGES_PER_WORKER = 8
# A local worker process costs ~2-3 s to start (Beam's SDK harness, our modules, the extractor sandbox), about
# 3 MiB of jusText work: below 8 ranges of the 1 MiB floor per worker, fewer workers finish sooner.
MIN_BYTES_PER_WORKER = RANGES_PER_WORKER * MIN_SPLIT_BYTES


def split_bytes_for(*, total_bytes: int, workers: int, max_split_bytes: int, min_split_bytes: int = MIN_SPLIT_BYTES,
                    ranges_per_worker: int = RANGES_PER_WORKER) -> int:
    """The range size for `total_bytes` of input on `workers` workers: total / (workers x ranges_per_worker),
    rounded up, kept within [min_split_bytes, max_split_bytes]; `max_split_bytes` (the recipe's
    read.split_bytes) wins over the minimum, and one worker gets it as is (nothing to balance)."""
    if total_bytes < 0 or workers < 1 or max_split_bytes < 1 or min_split_bytes < 1 or ranges_per_worker < 1:
        raise ValueError(f"total_bytes ({total_bytes}) must be >= 0 and workers ({workers}), max_split_bytes "
                         f"({max_split_bytes}), min_split_bytes ({min_split_bytes}), ranges_per_worker "
                         f"({ranges_per_worker}) >= 1")
    if workers == 1:
        return max_split_bytes
    wanted = math.ceil(total_bytes / (workers * ranges_per_worker))
    return min(max_split_bytes, max(min_split_bytes, wanted))


def useful_workers(*, total_bytes: int, workers: int, min_bytes_per_worker: int = MIN_BYTES_PER_WORKER) -> int:
    """How many of `workers` are worth starting for `total_bytes` of input: each gets at least
    `min_bytes_per_worker`, and a single worker is enough for less (it runs in the job's own process)."""
    if total_bytes < 0 or workers < 1 or min_bytes_per_worker < 1:
        raise ValueError(f"total_bytes ({total_bytes}) must be >= 0, workers ({workers}) and min_bytes_per_worker "
                         f"({min_bytes_per_worker}) >= 1")
    return max(1, min(workers, total_bytes // min_bytes_per_worker))


def byte_ranges(size: int, split_bytes: int) -> list[tuple[int, int]]:
    """[start, stop) ranges covering a file of `size` bytes: the fewest of at most `split_bytes` each, of equal
    size to within one byte (no short tail range for one worker to finish alone)."""
    if size < 0 or split_bytes < 1:
        raise ValueError(f"size ({size}) must be >= 0 and split_bytes ({split_bytes}) >= 1")
    count = math.ceil(size / split_bytes)
    bounds = [size * i // count for i in range(count + 1)] if count else []
    return list(zip(bounds, bounds[1:]))
