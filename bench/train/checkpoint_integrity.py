"""What checkpoint integrity costs: a save with digests and the non-finite check vs DCP's bare save, and the
verification a resume runs, on a model of a given config (default 150m: ~1.9 GB with AdamW state).

Issue 14: a bit-flipped shard trained from garbage and a NaN run pruned every good checkpoint, so each save now
checks the state is finite and records the SHA-256 of every file, and each resume checks them. One process,
one core; each pass saves the same state both ways (alternated) into fresh folders on the same disk; medians of
--repeats. Also the throughput of the digests hashlib offers, over the checkpoint's own files.

python -m bench.train.checkpoint_integrity --config 150m --repeats 3
"""
from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import OUT, machine, pin_one_core


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="150m", help="a configs/train name; its model shape is saved")
    parser.add_argument("--vocab", type=int, default=32768, help="vocabulary of the model (the shards' normally)")
    parser.add_argument("--repeats", type=int, default=3, help="alternated passes; medians reported")
    args = parser.parse_args()
    pin_one_core()
    import torch
    import torch.distributed.checkpoint as dcp

    from training import checkpoint
    from training.config import load_config
    from training.distributed import Dist
    from training.integrity import file_digest, nonfinite_entries
    from training.model import Llama, ModelConfig
    from training.optim import build_optimizer
    from training.pretrain import build_model_config

    torch.set_num_threads(1)
    cfg = load_config(args.config)
    model_cfg: ModelConfig = build_model_config(cfg, vocab_size=args.vocab, seq_len=cfg.model.max_seq_len or 2048)
    model = Llama(model_cfg)
    optimizer = build_optimizer(model, cfg.optim, fused=False)
    for p in model.parameters():  # one step fills AdamW's moments, so the optimizer state has its real size
        p.grad = torch.zeros_like(p)
    optimizer.step()
    d = Dist(rank=0, world=1, local_rank=0, device=torch.device("cpu"))
    times: dict[str, list[float]] = {k: [] for k in ("dcp_save", "refinery_save", "finite_check", "verify")}
    digests: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(dir=OUT.parent) as tmp:
        for rep in range(args.repeats):
            bare = Path(tmp) / f"bare-{rep}"
            model_sd, optim_sd = checkpoint.parts_state([model], [optimizer])
            start = time.perf_counter()
            with checkpoint.quiet_if_single(False):
                dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=str(bare))
            times["dcp_save"].append(time.perf_counter() - start)
            start = time.perf_counter()
            nonfinite_entries({"model": model_sd, "optim": optim_sd})
            times["finite_check"].append(time.perf_counter() - start)
            start = time.perf_counter()
            path = checkpoint.save(Path(tmp) / "ours", d=d, step=rep + 1, tokens=0, parts=[model],
                                   optimizers=[optimizer], rank_state={}, meta={}, keep=1)
            times["refinery_save"].append(time.perf_counter() - start)
            start = time.perf_counter()
            _, problem = checkpoint.verify(path, d)
            times["verify"].append(time.perf_counter() - start)
            assert problem is None, problem
            files = [p for p in bare.iterdir() if p.is_file()]
            for name in ("sha256", "blake2b", "md5", "sha1"):
                start = time.perf_counter()
                for f in files:
                    with f.open("rb") as fh:
                        hashlib.file_digest(fh, name)
                digests.setdefault(name, []).append(time.perf_counter() - start)
            size = sum(f.stat().st_size for f in files)
            assert file_digest(files[0])  # the product's digest runs on these files too
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {"machine": machine(), "config": args.config, "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
              "checkpoint_gb": round(size / 1e9, 2), "reps": args.repeats, "median_s": {k: round(v, 2) for k, v in med.items()},
              "save_ratio": round(med["refinery_save"] / med["dcp_save"], 2),
              "digest_gb_per_s": {k: round(size / 1e9 / statistics.median(v), 2) for k, v in digests.items()}}
    (OUT / "checkpoint_integrity.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
