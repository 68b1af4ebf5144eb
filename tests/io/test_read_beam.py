"""ReadWarcPages on the FnApiRunner: byte-range splitting reads every record exactly once."""
from __future__ import annotations

import gzip

import apache_beam as beam
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to

from tests.io.test_warc import DATA, html_bodies, write_warc
from transforms import stats
from transforms.beam.read import ReadWarcPages
from transforms.io import warc

pytestmark = pytest.mark.slow


def run(patterns: list[str], check, *, split_bytes: int = 64 << 20, extra_args: tuple = ()) -> dict[str, int]:
    """Run ReadWarcPages over `patterns`, apply `check(pages)`, return the refinery counters by name."""
    options = PipelineOptions(["--runner=FnApiRunner", *extra_args])
    with beam.Pipeline(options=options) as p:
        found = p | beam.Create(patterns) | ReadWarcPages(split_bytes=split_bytes)
        check(found)
    counters = p.result.metrics().query(MetricsFilter().with_namespace(stats.NAMESPACE))["counters"]
    return {c.key.metric.name: c.committed for c in counters}


@pytest.fixture(scope="module")
def cc_layout_warc(tmp_path_factory) -> tuple[str, list[str]]:
    path = tmp_path_factory.mktemp("warc") / "cc.warc.gz"
    return str(path), write_warc(path, html_bodies(300))


def test_ranges_read_every_record_once(cc_layout_warc):
    path, ids = cc_layout_warc
    counts = run([path], lambda pages: assert_that(pages | beam.Map(lambda p: p.id), equal_to(ids)),
                 split_bytes=16 << 10)
    assert counts["read.ranges"] > 1
    assert counts["read|docs_in"] == counts["read|docs_out"] == len(ids)


def test_ranges_on_two_worker_processes(cc_layout_warc):
    path, ids = cc_layout_warc
    counts = run([path], lambda pages: assert_that(pages | beam.Map(lambda p: p.id), equal_to(ids)),
                 split_bytes=16 << 10, extra_args=("--direct_num_workers=2", "--direct_running_mode=multi_processing"))
    assert counts["read.ranges"] > 1 and counts["read|docs_out"] == len(ids)


def test_whole_gzip_plain_and_split_files_give_the_same_pages(tmp_path):
    ids = write_warc(tmp_path / "a.warc.gz", html_bodies(40))
    (tmp_path / "b.warc").write_bytes(gzip.decompress((tmp_path / "a.warc.gz").read_bytes()))
    (tmp_path / "c.warc.gz").write_bytes(gzip.compress((tmp_path / "b.warc").read_bytes()))
    expected = [(i, f"http://example.com/{n}") for n, i in enumerate(ids)] * 3
    run([str(tmp_path / "*.warc*")], lambda pages: assert_that(pages | beam.Map(lambda p: (p.id, p.url)),
                                                            equal_to(expected)), split_bytes=4 << 10)


def test_malformed_shared_files_are_counted_by_reason():
    if not DATA.is_dir():
        pytest.skip(f"no shared WARC samples under {DATA}")
    patterns = [str(DATA / "jhove-invalid" / "*.warc"), str(DATA / "warcio" / "*"), str(DATA / "resiliparse" / "*")]
    counts = run(patterns, lambda pages: None)
    for reason in (warc.EMPTY_FILE, warc.INVALID_HEADER, warc.TRUNCATED_GZIP):
        assert counts.get(stats.counter_name("read", stats.ERRORS, reason), 0) >= 1, reason
    for reason in (warc.NOT_RESPONSE, warc.NOT_HTML, warc.TRUNCATED_RECORD):
        assert counts.get(stats.counter_name("read", stats.DROPPED, reason), 0) >= 1, reason
    assert counts["read|docs_out"] >= 10


def test_wet_text_passes_extraction_unchanged_and_stats_balance(tmp_path):
    from tests.io.test_warc_types import wet_file
    from transforms.beam.stages import REJECTED, WET_EXTRACTOR, ExtractFn
    from transforms.extract import ExtractConfig

    texts = ["First WET page.\nIts second line.\n", "Second page, one line.\n", "   \n"]
    data, ids = wet_file(texts)
    (tmp_path / "t.warc.wet.gz").write_bytes(data)
    wanted = [(ids[0], texts[0], WET_EXTRACTOR), (ids[1], texts[1], WET_EXTRACTOR)]

    def check(pages):
        docs = pages | beam.ParDo(ExtractFn(ExtractConfig(), emit_rejected=False)).with_outputs(REJECTED, main="out")
        assert_that(docs.out | beam.Map(lambda d: (d.id, d.text, d.extractor)), equal_to(wanted))

    counts = run([str(tmp_path / "t.warc.wet.gz")], check)
    assert counts["read|docs_in"] == 4 and counts["read|docs_out"] == 3  # the warcinfo record is dropped
    assert counts["extract|docs_in"] == 3 and counts["extract|docs_out"] == 2
    assert counts["extract|dropped|extract.empty"] == 1  # the blank text
    assert counts["extract|chars_in"] == sum(map(len, texts)) and counts["extract|chars_out"] == len(texts[0] + texts[1])
