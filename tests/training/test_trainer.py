"""The baseline trainer end to end through its CLI: learning, clear errors (exact resume: test_robustness.py)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.shards import inspect_split, iter_rows
from tests.training.markov import unigram_entropy, write_markov_shards
from training.metrics import read_metrics
from training.pretrain import main

pytestmark = pytest.mark.slow

# A small model and a short schedule; threads fixed so CPU float results are reproducible bit for bit.
SMALL = ["model.dim=32", "model.n_layers=2", "model.n_heads=4", "model.n_kv_heads=2", "model.ffn_dim=64",
         "train.micro_batch_size=4", "train.threads=1", "log.every=1", "log.tensorboard=false", "optim.warmup_steps=4"]


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("markov")
    write_markov_shards(root)
    return root


def pretrain(*args: str, ranks: int = 1, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if ranks == 1:
        cmd = [sys.executable, "-m", "training.pretrain", *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}",
               "-m", "training.pretrain", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def pretrain_here(capsys, *args: str) -> tuple[int, str]:
    """The CLI's main in this process, for runs refused before any training step: a launch would only add the
    imports (~4 s each). Returns the exit status and what it wrote to stderr."""
    capsys.readouterr()
    status = main(list(args))
    return status, capsys.readouterr().err


def curve(run: Path) -> list[tuple]:
    """Every per-step and evaluation record, without wall-clock fields."""
    keep = ("loss", "lr", "grad_norm", "tokens", "eval_loss")
    return [(r["step"], *(r.get(k) for k in keep)) for r in read_metrics(run) if not r.get("summary")]


def test_tiny_model_learns_below_the_unigram_entropy(shards, tmp_path):
    run = tmp_path / "run"
    pretrain("--config", "tiny", f"data.path={shards}", f"output={run}", *SMALL, "train.steps=120",
             "optim.lr=1e-2", "eval.every=60", "checkpoint.every=0")
    valid = np.concatenate([rows[:, 1:].reshape(-1) for rows in iter_rows(inspect_split(shards / "valid"))])
    bar = unigram_entropy(valid, 64)
    evals = [r["eval_loss"] for r in read_metrics(run) if "eval_loss" in r]
    assert evals[-1] < bar - 0.3, (evals, bar)
    assert evals[-1] < evals[0]
    assert (run / "config.yaml").is_file() and list((run / "checkpoints").glob("step-*"))


def test_incompatible_checkpoint_is_refused_with_the_fix(shards, tmp_path, capsys):
    run = tmp_path / "run"
    common = ["--config", "tiny", f"data.path={shards}", f"output={run}", *SMALL, "train.steps=2"]
    pretrain(*common)
    status, err = pretrain_here(capsys, *common, "train.steps=4", "model.dim=64")
    assert status == 2
    assert "model.dim: checkpoint 32, this run 64" in err and "checkpoint.resume=false" in err
    assert err.count("\n") == 1
    status, err = pretrain_here(capsys, *common, "train.steps=4", "data.num_workers=2")
    assert status == 2 and "data position" in err and "workers" in err
    proc = pretrain(*common, "train.steps=4", "model.dim=64", "checkpoint.resume=false", "output=" + str(tmp_path / "b"))
    assert proc.returncode == 0


def test_bad_data_gives_clear_errors(shards, tmp_path, capsys):
    status, err = pretrain_here(capsys, "--config", "tiny", f"data.path={tmp_path / 'nothing'}",
                                f"output={tmp_path / 'r'}")
    assert status == 2 and "pipelines.tokenize" in err
    status, err = pretrain_here(capsys, "--config", "tiny", f"data.path={shards}", f"output={tmp_path / 'r'}",
                                "model.vocab_size=10")
    assert status == 2 and "model.vocab_size" in err
    wrong = tmp_path / "wrong" / "train"
    wrong.mkdir(parents=True)
    import pyarrow as pa
    import pyarrow.parquet as pq
    pq.write_table(pa.table({"text": ["not tokens"]}), wrong / "part-0.parquet")
    status, err = pretrain_here(capsys, "--config", "tiny", f"data.path={wrong.parent}", f"output={tmp_path / 'r'}")
    assert status == 2 and "not a token shard" in err


def test_compiled_bf16_run_logs_to_jsonl_and_tensorboard(shards, tmp_path):
    """torch.compile and bf16 autocast (the GPU settings) also run on CPU; both logs carry the same scalars."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    pretrain("--config", "tiny", f"data.path={shards}", f"output={run}", *SMALL, "log.tensorboard=true",
             "train.compile=true", "train.dtype=bf16", "train.steps=4", "eval.every=0", "checkpoint.every=0",
             "train.peak_tflops=1.0")
    records = [r for r in read_metrics(run) if "loss" in r and not r.get("summary")]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert all(np.isfinite(r["loss"]) and r["tokens_per_s"] > 0 and 0 < r["mfu"] < 1 and r["mem_peak_mib"] > 0
               for r in records)
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    logged = [e.value for e in events.Scalars("loss")]
    assert logged == pytest.approx([r["loss"] for r in records], rel=1e-6)
    assert "eval_loss" in events.Tags()["scalars"]


@pytest.mark.parametrize("ranks", [1, 2])
def test_streambp_trainer_follows_the_baseline_step_for_step(shards, tmp_path, ranks):
    """Same data, same schedule: chunked exact backprop (with accumulation, and data parallel without DDP's hooks)
    gives the baseline's losses to fp32 rounding."""
    common = ["--config", "tiny", f"data.path={shards}", *SMALL, "train.steps=8", "eval.every=8",
              "checkpoint.every=0", f"train.tokens_per_step={4 * 32 * ranks * 2}"]
    printed = pretrain(*common, f"output={tmp_path / 'base'}", ranks=ranks).stdout.splitlines()
    pretrain(*common, f"output={tmp_path / 'stream'}", "--trainer=streambp", "streambp.chunk=8",
             "streambp.logits_chunk=16", ranks=ranks)
    base, stream = curve(tmp_path / "base"), curve(tmp_path / "stream")
    assert sum(line.startswith("step 8/8 held-out loss ") for line in printed) == 1  # the one eval, by rank 0 only
    assert len(base) == len(stream) == 9
    for a, b in zip(base, stream):
        assert a[0] == b[0] and a[4] == b[4]  # step, tokens
        for x, y in zip(a[1:], b[1:]):
            assert (x is None and y is None) or x == pytest.approx(y, rel=1e-5, abs=1e-6), (a, b)
