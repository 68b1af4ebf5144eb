"""Local learning vs backprop on scikit-learn digits: accuracy, per-layer linear probes, activation memory, FLOPs.

Data: load_digits (1,797 8x8 images), one stratified 60/20/20 train/val/test split (seed 0), standardised with
train statistics; flat (64) for the MLP, 1x8x8 for the mini-ResNet.
Networks: MLP 64-256-256-256-10 (training-anchors §3.7), one module per hidden layer (K=3); mini-ResNet of a
conv stem and 5 BasicBlocks (widths 8,8,8,16,16,16; 8x8 -> 4x4), one module per block (K=6).
Methods: backprop; greedy (fresh copy of the next block + head, DGL/InfoPro-like); AugLocal (unifSamp, d=2,
pyramid τ=0.5); MAN (EMA m=0.995 + learnable copy of the next block); Mono-Forward (projection head per block);
Forward-Forward (MLP only; label appended, θ=2 on mean goodness, prediction by goodness summed over layers).
Tuning, the same for every method: Adam, batch 64, fixed epochs per network, learning rate from --lrs picked by
validation accuracy of seed 0; then every seed trains at that rate; test accuracy mean ± sd over seeds. "best exit"
takes each seed's module head (or FF layer) with the best validation accuracy. After training, BatchNorm statistics
are recomputed over the train split with the final weights for every method (precise BN; stale running averages
cost the local ResNets 7-9 points, backprop about 1). Probes: logistic regression on
each block's frozen, standardised output (flattened), trained on the train split, scored on test (seed 0 model).
Memory: peak saved-activation bytes of one training step at batch 64 (training/memory.py), and forward+backward
FLOPs (torch flop counter), each relative to backprop on the same network; plus a K sweep on a deeper ResNet.

BENCH_CORE=0 python -m bench.train.local_digits                # all of it, ~10 min on one core
python -m bench.train.local_digits --quick                      # 1 seed, 2 rates, few epochs: a smoke run
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from bench.common import OUT, pin_one_core
from bench.train.local_research.forward_forward import FFConfig, ForwardForward, ff_step
from bench.train.local_research.loop import fit, recalibrate_batchnorm
from bench.train.local_research.measure import saved_peak_bytes, step_flops
from bench.train.local_research.mono_forward import mono_forward
from bench.train.local_research.nets import mlp, resnet
from training.local import LocalModel, auglocal, backprop_step, greedy, local_step, man, plan_modules, trainable
from training.local.core import Backbone

RESNET = dict(widths=(8, 8, 8, 16, 16, 16), strides=(1, 1, 1, 2, 1, 1))
DEEP_RESNET = dict(widths=(16,) * 4 + (32,) * 4, strides=(1, 1, 1, 1, 2, 1, 1, 1))  # K sweep, memory only
LOCAL_AUX = {"greedy": lambda: greedy(), "auglocal": lambda: auglocal(depth=2), "man": lambda: man()}


@dataclass(frozen=True, kw_only=True, slots=True)
class Trainee:
    """One freshly built network and how to train, predict with, and probe it."""

    model: nn.Module
    step: Callable[[torch.Tensor, torch.Tensor], list[float]]
    after_step: Callable[[], None] | None
    predict: Callable[[torch.Tensor], torch.Tensor]  # the method's own prediction rule
    exits: Callable[[torch.Tensor], list[torch.Tensor]]  # per-module (FF: per-layer) predicted labels
    features: Callable[[torch.Tensor], list[torch.Tensor]]  # each block's output, for probes


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--lrs", type=float, nargs="+", default=[3e-3, 1e-2, 3e-2], help="the shared Adam grid")
    p.add_argument("--mlp-epochs", type=int, default=30)
    p.add_argument("--resnet-epochs", type=int, default=10)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--quick", action="store_true", help="1 seed, 2 rates, 3 epochs: checks the script runs")
    p.add_argument("--out", type=Path, default=OUT / "local_digits.json")
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.lrs, args.mlp_epochs, args.resnet_epochs = [0], [3e-3, 3e-2], 3, 2
    return args


def load_data() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Fixed stratified 60/20/20 split (seed 0), standardised with the train split's mean and sd."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    d = load_digits()
    idx = np.arange(len(d.target))
    train, rest = train_test_split(idx, test_size=0.4, stratify=d.target, random_state=0)
    val, test = train_test_split(rest, test_size=0.5, stratify=d.target[rest], random_state=0)
    scaler = StandardScaler().fit(d.data[train])
    x = torch.tensor(scaler.transform(d.data), dtype=torch.float32)
    y = torch.tensor(d.target)
    return {name: (x[i], y[i]) for name, i in (("train", train), ("val", val), ("test", test))}


def as_input(net: str, x: torch.Tensor) -> torch.Tensor:
    return x.view(-1, 1, 8, 8) if net == "resnet" else x


def backbone(net: str, **kw) -> Backbone:
    return resnet(**{**RESNET, **kw}) if net == "resnet" else mlp(**kw)


def local_trainee(model: LocalModel, *, bp: bool) -> Trainee:
    step = backprop_step if bp else local_step
    return Trainee(model=model, step=lambda x, y: step(model, x, y), after_step=model.after_step,
                   predict=lambda x: model(x).argmax(1),
                   exits=lambda x: [lg.argmax(1) for lg in model.module_logits(x)],
                   features=model.block_outputs)


def ff_trainee(seed: int) -> Trainee:
    model = ForwardForward(d_in=64, widths=(256, 256, 256), cfg=FFConfig())
    g = torch.Generator().manual_seed(seed)
    return Trainee(model=model, step=lambda x, y: ff_step(model, x, y, generator=g), after_step=None,
                   predict=model.predict, exits=lambda x: list(model.label_goodness(x).argmax(2)),
                   features=lambda x: model.activities(model.embed_neutral(x)))


def build(net: str, method: str, seed: int) -> Trainee:
    """A fresh network for (net, method), initialised from `seed`."""
    torch.manual_seed(seed)
    if method == "forward-forward":
        return ff_trainee(seed)
    bb = backbone(net)
    n = len(bb.blocks)
    if method == "backprop":
        return local_trainee(LocalModel(bb, groups=plan_modules(n, 1), aux=greedy()), bp=True)
    if method == "mono-forward":
        return local_trainee(mono_forward(bb), bp=False)
    return local_trainee(LocalModel(bb, groups=plan_modules(n, n), aux=LOCAL_AUX[method]()), bp=False)


def acc(pred: torch.Tensor, y: torch.Tensor) -> float:
    return (pred == y).float().mean().item()


def train_eval(net: str, method: str, seed: int, lr: float, data: dict, args: argparse.Namespace) -> dict:
    """Train one (method, seed, lr); accuracy of the final rule and of every exit on val and test."""
    t = build(net, method, seed)
    (xtr, ytr), (xva, yva), (xte, yte) = data["train"], data["val"], data["test"]
    epochs = args.resnet_epochs if net == "resnet" else args.mlp_epochs
    start = time.perf_counter()
    t.model.train()
    fit(trainable(t.model), t.step, as_input(net, xtr), ytr, lr=lr, epochs=epochs, batch_size=args.batch,
        seed=seed, after_step=t.after_step)
    wall = time.perf_counter() - start
    recalibrate_batchnorm(t.model, t.exits, as_input(net, xtr), batch_size=args.batch)  # every method; sets eval
    with torch.no_grad():
        xv, xt = as_input(net, xva), as_input(net, xte)
        val_exits = [acc(p, yva) for p in t.exits(xv)]
        test_exits = [acc(p, yte) for p in t.exits(xt)]
        out = {"val": acc(t.predict(xv), yva), "test": acc(t.predict(xt), yte), "wall_s": wall,
               "val_exits": val_exits, "test_exits": test_exits,
               "best_exit_test": test_exits[int(np.argmax(val_exits))]}
    return out | {"trainee": t}


def probe(t: Trainee, net: str, data: dict) -> list[float]:
    """Test accuracy of a logistic regression on each block's frozen output (trained on the train split)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    with torch.no_grad():
        ftr = [f.flatten(1).numpy() for f in t.features(as_input(net, data["train"][0]))]
        fte = [f.flatten(1).numpy() for f in t.features(as_input(net, data["test"][0]))]
    out = []
    for a, b in zip(ftr, fte):
        sc = StandardScaler().fit(a)
        clf = LogisticRegression(max_iter=300).fit(sc.transform(a), data["train"][1].numpy())
        out.append(float(clf.score(sc.transform(b), data["test"][1].numpy())))
    return out


def run_method(net: str, method: str, data: dict, args: argparse.Namespace) -> dict:
    """Pick the rate on seed 0's validation accuracy, train the other seeds at it, probe seed 0's model."""
    tuning = {lr: train_eval(net, method, args.seeds[0], lr, data, args) for lr in args.lrs}
    lr = max(args.lrs, key=lambda r: (tuning[r]["val"], -r))
    runs = [tuning[lr]] + [train_eval(net, method, s, lr, data, args) for s in args.seeds[1:]]
    probes = probe(runs[0]["trainee"], net, data)
    tests, best = [r["test"] for r in runs], [r["best_exit_test"] for r in runs]
    return {"net": net, "method": method, "lr": lr, "tuning_val": {str(r): tuning[r]["val"] for r in args.lrs},
            "val": statistics.mean(r["val"] for r in runs), "test": tests, "best_exit_test": best,
            "test_exits_seed0": runs[0]["test_exits"], "probe_test": probes,
            "wall_s": statistics.mean(r["wall_s"] for r in runs)}


def costs(t: Trainee, net: str, *, batch: int) -> dict:
    """Saved-activation peak and forward+backward FLOPs of one training step at `batch`."""
    g = torch.Generator().manual_seed(0)
    x, y = as_input(net, torch.randn(batch, 64, generator=g)), torch.randint(0, 10, (batch,), generator=g)
    return {"saved_peak_bytes": saved_peak_bytes(t.model, lambda: t.step(x, y)),
            "step_flops": step_flops(t.model, lambda: t.step(x, y))}


def sweep_trainee(method: str, n_modules: int) -> Trainee:
    """The deeper ResNet cut into n_modules modules (backprop when n_modules is 1)."""
    torch.manual_seed(0)
    bb = resnet(**DEEP_RESNET)
    model = LocalModel(bb, groups=plan_modules(len(bb.blocks), n_modules), aux=LOCAL_AUX.get(method, greedy)())
    return local_trainee(model, bp=n_modules == 1)


def methods_for(net: str) -> list[str]:
    local = ["backprop", "greedy", "auglocal", "man", "mono-forward"]
    return local + ["forward-forward"] if net == "mlp" else local


def pct(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):.2f} ± {100 * sd:.2f}"


def report(results: list[dict], memory: list[dict], sweep: list[dict], args: argparse.Namespace) -> str:
    """Markdown tables for BENCHMARKS.md."""
    bp = {r["net"]: statistics.mean(r["test"]) for r in results if r["method"] == "backprop"}
    lines = [f"Seeds {args.seeds}; Adam grid {args.lrs}; epochs MLP {args.mlp_epochs}, ResNet {args.resnet_epochs}; "
             f"batch {args.batch}.", "",
             "| net | method | lr | val % | test % (mean ± sd) | gap to BP (pts) | best exit test % | s / run |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        gap = 100 * (statistics.mean(r["test"]) - bp[r["net"]])
        lines.append(f"| {r['net']} | {r['method']} | {r['lr']:g} | {100 * r['val']:.2f} | {pct(r['test'])} | "
                     f"{gap:+.2f} | {pct(r['best_exit_test'])} | {r['wall_s']:.1f} |")
    lines += ["", "Per-block linear probe, test % (seed 0; logistic regression on frozen block outputs):", "",
              "| net | method | " + " | ".join(f"block {i}" for i in range(6)) + " |", "|---|---|" + "---|" * 6]
    for r in results:
        cells = [f"{100 * v:.1f}" for v in r["probe_test"]] + [""] * (6 - len(r["probe_test"]))
        lines.append(f"| {r['net']} | {r['method']} | " + " | ".join(cells) + " |")
    lines += ["", "One training step at batch 64: saved activations (peak) and FLOPs, relative to backprop:", "",
              "| net | method | K | saved peak KiB | x BP | step MFLOP | x BP |", "|---|---|---|---|---|---|---|"]
    for rows in (memory, sweep):
        for m in rows:
            lines.append(f"| {m['net']} | {m['method']} | {m['k']} | {m['saved_peak_bytes'] / 1024:.0f} | "
                         f"{m['mem_ratio']:.2f} | {m['step_flops'] / 1e6:.0f} | {m['flops_ratio']:.2f} |")
    return "\n".join(lines)


def relative(rows: list[dict], base: dict) -> list[dict]:
    return [r | {"mem_ratio": r["saved_peak_bytes"] / base["saved_peak_bytes"],
                 "flops_ratio": r["step_flops"] / base["step_flops"]} for r in rows]


def measure_memory(batch: int) -> tuple[list[dict], list[dict]]:
    """Costs of every method on both nets, and the K sweep on the deeper ResNet."""
    memory = []
    for net in ("mlp", "resnet"):
        rows = [{"net": net, "method": m, "k": 1 if m == "backprop" else len(backbone(net).blocks)}
                | costs(build(net, m, 0), net, batch=batch) for m in methods_for(net)]
        memory += relative(rows, rows[0])
    n_deep = len(DEEP_RESNET["widths"])
    base = costs(sweep_trainee("backprop", 1), "resnet", batch=batch)
    sweep = [{"net": "resnet-8", "method": "backprop", "k": 1} | base]
    for method in LOCAL_AUX:
        for k in (2, 4, n_deep):
            sweep.append({"net": "resnet-8", "method": method, "k": k}
                         | costs(sweep_trainee(method, k), "resnet", batch=batch))
    return memory, relative(sweep, sweep[0])


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    pin_one_core()
    torch.set_num_threads(1)
    start = time.perf_counter()
    data = load_data()
    results = []
    for net in ("mlp", "resnet"):
        for method in methods_for(net):
            results.append(run_method(net, method, data, args))
            r = results[-1]
            print(f"{net} {method}: lr {r['lr']:g} test {pct(r['test'])} ({time.perf_counter() - start:.0f} s)",
                  flush=True)
    memory, sweep = measure_memory(args.batch)
    table = report(results, memory, sweep, args)
    command = "BENCH_CORE=0 python -m bench.train.local_digits " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"\n{table}\n\nCommand: `{command.strip()}`; total {time.perf_counter() - start:.0f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": command.strip(), "args": {k: str(v) for k, v in vars(args).items()},
                                    "results": results, "memory": memory, "k_sweep": sweep,
                                    "total_s": time.perf_counter() - start}, indent=1))


if __name__ == "__main__":
    main()
