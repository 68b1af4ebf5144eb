"""Pretrain the Llama-style model on token shards: one process, or `torchrun` for data parallelism.

python -m training.pretrain --config tiny                                  # configs/train/tiny.yaml, CPU
python -m training.pretrain --config 150m data.path=out/tokens train.steps=20000
torchrun --nproc-per-node=8 -m training.pretrain --config 1b output=runs/1b

sbatch --nodes=4 scripts/slurm/pretrain.sbatch --config 1b                   # Slurm: see that script

Anything in the config can be overridden with key=value (YAML values: numbers, true/false, null). A run
resumes from the newest checkpoint in <output>/checkpoints that verifies and fits, unless checkpoint.resume=false,
which starts fresh: an output folder that holds an earlier run is refused before anything is written, unless
--overwrite (overwrite=true) moves that run's outputs into <output>/previous-<time>/ first. --dry-run checks the
config and the output folder, prints the resolved config and starts nothing.

Signals: SIGTERM or SIGUSR1 (preemption; Slurm sends SIGUSR1 ahead of the time limit with --signal=USR1@<s>)
makes every rank save a checkpoint at the next step boundary and exit 0, so a requeued job (the same command)
resumes; SIGINT (Ctrl-C) does the same but exits 130, and a second Ctrl-C exits at once without a checkpoint. A
signal that reaches only some ranks stops all of them after the same step. Under torchrun, signal the workers:
torchrun dies of SIGUSR1 unless --signals-to-handle names it, and after a signal it handles (SIGTERM, SIGINT) it
exits 1 and kills the workers once its --shutdown-timeout (30 s) has passed, saved or not.
Exit status: 0 done or preempted, 2 a config, data or checkpoint error, 3 training diverged (train.nonfinite),
130 stopped by Ctrl-C (checkpoint saved). Under torchrun these are the workers' statuses.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import sys
from pathlib import Path

import torch
import yaml

from core.config import ConfigError
from core.shards import ShardError
from training.checkpoint import CheckpointError
from training.config import RunConfig, load_config
from training.config_cli import describe_keys
from training.distributed import Dist, setup, teardown
from training.model import ModelConfig
from training.parallel.schedules import describe_schedules
from training.rundir import check_fresh_start, check_output
from training.trainers.baseline import Trainer
from training.trainers.guard import NonFiniteError, exit_status
from training.trainers.registry import describe_trainers, trainer_class


FLAG_KEYS = {"trainer": "trainer", "output": "output", "overwrite": "overwrite", "schedule": "pipeline.schedule",
             "microbatches": "pipeline.microbatches", "method": "local.method", "blocks": "local.blocks"}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m training.pretrain", formatter_class=argparse.RawDescriptionHelpFormatter,
        description=__doc__, epilog="config keys (key=default  what it does):\n" + describe_keys(RunConfig))
    parser.add_argument("--config", default=None,
                        help="a YAML run config, or the name of one in configs/train/ (tiny, 150m, 400m, 1b)")
    parser.add_argument("--trainer", default=None, help=f"the method (same as trainer=...): {describe_trainers()}")
    parser.add_argument("--schedule", default=None,
                        help=f"pipeline schedule (with --trainer=pipeline; same as pipeline.schedule=...): "
                             f"{describe_schedules()}")
    parser.add_argument("--microbatches", type=int, default=None,
                        help="microbatches per pipeline step; same as pipeline.microbatches=...")
    parser.add_argument("--method", default=None,
                        help="local learning method (--trainer=local or --trainer=decoupled): greedy, auglocal, man; "
                             "same as local.method=...")
    parser.add_argument("--blocks", type=int, default=None,
                        help="gradient-isolated modules for --trainer=local (the decoupled pipeline: its ranks per "
                             "replica); same as local.blocks=...")
    parser.add_argument("--output", default=None, help="run folder (metrics, tensorboard, checkpoints); "
                                                       "same as output=...")
    parser.add_argument("--overwrite", action="store_const", const="true", default=None,
                        help="with checkpoint.resume=false: move an earlier run in the output folder into "
                             "<output>/previous-<time>/ and start fresh (refused without it); same as overwrite=true")
    parser.add_argument("--dry-run", action="store_true",
                        help="check the config and the output folder, print the resolved config, start nothing; "
                             "with --trainer=pipeline also each rank's parameters, FLOPs and estimated activation "
                             "memory for --ranks ranks (read from the shards' vocabulary and sequence length)")
    parser.add_argument("--ranks", type=int, default=None,
                        help="with --dry-run: the number of ranks to plan the pipeline for (default: WORLD_SIZE, "
                             "as torchrun sets it, or 1)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, e.g. train.steps=300 optim.lr=1e-3 data.path=output/tokens")
    return parser.parse_intermixed_args(argv)


def build_model_config(cfg: RunConfig, *, vocab_size: int, seq_len: int) -> ModelConfig:
    """The model's shape from the config, with vocabulary and context filled from the shards when not set."""
    m = cfg.model
    vocab = m.vocab_size or vocab_size
    if vocab < vocab_size:
        raise ConfigError(f"model.vocab_size = {vocab} is smaller than the tokenizer's vocabulary ({vocab_size}) that "
                          f"made the shards; set model.vocab_size >= {vocab_size} (or null to take it from the shards), "
                          "or retrain the tokenizer smaller")
    max_seq = m.max_seq_len or seq_len
    if seq_len > max_seq:
        raise ConfigError(f"the shards hold sequences of {seq_len} tokens but model.max_seq_len = {max_seq}; raise "
                          "model.max_seq_len or re-run pipelines.tokenize with a shorter seq_len")
    fields = {f.name: getattr(m, f.name) for f in dataclasses.fields(ModelConfig)}
    return ModelConfig(**{**fields, "vocab_size": vocab, "max_seq_len": max_seq})


def dry_run_balance(cfg: RunConfig, ranks: int) -> str:
    """The pipeline's per-rank balance for `ranks` ranks, or why it cannot be planned yet (no shards, bad degrees)."""
    from training.data.loader import open_training_data
    from training.trainers.pipeline import balance_report

    try:
        data = open_training_data(cfg.data, micro_batch_size=cfg.train.micro_batch_size, eval_batches=0, rank=0,
                                  world=1)
        model_cfg = build_model_config(cfg, vocab_size=data.meta.vocab_size, seq_len=data.meta.seq_len)
        return balance_report(cfg, model_cfg, world=ranks, seq_len=data.meta.seq_len)
    except (ConfigError, ShardError, ValueError, OSError) as err:
        return f"pipeline balance not shown: {err}"


def build_trainer(cfg: RunConfig, d: Dist, *, command: str | None = None) -> Trainer:
    """Data, model and trainer for `cfg` on this rank, ready to fit(); `command` is recorded in commands.jsonl."""
    from training.data.loader import open_training_data

    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    trainer_cls = trainer_class(cfg.trainer)
    data_rank, data_world = trainer_cls.data_parallel(cfg, d)
    data = open_training_data(cfg.data, micro_batch_size=cfg.train.micro_batch_size, eval_batches=cfg.eval.batches,
                              rank=data_rank, world=data_world)
    model_cfg = build_model_config(cfg, vocab_size=data.meta.vocab_size, seq_len=data.meta.seq_len)
    trainer = trainer_cls(cfg, d=d, model_cfg=model_cfg, train_loader=data.train, eval_loader=data.valid,
                          seq_len=data.meta.seq_len,
                          data_meta={"seq_len": data.meta.seq_len, "tokenizer_sha256": data.meta.tokenizer_sha256})
    trainer.command = command
    return trainer


def train(cfg: RunConfig, d: Dist, *, command: str | None = None) -> dict:
    """Build data, model and trainer for `cfg` on this rank and run it; returns the final summary."""
    return build_trainer(cfg, d, command=command).fit()


def command_line(argv: list[str]) -> str:
    """This invocation as a shell line (under torchrun, the worker's part; commands.jsonl records the ranks)."""
    return shlex.join(["python", "-m", "training.pretrain", *argv])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    overrides = list(args.overrides)
    for flag, key in FLAG_KEYS.items():  # each shortcut flag is the same as its key=value override
        value = getattr(args, flag)
        if value:
            overrides.append(f"{key}={value}")
    rank = int(os.environ.get("RANK", "0"))
    try:
        cfg = load_config(args.config, overrides)
        check_output(cfg.output, create=not args.dry_run)
        if not cfg.checkpoint.resume:  # refused here, before any rank sets up or writes (the trainer checks again)
            check_fresh_start(Path(cfg.output), overwrite=cfg.overwrite)
    except ConfigError as err:
        if rank == 0:
            print(f"error: {err}", file=sys.stderr)
        return 2
    if args.dry_run:
        if rank == 0:
            print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
            print(f"config ok: {cfg.trainer} trainer, {cfg.train.steps} steps, output {cfg.output}")
            if cfg.trainer == "pipeline":
                print(dry_run_balance(cfg, args.ranks or int(os.environ.get("WORLD_SIZE", "1"))))
        return 0
    d = setup(cfg.train.device)
    try:
        summary = train(cfg, d, command=command_line(argv))
    except (ConfigError, ShardError, CheckpointError, ValueError) as err:
        if rank == 0:
            print(f"error: {err}", file=sys.stderr)
        return 2
    except NonFiniteError as err:  # every rank raises it alike
        if rank == 0:
            print(f"error: {err}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:  # a second Ctrl-C while the first waits for the step boundary (or one before training)
        if rank == 0:
            print("interrupted: exiting at once, without a checkpoint", file=sys.stderr)
        return 130
    finally:
        teardown(d)
    return exit_status(summary.get("signal"))


if __name__ == "__main__":
    sys.exit(main())
