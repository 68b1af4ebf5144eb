"""Pipeline parallelism on gloo: every schedule equals one process; the trainer equals the baseline trainer."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.training.markov import write_markov_shards
from tests.training.test_trainer import SMALL, curve, pretrain
from training.metrics import read_metrics
from training.parallel.partition import balanced_layout, explicit_layout, uniform_layout
from training.model import ModelConfig

pytestmark = pytest.mark.slow
HERE = Path(__file__).resolve().parent
SCHEDULES = ("gpipe", "1f1b", "interleaved1f1b", "zero-bubble", "zbv", "dualpipev")
TORCH_CLASS = {  # torch.distributed.pipelining's class for each schedule name (its docs)
    "gpipe": "ScheduleGPipe", "1f1b": "Schedule1F1B", "interleaved1f1b": "ScheduleInterleaved1F1B",
    "zero-bubble": "ScheduleInterleavedZeroBubble", "zbv": "ScheduleZBVZeroBubble", "dualpipev": "ScheduleDualPipeV",
}


def run_checks(ranks: int, cases: list[dict]) -> list[dict]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}",
           str(HERE / "pp_check.py"), json.dumps(cases)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE.parents[1])})
    assert proc.returncode == 0, proc.stderr[-4000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("ranks", [2, 4])
def test_every_schedule_gives_the_single_process_loss_and_gradients(ranks):
    """p ranks, m in {p, 2p}, fewer microbatches than stages, and an uneven last microbatch (padded rows)."""
    cases = [{"schedule": s, "microbatches": m, "rows": 2 * ranks * 2} for s in SCHEDULES for m in (ranks, 2 * ranks)]
    cases += [{"schedule": s, "microbatches": 1, "rows": 4} for s in SCHEDULES]
    cases += [{"schedule": s, "microbatches": ranks, "rows": 2 * ranks + 1} for s in ("1f1b", "zbv")]
    results = run_checks(ranks, cases)
    assert len(results) == len(cases)
    for r in results:
        case = r["case"]
        if "refused" in r:  # only DualPipeV refuses, and only with fewer microbatches than stages, before any send
            assert case["schedule"] == "dualpipev" and case["microbatches"] < 2 * ranks, r
            assert "raise pipeline.microbatches" in r["refused"]
            continue
        assert not r["missing"] and r["params"] == 75, r
        assert r["grad_err"] <= 1e-6 and r["loss_err"] <= 1e-6, r
        # Which schedule ran: the asked one, except 1F1B with fewer microbatches than stages, whose order is
        # GPipe's (torch refuses that count). Losses and gradients cannot tell 1F1B from GPipe; memory can.
        stages = ranks * (1 if case["schedule"] in ("gpipe", "1f1b") else 2)
        as_gpipe = case["schedule"] == "1f1b" and case["microbatches"] < stages
        assert r["ran"] == (TORCH_CLASS["gpipe"] if as_gpipe else TORCH_CLASS[case["schedule"]]), r


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("markov")
    write_markov_shards(root)
    return root


def close_curves(a: list[tuple], b: list[tuple]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x[0] == y[0]
        for u, v in zip(x[1:], y[1:]):
            assert (u is None and v is None) or u == pytest.approx(v, rel=1e-5, abs=1e-6), (x, y)


TRACED = "pipeline.trace_steps=[2]"  # the 1F1B run also traces a step: one torchrun launch checks both


@pytest.mark.parametrize("ranks,extra", [
    # tied embedding on 2 ranks, accumulation 2; step 2 traced (a trace must not change what is computed)
    (2, ["--schedule=1f1b", "--microbatches=4", "train.tokens_per_step=256", TRACED]),
    (2, ["--schedule=zbv", "--microbatches=2"]),                                # V placement: both on rank 0
])
def test_pipeline_trainer_follows_the_baseline(shards, tmp_path, ranks, extra):
    common = ["--config", "tiny", f"data.path={shards}", *SMALL, "train.steps=6", "eval.every=3",
              "checkpoint.every=0", "model.n_layers=4"]
    tps = [e for e in extra if e.startswith("train.tokens_per_step")]
    pretrain(*common, *tps, f"output={tmp_path / 'base'}")
    pretrain(*common, *extra, "--trainer=pipeline", f"output={tmp_path / 'pipe'}", ranks=ranks)
    # a traced step adds a record of its bubbles only (no loss, lr or eval), which the baseline does not write
    trained = [row for row in curve(tmp_path / "pipe") if any(v is not None for v in row[1:])]
    close_curves(curve(tmp_path / "base"), trained)
    if TRACED in extra:
        traced_step_wrote_a_chrome_trace_a_png_and_both_bubbles(tmp_path / "pipe")


def test_two_dimensional_mesh_follows_ddp(shards, tmp_path):
    """4 ranks as 2 replicas x 2 stages reads the same batches as 2 DDP ranks and trains the same."""
    common = ["--config", "tiny", f"data.path={shards}", *SMALL, "train.steps=4", "eval.every=4", "checkpoint.every=0"]
    pretrain(*common, f"output={tmp_path / 'ddp'}", ranks=2)
    pretrain(*common, "--trainer=pipeline", "--schedule=gpipe", "--microbatches=2", "pipeline.dp=2",
             f"output={tmp_path / 'pp'}", ranks=4)
    close_curves(curve(tmp_path / "ddp"), curve(tmp_path / "pp"))


def traced_step_wrote_a_chrome_trace_a_png_and_both_bubbles(run: Path) -> None:
    """The traced step of a 1F1B run (test_pipeline_trainer_follows_the_baseline): forwards and backwards on the
    trace, its picture, and the measured and simulated bubbles in the metrics."""
    trace = json.loads((run / "pipeline" / "step-2.trace.json").read_text())
    assert {e["name"][0] for e in trace["traceEvents"] if e.get("ph") == "X"} == {"F", "B"}
    assert (run / "pipeline" / "step-2.png").stat().st_size > 1000
    record = next(r for r in read_metrics(run) if "pp_bubble_measured" in r)
    assert 0 < record["pp_bubble_simulated"] <= record["pp_bubble_simulated_latency"] < 1
    assert 0 < record["pp_bubble_measured"] < 1


def test_balanced_layout_counts_the_vocabulary():
    """A 256k vocabulary head weighs several layers: the cost balance gives it a stage of its own."""
    cfg = ModelConfig(vocab_size=256_000, dim=3072, n_layers=32, n_heads=24, ffn_dim=8192)
    balanced, uniform = balanced_layout(cfg, 8, seq_len=4096), uniform_layout(cfg, 8, seq_len=4096)
    assert balanced.imbalance < 1.25 < 2.0 < uniform.imbalance
    assert balanced.stages[-1] == ("head",) and balanced.stages[0][0] == "embed"
    with pytest.raises(ValueError, match="every unit exactly once"):
        explicit_layout(cfg, [["embed", "layers.1"]], seq_len=16)
