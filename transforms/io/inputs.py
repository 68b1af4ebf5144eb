"""The rules every job's inputs follow, whatever filesystem lists them: which files a folder holds, and
whether a Parquet file is whole. Pure (pyarrow only), so the Beam jobs and `training.tokenizer` share them.
"""
from __future__ import annotations

from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

HIDDEN_PREFIXES = (".", "_")  # Spark/Hadoop markers (_SUCCESS, .crc), our .incomplete-* staging, _spill, _generations


def is_visible(relative: str) -> bool:
    """Whether a file found under an input folder is read: no part of its relative path is hidden."""
    return not any(part.startswith(HIDDEN_PREFIXES) for part in relative.replace("\\", "/").split("/"))


def parquet_problem(fh: BinaryIO | str) -> str | None:
    """Why a Parquet file cannot be read (its footer, metadata only: cheap), or None if it can."""
    try:
        pq.ParquetFile(fh).metadata  # pylint: disable=expression-not-assigned
    except (pa.ArrowException, OSError) as exc:
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return None


def parquet_fix(flag: str, path: str, problem: str) -> str:
    """The one-line error for an unreadable Parquet input, with what to do."""
    return (f"{flag} {path}: not a readable Parquet file ({problem}); it is truncated or still being written: copy "
            "it again, or leave it out of the inputs")
