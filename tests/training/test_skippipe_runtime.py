"""SkipPipe over gloo: paths that skip and reorder stages give exactly the gradients of those paths run in one
process; the trainer runs it end to end."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.training.markov import write_markov_shards
from tests.training.test_trainer import SMALL, pretrain
from training.metrics import read_metrics

pytestmark = pytest.mark.slow
HERE = Path(__file__).resolve().parent


@pytest.mark.parametrize("settings", [
    {"sizes": [2, 1, 1], "skip": 0.34, "reorder": False, "tied": False},  # two nodes share stage 0
    {"sizes": [1, 1, 1, 1], "skip": 0.25, "reorder": True, "tied": True},  # swapped stages, tied embedding
])
def test_skip_paths_match_one_process_running_the_same_paths(settings):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=4",
           str(HERE / "skippipe_check.py"), json.dumps(settings)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE.parents[1])})
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("{")))
    assert result["grad_err"] <= 1e-6 and result["loss_err"] <= 1e-6, result
    assert result["covered"] == result["params"]
    n_stages = len(settings["sizes"])
    assert all(p[0] == 0 and len(p) < n_stages for p in result["paths"])  # stage 0 first, stages skipped


def test_skippipe_trainer_trains_and_evaluates_the_full_model(tmp_path):
    write_markov_shards(tmp_path / "tokens")
    run = tmp_path / "run"
    out = pretrain("--config", "tiny", f"data.path={tmp_path / 'tokens'}", *SMALL, "train.steps=30", "eval.every=15",
                   "checkpoint.every=0", "--trainer=skippipe", "--microbatches=4",
                   "pipeline.skip_stages=3", "model.n_layers=4", "optim.lr=1e-2", f"output={run}", ranks=4)
    assert "skippipe: 3 stages" in out.stdout
    evals = [r["eval_loss"] for r in read_metrics(run) if "eval_loss" in r and not r.get("summary")]
    assert len(evals) == 2 and evals[1] < evals[0] < 4.2
