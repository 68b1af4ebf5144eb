"""--runner=DaskRunner on a real 2-worker-process LocalCluster: every job gives FnApiRunner's rows and stats.json
counts, each gap of Beam's own DaskRunner that we work around has a focused test, and a job that starts its own
cluster closes it, whether it succeeds or fails."""
from __future__ import annotations

import json
import os
import random
import time
import uuid
from collections import Counter
from multiprocessing import resource_tracker
from pathlib import Path
from typing import Iterator

import apache_beam as beam
import dask
import psutil
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import PipelineState
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.transforms.window import GlobalWindows
from distributed import Client, LocalCluster

from pipelines import swallowcode, swallowmath, tokenize, werp
from pipelines.dask_runner import RefineryDaskRunner, cluster_threads
from pipelines.jobs import JobError
from pipelines.runners import planned_workers
from tests.pipelines.runs import Outcome, run_both, token_rows
from tests.pipelines.test_swallowcode import stdlib_inputs
from tests.pipelines.test_swallowmath import write_input
from tests.pipelines.test_tokenize import corpus, mixture_config  # noqa: F401 (corpus is a fixture)
from tests.test_classify_beam import model_path  # noqa: F401 (a fixture: a fastText model trained here)
from transforms.document import Page

TOKEN_ENV = "REFINERY_DASK_TEST_TOKEN"  # marks every process a test's job starts, orphans included


@pytest.fixture(scope="module")
def address() -> Iterator[str]:
    """One 2-process LocalCluster for the module; its workers may start children (our extractor sandbox)."""
    with dask.config.set({"distributed.worker.daemon": False}):
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


def dask_flags(address: str, *, partitions: int | None = None) -> list[str]:
    """The module's cluster; --dask_npartitions only when given (the default is two per worker thread)."""
    return ["--runner=DaskRunner", f"--dask_client_address={address}",
            *([f"--dask_npartitions={partitions}"] if partitions else [])]


def job_flags(address: str) -> list[str]:
    """A partition per worker process for whole jobs: each step's set-up (a model, a pylint pool) once per worker."""
    return dask_flags(address, partitions=2)


def assert_same(reference: Outcome, dask_run: Outcome) -> None:
    assert reference.rows or reference.rejected, "a comparison of nothing proves nothing"
    assert dask_run.rows == reference.rows
    assert dask_run.stages == reference.stages
    assert dask_run.rejected == reference.rejected


# -- every job, compared with FnApiRunner ---------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["fineweb", "dclm"])
def test_werp_recipes_match_fnapi(address, tmp_path, recipe):
    """fineweb: MinHash (connected components, many GroupByKeys) and PII; dclm: BFF paragraph dedup."""
    reference, on_dask = run_both(werp.run, [f"--config={recipe}"], dask=job_flags(address), tmp=tmp_path,
                                  rejected=True)
    assert_same(reference, on_dask)
    assert sum(on_dask.rejected.values()) > 0


@pytest.mark.slow
def test_werp_bluwerp_with_a_classifier_matches_fnapi(address, tmp_path, model_path):  # noqa: F811
    """Paragraph dedup through the shuffle exchange (what `auto` resolves to off the local runner), then BETR's
    top-fraction classifier: a CombineGlobally histogram read as a side input after a Reshuffle."""
    args = ["--config=bluwerp", f"--classifier_model={model_path}", "--classifier_top_fraction=0.5"]
    reference, on_dask = run_both(werp.run, args, dask=job_flags(address), tmp=tmp_path, rejected=True)
    assert_same(reference, on_dask)
    assert on_dask.stages["classifier"]["dropped"] and on_dask.stages["dedup_paragraph"]["dropped"]


@pytest.mark.slow
def test_swallowcode_filters_match_fnapi(address, tmp_path):
    src = stdlib_inputs(tmp_path, n=4)
    reference, on_dask = run_both(swallowcode.run, [f"--input={src}/*.py", "--config=filter"],
                                  dask=job_flags(address), tmp=tmp_path)
    assert_same(reference, on_dask)


@pytest.mark.slow
def test_swallowcode_rewrites_match_fnapi(address, tmp_path, tiny_model):
    rows = [{"blob_id": f"b{i}", "language": "Python", "text": f"def f{i}(x):\n    return x + {i}\n"} for i in range(3)]
    (tmp_path / "stack.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    args = [f"--input={tmp_path / 'stack.jsonl'}", f"--model={tiny_model}", "--max_tokens=16", "--batch_size=1"]
    reference, on_dask = run_both(swallowcode.run, args, dask=job_flags(address), tmp=tmp_path, rejected=True)
    assert_same(reference, on_dask)  # the tiny model writes gibberish: SGCR drops every sample, each a rejected row
    assert on_dask.stages["sgcr_llm"]["other"]["generated"] == 3


@pytest.mark.slow
def test_swallowmath_matches_fnapi(address, tmp_path, tiny_model):
    write_input(tmp_path / "math.jsonl", n=3)
    args = [f"--input={tmp_path / 'math.jsonl'}", f"--model={tiny_model}", "--max_tokens=48", "--batch_size=1"]
    reference, on_dask = run_both(swallowmath.run, args, dask=job_flags(address), tmp=tmp_path, rejected=True)
    assert_same(reference, on_dask)


@pytest.mark.slow
def test_tokenize_mixture_matches_fnapi(address, tmp_path, corpus):  # noqa: F811
    """Side inputs (AsDict, AsSingleton), CombinePerKey, ToDict, ToList; the shards are the same byte for byte."""
    config = mixture_config(corpus, tmp_path / "c.yaml")
    reference, on_dask = run_both(tokenize.run, [f"--config={config}"], dask=job_flags(address), tmp=tmp_path,
                                  rows=token_rows)
    assert_same(reference, on_dask)
    for name in ("manifest.json", *(str(p.relative_to(tmp_path / "fnapi")) for p in (tmp_path / "fnapi").glob("*/*"))):
        assert (tmp_path / "dask" / name).read_bytes() == (tmp_path / "fnapi" / name).read_bytes(), name


# -- a test per gap of Beam 2.77's DaskRunner, each failing there; and the str-key GroupByKey, which does not --


def run_on_dask(address: str, build) -> beam.Pipeline:
    with beam.Pipeline(runner=RefineryDaskRunner(), options=PipelineOptions(dask_flags(address))) as p:
        build(p)
    return p


def save(value, folder: str) -> None:
    """A sink that needs nothing of the runner but process(): one JSON file per element."""
    (Path(folder) / f"{uuid.uuid4().hex}.json").write_text(json.dumps(value), encoding="utf-8")


def saved(folder: Path) -> list:
    return [json.loads(f.read_text(encoding="utf-8")) for f in folder.glob("*.json")]


def sink(tmp_path: Path, name: str) -> beam.Map:
    (tmp_path / name).mkdir()
    return f"Save {name}" >> beam.Map(save, folder=str(tmp_path / name))


class BufferAll(beam.DoFn):
    """Emits nothing while processing: every output leaves in finish_bundle, as our batching DoFns do."""

    def start_bundle(self) -> None:
        self.seen: list[int] = []

    def process(self, n: int) -> Iterator:
        self.seen.append(n)
        return iter(())

    def finish_bundle(self) -> Iterator:
        for n in self.seen:
            yield GlobalWindows.windowed_value(n * 10)


def test_finish_bundle_outputs_reach_the_next_step(address, tmp_path):
    """Beam's DaskRunner collects a bundle's outputs before it calls finish_bundle: it saves nothing."""
    run_on_dask(address, lambda p: p | beam.Create(range(100)) | beam.ParDo(BufferAll()) | sink(tmp_path, "out"))
    assert sorted(saved(tmp_path / "out")) == [n * 10 for n in range(100)]


def split_parity(n: int) -> Iterator:
    yield n if n % 2 == 0 else beam.pvalue.TaggedOutput("odd", n)
    if n % 5 == 0:
        yield beam.pvalue.TaggedOutput("fives", n)


def test_each_tagged_output_gets_only_its_own_elements(address, tmp_path):
    """Beam's DaskRunner gives every consumer of a multi-output ParDo all of its outputs, mixed."""
    def build(p):
        out = p | beam.Create(range(30)) | beam.FlatMap(split_parity).with_outputs("odd", "fives", main="even")
        labelled = [out[tag] | f"Label {tag}" >> beam.Map(lambda n, tag: [tag, n], tag=tag)
                    for tag in ("even", "odd", "fives")]
        tuple(labelled) | beam.Flatten() | sink(tmp_path, "out")  # one sink: this runs on Beam's DaskRunner too

    run_on_dask(address, build)
    written = {tag: sorted(n for t, n in saved(tmp_path / "out") if t == tag) for tag in ("even", "odd", "fives")}
    assert written == {"even": list(range(0, 30, 2)), "odd": list(range(1, 30, 2)), "fives": list(range(0, 30, 5))}


def test_every_sink_runs_not_only_the_last(address, tmp_path):
    """Beam's DaskRunner computes the last transform's bag only: the first two sinks would never run."""
    def build(p):
        numbers = p | beam.Create(range(10))
        numbers | "Squares" >> beam.Map(lambda n: n * n) | sink(tmp_path, "squares")
        p | "Words" >> beam.Create(["a", "b"]) | sink(tmp_path, "words")
        numbers | "Total" >> beam.CombineGlobally(sum) | sink(tmp_path, "total")

    run_on_dask(address, build)
    assert sorted(saved(tmp_path / "squares")) == [n * n for n in range(10)]
    assert sorted(saved(tmp_path / "words")) == ["a", "b"] and saved(tmp_path / "total") == [45]


def test_group_by_str_key_across_two_processes(address, tmp_path):
    """Not a gap: Beam's DaskRunner groups these right too. dask places a key by tokenize (md5), not hash(), and
    distributed's Nanny gives its workers one PYTHONHASHSEED (6640); checked here, as our GroupByKey is our own."""
    rng = random.Random(0)
    words = ["".join(rng.choices("abcdefgh", k=3)) for _ in range(40)]
    pairs = [(words[i % len(words)], i) for i in range(400)]
    expected: dict[str, list[int]] = {}
    for w, i in pairs:
        expected.setdefault(w, []).append(i)

    def build(p):
        (p | beam.Create(pairs) | "Tag" >> beam.MapTuple(lambda w, i: (w, (i, os.getpid())))
         | beam.GroupByKey() | "Sort" >> beam.MapTuple(lambda w, vs: [w, sorted(vs)]) | sink(tmp_path, "groups"))

    run_on_dask(address, build)
    groups = saved(tmp_path / "groups")
    assert Counter(w for w, _ in groups) == Counter(expected.keys()), "every key in exactly one group"
    assert {w: [i for i, _ in vs] for w, vs in groups} == expected
    pids = {pid for _, vs in groups for _, pid in vs}
    assert len(pids) == 2, "the values came from both worker processes"
    assert all(len({pid for _, pid in vs}) == 2 for _, vs in groups), "every group joined values of both processes"


class _Offsets(beam.DoFn, beam.transforms.core.RestrictionProvider):
    """A splittable DoFn over the offsets [0, n) of one element, split in blocks of 4: a file read in byte ranges."""

    def initial_restriction(self, n: int) -> OffsetRange:
        return OffsetRange(0, n)

    def create_tracker(self, restriction: OffsetRange) -> OffsetRestrictionTracker:
        return OffsetRestrictionTracker(restriction)

    def split(self, n: int, restriction: OffsetRange) -> Iterator[OffsetRange]:
        return restriction.split(4)

    def restriction_size(self, n: int, restriction: OffsetRange) -> int:
        return restriction.size()

    def process(self, n: int, tracker=beam.DoFn.RestrictionParam()) -> Iterator:
        offset = tracker.current_restriction().start
        while tracker.try_claim(offset):
            time.sleep(0.01)  # work to share: one worker cannot drain every block before the other starts
            yield offset, os.getpid()
            offset += 1


def test_one_splittable_element_is_read_by_both_processes_once(address, tmp_path):
    """Beam's DaskRunner reads a splittable element whole (one big file, one worker); here its 16 blocks are
    dealt out, and each offset is read exactly once."""
    run_on_dask(address, lambda p: p | beam.Create([64]) | beam.ParDo(_Offsets()) | sink(tmp_path, "offsets"))
    read = saved(tmp_path / "offsets")
    assert sorted(o for o, _ in read) == list(range(64))
    assert len({pid for _, pid in read}) == 2, "both worker processes read blocks of the one element"


def test_dask_sizes_a_windowed_page_by_its_text(address):
    """dask's sizeof sees 80 bytes for any WindowedValue (sys.getsizeof of the wrapper), which made the scheduler
    move whole bundles of pages to save nothing; on a worker it must count the page's 100,000 characters."""
    def size_there() -> int:
        from dask.sizeof import sizeof

        return sizeof(GlobalWindows.windowed_value(Page(id="i", url="u", warc_date="d", html="x" * 100_000)))

    with Client(address, set_as_default=False) as client:
        sizes = client.run(size_there)
    assert len(sizes) == 2 and all(100_000 <= s < 101_000 for s in sizes.values()), sizes


def test_a_given_cluster_is_asked_for_its_workers(address):
    """Byte ranges are sized for the workers a run will have: a given cluster reports them (the fixture's two
    one-thread workers); one that does not answer leaves the recipe's range size (None)."""
    assert planned_workers(PipelineOptions(["--runner=DaskRunner", f"--dask_client_address={address}"])) == 2
    assert planned_workers(PipelineOptions(["--runner=DaskRunner", f"--dask_client_address={address}",
                                            "--dask_workers=5"])) == 5  # the flag wins: a cluster still scaling up
    assert cluster_threads(address="tcp://127.0.0.1:9", scheduler_file=None, timeout_s=1) is None


_PROCESSED: dict[str, int] = {}  # per worker process: elements the first step has processed in its current bundle


class _CountProcessed(beam.DoFn):
    def start_bundle(self) -> None:
        _PROCESSED["n"] = 0

    def process(self, x: int) -> Iterator[int]:
        _PROCESSED["n"] += 1
        yield x


def _with_processed(x: int) -> tuple[int, int]:
    return x, _PROCESSED["n"]


def test_a_chain_of_pardos_streams_each_element_through_every_step(address, tmp_path):
    """Fused as a Beam runner fuses a stage: the second step gets each element as soon as the first emits it, so
    it sees 1, 2, ... elements processed before it; run step by step it would see the whole partition each time."""
    run_on_dask(address, lambda p: p | beam.Create(range(40)) | beam.ParDo(_CountProcessed())
                | beam.Map(_with_processed) | sink(tmp_path, "seen"))
    seen = saved(tmp_path / "seen")
    assert sorted(x for x, _ in seen) == list(range(40))
    assert Counter(n for _, n in seen) == Counter({n: 4 for n in range(1, 11)}), "4 partitions of 10, streamed"


def _both(x: int) -> Iterator:
    yield x
    yield beam.pvalue.TaggedOutput("copy", x)


def test_a_step_whose_side_input_comes_from_the_stage_is_not_fused_into_it(address, tmp_path):
    """B reads A's main output and, as a side input, the sum of A's other output: fused into A's task it would
    wait on itself."""
    def build(p):
        out = p | beam.Create(range(1, 11)) | beam.FlatMap(_both).with_outputs("copy", main="main")
        total = (out.copy,) | beam.Flatten() | beam.CombineGlobally(sum)  # a Flatten: no step joins A's stage
        _ = out.main | beam.Map(lambda x, t: x * t, beam.pvalue.AsSingleton(total)) | sink(tmp_path, "scaled")

    run_on_dask(address, build)
    assert sorted(saved(tmp_path / "scaled")) == [x * 55 for x in range(1, 11)]


def test_metrics_are_summed_over_bundles(address):
    """Beam's DaskRunner raises NotImplementedError from metrics()."""
    def count(n: int) -> int:
        beam.metrics.Metrics.counter("test", "seen").inc(n)
        return n

    p = run_on_dask(address, lambda p: p | beam.Create(range(1, 101)) | beam.Map(count))
    (counter,) = p.result.metrics().query(beam.metrics.MetricsFilter().with_name("seen"))["counters"]
    assert counter.committed == counter.attempted == 5050


# -- the cluster a job starts itself --------------------------------------------------------------------------


def marked_processes(token: str) -> list[psutil.Process]:
    """Every live process that inherited the test's token: the job's workers and whatever they started."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.pid != os.getpid() and proc.environ().get(TOKEN_ENV) == token:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


@pytest.mark.slow
def test_a_self_started_cluster_has_its_workers_and_is_closed_after_success_and_failure(monkeypatch, tmp_path):
    """--dask_workers=2 gives two worker processes, and neither they nor anything they started outlive the job.

    The steps are lambdas and Beam's own sink, pickled by value, so the new workers need not import this module."""
    resource_tracker.ensure_running()  # this test process's own helper, for its whole life: started unmarked
    token = uuid.uuid4().hex
    monkeypatch.setenv(TOKEN_ENV, token)
    options = PipelineOptions(["--runner=DaskRunner", "--dask_workers=2"])
    for name, fn in (("halves", lambda n: n // 2), ("fails", lambda n: n // (n - 7))):
        p = beam.Pipeline(runner=RefineryDaskRunner(), options=options)
        _ = p | beam.Create(range(20)) | beam.Map(fn) | beam.io.WriteToText(str(tmp_path / name))
        result = p.run()
        workers = [psutil.Process(n.process.pid) for n in result.cluster.workers.values()]
        assert len(workers) == 2 and all(w.environ()[TOKEN_ENV] == token for w in workers)
        if name == "halves":
            assert result.wait_until_finish() == PipelineState.DONE
            lines = [ln for f in tmp_path.glob("halves-*") for ln in f.read_text().splitlines()]
            assert sorted(map(int, lines)) == sorted(n // 2 for n in range(20))
        else:
            with pytest.raises(ZeroDivisionError):
                result.wait_until_finish()
            assert result.state == PipelineState.FAILED
        assert result.cluster.status.name == "closed"
        _, alive = psutil.wait_procs(marked_processes(token), timeout=30)
        assert not alive, [p.cmdline() for p in alive]


def test_daemonic_workers_are_refused_with_the_fix(tmp_path):
    """Our DoFns start child processes, which daemonic workers (dask's default) may not: say so before the run."""
    with dask.config.set({"distributed.worker.daemon": True}):  # a self-started job set False for this process
        cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0")
    try:
        with pytest.raises(JobError, match="DASK_DISTRIBUTED__WORKER__DAEMON=False"):
            run_on_dask(cluster.scheduler_address, lambda p: p | beam.Create([1]) | sink(tmp_path, "never"))
    finally:
        cluster.close()
    assert not saved(tmp_path / "never")
