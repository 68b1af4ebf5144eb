"""Preemption on 2 gloo ranks: SIGTERM or SIGUSR1, on every rank or on rank 1 alone, stops all ranks after the same
step with one checkpoint and exit status 0, and the resumed run is bitwise the uninterrupted one, for every trainer;
scripts/slurm/pretrain.sbatch end to end, with stand-ins for srun and scontrol (there is no Slurm here).

Launched as a script under torchrun, this file is also the rank side of the multi-trainer check (see `main`).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import torch

from tests.training.markov import write_markov_shards
from tests.training.resume_check import SMALL, checkpoint_leaves, run_cases, same_bits, scramble
from training import checkpoint
from training.distributed import Dist, all_gather_object
from training.metrics import read_metrics

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SBATCH = ROOT / "scripts" / "slurm" / "pretrain.sbatch"
ONE = Dist(rank=0, world=1, local_rank=0, device=torch.device("cpu"))
DROP, UNTIED = "model.dropout=0.1", "model.tie_embeddings=false"
SHORT = ["train.steps=6", "eval.every=0", "checkpoint.every=0"]  # on SMALL: a 6-step run, evaluated once at its end
TERM, USR1 = int(signal.SIGTERM), int(signal.SIGUSR1)
# name: (overrides, signal, the ranks it reaches, the step whose batch it arrives with, the step all ranks stop after)
CASES: dict[str, tuple[list[str], int, list[int], int, int]] = {
    "baseline": ([DROP, "data.num_workers=1"], TERM, [0, 1], 3, 3),
    "baseline, SIGUSR1 on rank 1": ([DROP], USR1, [1], 3, 3),
    "streambp": (["trainer=streambp", "streambp.chunk=8"], TERM, [0, 1], 3, 3),
    "local": (["trainer=local", "local.blocks=2", DROP, UNTIED], TERM, [0, 1], 3, 3),
    "pipeline 1f1b, rank 1": (["trainer=pipeline", "pipeline.schedule=1f1b", "pipeline.microbatches=2", DROP],
                              TERM, [1], 3, 3),
    "vocab-parallel pipeline, rank 1": (["trainer=pipeline", "pipeline.schedule=1f1b", "pipeline.microbatches=2",
                                         "pipeline.vocab_parallel=true", DROP], TERM, [1], 3, 3),
    # the decoupled pipeline learns of other ranks' rows a step late: all ranks stop after the next step
    "decoupled pipeline, rank 1": (["trainer=decoupled", "pipeline.microbatches=2",
                                    "local.method=man", "local.blocks=2", DROP, UNTIED], TERM, [1], 3, 4),
}


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("markov")
    write_markov_shards(root)
    return root


# -- the rank side (torchrun runs this file) --------------------------------------------------------------------
class SignalAt:
    """A run's training batches that send this process a real signal as the batch of step `at` is drawn."""

    def __init__(self, loader: Any, *, at: int, signum: int | None) -> None:
        self.loader, self.at, self.signum = loader, at, signum

    def __iter__(self) -> Iterator[Any]:
        for batch in self.loader:
            if self.signum and self.loader.batches == self.at:  # one micro-batch per step: batch N starts step N
                os.kill(os.getpid(), self.signum)
            yield batch

    def state_dict(self) -> dict[str, Any]:
        return self.loader.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.loader.load_state_dict(state)


def run_case(name: str, shards: str, out: Path, d: Dist) -> dict | None:
    """6 steps in one go against: a signal at step 3 on some ranks, the stop, and a resume to 6 (rank 0 reports)."""
    from training.config import load_config
    from training.pretrain import build_trainer, train
    from training.trainers.guard import exit_status

    overrides, signum, ranks, at, _ = CASES[name]
    whole, parts = out / "whole", out / "parts"

    def config(folder: Path):
        scramble()
        return load_config("tiny", [f"data.path={shards}", *SMALL, *SHORT, *overrides, f"output={folder}"])

    train(config(whole), d)
    trainer = build_trainer(config(parts), d)
    trainer.train_loader = SignalAt(trainer.train_loader, at=at, signum=signum if d.rank in ranks else None)
    summary = trainer.fit()
    signum_seen = summary.get("signal")
    stops = all_gather_object(d, {"steps": summary["steps"], "signal": signum_seen,
                                  "signal_ranks": summary.get("signal_ranks"), "status": exit_status(signum_seen)})
    saved = [p.name for p in checkpoint.list_checkpoints(parts / "checkpoints")]
    meta, problem = checkpoint.verify(parts / "checkpoints" / saved[-1], ONE) if d.is_main else (None, None)
    train(config(parts), d)
    if not d.is_main:
        return None
    a = checkpoint_leaves(whole / "checkpoints" / "step-00000006", out / "a.pt")
    b = checkpoint_leaves(parts / "checkpoints" / "step-00000006", out / "b.pt")
    diffs = sorted(set(a) ^ set(b)) + [k for k in sorted(set(a) & set(b)) if not same_bits(a[k], b[k])]
    return {"case": name, "stops": stops, "saved": saved, "problem": problem, "files": len(meta["files"]),
            "diffs": diffs[:20], "entries": len(a),
            "rng": sorted({".".join(k.split(".")[:3]) for k in a if ".rng." in k}),
            "steps_logged": [r["step"] for r in read_metrics(parts) if "loss" in r and not r.get("summary")]}


def main() -> int:
    names, shards, out = json.loads(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    return run_cases(names, lambda i, name, d: run_case(name, shards, out / f"case{i}", d))


# -- every trainer, in one launch of 2 ranks --------------------------------------------------------------------
@pytest.mark.slow
def test_a_signal_on_some_ranks_stops_all_after_one_step_exits_0_and_resumes_bitwise(shards, tmp_path):
    """Each case: every rank stops after the same step, exit status 0, one verified checkpoint holding both ranks,
    and the resume to step 6 equals 6 steps in one go in every checkpoint entry (weights, optimizer, data position,
    each rank's torch/numpy/python RNG), bit for bit."""
    names = list(CASES)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                           __file__, json.dumps(names), str(shards), str(tmp_path)], capture_output=True, text=True,
                          timeout=900, env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{"case"')]
    assert [r["case"] for r in results] == names
    for r in results:
        _, signum, ranks, _, stop = CASES[r["case"]]
        assert r["stops"] == [{"steps": stop, "signal": signum, "signal_ranks": ranks, "status": 0}] * 2, r
        assert r["saved"] == [f"step-{stop:08d}"] and r["problem"] is None, r
        assert r["files"] == 3, r  # .metadata and a shard of each rank
        assert r["diffs"] == [] and r["entries"] > 100, r
        assert r["rng"] == sorted(f"rank{i}.rng.{k}" for i in range(2) for k in ("numpy", "python", "torch")), r
        assert r["steps_logged"] == list(range(1, 7)), r


def test_ctrl_c_keeps_130_and_preemption_exits_0():
    from training.trainers.guard import exit_status

    assert [exit_status(s) for s in (None, signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)] == [0, 130, 0, 0]


# -- scripts/slurm/pretrain.sbatch ------------------------------------------------------------------------------
def sbatch_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    return {**env, "RUN": str(tmp_path / "run"), "GPUS_PER_NODE": "2", "PYTHON": sys.executable,
            "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), **extra}


def node_argv(line: str) -> list[str]:
    """The words of the printed node command, unquoted by bash itself (the script quotes them with printf %q)."""
    words = subprocess.run(["bash", "-c", f"printf '%s\\0' {line}"], capture_output=True, text=True, check=True)
    return words.stdout.split("\0")[:-1]


def test_sbatch_asks_for_requeue_and_the_warning_and_builds_a_command_our_cli_accepts(shards, tmp_path):
    text = SBATCH.read_text()
    for line in ("#SBATCH --requeue", "#SBATCH --signal=B:USR1@120", "#SBATCH --open-mode=append",
                 "#SBATCH --ntasks-per-node=1"):
        assert re.search(f"^{re.escape(line)}$", text, re.M), line
    assert "srun --ntasks-per-node=1 --kill-on-bad-exit=1" in text  # one torchrun per node; one failing ends all
    assert subprocess.run(["bash", "-n", str(SBATCH)], capture_output=True).returncode == 0
    args = ["--config", "tiny", f"data.path={shards}", "train.steps=50"]
    env = sbatch_env(tmp_path, DRY_RUN="1", SLURM_NNODES="3", SLURM_JOB_ID="77", SLURM_RESTART_COUNT="1")
    dry = subprocess.run(["bash", str(SBATCH), *args], capture_output=True, text=True, env=env, timeout=300)
    assert dry.returncode == 0, dry.stderr
    assert f"config ok: baseline trainer, 50 steps, output {tmp_path / 'run'}" in dry.stdout
    assert not (tmp_path / "run").exists()  # a dry run makes nothing
    node = node_argv(dry.stdout.splitlines()[0].removeprefix("node command:"))
    assert node[:2] == ["bash", "-c"] and "trap '' TERM USR1" in node[2]
    launcher = node[4:node.index("training.pretrain") + 1]
    assert launcher == [sys.executable, "-m", "torch.distributed.run", "--nnodes=3", "--nproc_per_node=2",
                        "--rdzv_backend=c10d", "--rdzv_endpoint=localhost:29500", "--rdzv_id=77", "--max_restarts=0",
                        "--signals_to_handle=SIGINT,SIGHUP,SIGQUIT", "-m", "training.pretrain"]
    # the words torchrun passes to every rank, which the dry run above gave our CLI (a restarted job: resume)
    assert node[len(launcher) + 4:] == [*args, f"--output={tmp_path / 'run'}", "checkpoint.resume=true"]


SRUN = """#!/bin/bash
# srun's stand-in: its command once, on this machine; signals sent to it go on to the task, as srun forwards them
while [[ $1 == -* ]]; do shift; done
"$@" &
task=$!
for s in TERM USR1 INT; do trap "kill -s $s $task" $s; done
while :; do wait $task; status=$?; kill -0 $task 2>/dev/null || exit $status; done
"""
SCONTROL = """#!/bin/bash
# scontrol's stand-in: the allocation's first node, and a log of every other request
if [[ $1 == show && $2 == hostnames ]]; then echo localhost; else echo "$*" >> "$SCONTROL_LOG"; fi
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def batch_job(args: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """The sbatch script run as Slurm runs it on the first node; stopped with SIGTERM (saved) if a check fails."""
    job = subprocess.Popen(["bash", str(SBATCH), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=env, start_new_session=True)
    try:
        yield job
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGTERM)
            job.communicate(timeout=120)


def logged_steps(run: Path) -> list[int]:
    """Steps metrics.jsonl holds so far (a line being written is not one yet)."""
    path, steps = run / "metrics.jsonl", []
    for line in path.read_text().splitlines() if path.is_file() else []:
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            steps += [record["step"]] if "loss" in record else []
    return steps


def wait_for_step(run: Path, step: int, job: subprocess.Popen) -> None:
    """Until metrics.jsonl logs `step`: the ranks are training."""
    while max(logged_steps(run), default=0) < step:
        assert job.poll() is None, job.communicate()
        time.sleep(0.05)


@pytest.mark.slow
def test_sbatch_checkpoints_on_the_warning_requeues_and_the_requeued_job_resumes_bitwise(shards, tmp_path):
    """The batch shell alone gets SIGUSR1 (--signal=B:USR1): the ranks save, every process exits 0, the script requeues;
    the requeued job (the same command) resumes, and a SIGTERM to every process of the job (preemption: torchrun
    gets it too) stops it again with status 0. Its checkpoint equals an uninterrupted run's, bit for bit."""
    bin_dir, run = tmp_path / "bin", tmp_path / "run"
    bin_dir.mkdir()
    for name, text in (("srun", SRUN), ("scontrol", SCONTROL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env = sbatch_env(tmp_path, PATH=f"{bin_dir}:{os.environ['PATH']}", SCONTROL_LOG=str(tmp_path / "scontrol.log"),
                     SLURM_JOB_ID="4242", SLURM_JOB_NODELIST="node[1]", SLURM_NNODES="1", RDZV_PORT=str(free_port()))
    args = ["--config", "tiny", f"data.path={shards}", *SMALL, "train.steps=100000", "optim.decay_steps=20",
            "checkpoint.every=0", "eval.every=0", "data.num_workers=1", DROP]  # the schedule ends at 24, not 100000

    with batch_job(args, env) as first:
        wait_for_step(run, 2, first)
        first.send_signal(signal.SIGUSR1)
        out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-3000:]
    assert (tmp_path / "scontrol.log").read_text() == "requeue 4242\n"
    first_stop = checkpoint.list_checkpoints(run / "checkpoints")[-1]
    assert checkpoint.verify(first_stop, ONE)[1] is None
    assert read_metrics(run)[-1]["signal"] == USR1 and read_metrics(run)[-1]["signal_ranks"] == [0, 1]

    step = int(first_stop.name.split("-")[1])
    with batch_job(args, {**env, "SLURM_RESTART_COUNT": "1", "RDZV_PORT": str(free_port())}) as second:
        wait_for_step(run, step + 2, second)
        os.killpg(second.pid, signal.SIGTERM)
        out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err[-3000:]
    assert f"resumed from {first_stop} at step {step}" in out
    assert (tmp_path / "scontrol.log").read_text() == "requeue 4242\n"  # Slurm requeues a preempted job itself
    last = checkpoint.list_checkpoints(run / "checkpoints")[-1]
    end = int(last.name.split("-")[1])
    assert read_metrics(run)[-1]["signal"] == TERM and end > step

    from tests.training.test_trainer import pretrain

    reference = tmp_path / "reference"
    pretrain(*args, f"output={reference}", f"train.stop_after={end}", ranks=2)
    a = checkpoint_leaves(reference / "checkpoints" / last.name, tmp_path / "a.pt")
    b = checkpoint_leaves(last, tmp_path / "b.pt")
    assert sorted(set(a) ^ set(b)) + [k for k in sorted(a) if k in b and not same_bits(a[k], b[k])] == []
    assert [r["step"] for r in read_metrics(run) if "loss" in r and not r.get("summary")] == list(range(1, end + 1))


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
