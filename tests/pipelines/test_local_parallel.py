"""Every core by default: how many local workers a run gets, and that two worker processes give the rows and
counts of one (the oracle: the same job on one in-process worker)."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions

from core.resources import configs_dir
from pipelines import werp
from pipelines.options import IN_MEMORY, MULTI_PROCESSING, local_parallelism
from pipelines.runners import (
    at_most_local_workers, fit_local_workers, plan_byte_ranges, plan_local_run, planned_workers,
)
from pipelines.sample_warc import SAMPLE_PATH
from tests.pipelines.runs import counted

CORES = len(os.sched_getaffinity(0))


@pytest.mark.parametrize("runner, workers, mode, expected", [
    ("DirectRunner", None, None, (8, MULTI_PROCESSING)),  # the default: a process per core
    (None, None, None, (8, MULTI_PROCESSING)),  # no --runner is the DirectRunner
    ("DirectRunner", 3, None, (3, MULTI_PROCESSING)),  # --direct_num_workers=N overrides
    ("DirectRunner", 1, None, (1, IN_MEMORY)),  # one worker stays in this process
    ("DirectRunner", 0, None, (8, MULTI_PROCESSING)),  # Beam's 0: every core
    ("DirectRunner", 4, "multi_threading", (4, "multi_threading")),
    ("DirectRunner", 4, IN_MEMORY, (1, IN_MEMORY)),  # in memory is one worker whatever the count
    ("FnApiRunner", None, None, (1, IN_MEMORY)),  # Beam's engine as is: tests stay fast and in process
    ("FnApiRunner", 2, None, (1, IN_MEMORY)),  # Beam ignores a count without a mode
    ("FnApiRunner", 2, MULTI_PROCESSING, (2, MULTI_PROCESSING)),
])
def test_local_parallelism_by_hand(runner, workers, mode, expected) -> None:
    assert local_parallelism(runner=runner, workers=workers, mode=mode, cores=8) == expected


def test_one_core_runs_in_process() -> None:
    assert local_parallelism(runner="DirectRunner", workers=None, mode=None, cores=1) == (1, IN_MEMORY)


def test_plan_writes_what_the_fn_api_runner_reads() -> None:
    options = PipelineOptions(["--runner=DirectRunner"])
    assert plan_local_run(options) == CORES
    direct = options.view_as(DirectOptions)
    assert direct.direct_num_workers == CORES
    assert direct.direct_running_mode == (MULTI_PROCESSING if CORES > 1 else IN_MEMORY)
    pinned = PipelineOptions(["--runner=DirectRunner", "--direct_num_workers", "1"])  # both flag spellings
    assert plan_local_run(pinned) == 1 and pinned.view_as(DirectOptions).direct_running_mode == IN_MEMORY


def test_planned_workers_per_runner() -> None:
    assert planned_workers(PipelineOptions(["--runner=FnApiRunner"])) == 1
    assert planned_workers(PipelineOptions(["--runner=DaskRunner", "--dask_workers=3"])) == 3
    assert planned_workers(PipelineOptions(["--runner=DaskRunner"])) == CORES  # a local cluster, a worker per core
    assert planned_workers(PipelineOptions(["--runner=DataflowRunner"])) is None


def test_a_small_input_keeps_one_worker_unless_the_flags_chose() -> None:
    capped = at_most_local_workers(PipelineOptions(["--runner=DirectRunner", "--output=o"]), 1)
    assert plan_local_run(capped) == 1 and capped.view_as(DirectOptions).direct_running_mode == IN_MEMORY
    chosen = at_most_local_workers(PipelineOptions(["--runner=DirectRunner", "--direct_num_workers=2"]), 1)
    assert plan_local_run(chosen) == 2
    tests = at_most_local_workers(PipelineOptions(["--runner=FnApiRunner"]), 1)
    assert plan_local_run(tests) == 1


def test_range_plan_from_the_input_and_the_workers(tmp_path: Path) -> None:
    big = tmp_path / "big.warc.gz"
    big.write_bytes(bytes(20 << 20))  # 20 MiB: sizes are all the plan reads
    # 2 Dask workers (known, not capped): 20 MiB / (2 x 8 ranges) = 1,310,720 bytes per range.
    dask = PipelineOptions(["--runner=DaskRunner", "--dask_workers=2"])
    assert plan_byte_ranges(dask, patterns=[str(big)], max_split_bytes=64 << 20) == (dask, 1_310_720)
    # The built-in sample on the DirectRunner: one worker in this process, the recipe's range size.
    options, split = plan_byte_ranges(PipelineOptions(["--runner=DirectRunner"]), patterns=[str(SAMPLE_PATH)],
                                      max_split_bytes=64 << 20)
    assert plan_local_run(options) == 1 and split == 64 << 20
    # 20 MiB on the DirectRunner: 2 workers are worth starting (8 MiB each), if the machine has them.
    options, split = plan_byte_ranges(PipelineOptions(["--runner=DirectRunner"]), patterns=[str(big)],
                                      max_split_bytes=64 << 20)
    workers = min(CORES, 2)
    assert plan_local_run(options) == workers
    assert split == (64 << 20 if workers == 1 else 1_310_720)


def documents(output: Path) -> set[tuple[str, str]]:
    """(id, sha256 of text) of every written row: the rows as a set, whatever the shard layout."""
    frame = pd.concat([pd.read_parquet(f) for f in sorted((output / "documents").glob("part-*.parquet"))])
    return {(row.id, hashlib.sha256(row.text.encode()).hexdigest()) for row in frame.itertuples()}


def counts(output: Path) -> dict:
    report = json.loads((output / "stats.json").read_text())
    report.pop("wall_time_s")
    report["stages"] = counted(report["stages"])  # worker seconds differ from run to run
    return report


@pytest.mark.slow
def test_two_worker_processes_give_the_rows_and_counts_of_one(shared_data: Path, tmp_path: Path) -> None:
    """Four crawl files of different sizes (real Common Crawl excerpts and the sample) in 64 KiB ranges (the recipe minimum): every
    range read once, paragraph dedup deciding the same across processes, stats summed the same."""
    crawl = tmp_path / "crawl"
    crawl.mkdir()
    shutil.copy(SAMPLE_PATH, crawl / "sample.warc.gz")
    for name in ("resiliparse/warcfile.warc.gz", "dolma/sample-0000.warc.gz", "pywb/iana.warc.gz"):
        shutil.copy(shared_data / "warc" / name, crawl / name.replace("/", "-"))
    recipe = tmp_path / "bluwerp-64k.yaml"
    recipe.write_text((configs_dir() / "werp" / "bluwerp.yaml").read_text().replace(
        "split_bytes: 67108864", "split_bytes: 65536"))
    common = ["--runner=DirectRunner", f"--input={crawl}/", f"--config={recipe}", "--extractor=resiliparse"]
    werp.run([*common, "--direct_num_workers=1", f"--output={tmp_path / 'one'}"])
    werp.run([*common, "--direct_num_workers=2", f"--output={tmp_path / 'two'}"])
    one = documents(tmp_path / "one")
    assert len(one) > 20
    assert documents(tmp_path / "two") == one
    assert counts(tmp_path / "two") == counts(tmp_path / "one")


def test_local_workers_fit_the_input(tmp_path: Path) -> None:
    """One worker per 8 MiB of input at most, on the DirectRunner only; what the flags chose stands."""
    small, big = tmp_path / "small.parquet", tmp_path / "big.parquet"
    small.write_bytes(bytes(1 << 20))
    big.write_bytes(bytes(20 << 20))  # two workers' worth: 20 MiB // 8 MiB = 2
    assert plan_local_run(fit_local_workers(PipelineOptions(["--runner=DirectRunner"]), patterns=[str(small)])) == 1
    assert plan_local_run(fit_local_workers(PipelineOptions(["--runner=DirectRunner"]),
                                            patterns=[str(big)])) == min(CORES, 2)
    assert plan_local_run(fit_local_workers(PipelineOptions(["--runner=DirectRunner", "--direct_num_workers=2"]),
                                            patterns=[str(small)])) == 2
    dask = PipelineOptions(["--runner=DaskRunner", "--dask_workers=2"])
    assert fit_local_workers(dask, patterns=[str(small)]) is dask  # a cluster's workers are not ours to cap
