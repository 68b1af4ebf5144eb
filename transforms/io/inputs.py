"""The rules every job's inputs follow, whatever filesystem lists them: which files a folder holds, and
whether a Parquet file is whole. Pure (pyarrow only), so the Beam jobs and `transforms.tokenizer` share them.
"""
from __future__ import annotations

from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

HIDDEN_PREFIXES = (".", "_")  # folders: our .incomplete-* staging, _spill, _generations; Spark's _temporary
# Files: dot-files (.crc checksums, .tmp parts), and the marker files Spark, Hadoop and Parquet tools write beside
# data. Other `_` names are data: Python's __init__.py and _private.py are code that SwallowCode reads.
MARKER_FILES = ("_SUCCESS", "_metadata", "_common_metadata", "_committed_", "_started_", "_temporary")


def is_visible(relative: str) -> bool:
    """Whether a file found under an input folder (or below a glob's wildcard) is read: no folder on the way is
    hidden, and the file is neither a dot-file nor a Spark/Hadoop/Parquet marker."""
    *folders, name = relative.replace("\\", "/").split("/")
    return not (any(part.startswith(HIDDEN_PREFIXES) for part in folders if part)
                or name.startswith(".") or name.startswith(MARKER_FILES))


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
