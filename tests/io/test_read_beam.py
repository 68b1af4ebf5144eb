"""ReadWarcPages on the FnApiRunner: byte-range splitting reads every record exactly once."""
from __future__ import annotations

import ast
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


def run(patterns: list[str], check, *, split_bytes: int = 64 << 20, extra_args: tuple = (),
        check_rejected=None) -> dict[str, int]:
    """Run ReadWarcPages over `patterns`, apply `check(pages)` (and `check_rejected(rejected)`, which turns
    emit_rejected on), return the refinery counters by name."""
    options = PipelineOptions(["--runner=FnApiRunner", *extra_args])
    with beam.Pipeline(options=options) as p:
        found, rejected = p | beam.Create(patterns) | ReadWarcPages(split_bytes=split_bytes,
                                                                    emit_rejected=check_rejected is not None)
        check(found)
        if check_rejected is not None:
            check_rejected(rejected)
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
    assert counts["read|chars_in"] == counts["read|chars_out"] == sum(len(b.decode()) for b in html_bodies(300))


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


def test_malformed_shared_files_are_counted_by_reason(shared_data):
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
    assert counts["extract|chars_in"] == sum(map(len, texts))
    assert counts["extract|chars_out"] == len(texts[0] + texts[1])


def test_every_read_drop_and_file_error_is_a_rejected_row(tmp_path):
    ids = write_warc(tmp_path / "a.warc.gz", html_bodies(6) + [b"not html at all"], content_type=None)
    plain = gzip.decompress((tmp_path / "a.warc.gz").read_bytes())
    (tmp_path / "b.warc").write_bytes(plain[:-300])  # cut in the last record
    whole = gzip.compress(plain)
    (tmp_path / "c.warc.gz").write_bytes(whole[:len(whole) * 2 // 3])  # cut in some record
    (tmp_path / "d.warc").write_bytes(b"")
    out = tmp_path / "out" / "rejected"

    def keep(rejected):
        rejected | beam.Map(lambda r: repr((r.id, r.stage, r.reason))) | beam.io.WriteToText(str(out))

    counts = run([str(tmp_path / "*.warc*")], lambda pages: None, check_rejected=keep)
    rows = [ast.literal_eval(line) for f in out.parent.glob("rejected-*") for line in f.read_text().splitlines()]
    drops = sum(v for k, v in counts.items() if k.startswith("read|dropped|"))
    errors = sum(v for k, v in counts.items() if k.startswith("read|errors|"))
    assert counts["read|docs_in"] == counts["read|docs_out"] + drops
    assert len(rows) == drops + errors and {stage for _, stage, _ in rows} == {"read"}
    by_reason = sorted((reason, rid) for rid, _, reason in rows)
    assert (warc.NOT_HTML, ids[6]) in by_reason  # a.warc.gz: the 7th record is text/plain-sniffed
    assert (warc.TRUNCATED_RECORD, ids[6]) in by_reason  # b.warc: cut in its last record
    assert (warc.EMPTY_FILE, f"{tmp_path / 'd.warc'}@0") in by_reason
    [(_, gz_error)] = [(r, i) for r, i in by_reason if r == warc.TRUNCATED_GZIP]
    assert gz_error.startswith(f"{tmp_path / 'c.warc.gz'}@")
    assert sum(1 for r, _ in by_reason if r == warc.TRUNCATED_RECORD) == 2  # one in b.warc, one in c.warc.gz
