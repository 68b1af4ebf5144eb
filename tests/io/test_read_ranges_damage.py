"""Byte ranges over damaged and oddly cut .warc.gz files: every split size gives what one reader of the whole
file gives.

A damaged member (junk, a broken header, bad deflate data, a bad CRC) at or near a range start must be reported
by exactly one range, and a range must not start inside a record that runs on across members. The oracle is
`read_records` over each whole file in one process, itself checked against the writer: no page differs from
the one written, no record is counted twice.
"""
from __future__ import annotations

import ast
import collections
import gzip
import zlib
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from tests.io.test_warc_damage import member_starts, members_every, per_record_members, warc_archive
from tests.io.test_warc_members import written_html
from transforms import stats
from transforms.beam.read import ReadWarcPages
from transforms.document import Page
from transforms.io.warc import ReadIssue, read_records

pytestmark = pytest.mark.slow


def damaged_file() -> tuple[bytes, list[int], dict[str, str]]:
    """A per-record file with damage of every kind: (its bytes, damaged members' offsets, pages' HTML as written)."""
    archive = warc_archive(n=24, seed=3)
    members = [bytearray(m) for m in per_record_members(archive)]
    members[3][:3] = b"XXX"  # junk where a member should start
    members[6][3] |= 0x20  # a reserved FLG bit: zlib refuses the header (RFC 1952 section 2.3.1)
    members[9][len(members[9]) // 2] ^= 0x10  # a bit flip in the deflate data
    members[12][-6] ^= 0x01  # the CRC-32 fails
    members[15][1] ^= 0x04  # one bit of the magic flipped
    members[18] = bytearray(zlib.compress(b"x")) + members[18]  # a zlib (not gzip) stream before the member
    starts = member_starts([bytes(m) for m in members])
    data = b"".join(members)
    data = data[:len(data) - len(members[-1]) // 2]  # cut in the last member
    texts = dict(zip(archive.ids, written_html(24, seed=3)))
    return data, [starts[i] for i in (3, 6, 9, 12, 15, 18, 23)], texts


def blocks_file() -> bytes:
    """A warcinfo-like first member, then 7 KB blocks cut wherever records lie: not splittable past the first."""
    archive = warc_archive(n=10, seed=4)
    first = archive.starts[1]
    return gzip.compress(archive.data[:first], mtime=0) + members_every(archive.data[first:], 7000)


def expected(paths: list[str]) -> tuple[list[str], list[tuple[str, str, str]]]:
    """What one reader of each whole file gives, named the way ReadWarcPages names pages and rejected rows."""
    pages, rows = [], []
    for path in paths:
        with open(path, "rb") as fh:
            items = list(read_records(fh, source=path))
        pages += [i.id for _, i in items if isinstance(i, Page)]
        rows += [(i.record_id or f"{path}@{o}" if i.is_record else f"{path}@{o}", i.reason, i.detail)
                 for o, i in items if isinstance(i, ReadIssue)]
    return sorted(pages), sorted(rows)


def test_every_split_size_reads_what_one_reader_of_the_whole_file_reads(tmp_path):
    data, damaged, texts = damaged_file()
    paths = [str(tmp_path / "damaged.warc.gz"), str(tmp_path / "blocks.warc.gz")]
    for path, content in zip(paths, (data, blocks_file())):
        Path(path).write_bytes(content)
    with open(paths[0], "rb") as fh:
        items = list(read_records(fh, source=paths[0]))
    assert all(texts[i.id] == i.html for _, i in items if isinstance(i, Page))  # no altered page
    assert sum(isinstance(i, Page) or i.is_record for _, i in items) <= len(texts)  # no phantom record
    assert sum(isinstance(i, Page) for _, i in items) == len(texts) - 6  # the junk before member 18 holds none
    want_pages, want_rows = expected(paths)
    assert len(want_pages) == len(texts) - 6 + 10 and len(want_rows) == 12  # blocks.warc.gz: 10 pages, no issue
    # ranges that start in, just before and just after damaged members, small ones, and the whole file
    splits = sorted({61, 997, damaged[0], damaged[1] + 1, damaged[2] - 1, damaged[4] // 2, len(data)})
    options = PipelineOptions(["--runner=FnApiRunner"])
    with beam.Pipeline(options=options) as p:
        files = p | beam.Create(paths)
        for split in splits:
            pages, rejected = files | f"Read {split}" >> ReadWarcPages(split_bytes=split, emit_rejected=True)
            ((pages | f"Ids {split}" >> beam.Map(lambda x: repr(("page", x.id)))),
             (rejected | f"Rows {split}" >> beam.Map(lambda r: repr(("row", (r.id, r.reason, r.text))))))\
                | f"Both {split}" >> beam.Flatten() \
                | f"Write {split}" >> beam.io.WriteToText(str(tmp_path / f"out-{split}"), shard_name_template="")
    for split in splits:
        got = [ast.literal_eval(line) for line in (tmp_path / f"out-{split}").read_text().splitlines()]
        pages = sorted(v for kind, v in got if kind == "page")
        rows = sorted(v for kind, v in got if kind == "row")
        where = f"split_bytes={split}"
        assert collections.Counter(r[1] for r in rows) == collections.Counter(r[1] for r in want_rows), where
        assert (pages, rows) == (want_pages, want_rows), where
    counters = p.result.metrics().query(MetricsFilter().with_namespace(stats.NAMESPACE))["counters"]
    counts = collections.Counter()
    for counter in counters:  # one per step: the splits' readers add up
        counts[counter.key.metric.name] += counter.committed
    errors = sum(1 for row in want_rows if row[1].startswith("warc.error."))
    assert counts["read|docs_out"] == len(splits) * len(want_pages)
    assert counts["read|docs_in"] == len(splits) * (len(want_pages) + len(want_rows) - errors)
    assert sum(v for k, v in counts.items() if k.startswith("read|errors|")) == len(splits) * errors
