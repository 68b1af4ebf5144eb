"""The baseline trainer: data parallel (DDP) over ranks, gradient accumulation to a fixed token count per step.

Later trainers (StreamBP, pipeline, local) reuse this loop and replace `forward_backward`, the one place
that turns micro-batches into gradients. Everything else — data order, schedule, clipping, logging,
evaluation, checkpoints — is shared, so trainers differ only where their method does.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from training import checkpoint, rundir
from training.config import RunConfig
from training.distributed import Dist, all_reduce_sum
from training.metrics import MetricsLog, Progress, device_peak_tflops, eval_line, final_line, throughput
from training.model import Llama, ModelConfig, flops_per_token, next_token_loss, param_count
from training.optim import build_optimizer, lr_at, set_lr
from training.resume import load_latest, report, start_fresh
from training.rng import derived_seed, seed_rngs
from training.trainers.guard import StepGuard
from training.trainers.sizing import accumulation_steps, autocast_dtype

Batch = tuple[torch.Tensor, torch.Tensor]


class Trainer:
    """One run of the baseline method; `fit()` trains to cfg.train.steps, resuming if a checkpoint exists."""

    name = "baseline"
    wrap_ddp = True
    """DDP hooks gradient reduction into one backward per forward; trainers with another backward reduce themselves."""
    lagged_guard = False
    """Whether ranks agree on non-finite steps and stop requests a step late (stages that must never wait)."""
    command: str | None = None
    """The command line of this invocation, recorded in commands.jsonl for the model card (None: not recorded)."""

    def __init__(self, cfg: RunConfig, *, d: Dist, model_cfg: ModelConfig, train_loader: Any,
                 eval_loader: Any | None, seq_len: int, data_meta: dict[str, Any]) -> None:
        self.cfg, self.d, self.model_cfg, self.seq_len = cfg, d, model_cfg, seq_len
        self.run_dir = Path(cfg.output)
        self.train_loader, self.eval_loader = train_loader, eval_loader
        self.data_rank, self.data_world = self.data_parallel(cfg, d)
        self.accum = accumulation_steps(tokens_per_step=cfg.train.tokens_per_step,
                                        micro_batch_size=cfg.train.micro_batch_size, seq_len=seq_len,
                                        world=self.data_world)
        self.tokens_per_step = cfg.train.micro_batch_size * seq_len * self.data_world * self.accum
        self.amp_dtype = autocast_dtype(cfg.train.dtype, d.device)
        seed_rngs(cfg.train.seed)  # the same initial weights on every rank
        self.parts = self.build_parts()
        if cfg.train.compile:
            for part in self.parts:
                for layer in getattr(part, "layers", {}).values():  # the decoder's layers; aux nets stay eager
                    layer.compile()
        self.optimizers = [build_optimizer(part, cfg.optim, fused=d.device.type == "cuda") for part in self.parts]
        seed_rngs(derived_seed(cfg.train.seed, d.rank))  # then each rank its own dropout masks
        self.meta = {"model": dataclasses.asdict(model_cfg), "data": data_meta, "tokens_per_step": self.tokens_per_step,
                     "trainer": self.name}
        self.step, self.tokens = 0, 0
        self.log = MetricsLog(self.run_dir, enabled=self.reporter, tensorboard=cfg.log.tensorboard)
        self.flops_per_token = flops_per_token(model_cfg, seq_len)
        self.peak = device_peak_tflops(d.device, cfg.train.peak_tflops)
        self.guard = StepGuard(d=d, policy=cfg.train.nonfinite, max_skipped=cfg.train.max_skipped,
                               lagged=self.lagged_guard, checkpoints=self.checkpoint_root(), announce=self.reporter)

    # -- the method-specific part ------------------------------------------------------------------------------
    @classmethod
    def data_parallel(cls, cfg: RunConfig, d: Dist) -> tuple[int, int]:
        """(rank, ranks) of this process among the data-parallel replicas: who reads which batches."""
        return d.rank, d.world

    @property
    def reporter(self) -> bool:
        """Whether this rank prints progress and writes metrics (rank 0; a trainer may pick the rank that knows)."""
        return self.d.is_main

    def build_parts(self) -> list[nn.Module]:
        """This rank's model parts (the whole model here); sets self.model and self.module (DDP when > 1 rank)."""
        self.model = Llama(self.model_cfg).to(self.d.device)
        self.module: nn.Module = DDP(self.model) if self.d.initialized and self.wrap_ddp else self.model
        return [self.model]

    def forward_backward(self, micro_batches: list[Batch]) -> torch.Tensor:
        """Accumulate gradients of the mean next-token loss over the step's micro-batches; return that loss."""
        total = torch.zeros((), device=self.d.device)
        for i, (inputs, targets) in enumerate(micro_batches):
            last = i == len(micro_batches) - 1
            sync = contextlib.nullcontext() if last or not isinstance(self.module, DDP) else self.module.no_sync()
            with sync:
                with self.autocast():
                    logits = self.module(inputs)
                loss = next_token_loss(logits, targets) / len(micro_batches)
                loss.backward()
            total += loss.detach()
        return total

    def reduce_loss(self, loss: float) -> float:
        """The step's loss over all ranks: each rank returned the mean of its own micro-batches."""
        return all_reduce_sum(self.d, [loss])[0] / self.d.world

    # -- the shared loop ---------------------------------------------------------------------------------------
    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.d.device.type, dtype=self.amp_dtype)

    def before_step(self) -> None:
        """Hook before a step's forward/backward (the pipeline trainer starts a trace here)."""

    def after_step(self) -> dict[str, float]:
        """Hook after the optimizer step; returned values are logged at this step."""
        return {}

    def set_train(self, mode: bool) -> None:
        for part in self.parts:
            part.train(mode)

    def checkpoint_root(self) -> Path:
        return self.run_dir / "checkpoints"

    def rank_state(self) -> dict[str, Any]:
        """This rank's checkpoint entries besides weights, optimizer and RNG: data position, guard counters."""
        return {"data": self.train_loader.state_dict(), "guard": self.guard.state_dict()}

    def resume(self) -> None:
        if not self.cfg.checkpoint.resume:
            return start_fresh(self.run_dir, d=self.d, announce=self.reporter, overwrite=self.cfg.overwrite)
        resumed = load_latest(self.checkpoint_root(), d=self.d, parts=self.parts, optimizers=self.optimizers,
                              meta=self.meta, rank_template=self.rank_state())
        if resumed is None:
            return
        self.step, self.tokens = resumed.step, resumed.tokens
        try:
            self.train_loader.load_state_dict(resumed.rank_state["data"])
        except ValueError as err:  # other shards, batch size or loader workers than the checkpointed run
            raise checkpoint.CheckpointError(f"{resumed.path}: the data position does not fit this run's data: {err}") from err
        if "guard" in resumed.rank_state:
            self.guard.load_state_dict(resumed.rank_state["guard"])
        if self.reporter:
            report(resumed)

    def save(self) -> Path:
        self.guard.settle()  # a stop decided on a rank must be known before anything is written
        return checkpoint.save(self.checkpoint_root(), d=self.d, step=self.step, tokens=self.tokens, parts=self.parts,
                               optimizers=self.optimizers, rank_state=self.rank_state(), meta=self.meta,
                               keep=self.cfg.checkpoint.keep)

    def to_device(self, batch: Batch) -> Batch:
        non_blocking = self.d.device.type == "cuda"
        return (batch[0].to(self.d.device, non_blocking=non_blocking),
                batch[1].to(self.d.device, non_blocking=non_blocking))

    def clip(self) -> float:
        """Clip the global gradient norm (if set) and return the norm before clipping."""
        return self.clip_params([p for part in self.parts for p in part.parameters()])

    def clip_params(self, params: list[torch.Tensor]) -> float:
        """Clip these parameters' gradients to optim.grad_clip by their joint norm; returns the norm before."""
        max_norm = self.cfg.optim.grad_clip if self.cfg.optim.grad_clip > 0 else math.inf
        return float(torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], max_norm))

    def health(self, loss: float, grad_norm: float) -> tuple[float, float]:
        """The loss and gradient norm this rank's update depends on (the decoupled pipeline: its module's own)."""
        return loss, grad_norm

    def optimizer_step(self, loss: float) -> tuple[float, float, bool]:
        """Clip, let the guard judge the step (on every rank alike), then step the optimizers or drop the gradients."""
        lr = lr_at(self.step, self.cfg.optim, self.cfg.train.steps)
        grad_norm = self.clip()
        own_loss, own_norm = self.health(loss, grad_norm)
        stepped = self.guard.judge(step=self.step + 1, loss=own_loss, grad_norm=own_norm)
        for optimizer in self.optimizers:
            if stepped:
                set_lr(optimizer, lr)
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return lr, grad_norm, stepped

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Mean next-token loss and perplexity over the held-out batches, summed over ranks."""
        if self.eval_loader is None:
            return {}
        self.set_train(False)
        loss_sum, count = self.eval_sums()
        self.set_train(True)
        loss_sum, count = all_reduce_sum(self.d, [loss_sum, count])
        if not count:
            return {}
        loss = loss_sum / count
        return {"eval_loss": loss, "eval_ppl": math.exp(min(loss, 50.0)), "eval_tokens": int(count)}

    def eval_sums(self) -> tuple[float, float]:
        """This rank's summed held-out token loss and token count (the method-specific half of evaluate)."""
        loss_sum, count = 0.0, 0.0
        for batch in self.eval_loader:
            inputs, targets = self.to_device(batch)
            with self.autocast():
                logits = self.model(inputs)
            loss_sum += float(next_token_loss(logits, targets, reduction="sum"))
            count += targets.numel()
        return loss_sum, count

    def clip_grads(self, params: list[torch.Tensor], norm: float) -> float:
        """Scale gradients so their global norm (computed by the caller, over all ranks) is at most grad_clip."""
        max_norm = self.cfg.optim.grad_clip
        if max_norm > 0 and norm > max_norm:
            for p in params:
                if p.grad is not None:
                    p.grad.mul_(max_norm / (norm + 1e-6))
        return norm

    def describe(self) -> str:
        cfg, m = self.cfg, self.model_cfg
        return (f"{self.name} trainer: {param_count(m) / 1e6:.2f}M parameters ({m.n_layers} layers, dim {m.dim}, "
                f"vocab {m.vocab_size}) on {self.d.world} × {self.d.device.type}; {self.tokens_per_step:,} tokens/step "
                f"= {cfg.train.micro_batch_size} seq × {self.seq_len} × {self.data_world} replicas × {self.accum} accum; "
                f"{cfg.train.steps} steps; precision {self.amp_dtype or torch.float32}; output {self.run_dir}")

    def fit(self) -> dict[str, Any]:
        """Train to cfg.train.steps; returns the final summary (also written to metrics.jsonl)."""
        with self.guard.signals:
            self.resume()
            if self.d.is_main:  # only now: a refused resume leaves the config that wrote the checkpoints
                rundir.write_config(self.run_dir, self.cfg.to_dict())
                rundir.record_command(self.run_dir, command=self.command, step=self.step, ranks=self.d.world)
            self.log.start(self.step)
            if self.reporter:
                print(self.describe(), flush=True)
            return self.loop()

    def loop(self) -> dict[str, Any]:
        cfg = self.cfg
        self.set_train(True)
        batches: Iterator[Batch] = iter(self.train_loader)
        progress = Progress(total=cfg.train.steps, initial=self.step, enabled=self.reporter and cfg.log.progress)
        window_start, window_tokens, last_eval = time.perf_counter(), 0, {}
        start_step, train_time = self.step, 0.0
        end = cfg.train.steps if cfg.train.stop_after is None else min(cfg.train.steps, self.step + cfg.train.stop_after)
        loss_value = math.nan
        while self.step < end and self.guard.signum is None:
            micro = [self.to_device(next(batches)) for _ in range(self.accum)]
            self.before_step()
            loss = self.forward_backward(micro)
            loss_value = self.reduce_loss(float(loss))
            lr, grad_norm, _ = self.optimizer_step(loss_value)
            self.step += 1
            extra = self.after_step()
            self.tokens += self.tokens_per_step
            window_tokens += self.tokens_per_step
            progress.update({"loss": f"{loss_value:.4f}", "lr": f"{lr:.2e}"})
            for event in self.guard.events:  # skipped steps, as all ranks agreed on them
                self.log.log(event.pop("step"), event)
            self.guard.events.clear()
            if extra:
                self.log.log(self.step, extra)
            if self.step % cfg.log.every == 0 or self.step == end:
                elapsed = time.perf_counter() - window_start
                train_time += elapsed
                record = self.throughput(window_tokens, elapsed)
                record.update(loss=loss_value, lr=lr, grad_norm=grad_norm, tokens=self.tokens,
                              skipped_steps=self.guard.skipped)
                self.log.log(self.step, record)
                if progress.bar is None and self.reporter:
                    print(f"step {self.step}/{cfg.train.steps} loss {loss_value:.4f} lr {lr:.2e} "
                          f"{record['tokens_per_s']:,.0f} tok/s", flush=True)
                window_start, window_tokens = time.perf_counter(), 0
            paused = time.perf_counter()
            if cfg.eval.every and self.step % cfg.eval.every == 0 or self.step == cfg.train.steps:
                last_eval = self.evaluate()
                if last_eval:
                    self.log.log(self.step, last_eval)
                    if self.reporter:  # as it comes, beside the training lines (above a progress bar)
                        progress.write(eval_line(self.step, steps=cfg.train.steps, values=last_eval))
            if (cfg.checkpoint.every and self.step % cfg.checkpoint.every == 0 or self.step == end
                    or self.guard.signum is not None):
                self.save()
            window_start += time.perf_counter() - paused  # evaluation and saving are not training time
        progress.close()
        summary = {"summary": True, "steps": self.step, "tokens": self.tokens, "final_loss": loss_value,
                   "skipped_steps": self.guard.skipped, "train_s": round(train_time, 2),
                   **self.throughput(self.tokens_per_step * (self.step - start_step), train_time), **last_eval}
        if self.guard.signum is not None:
            summary.update(signal=self.guard.signum, signal_ranks=self.guard.signal_ranks)
        self.log.log(self.step, summary)
        self.log.close()
        if self.reporter:
            print(final_line(summary, steps=cfg.train.steps, checkpoints=self.checkpoint_root()), flush=True)
        return summary

    def throughput(self, tokens: int, seconds: float) -> dict[str, float]:
        return throughput(tokens, seconds, tokens_per_step=self.tokens_per_step, flops_per_token=self.flops_per_token,
                          peak_tflops=self.peak, device=self.d.device, world=self.d.world)
