"""Raw HTML never crosses a shuffle: every GroupByKey in werp sits before reading or after extraction."""
from __future__ import annotations

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.pipeline import PipelineVisitor

from pipelines import werp
from transforms.recipe import load_recipe

PAGE_PRODUCERS = ("ReadWarc/ReadRanges", "ReadWarc/ReadWholeFiles", "ReadWarc/MergePages", "WebDocuments/UrlFilter")


class ShuffleInputs(PipelineVisitor):
    """Collects the label of the transform that produces each GroupByKey's input."""

    def __init__(self) -> None:
        self.inputs: list[tuple[str, str]] = []

    def visit_transform(self, node) -> None:
        if isinstance(node.transform, beam.GroupByKey):
            producer = node.inputs[0].producer
            self.inputs.append((node.full_label, producer.full_label if producer else ""))


def test_no_shuffle_carries_pages(tmp_path):
    p = beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"]))
    werp.build(p, recipe=load_recipe("bluwerp"), inputs=["x.warc.gz"], output=str(tmp_path), rejected_output=str(tmp_path / "r"))
    visitor = ShuffleInputs()
    p.visit(visitor)
    assert visitor.inputs, "expected the dedup and write shuffles at least"
    carrying_pages = [(gbk, src) for gbk, src in visitor.inputs if src.startswith(PAGE_PRODUCERS)]
    assert not carrying_pages, f"a shuffle takes raw pages: {carrying_pages}"
    assert any(g.startswith("DedupExact/") for g, _ in visitor.inputs)
    assert any(g.startswith("ReadWarc/SpreadWholeFiles") for g, _ in visitor.inputs), "file names are spread, not pages"
