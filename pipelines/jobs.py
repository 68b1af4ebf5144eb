"""What every job does around its pipeline: validate inputs and flags, run, and write the stats report."""
from __future__ import annotations

import logging
import os
import re
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import apache_beam as beam
from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.localfilesystem import LocalFileSystem
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from core.config import ConfigError
from core.runners import DASK_RUNNERS, LOCAL_RUNNERS
from pipelines.options import (
    BEAM_HELP, RefineryOptions, given_flags, print_beam_help, print_help, unknown_flags, wants_help,
)
from pipelines.progress import live_progress
from transforms import stats
from transforms.beam.metrics import collect_stats, read_counts
from transforms.io.inputs import is_visible, parquet_fix, parquet_problem

log = logging.getLogger("refinery")
GLOB_CHARS = "*?["  # what Beam's FileSystems.match expands


class JobError(RuntimeError):
    """A problem the user fixes by changing a flag or a file; printed as one line, without a traceback."""


def is_local(path: str) -> bool:
    """Local paths have folders and permissions worth probing; object stores have neither."""
    try:
        return isinstance(FileSystems.get_filesystem(path), LocalFileSystem)
    except ValueError:  # a scheme whose filesystem is not installed (gs:// without apache-beam[gcp])
        return False


@dataclass(frozen=True, kw_only=True, slots=True)
class Inputs:
    """What the readers get (globs as given, folders expanded) and every file they will read."""

    patterns: list[str]
    files: list[str]


def expand_inputs(patterns: Sequence[str], *, flag: str = "--input", fix: str = "check the path or glob",
                  expected: str = "one or more file globs or folders") -> Inputs:
    """Every glob must match a file, every Parquet file must have a footer; a folder means every file under it,
    subfolders included.

    A folder is read recursively (`DIR/**`) rather than refused: a folder of shards is the common case, and a
    plain `DIR/` glob would silently skip its subfolders. Names starting with '.' or '_' are skipped, as Spark
    and Hadoop do (`_SUCCESS`, `.crc`, our `.incomplete-*` staging and `_spill`, `_generations` folders).
    """
    if not patterns:
        raise JobError(f"no {flag} given; pass {expected}")
    readers, files = [], []
    for pattern in patterns:
        folder = _folder(pattern, flag)
        if folder is None:
            matched = _match(pattern, flag)
            static = _static_prefix(pattern)  # a file named in full is read whatever its name
            shown = [p for p in matched if static is None or is_visible(p[len(static):])]
            if not shown:
                hidden = f" ({len(matched)} hidden or marker files skipped)" if matched else ""
                raise JobError(f"{flag} {pattern!r} matched no files{hidden}; {fix}")
            # A glob that reaches hidden names (a `**` over a stale .incomplete-* staging folder) reads the
            # visible files by name; otherwise the runner expands the glob itself, as given.
            readers += [pattern] if len(shown) == len(matched) else sorted(shown)
            files += sorted(shown)
            continue
        under = _match(f"{folder}/**", flag)
        found = sorted(p for p in under if is_visible(p[len(folder) + 1:]))
        if not found:
            hidden = f" ({len(under)} hidden or marker files skipped)" if under else ""
            raise JobError(f"{flag} {pattern!r} matched no files{hidden}; {fix}")
        log.info("%s %s is a folder: reading all %d files under it, subfolders included (%d hidden or marker "
                 "files skipped)", flag, pattern, len(found), len(under) - len(found))
        readers += found
        files += found
    check_parquet(files, flag=flag)
    return Inputs(patterns=readers, files=files)


def _static_prefix(pattern: str) -> str | None:
    """The part of a glob up to the folder holding its first wildcard (names below it follow the hidden-name
    rule); None for a plain path."""
    first = min((i for i in (pattern.find(c) for c in GLOB_CHARS) if i >= 0), default=-1)
    return None if first < 0 else pattern[:pattern.rfind("/", 0, first) + 1]


def _folder(pattern: str, flag: str) -> str | None:
    """The folder a pattern names, or None for a glob or a file (object stores: a prefix with files under it)."""
    if any(c in pattern for c in GLOB_CHARS):
        return None
    folder = pattern.rstrip("/") or pattern
    if is_local(pattern):
        return folder if os.path.isdir(pattern) else None
    if pattern.endswith("/") or not _match(pattern, flag):
        return folder
    return None


def _match(pattern: str, flag: str) -> list[str]:
    try:
        return [m.path for m in FileSystems.match([pattern])[0].metadata_list]
    except (BeamIOError, ValueError) as exc:
        raise JobError(f"{flag} {pattern!r} cannot be listed ({exc}); check the path and credentials") from None


def check_parquet(files: Sequence[str], *, flag: str = "--input") -> None:
    """Every Parquet input has a readable footer (metadata only, cheap), so a truncated copy fails now, by name."""
    checked = 0
    for path in files:
        if not path.endswith(".parquet"):
            continue
        try:
            with FileSystems.open(path) as fh:
                problem = parquet_problem(fh)
        except (OSError, BeamIOError) as exc:
            problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if problem is not None:
            raise JobError(parquet_fix(flag, path, problem))
        checked += 1
    if checked:
        log.info("%s: %d Parquet footers read, all complete", flag, checked)


OVERRIDE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_-]+)*=")  # train.steps=, steps.gopher_quality.x=


def split_overrides(argv: Sequence[str] | None) -> tuple[list[str], list[str]]:
    """(config overrides, Beam flags): `key=value` words are overrides, the rest go to Beam, which drops words it
    cannot parse. A flag's value that holds `=` is written --flag=value (a separate `a=b` word is an override)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    overrides = [a for a in argv if OVERRIDE.match(a)]
    return overrides, [a for a in argv if not OVERRIDE.match(a)]


def parse_args(argv: Sequence[str] | None, option_classes: Sequence[type], *, prog: str
               ) -> tuple[list[str], PipelineOptions]:
    """(key=value overrides, the job's options) of a command line; a word no flag takes is refused."""
    overrides, flags = split_overrides(argv)
    check_flags(flags, option_classes, prog=prog)
    return overrides, PipelineOptions(flags)


COUNTS_FILE = "_counts.json"  # the job's summed STATS records, in the run's staging folder


def collect_counters(result) -> dict[str, int]:
    """Refinery's Beam metrics summed over steps and workers (committed values, else attempted); {} on a runner
    without metrics (Beam's DaskRunner). For runner UIs and cross-checks: stats.json comes from `run_counted`."""
    totals: dict[str, int] = {}
    try:
        counters = result.metrics().query(MetricsFilter().with_namespace(stats.NAMESPACE))["counters"]
    except NotImplementedError:
        return totals
    for counter in counters:
        value = counter.committed if counter.committed is not None else counter.attempted
        totals[counter.key.metric.name] = totals.get(counter.key.metric.name, 0) + int(value or 0)
    return totals


def run_counted(build: Callable[[beam.Pipeline], None], *, runner, options, output: str, stages: Sequence[str] = (),
                total_bytes: int = 0) -> tuple[dict[str, int], Any]:
    """Build and run a pipeline whose counts travel as data; (summed counts, the pipeline's result).

    The sums are written by the pipeline to `<output>/_counts.json` and read back here, so they are exact on
    every runner (transforms.beam.metrics explains why not Beam metrics). A local run shows live progress
    (pipelines/progress.py) of `stages` (filled by `build`, first = read, last = kept) unless --quiet."""
    path = f"{output.rstrip('/')}/{COUNTS_FILE}"
    with live_progress(enabled=shows_progress(options), stages=stages, total_bytes=total_bytes):
        with beam.Pipeline(runner=runner, options=options) as pipeline:
            build(pipeline)
            collect_stats(pipeline, path)
    counts = read_counts(path)
    FileSystems.delete([path])
    return counts, pipeline.result


def shows_progress(options: PipelineOptions) -> bool:
    """Live progress is for runs whose workers share this machine's file system: the local engine and a Dask
    cluster the job starts itself; not under --quiet."""
    if options.view_as(RefineryOptions).quiet:
        return False
    runner = options.view_as(StandardOptions).runner
    if runner in DASK_RUNNERS:
        given = given_flags(options, ("dask_client_address", str), ("dask_scheduler_file", str))
        return not any(given.values())
    return runner in LOCAL_RUNNERS


def run_job(*, build: Callable[[beam.Pipeline], Sequence[str]], runner, options, output: str, extra: dict) -> dict:
    """Build, run and report; `build` returns its stages in order (a Flow's), the order of the report. The stats
    JSON lands in `output` (a run's staging folder) and a summary is printed."""
    started, stages = time.monotonic(), []
    total_bytes = sum(f.get("bytes") or 0 for f in extra.get("input_files", ()))
    counts, _ = run_counted(lambda p: stages.extend(build(p)), runner=runner, options=options, output=output,
                            stages=stages, total_bytes=total_bytes)
    report = stats.build_report(counts, stage_order=stages, wall_time_s=time.monotonic() - started, extra=extra)
    with FileSystems.create(f"{output.rstrip('/')}/stats.json") as fh:
        fh.write(stats.dump_report(report).encode("utf-8"))
    print(stats.format_summary(report))
    return report


def job_main(argv: list[str], *, name: str, doc: str, option_classes: Sequence[type], run: Callable) -> int:
    """`python -m pipelines.<name>`: --help, logging, and a one-line error (exit 2) for what the user must fix."""
    prog = f"python -m pipelines.{name}"
    if BEAM_HELP in argv:
        print_beam_help(prog)
        return 0
    if wants_help(argv):
        print_help(prog=prog, description=doc, option_classes=option_classes)
        return 0
    show_info_logs()
    for noisy in quiet_loggers(argv):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        run(argv)
    except (ConfigError, JobError) as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # the staging folder is gone already; the previous output is untouched
        print(f"{name}: interrupted; the previous output, if any, is unchanged", file=sys.stderr)
        return 130
    return 0


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def show_info_logs() -> None:
    """INFO lines on stderr in our format. Importing Beam logs a warning through the root logger first, which
    installs a plain WARNING-level handler (basicConfig is then a no-op): that handler gets our format and the
    root INFO. Handlers someone else installed (pytest's, an embedding application's) are left as they are."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    for handler in root.handlers:
        if type(handler) is logging.StreamHandler:  # pylint: disable=unidiomatic-typecheck  (not subclasses)
            handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.setLevel(logging.INFO)


def check_flags(flags: Sequence[str], option_classes: Sequence[type], *, prog: str) -> None:
    """Refuse words that neither the job nor Beam knows (Beam would only warn and run with its defaults)."""
    unknown = unknown_flags(flags, option_classes)
    if not unknown:
        return
    shown = "; ".join(f"{word}" + (f" (did you mean {near}?)" if near else "") for word, near in unknown)
    raise JobError(f"unknown {'flag' if len(unknown) == 1 else 'flags'}: {shown}. `{prog} --help` lists the job's "
                   f"flags, `{prog} {BEAM_HELP}` Beam's; recipe keys are set as key=value words")


def quiet_loggers(argv: Sequence[str]) -> tuple[str, ...]:
    """Loggers held at WARNING: on a local run Beam's and Dask's start-up chatter (~60 INFO lines); on a cluster
    runner Beam's INFO lines stay, they carry the job's submission, its id and the console URL."""
    runner = given_runner(argv)
    local = runner in LOCAL_RUNNERS or runner in DASK_RUNNERS
    return ("apache_beam", "distributed", "dask") if local else ("distributed", "dask")


def given_runner(argv: Sequence[str]) -> str | None:
    """The --runner word of a command line, as given (None: the default, DirectRunner)."""
    for i, word in enumerate(argv):
        if word.startswith("--runner="):
            return word.split("=", 1)[1]
        if word == "--runner" and i + 1 < len(argv):
            return argv[i + 1]
    return None
