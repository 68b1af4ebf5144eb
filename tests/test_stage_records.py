"""What each stage records (issue 18): worker seconds, fixed-bin histograms, and the workers' live progress files.

Oracles: bin indices written out by hand from the bin rule (bin 0 below the first edge, bin i for
edge[i-1] <= v < edge[i], the last bin at or above the last edge); the edges themselves as literal lists; the
progress files against the job's own stats path (two separate routes for the same counts).
"""
from __future__ import annotations

import json
import os
from typing import Iterator

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.portability.fn_api_runner import FnApiRunner

from pipelines.jobs import run_counted
from pipelines.progress import read_totals
from transforms import stats
from transforms.beam.metrics import Counted, CountingFn, StageCounters
from transforms.beam.progress_files import ENV, ProgressFile

LENGTH_EDGES = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000,
                200_000, 500_000, 1_000_000, 2_000_000, 5_000_000, 10_000_000]
SCORE_EDGES = [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85,
               0.9, 0.95, 1.0]
PYLINT_EDGES = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 5.5, 6.0, 6.5, 7.0, 7.5, 8.0, 8.5, 9.0,
                9.5, 10.0]
# value -> bin, by hand: 0 is below 1 (bin 0); 1 in [1, 2) is bin 1; 3 in [2, 5) bin 2; 7 in [5, 10) bin 3;
# 10 and 15 in [10, 20) bin 4; 1000 in [1000, 2000) bin 10; 10^7 at the last edge is the overflow bin 22.
LENGTH_BINS = {0: 0, 1: 1, 3: 2, 7: 3, 10: 4, 15: 4, 1000: 10, 10_000_000: 22}


def test_the_fixed_bins_are_the_ones_the_issue_names():
    assert list(stats.LENGTH_EDGES) == LENGTH_EDGES
    assert list(stats.SCORE_EDGES) == SCORE_EDGES and list(stats.PYLINT_EDGES) == PYLINT_EDGES
    assert list(stats.edges_of("chars_in")) == LENGTH_EDGES and list(stats.edges_of("words_out")) == LENGTH_EDGES
    assert list(stats.edges_of("langid_score")) == SCORE_EDGES
    assert list(stats.edges_of("classifier_score")) == SCORE_EDGES
    assert list(stats.edges_of("pylint_score")) == PYLINT_EDGES


def test_stage_counters_bin_lengths_and_scores_by_the_rule():
    counters = StageCounters("s")
    for v in LENGTH_BINS:
        counters.count_in(v, words=v)
    for v in (-0.1, 0.0, 0.05, 0.999, 1.0):  # bins 0, 1 ([0, .05)), 2 ([.05, .1)), 20 ([.95, 1)), 21 (>= 1)
        counters.observe("toy_score", v)
    for v in (7.0, 10.0, 6.99):  # [7, 7.5) is bin 15; 10 the overflow bin 21; [6.5, 7) bin 14
        counters.observe("pylint_score", v)
    tally = counters.take()
    want_lengths: dict[int, int] = {}
    for b in LENGTH_BINS.values():
        want_lengths[b] = want_lengths.get(b, 0) + 1
    for what in ("chars_in", "words_in"):
        got = {int(k.rsplit("|", 1)[1]): n for k, n in tally.items() if k.startswith(f"s|hist|{what}|")}
        assert got == want_lengths
    assert {k: n for k, n in tally.items() if "toy_score" in k} == {
        "s|hist|toy_score|0": 1, "s|hist|toy_score|1": 1, "s|hist|toy_score|2": 1, "s|hist|toy_score|20": 1,
        "s|hist|toy_score|21": 1}
    assert {k: n for k, n in tally.items() if "pylint" in k} == {
        "s|hist|pylint_score|15": 1, "s|hist|pylint_score|21": 1, "s|hist|pylint_score|14": 1}
    assert tally["s|docs_in"] == len(LENGTH_BINS) and tally["s|chars_in"] == sum(LENGTH_BINS)
    assert not any("hist" in k for k in counters.take()), "taking empties the bins"


def test_an_unmeasured_document_is_counted_but_not_binned():
    counters = StageCounters("s")
    counters.count_in()
    counters.count_out()
    tally = counters.take()
    assert tally == {"s|docs_in": 1, "s|docs_out": 1}


def test_time_is_whole_microseconds_and_the_remainder_is_carried():
    counters = StageCounters("s")
    counters.add_time_ns(2_500)
    assert counters.take()["s|time_us"] == 2
    counters.add_time_ns(600)  # 500 carried + 600 = 1100 ns
    assert counters.take()["s|time_us"] == 1


def test_report_has_seconds_and_histograms_per_stage_and_no_time_under_other():
    counters = {
        "extract|docs_in": 4, "extract|docs_out": 3, "extract|time_us": 1_234_567,
        "extract|hist|chars_in|0": 1, "extract|hist|chars_in|10": 2, "extract|hist|chars_in|22": 1,
        "langid|hist|langid_score|21": 3, "langid|docs_in": 3,
    }
    report = stats.build_report(counters, stage_order=["extract", "langid"], wall_time_s=2.0)
    extract = report["stages"]["extract"]
    assert extract["seconds"] == 1.235 and extract["other"] == {}
    hist = extract["histograms"]["chars_in"]
    assert hist["edges"] == LENGTH_EDGES
    assert len(hist["counts"]) == len(LENGTH_EDGES) + 1 == 23
    assert hist["counts"][0] == 1 and hist["counts"][10] == 2 and hist["counts"][22] == 1 and sum(hist["counts"]) == 4
    score = report["stages"]["langid"]["histograms"]["langid_score"]
    assert score["edges"] == SCORE_EDGES and score["counts"][-1] == 3 and sum(score["counts"]) == 3
    assert report["stages"]["langid"]["seconds"] == 0.0
    assert json.loads(stats.dump_report(report)) == report
    header, first = stats.format_summary(report).splitlines()[:2]
    assert header.split()[-1] == "seconds" and first.split()[-1] == "1.2"


class Lengths(CountingFn):
    """Counts each number as a document of that many chars (and half as many words), timed."""

    def setup(self) -> None:
        self.counters = self.stage_counters("lengths")

    def process(self, n: int) -> Iterator[int]:
        self.counters.start_clock()
        self.counters.count_in(n, words=n // 2)
        if n % 2:
            self.counters.count_dropped("odd")
            self.counters.stop_clock()
            return
        self.counters.count_out(n, words=n // 2)
        self.counters.stop_clock()
        yield n


NUMBERS = list(range(0, 300))


def run_lengths(tmp_path) -> dict[str, int]:
    def build(p):
        _ = p | beam.Create(NUMBERS, reshuffle=True) | "Lengths" >> Counted(Lengths())

    # --quiet: the job's own progress reporter would point the workers at a folder of its own
    counts, _ = run_counted(build, runner=FnApiRunner(), options=PipelineOptions(["--quiet"]), output=str(tmp_path))
    return counts


def test_a_counting_stage_reports_time_and_histograms_through_the_data_path(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    report = stats.build_report(run_lengths(tmp_path), stage_order=["lengths"], wall_time_s=0)
    s = report["stages"]["lengths"]
    assert "time_us" not in s["other"] and isinstance(s["seconds"], float)
    assert sum(s["histograms"]["chars_in"]["counts"]) == len(NUMBERS)
    assert sum(s["histograms"]["chars_out"]["counts"]) == len(NUMBERS) // 2
    # chars 0 -> bin 0, 1 -> bin 1, 2..4 -> bin 2, 5..9 -> bin 3, ..., 200..299 -> bin 8 (by the rule above)
    assert s["histograms"]["chars_in"]["counts"][:9] == [1, 1, 3, 5, 10, 30, 50, 100, 100]
    assert sum(s["histograms"]["words_in"]["counts"]) == len(NUMBERS)


def test_workers_write_their_running_totals_when_the_folder_is_named(tmp_path, monkeypatch):
    folder = tmp_path / "progress"
    folder.mkdir()
    monkeypatch.setenv(ENV, str(folder))
    counts = run_lengths(tmp_path / "out")
    files = sorted(folder.iterdir())
    assert files and all(f.suffix == ".json" for f in files), "no temp file is left behind"
    host_pid = f"{os.uname().nodename}-{os.getpid()}-"  # the in-process runner's workers are this process
    assert all(f.name.startswith(host_pid) for f in files)
    summed: dict[str, int] = {}
    for f in files:
        for name, value in json.loads(f.read_text()).items():
            summed[name] = summed.get(name, 0) + value
    assert summed == counts, "the last files hold every count the run reported"
    assert summed["lengths|docs_in"] == len(NUMBERS)
    assert read_totals(str(folder)) == counts, "the job's progress reader sums the same files"


def test_nothing_is_written_without_the_folder(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    counters = Lengths().stage_counters("lengths")
    assert counters.tick is None, "the hot path's one check: no progress callback"
    before = set(os.listdir(tmp_path))
    run_lengths(tmp_path / "out")
    assert set(os.listdir(tmp_path)) - before == {"out"}
    assert not [p for p in (tmp_path / "out").rglob("*.json") if p.name != "stats.json"]


def test_a_progress_file_is_replaced_whole_and_sums_taken_and_pending_counts(tmp_path):
    owner = object()
    progress = ProgressFile(str(tmp_path), owner=owner)
    progress.totals.update({"a|docs_in": 5})
    progress.write({"a|docs_in": 2, "a|docs_out": 1})
    assert json.loads(open(progress.path).read()) == {"a|docs_in": 7, "a|docs_out": 1}
    assert not progress.due(), "at most once a second"
    progress.write()
    assert json.loads(open(progress.path).read()) == {"a|docs_in": 5}
    assert os.listdir(tmp_path) == [os.path.basename(progress.path)]
    assert os.path.basename(progress.path).endswith(f"-{os.getpid()}-{id(owner)}.json")


def test_a_vanished_folder_does_not_fail_the_worker(tmp_path):
    progress = ProgressFile(str(tmp_path / "gone"), owner=object())
    progress.write({"a|docs_in": 1})  # the run's folder was removed: progress is best effort
    assert not (tmp_path / "gone").exists()
