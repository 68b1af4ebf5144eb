"""Write swallowcode's built-in sample deterministically: Python snippets as The Stack v2 JSONL rows, one of each case
the recipe meets, so the first run needs no download and shows every stage at work.

The snippets (pipelines/sample_code_snippets.py) are original and license-clean; their ids name the case, and the
row order is a seeded shuffle so the cases mix as in a real shard.
Run: python -m pipelines.sample_code [PATH]   (default: the packaged pipelines/data/sample_code.jsonl)
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Callable

from pipelines.sample_code_snippets import CLEAN, COMMENTS, EMPTY, LINT, OTHER, SYNTAX

SAMPLE_CODE_PATH = Path(__file__).resolve().parent / "data" / "sample_code.jsonl"
SEED = 18  # issue 18, which asked for the sample


def sample_rows() -> list[dict[str, str]]:
    """Every snippet as a The Stack v2 row (blob_id, language, text), in a seeded order."""
    rows = [{"blob_id": k, "language": "Python", "text": v}
            for group in (CLEAN, SYNTAX, LINT, COMMENTS, EMPTY) for k, v in group.items()]
    rows += [{"blob_id": k, "language": lang, "text": text} for k, (lang, text) in OTHER.items()]
    random.Random(SEED).shuffle(rows)
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> int:
    """One JSON object a line, keys in the given order, UTF-8; returns the number of rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return len(rows)


def jsonl_sample_main(argv: list[str], *, prog: str, default: Path, rows: Callable[[], list[dict]], what: str) -> int:
    """A JSONL sample generator's command line: write `rows()` to PATH (default: the packaged file)."""
    parser = argparse.ArgumentParser(prog=prog, description=f"Write the built-in sample of {what}.")
    parser.add_argument("path", nargs="?", default=str(default),
                        help="where to write the JSONL (default: the packaged sample, rebuilt bit for bit)")
    args = parser.parse_args(argv)
    print(f"wrote {write_jsonl(Path(args.path), rows())} {what} to {args.path}")
    return 0


def main(argv: list[str]) -> int:
    return jsonl_sample_main(argv, prog="python -m pipelines.sample_code", default=SAMPLE_CODE_PATH,
                             rows=sample_rows, what="code rows")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
