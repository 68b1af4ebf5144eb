"""Exact dedup in Beam: one row per normalised text, the earliest copy survives, losers are counted and audited."""
from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to

from transforms import stats
from transforms.beam.dedup import Dedup, exchanges_through_files
from transforms.beam.stages import REJECTED
from transforms.dedup.config import DedupConfig
from transforms.document import Document


def doc(doc_id: str, text: str, day: int) -> Document:
    return Document(id=doc_id, url=f"https://example.com/{doc_id}", warc_date=f"2026-11-{day:02d}T00:00:00Z", text=text)


def test_copies_collapse_to_the_earliest(tmp_path):
    docs = [doc("c", "The cat sat.", 3), doc("a", "the  CAT sat", 1), doc("b", "A dog ran.", 9), doc("d", "The cat sat!", 2)]
    with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as p:
        out = p | beam.Create(docs) | Dedup(DedupConfig(exact=True), spill_prefix=str(tmp_path / "spill"), stat_names=(),
                                            codec="zstd", emit_rejected=True)
        assert_that(out["rows"] | "Ids" >> beam.Map(lambda r: r["id"]), equal_to(["a", "b"]), label="survivors")
        assert_that(out[REJECTED] | "Lost" >> beam.Map(lambda r: (r.id, r.reason, r.text)),
                    equal_to([("c", "exact.duplicate", "The cat sat."), ("d", "exact.duplicate", "The cat sat!")]),
                    label="losers")
    counters = {c.key.metric.name: c.committed
                for c in p.result.metrics().query(MetricsFilter().with_namespace(stats.NAMESPACE))["counters"]}
    assert counters["dedup_exact|docs_in"] == 4 and counters["dedup_exact|docs_out"] == 2
    assert counters["dedup_exact|dropped|exact.duplicate"] == 2


@pytest.mark.parametrize("runner, setting, files", [
    ("FnApiRunner", "auto", True), ("DirectRunner", "auto", True), (None, "auto", True),  # shuffles held in memory
    ("DaskRunner", "auto", False), ("DataflowRunner", "auto", False),  # shuffles on disk or a service
    ("FnApiRunner", "shuffle", False), ("DaskRunner", "files", True),  # a recipe that chooses is obeyed
])
def test_paragraph_ngrams_go_through_files_only_where_the_shuffle_is_in_memory(runner, setting, files):
    options = PipelineOptions([f"--runner={runner}"] if runner else [])
    assert exchanges_through_files(setting, options) is files
