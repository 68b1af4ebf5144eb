"""How a reader cuts its input into byte ranges: large enough that a range's fixed cost is noise, small and many
enough that every worker gets several ranges of about the same size.

Beam's local runner hands out a stage's input once, up front, in equal counts per worker (no work stealing), so
one 64 MiB range over a 43 MiB file keeps a second worker idle. Pure: the Beam reader (transforms/beam/read.py)
and the jobs that choose a range size (pipelines/werp.py) share it.
"""
from __future__ import annotations

import math

# A range costs ~0.5-2 ms to open, find its first record and report (BENCHMARKS.md §16: 44 one-MiB ranges of the
# bench corpus read 0.02 s slower than one range); one MiB of Common Crawl gzip holds ~45 pages, >= 60 ms of
# resiliparse and ~1 s of jusText work, so the overhead stays under 3 % even for the fastest extractor.
MIN_SPLIT_BYTES = 1 << 20
# Several ranges per worker even out pages that cost more than others (static assignment cannot rebalance).
RANGES_PER_WORKER = 4


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


def byte_ranges(size: int, split_bytes: int) -> list[tuple[int, int]]:
    """[start, stop) ranges covering a file of `size` bytes: the fewest of at most `split_bytes` each, of equal
    size to within one byte (no short tail range for one worker to finish alone)."""
    if size < 0 or split_bytes < 1:
        raise ValueError(f"size ({size}) must be >= 0 and split_bytes ({split_bytes}) >= 1")
    count = math.ceil(size / split_bytes)
    bounds = [size * i // count for i in range(count + 1)] if count else []
    return list(zip(bounds, bounds[1:]))
