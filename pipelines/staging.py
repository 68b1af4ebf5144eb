"""A run's output is written beside the previous one and swapped in only when the run succeeds.

Every job writes into `<prefix>/.incomplete-<run id>/` (hidden, so readers globbing the prefix skip it), then
deletes the previous files it would replace and moves the new ones in with `FileSystems.rename`, which every
Beam filesystem has. A failure at any point (a bad record, a killed worker, Ctrl-C) removes the staging folder
and leaves the previous complete output, byte for byte, where it was; working files (werp's `_spill/`, Beam's
`beam-temp-*`) live in the staging folder too, so nothing stray is left in the output's visible folders.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems

from pipelines.jobs import JobError, is_local, run_job
from pipelines.report import write_report
from pipelines.report_data import REPORT_NAME, ReportError
from pipelines.runners import make_runner

STAGING_PREFIX = ".incomplete-"
log = logging.getLogger("refinery")


@dataclass(frozen=True, kw_only=True, slots=True)
class StagedOutput:
    """One output prefix of a run: where the run writes (`staging`) and what it replaces when it succeeds."""

    final: str  # the prefix the user named, without a trailing slash
    staging: str  # <final>/.incomplete-<run id>: the run writes here
    artifacts: tuple[str, ...]  # globs relative to the prefix that a run writes and the next run replaces
    flag: str  # the flag that named the prefix, for error messages
    created: bool  # the prefix did not exist before this run (removed again if the run fails and leaves it empty)

    def create(self) -> None:
        """Make the staging folder; locally this is the writability probe (object stores need no folders)."""
        if not is_local(self.staging):
            return
        try:
            os.makedirs(self.staging)
        except OSError as exc:
            raise JobError(f"{self.flag} {self.final}: cannot write there ({exc.strerror or exc}: "
                           f"{exc.filename or self.staging}); pass a folder you can create and write to") from None

    def publish(self) -> None:
        """Replace the previous run's files by this run's, then remove the staging folder."""
        old, new = _matching(self.final, self.artifacts), _matching(self.staging, self.artifacts)
        if old:
            log.info("%s: replacing %d files of the previous run under %s", self.flag, len(old), self.final)
            FileSystems.delete(old)
        moved = [f"{self.final}{path[len(self.staging):]}" for path in new]
        if is_local(self.final):
            for folder in sorted({os.path.dirname(p) for p in moved}):
                os.makedirs(folder, exist_ok=True)
        if new:
            FileSystems.rename(new, moved)
        self._remove_staging()

    def discard(self) -> None:
        """Remove the staging folder and whatever is in it; a prefix this run created is removed if left empty."""
        self._remove_staging()
        if self.created and is_local(self.final):
            with contextlib.suppress(OSError):
                os.rmdir(self.final)

    def _remove_staging(self) -> None:
        """Working files go too: werp's spill, Beam's beam-temp-*, half-written shards."""
        if is_local(self.staging):
            if os.path.exists(self.staging):
                shutil.rmtree(self.staging)
            return
        leftover = _matching(self.staging, ("**",))
        if leftover:
            FileSystems.delete(leftover)


def _matching(prefix: str, patterns: Sequence[str]) -> list[str]:
    paths: list[str] = []
    for pattern in patterns:
        try:
            paths += [m.path for m in FileSystems.match([f"{prefix}/{pattern}"])[0].metadata_list]
        except BeamIOError:
            continue
    return sorted(set(paths))


def plan_output(prefix: str, *, flag: str, artifacts: Sequence[str]) -> StagedOutput:
    """Check that `prefix` can be a run's output folder, without touching anything; raise JobError if not."""
    final = prefix.rstrip("/") or prefix
    try:
        FileSystems.get_filesystem(final)
    except ValueError as exc:  # gs:// without apache-beam[gcp], a typo in the scheme
        raise JobError(f"{flag} {prefix}: {exc}") from None
    folders = sorted({a.split("/", 1)[0] for a in artifacts if "/" in a})
    for path in [final, *(f"{final}/{f}" for f in folders)]:
        if _is_file(path):
            raise JobError(f"{flag} {prefix}: {path} is an existing file, but the output is a folder; pass a folder "
                           "path (a new one, or the output folder of an earlier run)")
    created = is_local(final) and not os.path.exists(final)
    return StagedOutput(final=final, staging=f"{final}/{STAGING_PREFIX}{new_run_id()}", artifacts=tuple(artifacts),
                        flag=flag, created=created)


def plan_outputs(output: str, rejected_output: str | None, *, artifacts: Sequence[str],
                 rejected_artifacts: Sequence[str]) -> tuple[StagedOutput, StagedOutput | None]:
    """`--output` and, when given, `--rejected_output`: both checked before the run, staged and swapped together."""
    rejected = (plan_output(rejected_output, flag="--rejected_output", artifacts=rejected_artifacts)
                if rejected_output else None)
    out = plan_output(output, flag="--output", artifacts=(*artifacts, REPORT_NAME))  # every run leaves its report
    if rejected is not None:
        a, b = (_comparable(p) for p in (out.final, rejected.final))
        if a == b or a.startswith(b + "/") or b.startswith(a + "/"):
            raise JobError(f"--rejected_output {rejected_output} and --output {output} overlap: one run would replace "
                           "the other's files; pass a separate folder, e.g. --rejected_output="
                           f"{out.final}-rejected")
    return out, rejected


def _comparable(path: str) -> str:
    """A prefix in one spelling (absolute, no trailing slash) so that two outputs can be compared."""
    return os.path.abspath(path) if is_local(path) else path.rstrip("/")


def _is_file(path: str) -> bool:
    if is_local(path):
        return os.path.exists(path) and not os.path.isdir(path)
    try:
        return FileSystems.exists(path)  # an object named exactly like the prefix
    except BeamIOError:
        return False


def new_run_id() -> str:
    """Sortable by start time and unique across concurrent runs."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"


@contextlib.contextmanager
def staged(*outputs: StagedOutput | None) -> Iterator[None]:
    """Create the staging folders; publish them all if the block succeeds, else discard them and re-raise."""
    live = [o for o in outputs if o is not None]
    try:
        for output in live:
            output.create()
        yield
    except BaseException:
        for output in live:
            try:
                output.discard()
            except (BeamIOError, OSError) as exc:  # never hide the run's own error behind a cleanup error
                log.warning("could not remove %s: %s", output.staging, exc)
        raise
    for output in live:
        output.publish()


@contextlib.contextmanager
def staged_files(*finals: str) -> Iterator[list[str]]:
    """Local single-file outputs: hidden names beside each, renamed over the finals only if the block succeeds."""
    token = uuid.uuid4().hex[:8]
    temps = [os.path.join(os.path.dirname(os.path.abspath(f)), f".{os.path.basename(f)}{STAGING_PREFIX}{token}")
             for f in finals]
    try:
        yield temps
        for temp, final in zip(temps, finals):
            os.replace(temp, final)
    finally:
        for temp in temps:
            if os.path.exists(temp):
                os.remove(temp)


def write_run_report(output: str, rejected: str | None) -> None:
    """report.html beside the published stats.json; a report that cannot be made is a warning, the run stands."""
    try:
        write_report(output, rejected)
    except (ReportError, BeamIOError, OSError) as exc:
        log.warning("the run succeeded, but its report.html could not be written (%s); retry with "
                    "python -m pipelines.report %s", exc, output)


def run_staged(*, out: StagedOutput, rejected: StagedOutput | None,
               build: Callable[[Any, str, str | None], Sequence[str]], options, extra: dict) -> dict:
    """Run a document job into its staging folders (`build(pipeline, output, rejected_output)` -> its stages in
    order), swap them in on success, print where the shards are and return the stats report."""
    with staged(out, rejected):
        report = run_job(build=lambda p: build(p, out.staging, rejected.staging if rejected else None),
                         runner=make_runner(options), options=options, output=out.staging, extra=extra)
    write_run_report(out.final, rejected.final if rejected else None)
    print(f"shards: {out.final}/documents/  stats: {out.final}/stats.json  report: {out.final}/{REPORT_NAME}")
    return report
