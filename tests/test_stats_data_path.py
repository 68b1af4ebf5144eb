"""stats.json from counts that travel as data: equal to Beam's metrics where a runner has them, exact per bundle.

The oracle for the pipeline-level tests is Beam's own metrics machinery on the local runner (a separate path:
counter cells reported by the SDK harness, summed by the runner), and for the unit tests a count by hand.
"""
from __future__ import annotations

import json
from typing import Iterator

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.portability.fn_api_runner import FnApiRunner

from pipelines import werp
from pipelines.jobs import COUNTS_FILE, collect_counters, run_counted
from pipelines.sample_warc import SAMPLE_PATH
from transforms.beam.buffered import BufferingFn
from transforms.beam.metrics import STATS, Counted, CountingFn, stats_outputs


class Parity(CountingFn):
    """Counts odd numbers as drops, keeps the even ones, and sends multiples of 3 to a tagged output."""

    def setup(self) -> None:
        self.counters = self.stage_counters("parity")

    def process(self, n: int) -> Iterator:
        self.counters.count_in(n)
        if n % 2:
            self.counters.count_dropped("odd")
            return
        self.counters.count_out(n)
        yield beam.pvalue.TaggedOutput("threes", n) if n % 3 == 0 else n


class Batches(BufferingFn):
    """Counts in flush, which also runs from finish_bundle: those counts must reach the bundle's record too."""

    def setup(self) -> None:
        self.counters = self.stage_counters("batches")

    def process(self, n: int) -> Iterator:
        yield from self.buffer(n, 1)

    def flush(self, items: list[int]) -> Iterator:
        self.counters.count("flushes")
        self.counters.count("items", len(items))
        yield from items


def run_local(build, tmp_path) -> tuple[dict, dict]:
    counts, result = run_counted(build, runner=FnApiRunner(), options=PipelineOptions([]), output=str(tmp_path))
    assert not (tmp_path / COUNTS_FILE).exists(), "the job's own counts file is read and removed"
    return counts, collect_counters(result)


def test_counts_as_data_match_a_count_by_hand_including_finish_bundle_flushes(tmp_path):
    numbers = list(range(1, 1001))
    seen = {}

    def build(p):
        evens, threes = p | beam.Create(numbers, reshuffle=True) | "Parity" >> Counted(Parity(), tags=("threes",))
        seen["threes"] = threes
        _ = (evens, threes) | beam.Flatten() | "Batches" >> Counted(Batches(limit=7))

    counts, metrics = run_local(build, tmp_path)
    evens = [n for n in numbers if n % 2 == 0]
    assert counts["parity|docs_in"] == 1000 and counts["parity|chars_in"] == sum(numbers)
    assert counts["parity|dropped|odd"] == 500
    assert counts["parity|docs_out"] == 500 and counts["parity|chars_out"] == sum(evens)
    assert counts["batches|items"] == 500, "items flushed from finish_bundle are counted in the same bundle"
    assert counts["batches|flushes"] >= -(-500 // 7)
    assert counts == metrics


def test_stats_outputs_are_found_inside_composites_and_only_there():
    p = beam.Pipeline(runner=FnApiRunner())
    numbers = p | beam.Create([1, 2, 3])
    _ = numbers | "Plain" >> beam.Map(lambda n: n)
    _ = numbers | "Nested" >> Counted(Parity(), tags=("threes",))
    found = stats_outputs(p)
    assert [pc.tag for pc in found] == [STATS]
    assert found[0].producer.full_label.startswith("Nested/")


@pytest.mark.slow
@pytest.mark.parametrize("recipe_name", ["bluwerp", "fineweb"])
def test_werp_counts_as_data_equal_beam_metrics(recipe_name, tmp_path):
    """Every stage of the real graph (read, extract, filters, dedup with its shuffles and connected components)."""
    recipe = werp.resolve(PipelineOptions(["--runner=FnApiRunner", f"--config={recipe_name}"]))[0].config

    def build(p):
        werp.build(p, recipe=recipe, inputs=[str(SAMPLE_PATH)], output=str(tmp_path), rejected_output=None)

    counts, metrics = run_local(build, tmp_path)
    assert counts == {k: v for k, v in metrics.items() if "|" in k}, "read.ranges is a metric only: no report row"
    assert counts["read|docs_in"] > 0 and any(k.startswith("write|") for k in counts)
    stages = {k.split("|")[0] for k in counts}
    assert set(recipe.dedup.stages) <= stages, f"{recipe_name}: every dedup stage counted"


@pytest.mark.slow
def test_a_job_writes_stats_json_from_the_data_path(tmp_path):
    report = werp.run(["--runner=FnApiRunner", f"--output={tmp_path / 'out'}"])
    written = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert written["stages"] == report["stages"]
    assert written["stages"]["read"]["docs_in"] > 0
    assert not list((tmp_path / "out").glob("_counts*")) and not list((tmp_path / "out").glob(".incomplete-*"))
