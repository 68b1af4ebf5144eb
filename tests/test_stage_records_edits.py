"""Totals of every edit and the reader's input bytes (issue 18, items 1 and 2), through the real stages on
FnApiRunner. Oracles: the replacements and removed lines of a page written here, counted by hand; the input
bytes against the file sizes on disk.
"""
from __future__ import annotations

import gzip
import shutil

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.portability.fn_api_runner import FnApiRunner

from pipelines.jobs import run_counted
from pipelines.sample_warc import SAMPLE_PATH
from transforms.beam.metrics import Counted
from transforms.beam.read import ReadWarcPages
from transforms.beam.stages import REJECTED, QualityStepsFn
from transforms.document import Document
from transforms.filters.base import ConfiguredStep
from transforms.filters.registry import registry

LAKES = [f"The water in lake {i} is cold." for i in range(5)]
EDITED = "\n".join([
    "Write to alice@example.org or bob@example.net today.",  # 2 e-mails
    "The server at 8.8.8.8 is public, 192.168.1.1 is not.",  # 1 public IP; the private one stays
    "Enable javascript to see this page.",  # C4 removes it (javascript)
    "ok",  # C4 removes it (fewer than 3 words)
    *LAKES,
])
UNTOUCHED = "\n".join(LAKES)


def run(build, tmp_path) -> dict[str, int]:
    counts, _ = run_counted(build, runner=FnApiRunner(), options=PipelineOptions(["--quiet"]), output=str(tmp_path))
    return counts


def test_pii_replacements_and_removed_lines_are_totalled_per_step(tmp_path):
    specs = registry()
    steps = tuple(ConfiguredStep(specs[name], specs[name].config_cls()) for name in ("pii", "c4"))
    docs = [Document(id=str(i), url="", warc_date="", text=text) for i, text in enumerate((EDITED, UNTOUCHED))]

    def build(p):
        _ = p | beam.Create(docs) | Counted(QualityStepsFn(steps, emit_rejected=False), tags=(REJECTED,))

    counts = run(build, tmp_path)
    edited = {k: v for k, v in counts.items() if "|edited|" in k}
    assert edited == {
        "pii|edited|pii.email": 2, "pii|edited|pii.ip": 1, "pii|edited|docs_edited": 1,
        "c4|edited|lines_removed": 2, "c4|edited|docs_edited": 1,
    }
    assert counts["c4|docs_out"] == 2


def test_the_reader_counts_every_input_byte_once_whole_files_and_byte_ranges_alike(tmp_path):
    plain = tmp_path / "sample.warc"
    with gzip.open(SAMPLE_PATH, "rb") as src, open(plain, "wb") as dst:
        shutil.copyfileobj(src, dst)
    ranged = tmp_path / "sample.warc.gz"  # one gzip member per record: cut into 4 KiB ranges
    shutil.copyfile(SAMPLE_PATH, ranged)
    sizes = plain.stat().st_size + ranged.stat().st_size

    def build(p):
        _ = p | beam.Create([str(plain), str(ranged)]) | ReadWarcPages(split_bytes=4096)

    counts = run(build, tmp_path / "out")
    assert counts["read|input_bytes"] == sizes
    assert counts["read|docs_out"] == 2 * 39, "both copies read whole (39 pages each)"
