"""What every job does around its pipeline: check inputs, clear old output, run, and write the stats report."""
from __future__ import annotations

import logging
import sys
import time
from typing import Callable, Iterable, Sequence

import apache_beam as beam
from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import MetricsFilter

from pipelines.options import print_help, wants_help
from transforms import stats
from transforms.config import ConfigError

log = logging.getLogger("refinery")


class JobError(RuntimeError):
    """A problem the user fixes by changing a flag or a file; printed as one line, without a traceback."""


def check_inputs(globs: Sequence[str]) -> int:
    """Every glob must match at least one file; returns the total matched."""
    if not globs:
        raise JobError("no --input given; pass one or more file globs")
    total = 0
    for pattern in globs:
        try:
            matched = FileSystems.match([pattern])[0].metadata_list
        except BeamIOError as exc:
            raise JobError(f"--input {pattern!r} cannot be listed ({exc}); check the path and credentials") from None
        if not matched:
            raise JobError(f"--input {pattern!r} matched no files; check the path or glob")
        total += len(matched)
    return total


def remove_files(prefix: str, *, patterns: Sequence[str]) -> None:
    """Remove the files a run writes under the prefix (old shards before a run, spill files after it)."""
    old = []
    for pattern in patterns:
        try:
            old += [m.path for m in FileSystems.match([f"{prefix.rstrip('/')}/{pattern}"])[0].metadata_list]
        except BeamIOError:
            continue
    if old:
        log.info("removing %d files under %s (%s)", len(old), prefix, ", ".join(patterns))
        FileSystems.delete(old)


def remove_dir(path: str) -> None:
    """Remove an emptied working folder; object stores have no folders, so a failure there is fine."""
    try:
        FileSystems.delete([path])
    except BeamIOError:
        log.debug("no folder to remove at %s", path)


def collect_counters(result) -> dict[str, int]:
    """Refinery counters summed over steps and workers (committed values, else attempted)."""
    totals: dict[str, int] = {}
    for counter in result.metrics().query(MetricsFilter().with_namespace(stats.NAMESPACE))["counters"]:
        value = counter.committed if counter.committed is not None else counter.attempted
        totals[counter.key.metric.name] = totals.get(counter.key.metric.name, 0) + int(value or 0)
    return totals


def run_job(
    *, build: Callable[[beam.Pipeline], None], runner, options, output: str, stage_order: Iterable[str], extra: dict
) -> dict:
    """Build, run and report; the stats JSON lands next to the shards and a summary is printed."""
    started = time.monotonic()
    with beam.Pipeline(runner=runner, options=options) as pipeline:
        build(pipeline)
    report = stats.build_report(
        collect_counters(pipeline.result), stage_order=stage_order,
        wall_time_s=time.monotonic() - started, extra=extra)
    with FileSystems.create(f"{output.rstrip('/')}/stats.json") as fh:
        fh.write(stats.dump_report(report).encode("utf-8"))
    print(stats.format_summary(report))
    print(f"shards: {output.rstrip('/')}/documents/  report: {output.rstrip('/')}/stats.json")
    return report


def job_main(argv: list[str], *, name: str, doc: str, option_classes: Sequence[type], run: Callable) -> int:
    """`python -m pipelines.<name>`: --help, logging, and a one-line error (exit 2) for what the user must fix."""
    if wants_help(argv):
        print_help(prog=f"python -m pipelines.{name}", description=doc, option_classes=option_classes)
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    try:
        run(argv)
    except (ConfigError, JobError) as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    return 0
