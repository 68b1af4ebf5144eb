"""A training run as data: dataclasses loaded from `configs/train/*.yaml`, overridable with `key=value` flags.

The YAML loader is the same strict one the pipelines use (transforms.config.from_mapping): an unknown key
or a wrong type fails before anything starts, with the valid keys listed.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml

from transforms.config import ConfigError, from_mapping
from transforms.resources import find_config


@dataclass(frozen=True, kw_only=True)
class ModelSection:
    """The decoder's shape; vocab_size None = the tokenizer's vocabulary from the shards."""

    vocab_size: int | None = None
    dim: int = 768
    n_layers: int = 12
    n_heads: int = 12
    n_kv_heads: int | None = None
    ffn_dim: int | None = None
    multiple_of: int = 256
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    max_seq_len: int | None = None
    """None = the data's seq_len."""
    tie_embeddings: bool = False
    init_std: float = 0.02


@dataclass(frozen=True, kw_only=True)
class DataSection:
    """Where the token shards are (python -m pipelines.tokenize output) and how they are read."""

    path: str = "output/tokens"
    """A tokenize output folder holding train/ and valid/ (or a train/ folder itself)."""
    valid_path: str | None = None
    """Held-out shards; None = <path>/valid."""
    num_workers: int = 0
    """DataLoader worker processes per rank (0 = read in the training process)."""
    seed: int = 0
    """Seed of the shuffle order (epochs are reshuffled with seed and epoch)."""


@dataclass(frozen=True, kw_only=True)
class OptimSection:
    """AdamW with linear warmup then cosine decay to min_lr_ratio * lr."""

    lr: float = 3e-4
    min_lr_ratio: float = 0.1
    warmup_steps: int = 100
    decay_steps: int | None = None
    """Steps of the cosine after warmup; None = until the last step."""
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    weight_decay: float = 0.1
    """Applied to matrices only (not to norms or the embedding), as in Llama and nanoGPT."""
    grad_clip: float = 1.0
    """Max global gradient norm; 0 turns clipping off."""


@dataclass(frozen=True, kw_only=True)
class TrainSection:
    """How long, how big a step, on what, in what precision."""

    steps: int = 1000
    micro_batch_size: int = 8
    """Sequences per forward/backward on one rank."""
    tokens_per_step: int | None = None
    """Global tokens per optimizer step; gradient accumulation = tokens_per_step / (micro_batch * seq_len * ranks).
    None = one micro-batch per rank."""
    stop_after: int | None = None
    """End this process after N steps of this invocation (a scheduler's time slice), checkpointing first; the LR
    schedule still spans `steps`, and the next invocation resumes where this one stopped."""
    seed: int = 0
    """Seed of the weight initialisation."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["auto", "fp32", "bf16"] = "auto"
    """auto = bf16 autocast on a GPU that supports it, fp32 on CPU. Weights and optimizer stay fp32."""
    compile: bool = False
    """torch.compile each block (GPU runs; costs a minute of compilation)."""
    threads: int | None = None
    """torch intra-op threads per rank on CPU (None = leave torch's default); fix it for bitwise resume."""
    peak_tflops: float | None = None
    """Peak dense TFLOP/s of one device for the MFU estimate; None = looked up for known GPUs, no MFU on CPU."""


@dataclass(frozen=True, kw_only=True)
class EvalSection:
    every: int = 200
    """Evaluate every N steps and at the end (0 = only at the end)."""
    batches: int = 20
    """Held-out micro-batches per evaluation (split across ranks)."""


@dataclass(frozen=True, kw_only=True)
class CheckpointSection:
    every: int = 500
    """Save every N steps and at the end (0 = only at the end)."""
    keep: int = 2
    """Checkpoints kept (older ones deleted); 0 keeps all."""
    resume: bool = True
    """Resume from the newest checkpoint in <output>/checkpoints if there is one."""


@dataclass(frozen=True, kw_only=True)
class LogSection:
    every: int = 10
    """Log a metrics line every N steps."""
    tensorboard: bool = True
    progress: bool = True
    """A progress bar on rank 0 (off when stderr is not a terminal)."""


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """One training run."""

    name: str = "run"
    output: str = "output/train"
    """Run folder: metrics.jsonl, tensorboard/, checkpoints/, config.yaml."""
    trainer: Literal["baseline"] = "baseline"
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    train: TrainSection = field(default_factory=TrainSection)
    eval: EvalSection = field(default_factory=EvalSection)
    checkpoint: CheckpointSection = field(default_factory=CheckpointSection)
    log: LogSection = field(default_factory=LogSection)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def parse_override(text: str) -> tuple[list[str], Any]:
    """'optim.lr=1e-3' -> (['optim', 'lr'], 0.001); the value is read as YAML so numbers and null work."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not key=value (e.g. train.steps=100)")
    key, raw = text.split("=", 1)
    value = yaml.safe_load(raw)
    if isinstance(value, str):  # PyYAML (YAML 1.1) reads 1e-3 as a string; people mean the number
        try:
            value = float(value)
        except ValueError:
            pass
    return key.strip().split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set dotted keys in a nested mapping (a copy); unknown keys are caught later by the strict loader."""
    data = yaml.safe_load(yaml.safe_dump(data)) or {}
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {text!r}: {part!r} is not a section")
        node[path[-1]] = value
    return data


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> RunConfig:
    """The run config from a YAML file (None = defaults) with key=value overrides applied."""
    data: Mapping[str, Any] = {}
    where = "defaults"
    if path is not None:
        found = find_config(str(path), folder="train", what="training config", flag="--config")
        data = yaml.safe_load(found.read_text(encoding="utf-8")) or {}
        where = str(found)
    return from_mapping(RunConfig, apply_overrides(dict(data), overrides or []), where=where)
