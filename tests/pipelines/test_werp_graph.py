"""Raw HTML never crosses a shuffle: every GroupByKey in werp sits before reading or after extraction."""
from __future__ import annotations

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.pipeline import PipelineVisitor

from pipelines import werp
from transforms.beam.stages import REJECTED
from transforms.recipe import load_recipe

READERS = ("ReadWarc/ReadFiles",)
EXTRACT = "WebDocuments/Extract"


def upstream_stop(node) -> str:
    """Walk up the first inputs to the nearest reader, extractor or audit record (or the source)."""
    while node.inputs:
        pcoll = node.inputs[0]
        node = pcoll.producer
        if node is None:
            return ""
        if pcoll.tag == REJECTED:
            return f"{node.full_label}[{REJECTED}]"  # small audit records, never pages
        if node.full_label.startswith((*READERS, EXTRACT)):
            return node.full_label
    return node.full_label


class ShuffleInputs(PipelineVisitor):
    """For each GroupByKey: its label, and the nearest reader or extractor above it."""

    def __init__(self) -> None:
        self.inputs: list[tuple[str, str]] = []

    def visit_transform(self, node) -> None:
        if isinstance(node.transform, beam.GroupByKey):
            self.inputs.append((node.full_label, upstream_stop(node)))


def test_no_shuffle_carries_pages(tmp_path):
    p = beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"]))
    werp.build(p, recipe=load_recipe("bluwerp"), inputs=["x.warc.gz"], output=str(tmp_path), rejected_output=str(tmp_path / "r"))
    visitor = ShuffleInputs()
    p.visit(visitor)
    assert visitor.inputs, "expected the dedup and write shuffles at least"
    carrying_pages = [(gbk, src) for gbk, src in visitor.inputs if src.startswith(READERS)]
    assert not carrying_pages, f"a shuffle takes raw pages: {carrying_pages}"
    assert any(g.startswith("Dedup/") for g, _ in visitor.inputs)


def test_the_check_catches_a_shuffle_of_pages(tmp_path):
    p = beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"]))
    from transforms.beam.read import ReadWarcPages

    pages, _ = p | beam.Create(["x"]) | "ReadWarc" >> ReadWarcPages(max_record_bytes=1 << 20)
    pages | beam.Reshuffle()
    visitor = ShuffleInputs()
    p.visit(visitor)
    assert any(src.startswith(READERS) for _, src in visitor.inputs)
