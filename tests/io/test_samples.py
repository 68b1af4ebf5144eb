"""Samples from JSONL, Parquet and source files: ids are stable, every bad record is counted by its reason."""
from __future__ import annotations

import ast
import gzip
import json
import random
import zlib

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import zstandard
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.jobs import collect_counters
from transforms.beam.read_samples import ReadSamples
from transforms.io.samples import SampleFields


def write_inputs(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(b"\n".join([
        json.dumps({"id": "x1", "text": "print(1)\n", "language": "Python"}).encode(),
        b"{not json",
        json.dumps({"text": "", "language": "Python"}).encode(),
        json.dumps(["a list"]).encode(),
        json.dumps({"content": "no text field"}).encode(),
        json.dumps({"text": "x = 2\n", "language": "Python", "repo": "r/r"}).encode(),
        b"",
    ]))
    with gzip.open(tmp_path / "b.jsonl.gz", "wb") as fh:
        fh.write(json.dumps({"text": "y = 3\n" * 10_000, "language": "Python"}).encode() + b"\n")  # over the cap
        fh.write(json.dumps({"text": "z = 4\n", "language": "Go"}).encode() + b"\n")
    pq.write_table(pa.table({"text": ["a = 1\n", "b = 2\n"], "language": ["Python", "Python"], "other": [1, 2]}),
                   tmp_path / "c.parquet")
    pq.write_table(pa.table({"content": ["no text column"]}), tmp_path / "d.parquet")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "ok.py").write_text("import os\n", encoding="utf-8")
    (tmp_path / "src" / "latin1.py").write_bytes("s = 'caf\xe9'\n".encode("latin-1"))
    (tmp_path / "src" / "empty.py").write_text("\n\n", encoding="utf-8")
    (tmp_path / "src" / "big.py").write_bytes(b"#" * 70_000)
    (tmp_path / "notes.txt").write_text("stray", encoding="utf-8")


def lines_of(out):
    files = out.parent.glob(f"{out.name}-*")
    return sorted(ast.literal_eval(line) for f in files for line in f.read_text().splitlines())


def read(globs, out, *, rejected_out=None, **kwargs):
    with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as p:
        samples, rejected = p | beam.Create(globs) | ReadSamples(emit_rejected=rejected_out is not None, **kwargs)
        (samples | beam.Map(lambda s: repr((s.id, s.text[:10], s.language, tuple(sorted(s.extra.items())))))
         | beam.io.WriteToText(str(out)))
        if rejected_out is not None:
            (rejected | "Rej" >> beam.Map(lambda r: repr((r.id, r.stage, r.reason)))
             | "WriteRej" >> beam.io.WriteToText(str(rejected_out)))
    return lines_of(out), collect_counters(p.result)


def test_every_input_kind_and_every_bad_record_is_accounted_for(tmp_path):
    write_inputs(tmp_path)
    rows, counters = read([str(tmp_path / "*.*"), str(tmp_path / "src" / "*.py")], tmp_path / "out" / "rows",
                          fields=SampleFields(keep=("repo",)), max_bytes=50_000, source_language="Python")
    ids = [r[0] for r in rows]
    assert "x1" in ids and f"{tmp_path / 'a.jsonl'}:6" in ids  # own id, else file:line
    assert f"{tmp_path / 'c.parquet'}:0" in ids and f"{tmp_path / 'c.parquet'}:1" in ids
    assert f"{tmp_path / 'b.jsonl.gz'}:2" in ids and str(tmp_path / "src" / "ok.py") in ids
    assert ("Go" in {r[2] for r in rows}) and all(r[2] in ("Python", "Go") for r in rows)
    assert (f"{tmp_path / 'a.jsonl'}:6", "x = 2\n", "Python", (("repo", "r/r"),)) in rows
    assert counters["read|dropped|input.bad_json"] == 1 and counters["read|dropped|input.not_an_object"] == 1
    assert counters["read|dropped|input.missing_text"] == 1 and counters["read|dropped|input.empty"] == 2
    assert counters["read|dropped|input.too_large"] == 2 and counters["read|dropped|input.not_utf8"] == 1
    assert counters["read|errors|input.unknown_type"] == 1 and counters["read|errors|input.bad_file"] == 1
    dropped = sum(v for k, v in counters.items() if k.startswith("read|dropped|"))
    assert counters["read|docs_in"] == counters["read|docs_out"] + dropped == len(rows) + dropped


def test_reading_twice_gives_the_same_ids(tmp_path):
    write_inputs(tmp_path)
    globs = [str(tmp_path / "a.jsonl"), str(tmp_path / "c.parquet")]
    first, again = read(globs, tmp_path / "one" / "rows")[0], read(globs, tmp_path / "two" / "rows")[0]
    assert first == again and len(first) == 4


def test_every_skipped_record_and_unread_file_is_a_rejected_row(tmp_path):
    write_inputs(tmp_path)
    rej = tmp_path / "rej" / "rows"
    _, counters = read([str(tmp_path / "*.*"), str(tmp_path / "src" / "*.py")], tmp_path / "out" / "rows",
                       rejected_out=rej, max_bytes=50_000, source_language="Python")
    rows = lines_of(rej)
    dropped = sum(v for k, v in counters.items() if k.startswith("read|dropped|"))
    errors = sum(v for k, v in counters.items() if k.startswith("read|errors|"))
    assert len(rows) == dropped + errors == 10 and {stage for _, stage, _ in rows} == {"read"}
    a, src = tmp_path / "a.jsonl", tmp_path / "src"
    assert (f"{a}:2", "read", "input.bad_json") in rows and (f"{a}:3", "read", "input.empty") in rows
    assert (f"{a}:4", "read", "input.not_an_object") in rows and (f"{a}:5", "read", "input.missing_text") in rows
    assert (f"{tmp_path / 'b.jsonl.gz'}:1", "read", "input.too_large") in rows
    assert (str(src / "latin1.py"), "read", "input.not_utf8") in rows
    assert (str(src / "big.py"), "read", "input.too_large") in rows
    assert (str(src / "empty.py"), "read", "input.empty") in rows
    assert (str(tmp_path / "notes.txt"), "read", "input.unknown_type") in rows
    assert (str(tmp_path / "d.parquet"), "read", "input.bad_file") in rows


def test_a_cut_or_corrupt_compressed_file_keeps_every_line_before_the_damage_and_is_a_file_error(tmp_path):
    rng = random.Random(0)
    words = ("alpha", "beta", "gamma", "delta", "epsilon")
    data = b"".join(json.dumps({"text": f"line {i} " + " ".join(rng.choices(words, k=12))}).encode() + b"\n"
                    for i in range(3000))  # zstd blocks hold 128 KB of text: cut after the first one
    gz, zst = gzip.compress(data, mtime=0), zstandard.ZstdCompressor(write_checksum=True).compress(data)
    bad_crc = bytearray(gz)
    bad_crc[-8] ^= 1  # CRC-32 (RFC 1952 section 2.3.1): every line comes out, then the check fails
    files = {"cut.jsonl.gz": gz[:len(gz) * 2 // 3], "cut.jsonl.zst": zst[:len(zst) * 2 // 3], "crc.jsonl.gz": bad_crc}
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    # what the libraries themselves inflate from each cut prefix: its whole lines are samples, a torn one is bad JSON
    texts = [zlib.decompressobj(31).decompress(files["cut.jsonl.gz"]),
             zstandard.ZstdDecompressor().decompressobj().decompress(files["cut.jsonl.zst"]), data]
    rej = tmp_path / "rej" / "rows"
    rows, counters = read([str(tmp_path / "*.jsonl.*")], tmp_path / "out" / "rows", rejected_out=rej)
    assert 0 < texts[1].count(b"\n") < texts[0].count(b"\n") < 3000
    assert len(rows) == sum(t.count(b"\n") for t in texts)
    assert counters["read|dropped|input.bad_json"] == sum(1 for t in texts if not t.endswith(b"\n"))
    errors = (("cut.jsonl.gz", "input.truncated_gzip"), ("cut.jsonl.zst", "input.truncated_zstd"),
              ("crc.jsonl.gz", "input.corrupt_gzip"))
    assert {k: v for k, v in counters.items() if k.startswith("read|errors|")} == {
        f"read|errors|{reason}": 1 for _, reason in errors}
    for name, reason in errors:
        assert (str(tmp_path / name), "read", reason) in lines_of(rej)
