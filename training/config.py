"""A training run as data: dataclasses loaded from `configs/train/*.yaml`, overridable with `key=value` flags.

The YAML loader is the same strict one the pipelines use (core.config.from_mapping): an unknown key
or a wrong type fails before anything starts, with the valid keys listed.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from core.config import ConfigError, from_mapping
from core.job_config import load_job_config
from training.bounds import at_least, check_range, positive
from training.model.config import ModelConfig
from training.parallel.schedules import SCHEDULE_NAMES
from training.trainers.registry import TRAINER_NAMES

# The registries' names, checked when a config loads.
TrainerName = Literal[TRAINER_NAMES]  # type: ignore[valid-type]
ScheduleName = Literal[SCHEDULE_NAMES]  # type: ignore[valid-type]


@dataclass(frozen=True, kw_only=True)
class ModelSection(ModelConfig):
    """The decoder's shape (training.model.ModelConfig); vocabulary and context default to the shards'."""

    vocab_size: int | None = None  # type: ignore[assignment]
    """None = the tokenizer's vocabulary recorded in the shards."""
    max_seq_len: int | None = None  # type: ignore[assignment]
    """None = the data's seq_len."""

    def __post_init__(self) -> None:
        self.check_shape()


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
    holdout_shards: int | None = None
    """Without validation shards: evaluate on the last N train shards (then not trained on); None = need valid/."""

    def __post_init__(self) -> None:
        at_least(self, 0, "num_workers", "seed")
        at_least(self, 1, "holdout_shards")


@dataclass(frozen=True, kw_only=True)
class OptimSection:
    """AdamW with linear warmup then cosine decay to min_lr_ratio * lr."""

    lr: float = 3e-4
    """Peak learning rate, reached at the end of warmup."""
    min_lr_ratio: float = 0.1
    """The cosine ends at lr * min_lr_ratio."""
    warmup_steps: int = 100
    """Steps of linear warmup from lr / warmup_steps to lr."""
    decay_steps: int | None = None
    """Steps of the cosine after warmup; None = until the last step."""
    beta1: float = 0.9
    """AdamW first-moment decay."""
    beta2: float = 0.95
    """AdamW second-moment decay (0.95, as Llama and GPT-3 use for pretraining)."""
    eps: float = 1e-8
    """AdamW denominator epsilon."""
    weight_decay: float = 0.1
    """Applied to matrices only (not to norms or the embedding), as in Llama and nanoGPT."""
    grad_clip: float = 1.0
    """Max global gradient norm; 0 turns clipping off."""

    def __post_init__(self) -> None:
        positive(self, "lr", "eps")
        at_least(self, 0, "warmup_steps", "weight_decay", "grad_clip")
        at_least(self, 1, "decay_steps")
        check_range("min_lr_ratio", self.min_lr_ratio, 0, 1)
        for key in ("beta1", "beta2"):
            check_range(key, getattr(self, key), 0, 1, open_high=True)


@dataclass(frozen=True, kw_only=True)
class TrainSection:
    """How long, how big a step, on what, in what precision."""

    steps: int = 1000
    """Optimizer steps of the whole run (the LR schedule spans them)."""
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
    """auto = the local GPU (cuda:LOCAL_RANK) if there is one, else CPU."""
    dtype: Literal["auto", "fp32", "bf16"] = "auto"
    """auto = bf16 autocast on a GPU that supports it, fp32 on CPU. Weights and optimizer stay fp32."""
    compile: bool = False
    """torch.compile each block (GPU runs; costs a minute of compilation)."""
    threads: int | None = None
    """torch intra-op threads per rank on CPU (None = leave torch's default); fix it for bitwise resume."""
    peak_tflops: float | None = None
    """Peak dense TFLOP/s of one device for the MFU estimate; None = looked up for known GPUs, no MFU on CPU."""
    nonfinite: Literal["stop", "skip"] = "stop"
    """A NaN/inf loss or gradient norm: stop = end the run before that step's update, saving nothing from it
    (exit 3); skip = drop the step's gradients (no optimizer step; step count, data and LR schedule advance) and
    log it as skipped in metrics.jsonl."""
    max_skipped: int = 10
    """With nonfinite=skip: stop once more than this many steps in a row were skipped (the run has diverged)."""

    def __post_init__(self) -> None:
        at_least(self, 1, "steps", "micro_batch_size", "tokens_per_step", "stop_after", "threads")
        at_least(self, 0, "max_skipped")
        positive(self, "peak_tflops")
        check_range("seed", self.seed, 0, 2**32 - 1, note="numpy's global seed is 32-bit")


@dataclass(frozen=True, kw_only=True)
class StreamBPSection:
    """StreamBP (trainer=streambp): exact backprop in sequence chunks; activations of one chunk alive at a time."""

    chunk: int = 1024
    """Tokens per chunk in each layer's forward and backward (the paper suggests seq_len / 3)."""
    logits_chunk: int | None = None
    """Tokens per chunk of the head and loss (None = chunk); the logits of a chunk are logits_chunk x vocab."""

    def __post_init__(self) -> None:
        at_least(self, 1, "chunk", "logits_chunk")


@dataclass(frozen=True, kw_only=True)
class PipelineSection:
    """Pipeline parallelism (trainer=pipeline; skippipe and decoupled read it too), times data parallelism."""

    schedule: ScheduleName = "1f1b"
    """Microbatch order (trainer=pipeline): gpipe, 1f1b, interleaved1f1b (Megatron), zero-bubble (ZB-H1 style,
    split backward), zbv (zero-bubble V placement), dualpipev (DeepSeek's DualPipe, V placement). SkipPipe and the
    decoupled local pipeline are trainers of their own (trainer=skippipe, trainer=decoupled); they read
    microbatches, dp and SkipPipe's settings below from this section too."""
    microbatches: int = 4
    """Microbatches per schedule step; train.micro_batch_size rows are split into them (padded if uneven)."""
    stages_per_rank: int | None = None
    """Model chunks per rank: None = the schedule's (training/parallel/schedules.py: 1 for gpipe and 1f1b, 2 for the
    others; zbv and dualpipev need exactly 2)."""
    dp: int = 1
    """Data-parallel replicas; the pipeline has ranks / dp stages-ranks (a 2-D device mesh dp x pp)."""
    balance: Literal["cost", "uniform"] = "cost"
    """cost = stages of equal FLOPs counting the embedding and LM head; uniform = equal layer counts."""
    layout: tuple[tuple[str, ...], ...] | None = None
    """Explicit units per stage, e.g. [[embed, layers.0], [layers.1, norm, head]]; overrides balance."""
    skip: float = 0.33
    """skippipe: fraction of stages each microbatch skips (stage 0 always kept); SkipPipe's default 2/6."""
    skip_stages: int | None = None
    """skippipe: number of stages S; the ranks are dealt to them evenly (None = one rank per stage)."""
    reorder: bool = False
    """skippipe: allow one swap of adjacent stages in a path."""
    latency: str | None = None
    """skippipe: a JSON file with the node-to-node latency matrix in seconds (None = a uniform network)."""
    inject_latency: bool = False
    """skippipe: hold each message back by its link's latency, emulating that network on one machine."""
    vocab_parallel: bool = False
    """trainer=pipeline: split the embedding and the output layer by vocabulary rows over all ranks of the pipeline
    (Vocabulary Parallelism, Yeung et al. 2025) instead of giving them to the first and last stage; pays off when
    the vocabulary is large against the width (V/dim >= ~20). Schedules gpipe, 1f1b and interleaved1f1b."""
    vocab_barriers: Literal[1, 2] = 1
    """With vocab_parallel: 1 = Vocab-1 (one collective per microbatch, an all-gather carrying the softmax
    statistics and the input gradient's terms, p times the bytes of an all-reduce; the output layer's weight
    gradient then fills waits, keeping up to 2 logits shards); 2 = Vocab-2 (a small all-gather, then an all-reduce
    of the input gradient that only the last stage waits for; 1 logits shard held)."""
    trace_steps: tuple[int, ...] = ()
    """Steps whose F/B/W spans are gathered into <output>/pipeline/step-N.trace.json (Chrome) and .png."""

    def __post_init__(self) -> None:
        at_least(self, 1, "microbatches", "stages_per_rank", "dp", "skip_stages")
        check_range("skip", self.skip, 0, 1, open_high=True)
        check_range("trace_steps (the smallest)", min(self.trace_steps, default=1), 1)


@dataclass(frozen=True, kw_only=True)
class LocalSection:
    """Supervised local learning (trainer=local): K gradient-isolated modules, each with an aux net and loss."""

    method: Literal["greedy", "auglocal", "man"] = "greedy"
    """greedy: a fresh LM head per module (DGL/InfoPro-like); auglocal: aux = fresh layers like a uniform sample
    of the later layers, depth shrinking with depth; man: aux = EMA copy (momentum 0.995) + learnable copy of the
    next layer."""
    blocks: int = 2
    """K, the number of gradient-isolated modules the layers are cut into."""
    aux_depth: int = 2
    """auglocal: aux layers of the first module (later modules get fewer, AugLocal's pyramid with tau 0.5)."""
    clip: Literal["auto", "global", "module"] = "auto"
    """Scope of optim.grad_clip: global = one norm over the whole network, so every module waits for the last
    one's backward; module = each module clipped by its own norm, as the independent learner it is; auto =
    global in one process, module in the decoupled pipeline (where a global norm would stall every stage)."""

    def __post_init__(self) -> None:
        at_least(self, 1, "blocks", "aux_depth")


@dataclass(frozen=True, kw_only=True)
class EvalSection:
    """Held-out loss and perplexity on the valid/ shards."""

    every: int = 200
    """Evaluate every N steps and at the end (0 = only at the end)."""
    batches: int = 20
    """Held-out micro-batches per evaluation (split across ranks); 0 = no evaluation."""

    def __post_init__(self) -> None:
        at_least(self, 0, "every", "batches")


@dataclass(frozen=True, kw_only=True)
class CheckpointSection:
    """torch.distributed.checkpoint saves under <output>/checkpoints/step-N."""

    every: int = 500
    """Save every N steps and at the end (0 = only at the end)."""
    keep: int = 2
    """Checkpoints kept (older ones deleted); 0 keeps all."""
    resume: bool = True
    """Resume from the newest checkpoint in <output>/checkpoints; false = start fresh, which an output folder holding
    an earlier run refuses unless overwrite=true (--overwrite)."""

    def __post_init__(self) -> None:
        at_least(self, 0, "every", "keep")


@dataclass(frozen=True, kw_only=True)
class LogSection:
    """metrics.jsonl (always), TensorBoard and a progress bar on rank 0."""

    every: int = 10
    """Log a metrics line every N steps."""
    tensorboard: bool = True
    """Also write the scalars to <output>/tensorboard/ (tensorboard --logdir <output>)."""
    progress: bool = True
    """A progress bar on rank 0 (off when stderr is not a terminal)."""

    def __post_init__(self) -> None:
        at_least(self, 1, "every")


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """One training run."""

    name: str = "run"
    """A label for the run (kept in config.yaml)."""
    output: str = "output/train"
    """Run folder: metrics.jsonl, tensorboard/, checkpoints/, config.yaml, commands.jsonl."""
    overwrite: bool = False
    """With checkpoint.resume=false over an earlier run in output: true = move its checkpoints, metrics.jsonl,
    tensorboard/ and config into <output>/previous-<time>/ and start fresh (nothing is deleted); false = refuse."""
    trainer: TrainerName = "baseline"
    """Which method turns micro-batches into gradients: a name in training/trainers/registry.py."""
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    train: TrainSection = field(default_factory=TrainSection)
    eval: EvalSection = field(default_factory=EvalSection)
    checkpoint: CheckpointSection = field(default_factory=CheckpointSection)
    log: LogSection = field(default_factory=LogSection)
    streambp: StreamBPSection = field(default_factory=StreamBPSection)
    pipeline: PipelineSection = field(default_factory=PipelineSection)
    local: LocalSection = field(default_factory=LocalSection)

    def __post_init__(self) -> None:
        if self.overwrite and self.checkpoint.resume:
            raise ConfigError("overwrite=true replaces the run in output, checkpoint.resume=true continues it; set "
                              "checkpoint.resume=false with --overwrite to start fresh, or drop --overwrite to resume")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> RunConfig:
    """The run config from a YAML file (None = defaults) with key=value overrides applied."""
    return load_job_config(None if path is None else str(path), folder="train", what="training config",
                           build=lambda data, where: from_mapping(RunConfig, data, where=where),
                           overrides=overrides or ()).config
