"""Parquet schemas and row conversion for the shards: plain columns that pandas and HF datasets read as is."""
from __future__ import annotations

import pyarrow as pa

from transforms.document import Document, Rejected
from transforms.text import TextView


def document_schema(stat_names: tuple[str, ...]) -> pa.Schema:
    """Output columns; filter scores sit in one struct so the column set does not depend on the recipe order."""
    stats = pa.struct([pa.field(n, pa.float64()) for n in stat_names]) if stat_names else pa.struct([])
    fields = [
        pa.field("id", pa.string()),
        pa.field("url", pa.string()),
        pa.field("warc_date", pa.string()),
        pa.field("text", pa.string()),
        pa.field("language", pa.string()),
        pa.field("language_score", pa.float64()),
        pa.field("extractor", pa.string()),
        pa.field("word_count", pa.int64()),
        pa.field("char_count", pa.int64()),
        pa.field("source", pa.string()),
    ]
    if stat_names:
        fields.append(pa.field("filter_stats", stats))
    return pa.schema(fields)


def document_row(doc: Document, stat_names: tuple[str, ...]) -> dict:
    """One output row; a score a step did not compute (stage switched off) is null, never a made-up zero."""
    row = {
        "id": doc.id,
        "url": doc.url,
        "warc_date": doc.warc_date,
        "text": doc.text,
        "language": doc.language,
        "language_score": float(doc.language_score),
        "extractor": doc.extractor,
        "word_count": doc.word_count if doc.word_count is not None else len(TextView(doc.text).words),
        "char_count": len(doc.text),
        "source": doc.source,
    }
    if stat_names:
        row["filter_stats"] = {n: doc.stats.get(n) for n in stat_names}
    return row


def document_from_row(row: dict) -> Document:
    """A row read back from a shard as the document it was written from, for stages after dedup."""
    return Document(id=row["id"], url=row["url"], warc_date=row["warc_date"], text=row["text"],
                    extractor=row["extractor"], language=row["language"], language_score=row["language_score"],
                    source=row["source"], word_count=row["word_count"],
                    stats={k: v for k, v in (row.get("filter_stats") or {}).items() if v is not None})


# The rewrite pipelines' shards: the rewritten text is `text`, the input stays beside it for audits and ablations.
REWRITE_FIELDS = [
    pa.field("id", pa.string()),
    pa.field("source", pa.string()),
    pa.field("text", pa.string()),
    pa.field("original", pa.string()),
    pa.field("char_count", pa.int64()),
    pa.field("model", pa.string()),
    pa.field("finish_reason", pa.string()),
    pa.field("prompt_tokens", pa.int64()),
    pa.field("completion_tokens", pa.int64()),
]
MATH_SCHEMA = pa.schema([*REWRITE_FIELDS, pa.field("final_answer", pa.string())])
# swallowcode: every step is kept — the input's checks, the SGCR score and code, the SCOR code, the final checks.
CODE_SCHEMA = pa.schema([
    *REWRITE_FIELDS,
    pa.field("language", pa.string()),
    pa.field("python", pa.string()),  # the interpreter version compile() ran on
    pa.field("pylint_score", pa.float64()),  # of the input, after the comment penalty
    pa.field("sgcr_score", pa.float64()),  # the model's own 1-10 grade of the input (-1 unreadable)
    pa.field("sgcr_code", pa.string()),
    pa.field("final_syntax_error", pa.string()),  # null when the final text compiles
    pa.field("final_pylint_score", pa.float64()),
])


REJECTED_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string()),
        pa.field("url", pa.string()),
        pa.field("stage", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("text", pa.string()),
        pa.field("statistic", pa.string()),  # the statistic that failed (null: the reason has none)
        pa.field("value", pa.float64()),  # its value on this record
        pa.field("limit", pa.float64()),  # the recipe's limit it crossed
        pa.field("evidence", pa.string()),  # readable: "gopher_duplicate_line_fraction = 0.41 > 0.30"
    ]
)


def rejected_row(rej: Rejected) -> dict:
    """One audit row for a dropped record."""
    return {"id": rej.id, "url": rej.url, "stage": rej.stage, "reason": rej.reason, "text": rej.text,
            "statistic": rej.statistic, "value": rej.value, "limit": rej.limit, "evidence": rej.evidence}
