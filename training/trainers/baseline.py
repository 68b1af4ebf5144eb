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

from training import checkpoint
from training.config import RunConfig
from training.distributed import Dist, all_reduce_sum
from training.metrics import MetricsLog, Progress, device_peak_tflops, memory_stats
from training.model import Llama, ModelConfig, flops_per_token, next_token_loss, param_count
from training.optim import build_optimizer, lr_at, set_lr

Batch = tuple[torch.Tensor, torch.Tensor]


def accumulation_steps(*, tokens_per_step: int | None, micro_batch_size: int, seq_len: int, world: int) -> int:
    """Micro-batches per rank per optimizer step so that a step sees exactly tokens_per_step tokens."""
    per_micro = micro_batch_size * seq_len * world
    if tokens_per_step is None:
        return 1
    if tokens_per_step % per_micro:
        raise ValueError(f"train.tokens_per_step = {tokens_per_step} is not a multiple of micro_batch_size × seq_len × "
                         f"ranks = {micro_batch_size} × {seq_len} × {world} = {per_micro}; use a multiple "
                         f"(e.g. {max(1, round(tokens_per_step / per_micro)) * per_micro})")
    return tokens_per_step // per_micro


def autocast_dtype(cfg_dtype: str, device: torch.device) -> torch.dtype | None:
    """bf16 autocast where asked for or (auto) where the GPU supports it; None means plain fp32."""
    if cfg_dtype == "bf16":
        return torch.bfloat16
    if cfg_dtype == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


class Trainer:
    """One run of the baseline method; `fit()` trains to cfg.train.steps, resuming if a checkpoint exists."""

    name = "baseline"
    wrap_ddp = True
    """DDP hooks gradient reduction into one backward per forward; trainers with another backward reduce themselves."""

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
        torch.manual_seed(cfg.train.seed)
        self.parts = self.build_parts()
        if cfg.train.compile:
            for part in self.parts:
                for layer in getattr(part, "layers", {}).values():  # the decoder's layers; aux nets stay eager
                    layer.compile()
        self.optimizers = [build_optimizer(part, cfg.optim, fused=d.device.type == "cuda") for part in self.parts]
        self.meta = {"model": dataclasses.asdict(model_cfg), "data": data_meta, "tokens_per_step": self.tokens_per_step,
                     "trainer": self.name}
        self.step, self.tokens = 0, 0
        self.log = MetricsLog(self.run_dir, enabled=self.reporter, tensorboard=cfg.log.tensorboard)
        self.flops_per_token = flops_per_token(model_cfg, seq_len)
        self.peak = device_peak_tflops(d.device, cfg.train.peak_tflops)

    # -- the method-specific part ------------------------------------------------------------------------------
    @classmethod
    def for_config(cls, cfg: RunConfig) -> type["Trainer"]:
        """The class that runs this config (a trainer may hand some settings to a variant)."""
        return cls

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

    def resume(self) -> None:
        if not self.cfg.checkpoint.resume:
            return
        resumed = checkpoint.load_latest(self.checkpoint_root(), d=self.d, parts=self.parts,
                                         optimizers=self.optimizers, meta=self.meta,
                                         data_template=self.train_loader.state_dict())
        if resumed is None:
            return
        self.step, self.tokens = resumed.step, resumed.tokens
        try:
            self.train_loader.load_state_dict(resumed.data_state)
        except ValueError as err:  # other shards, batch size or loader workers than the checkpointed run
            raise checkpoint.CheckpointError(f"{resumed.path}: the data position does not fit this run's data: {err}") from err
        if self.reporter:
            print(f"resumed from {resumed.path} at step {self.step} ({self.tokens:,} tokens)", flush=True)

    def save(self) -> Path:
        return checkpoint.save(self.checkpoint_root(), d=self.d, step=self.step, tokens=self.tokens, parts=self.parts,
                               optimizers=self.optimizers, data_state=self.train_loader.state_dict(), meta=self.meta,
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

    def optimizer_step(self) -> tuple[float, float]:
        lr = lr_at(self.step, self.cfg.optim, self.cfg.train.steps)
        grad_norm = self.clip()
        for optimizer in self.optimizers:
            set_lr(optimizer, lr)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return lr, grad_norm

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
        cfg = self.cfg
        self.resume()
        if self.reporter:
            print(self.describe(), flush=True)
        self.set_train(True)
        batches: Iterator[Batch] = iter(self.train_loader)
        progress = Progress(total=cfg.train.steps, initial=self.step, enabled=self.reporter and cfg.log.progress)
        window_start, window_tokens, last_eval = time.perf_counter(), 0, {}
        start_step, train_time = self.step, 0.0
        end = cfg.train.steps if cfg.train.stop_after is None else min(cfg.train.steps, self.step + cfg.train.stop_after)
        loss_value = math.nan
        while self.step < end:
            micro = [self.to_device(next(batches)) for _ in range(self.accum)]
            self.before_step()
            loss = self.forward_backward(micro)
            lr, grad_norm = self.optimizer_step()
            self.step += 1
            extra = self.after_step()
            self.tokens += self.tokens_per_step
            window_tokens += self.tokens_per_step
            loss_value = self.reduce_loss(float(loss))
            progress.update({"loss": f"{loss_value:.4f}", "lr": f"{lr:.2e}"})
            if extra:
                self.log.log(self.step, extra)
            if self.step % cfg.log.every == 0 or self.step == end:
                elapsed = time.perf_counter() - window_start
                train_time += elapsed
                record = self.throughput(window_tokens, elapsed)
                record.update(loss=loss_value, lr=lr, grad_norm=grad_norm, tokens=self.tokens)
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
            if cfg.checkpoint.every and self.step % cfg.checkpoint.every == 0 or self.step == end:
                self.save()
            window_start += time.perf_counter() - paused  # evaluation and saving are not training time
        progress.close()
        summary = {"summary": True, "steps": self.step, "tokens": self.tokens, "final_loss": loss_value,
                   "train_s": round(train_time, 2),
                   **self.throughput(self.tokens_per_step * (self.step - start_step), train_time), **last_eval}
        self.log.log(self.step, summary)
        self.log.close()
        if self.reporter:
            ev = f", held-out loss {last_eval['eval_loss']:.4f} (ppl {last_eval['eval_ppl']:.2f})" if last_eval else ""
            stopped = "" if self.step >= cfg.train.steps else f" (stopped at {self.step}/{cfg.train.steps}; run again to resume)"
            print(f"done{stopped}: {self.step} steps, {self.tokens:,} tokens, final loss {loss_value:.4f}{ev}; "
                  f"{summary['tokens_per_s']:,.0f} tokens/s; checkpoints in {self.checkpoint_root()}", flush=True)
        return summary

    def throughput(self, tokens: int, seconds: float) -> dict[str, float]:
        """tokens/s over all ranks, the MFU estimate when the device peak is known, and peak memory."""
        rate = tokens / seconds if seconds > 0 else 0.0
        steps = max(1.0, tokens / self.tokens_per_step)
        out = {"tokens_per_s": rate, "step_time_s": seconds / steps, **memory_stats(self.d.device)}
        if self.peak:
            out["mfu"] = rate * self.flops_per_token / (self.peak * 1e12 * self.d.world)
        return out
