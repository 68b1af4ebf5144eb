"""What the run report reads: a run's stats.json, and a few rejected documents per drop reason from the
--rejected_output Parquet files, so a reader sees what each rule removed and the value that failed."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import pyarrow.parquet as pq
from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems

STATS_NAME = "stats.json"
REPORT_NAME = "report.html"
MAX_TEXT_CHARS = 1500  # of each sample's text: enough to judge a page, small enough for many samples per page
REQUIRED_COLUMNS = ("stage", "reason", "text")  # of a rejected row (transforms/io/parquet.py REJECTED_SCHEMA)
EVIDENCE_COLUMNS = ("statistic", "value", "limit", "evidence")  # present in rows written since issue 18 item 3
SAMPLE_COLUMNS = ("id", "url", *REQUIRED_COLUMNS, *EVIDENCE_COLUMNS)
BATCH_ROWS = 512


class ReportError(ValueError):
    """A report that cannot be made from what the user pointed at; printed as one line."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Sample:
    """One rejected document as the report shows it: text cut to MAX_TEXT_CHARS, the failing value beside it."""

    id: str
    url: str
    stage: str
    reason: str
    text: str  # at most MAX_TEXT_CHARS characters
    chars: int  # of the whole text, so the report can say how much was cut
    evidence: dict[str, str] = field(default_factory=dict)  # EVIDENCE_COLUMNS that the row fills


@dataclass(frozen=True, kw_only=True, slots=True)
class Samples:
    """Samples per (stage, reason), and what was read to find them."""

    by_reason: dict[tuple[str, str], list[Sample]]
    files: list[str]
    rows_read: int


def _join(folder: str, name: str) -> str:
    return f"{folder.rstrip('/')}/{name}"


def load_stats(output_dir: str) -> dict:
    """The run's stats.json as a dict with a "stages" mapping; a missing or unreadable file is a ReportError."""
    path = _join(output_dir, STATS_NAME)
    try:
        with FileSystems.open(path) as fh:
            raw = fh.read()
    except (BeamIOError, OSError) as exc:
        raise ReportError(f"no {STATS_NAME} at {path} ({type(exc).__name__}); give the --output folder of a "
                          "finished run") from None
    try:
        stats = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path} is not JSON ({exc}); a run writes it whole at its end, so the run may have "
                          "been cut short") from None
    if not isinstance(stats, dict) or not isinstance(stats.get("stages", {}), dict):
        raise ReportError(f"{path} has no \"stages\" mapping: not the stats.json of a Refinery job")
    stats.setdefault("stages", {})
    return stats


def rejected_files(prefix: str) -> list[str]:
    """The Parquet files a --rejected_output PREFIX holds (PREFIX/part-*.parquet), or PREFIX itself if one file."""
    pattern = prefix if prefix.endswith(".parquet") else _join(prefix, "*.parquet")
    try:
        matched = FileSystems.match([pattern])[0].metadata_list
    except BeamIOError:
        return []
    return sorted(m.path for m in matched)


def evidence_of(row: Mapping[str, Any]) -> dict[str, str]:
    """The evidence columns a row fills, as text (value and limit may be numbers)."""
    return {k: _plain(row[k]) for k in EVIDENCE_COLUMNS if row.get(k) is not None and _plain(row[k]) != ""}


def _plain(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def to_sample(row: Mapping[str, Any]) -> Sample:
    """A rejected row as shown: text cut to MAX_TEXT_CHARS; nulls become empty strings."""
    text = row.get("text") or ""
    return Sample(id=str(row.get("id") or ""), url=str(row.get("url") or ""), stage=str(row.get("stage") or ""),
                  reason=str(row.get("reason") or ""), text=text[:MAX_TEXT_CHARS], chars=len(text),
                  evidence=evidence_of(row))


def pick_samples(rows: Iterable[Mapping[str, Any]], *, per_reason: int,
                 by_reason: dict[tuple[str, str], list[Sample]]) -> int:
    """Add rows to `by_reason` until each (stage, reason) holds `per_reason`; returns the rows looked at."""
    seen = 0
    for row in rows:
        seen += 1
        key = (str(row.get("stage") or ""), str(row.get("reason") or ""))
        bucket = by_reason.setdefault(key, [])
        if len(bucket) < per_reason:
            bucket.append(to_sample(row))
    return seen


def _full(by_reason: dict[tuple[str, str], list[Sample]], wanted: set[tuple[str, str]], per_reason: int) -> bool:
    return bool(wanted) and all(len(by_reason.get(k, ())) >= per_reason for k in wanted)


def read_samples(prefix: str, *, per_reason: int, wanted: Iterable[tuple[str, str]] = ()) -> Samples:
    """Up to `per_reason` rejected documents per (stage, reason), in file order; reading stops once every
    `wanted` reason (the drops stats.json counts) has its samples, so a large audit folder costs little."""
    if per_reason < 0:
        raise ReportError(f"--samples ({per_reason}) must be 0 or more")
    files, wanted = rejected_files(prefix), set(wanted)
    by_reason: dict[tuple[str, str], list[Sample]] = {}
    rows_read = 0
    for path in files:
        if per_reason == 0 or _full(by_reason, wanted, per_reason):
            break
        with FileSystems.open(path) as fh:
            parquet = pq.ParquetFile(fh)
            names = parquet.schema_arrow.names
            missing = [c for c in REQUIRED_COLUMNS if c not in names]
            if missing:
                raise ReportError(f"{path} has no column {', '.join(missing)}: not a --rejected_output file (its "
                                  f"columns: {', '.join(names)})")
            columns = [c for c in SAMPLE_COLUMNS if c in names]
            for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=columns):
                rows_read += pick_samples(batch.to_pylist(), per_reason=per_reason, by_reason=by_reason)
                if _full(by_reason, wanted, per_reason):
                    break
    return Samples(by_reason=by_reason, files=files, rows_read=rows_read)


def drops_in_order(stats: Mapping) -> list[tuple[str, str, int]]:
    """(stage, reason, count) for every drop, stages in run order, each stage's reasons by count then name."""
    out = []
    for stage, s in stats.get("stages", {}).items():
        dropped = s.get("dropped") or {}
        out += [(stage, reason, int(n)) for reason, n in sorted(dropped.items(), key=lambda kv: (-kv[1], kv[0]))]
    return out
