"""Text samples from JSONL, Parquet or source files: the input of the code and math pipelines.

The Stack v2 and FineMath ship as JSONL or Parquet shards with a text column (and, for code, a language
column); a local code tree is a glob of `.py` files. Each becomes a `Sample` with a stable id: the record's own id
field when it has one, else `<file>:<line or row>` (a file path for source files), so reruns and the generation
cache see the same ids. A bad record is a `Skipped` (where it is and why), never an exception: the caller
counts it and keeps it for the rejected output.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Iterator

import pyarrow.parquet as pq

SOURCE_SUFFIXES = (".py",)
JSONL_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz", ".jsonl.zst", ".json.zst")
BAD_JSON, NOT_OBJECT, MISSING_TEXT, EMPTY, TOO_LARGE, NOT_UTF8 = (
    "input.bad_json", "input.not_an_object", "input.missing_text", "input.empty", "input.too_large", "input.not_utf8")
BATCH_ROWS = 1024  # Parquet rows materialised at a time


@dataclass(frozen=True, kw_only=True, slots=True)
class SampleFields:
    """Which columns hold what; the defaults are The Stack v2's and FineMath's."""

    text: str = "text"
    id: str = "id"  # used when present, else <file>:<line or row>
    language: str = "language"  # optional; "" for inputs without one
    keep: tuple[str, ...] = ()  # further columns carried to the output unchanged (e.g. repo, path, license)


@dataclass(frozen=True, slots=True)
class Skipped:
    """A record that is not a sample: its id (`<file>:<line or row>`, or the file) and the reason."""

    id: str
    reason: str


@dataclass(slots=True)
class Sample:
    """One document of a code or math pipeline, with where it came from."""

    id: str
    text: str
    source: str
    language: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """Where it came from, under the name the shared rejection plumbing (StageFn.route) reads."""
        return self.source


def kind_of(path: str) -> str:
    """"source", "jsonl" or "parquet" by file name; anything else is a user error the reader names."""
    name = path.lower()
    if name.endswith(SOURCE_SUFFIXES):
        return "source"
    if name.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if name.endswith(".parquet"):
        return "parquet"
    raise ValueError(f"{path}: unknown input type; give .py files, JSONL ({', '.join(JSONL_SUFFIXES)}) or .parquet")


def sample_from_record(record: Any, *, where: str, source: str, fields: SampleFields,
                       max_bytes: int) -> Sample | Skipped:
    """A parsed record as a Sample, or why it cannot be one."""
    if not isinstance(record, dict):
        return Skipped(where, NOT_OBJECT)
    text = record.get(fields.text)
    if not isinstance(text, str):
        return Skipped(where, MISSING_TEXT)
    doc_id = record.get(fields.id)
    doc_id = str(doc_id) if doc_id not in (None, "") else where
    if not text.strip():
        return Skipped(doc_id, EMPTY)
    if len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        return Skipped(doc_id, TOO_LARGE)
    language = record.get(fields.language) if fields.language else ""
    return Sample(id=doc_id, text=text, source=source, language=str(language or ""),
                  extra={k: record.get(k) for k in fields.keep})


def jsonl_samples(fh: BinaryIO, *, source: str, fields: SampleFields, max_bytes: int) -> Iterator[Sample | Skipped]:
    """Line by line, so a shard of any size streams; a line that is not JSON is skipped, the rest go on."""
    for lineno, line in enumerate(iter(fh.readline, b""), start=1):
        if not line.strip():
            continue
        where = f"{source}:{lineno}"
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            yield Skipped(where, BAD_JSON)
            continue
        yield sample_from_record(record, where=where, source=source, fields=fields, max_bytes=max_bytes)


def parquet_samples(fh: BinaryIO, *, source: str, fields: SampleFields, max_bytes: int) -> Iterator[Sample | Skipped]:
    """Only the needed columns, BATCH_ROWS at a time; a file without the text column is a user error."""
    shard = pq.ParquetFile(fh)
    names = shard.schema_arrow.names
    if fields.text not in names:
        raise ValueError(f"{source} has no column {fields.text!r}; its columns: {', '.join(names)} "
                         "(set the text field)")
    wanted = [c for c in (fields.text, fields.id, fields.language, *fields.keep) if c and c in names]
    row = 0
    for batch in shard.iter_batches(columns=list(dict.fromkeys(wanted)), batch_size=BATCH_ROWS):
        for record in batch.to_pylist():
            yield sample_from_record(record, where=f"{source}:{row}", source=source, fields=fields,
                                     max_bytes=max_bytes)
            row += 1


def source_sample(data: bytes, *, source: str, language: str) -> Sample | Skipped:
    """A whole source file as one sample: strict UTF-8 (SwallowCode's inputs are text), empty files skipped."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return Skipped(source, NOT_UTF8)
    if not text.strip():
        return Skipped(source, EMPTY)
    return Sample(id=source, text=text, source=source, language=language)
