"""swallowmath end to end with a tiny local Llama: plumbing, counting, the generation cache and clear errors."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pandas as pd
import pytest

from pipelines import swallowmath
from tests.conftest import REPO
from tests.pipelines.test_werp import assert_balanced

LOCAL = ["--runner=FnApiRunner"]


def write_input(path, n: int = 6) -> None:
    rows = [{"id": f"m{i}", "text": f"Question {i}: what is {i} + {i}? Forum signature, posted by user{i}."}
            for i in range(n)]
    rows.append({"id": "empty", "text": "  "})
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n{broken\n", encoding="utf-8")


@pytest.mark.slow
def test_rewrites_every_sample_once_and_a_rerun_generates_nothing(tiny_model, tmp_path):
    write_input(tmp_path / "math.jsonl")
    args = [*LOCAL, f"--input={tmp_path / 'math.jsonl'}", f"--output={tmp_path / 'out'}", f"--model={tiny_model}",
            "--max_tokens=48", f"--rejected_output={tmp_path / 'rejected'}"]
    report = swallowmath.run(args)
    stages = report["stages"]
    assert stages["read"]["dropped"] == {"input.empty": 1, "input.bad_json": 1} and stages["read"]["docs_out"] == 6
    assert stages["rewrite_llm"]["docs_in"] == 6 and stages["rewrite_llm"]["other"].get("generated") == 6
    rewrite = stages["rewrite"]
    assert rewrite["docs_in"] == 6 and rewrite["docs_out"] + sum(rewrite["dropped"].values()) == 6
    assert set(rewrite["dropped"]) <= {"math.too_short"}
    files = sorted((tmp_path / "out" / "documents").glob("part-*.parquet"))
    df = pd.concat([pd.read_parquet(f) for f in files]) if files else pd.DataFrame()
    assert len(df) == rewrite["docs_out"] > 0
    assert set(df.columns) >= {"id", "text", "original", "model", "final_answer", "finish_reason"}
    assert df.original.str.startswith("Question").all() and (df.text.str.len() > 50).all()
    assert_balanced({"stages": {k: v for k, v in stages.items() if k != "rewrite_llm"}})
    again = swallowmath.run(args)["stages"]["rewrite_llm"]
    assert again["other"].get("cache_hits") == 6 and "generated" not in again["other"]  # nothing paid twice


def test_no_model_is_a_one_line_error(tmp_path):
    write_input(tmp_path / "math.jsonl")
    proc = subprocess.run([sys.executable, "-m", "pipelines.swallowmath", "--runner=DirectRunner",
                           f"--input={tmp_path / 'math.jsonl'}", f"--output={tmp_path / 'o'}"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert re.match(r"swallowmath: error: \S+default.yaml: generation: no model; pass --model",
                    proc.stderr.strip().splitlines()[-1])
