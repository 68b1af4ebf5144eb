"""Run one job on two runners and reduce each output to what must agree: rows as a set, stats.json counts."""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from tests.pipelines.test_tokenize import read_output

FNAPI = ["--runner=FnApiRunner"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Outcome:
    """What a run leaves that a second runner must reproduce."""

    rows: Counter  # output rows with their multiplicity
    stages: dict  # stats.json "stages": every stage's counts and histograms (`counted`: no timings)
    rejected: Counter  # --rejected_output rows (empty without it)


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _parquet(folder: Path) -> pd.DataFrame:
    files = sorted(folder.glob("part-*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True) if files else pd.DataFrame()


def document_rows(out: Path) -> Counter:
    """Document shards as (id, sha256 of text) pairs: order and sharding may differ between runners, rows not."""
    df = _parquet(out / "documents")
    return Counter(zip(df.id, map(text_digest, df.text))) if len(df) else Counter()


def token_rows(out: Path) -> Counter:
    """Token shards as (split, row) pairs, row = the token ids of one packed training row."""
    return Counter((path.split("/")[0], tuple(row.tolist())) for path, rows in read_output(out).items() for row in rows)


def rejected_rows(folder: Path | None) -> Counter:
    if folder is None:
        return Counter()
    df = _parquet(folder)
    return Counter(zip(df.id, df.stage, df.reason)) if len(df) else Counter()


def run_job(run: Callable[[list[str]], dict], args: list[str], *, runner: list[str], out: Path,
            rows: Callable[[Path], Counter] = document_rows, rejected: Path | None = None) -> Outcome:
    """`run(runner + args + --output=out [--rejected_output=rejected])`, reduced to its Outcome."""
    extra = [f"--rejected_output={rejected}"] if rejected is not None else []
    run([*runner, *args, f"--output={out}", *extra])
    stages = json.loads((out / "stats.json").read_text(encoding="utf-8"))["stages"]
    return Outcome(rows=rows(out), stages=counted(stages), rejected=rejected_rows(rejected))


def counted(stages: dict) -> dict:
    """A report's stages without their worker seconds: the counts and histograms, which every run must repeat."""
    return {name: {k: v for k, v in stage.items() if k != "seconds"} for name, stage in stages.items()}


def run_both(run: Callable[[list[str]], dict], args: list[str], *, dask: list[str], tmp: Path,
             rows: Callable[[Path], Counter] = document_rows, rejected: bool = False) -> tuple[Outcome, Outcome]:
    """The job on FnApiRunner (the reference) and on `dask` runner flags, into separate folders under `tmp`."""
    return tuple(run_job(run, args, runner=runner, out=tmp / name, rows=rows,
                         rejected=tmp / f"{name}-rejected" if rejected else None)
                 for name, runner in (("fnapi", FNAPI), ("dask", dask)))
