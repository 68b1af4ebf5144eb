"""Run report: a finished run's stats.json (and its rejected documents) -> one self-contained report.html.

python -m pipelines.report output/werp                                  # -> output/werp/report.html
python -m pipelines.report output/werp --rejected output/werp-rejected --samples 3

The page has the run header, the funnel (documents and characters per stage), drop reasons, errors and edits,
time per stage, histograms before and after each stage, sample rejected documents with the failing value, and
tokenize's mixture or swallowcode's pylint scores when the stats hold them. No network, no scripts: it opens
from the file system, in any browser, with JavaScript off. Any Beam filesystem works for OUTPUT and PREFIX.
"""
from __future__ import annotations

import argparse
import sys

from apache_beam.io.filesystems import FileSystems

from pipelines import report_html, report_sections
from pipelines.report_data import REPORT_NAME, ReportError, drops_in_order, load_stats, read_samples

DEFAULT_SAMPLES = 5  # documents per drop reason: enough to see a pattern, few enough to scroll past


def render(stats: dict, *, output_dir: str, job: str | None = None, samples=None, prefix: str | None = None) -> str:
    """The report's HTML from loaded stats and the samples read (None: no --rejected given)."""
    stages = stats["stages"]
    job = job or report_html.infer_job(stats)
    sampled = set(samples.by_reason) if samples is not None else set()
    wall = stats.get("wall_time_s")
    return report_html.page(title=f"{job} run report", body=[
        report_html.header(stats, job=job, output_dir=output_dir),
        report_html.funnel(stages),
        report_html.drops(stages, sampled=sampled),
        report_html.timing(stages, wall_time_s=float(wall) if wall is not None else None),
        report_html.errors_and_edits(stages),
        report_sections.mixture(stats),
        report_sections.pylint_scores(stages),
        report_sections.histograms(stages),
        report_sections.samples(stats, samples, prefix=prefix),  # last: the longest, reached by the drop links
    ])


def write_report(output_dir: str, rejected_prefix: str | None = None, *, samples: int = DEFAULT_SAMPLES,
                 job: str | None = None, out: str | None = None) -> str:
    """Write report.html beside OUTPUT's stats.json (or to `out`) and return its path."""
    stats = load_stats(output_dir)
    found = None
    if rejected_prefix:
        wanted = [(stage, reason) for stage, reason, _ in drops_in_order(stats)]
        found = read_samples(rejected_prefix, per_reason=samples, wanted=wanted)
    html = render(stats, output_dir=output_dir, job=job, samples=found, prefix=rejected_prefix)
    path = out or f"{output_dir.rstrip('/')}/{REPORT_NAME}"
    with FileSystems.create(path, mime_type="text/html") as fh:
        fh.write(html.encode("utf-8"))
    return path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pipelines.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", metavar="OUTPUT", help="a finished run's --output folder (holds stats.json)")
    parser.add_argument("--rejected", metavar="PREFIX", default=None,
                        help="the run's --rejected_output prefix: sample documents per drop reason come from its "
                             "Parquet files (PREFIX/part-*.parquet)")
    parser.add_argument("--samples", metavar="N", type=int, default=DEFAULT_SAMPLES,
                        help=f"sample documents per drop reason (default {DEFAULT_SAMPLES}; 0: none)")
    parser.add_argument("--job", default=None, help="job name for the header (default: from stats.json)")
    parser.add_argument("--out", metavar="PATH", default=None, help=f"where to write (default OUTPUT/{REPORT_NAME})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Write the report and print its path; a problem the user fixes is one line on stderr, exit 2."""
    args = parse_args(argv)
    try:
        path = write_report(args.output, args.rejected, samples=args.samples, job=args.job, out=args.out)
    except ReportError as exc:
        print(f"report: error: {exc}", file=sys.stderr)
        return 2
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
