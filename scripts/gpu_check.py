"""The GPU check's figures, one part per process (vLLM frees the GPU only when its process ends); run by gpu_check.sh.

Parts: a small model folder made here (our tokenizer trained on this checkout's Python, a Llama config in the
150m shape; no weights: vLLM's load_format=dummy draws them), vLLM on SwallowCode's SGCR prompts (load time,
generations/s, output tokens/s), the swallowcode pipeline through the vllm backend end to end, the 150m training
config's step time and MFU in bf16 (bench/train/train_speed.py), StreamBP's exactness and peak memory on CUDA.
--dry-run runs every part on the CPU, small, with the transformers backend in place of vLLM: the check's own code
and arguments, for a machine without a GPU (tests/test_packaging.py runs it).
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import fields
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

CHAT_TEMPLATE = ("{% for m in messages %}### {{ m['role'] }}\n{{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}### assistant\n{% endif %}")
PARTS = ("vllm", "swallowcode", "train", "streambp")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="folder for gpu_check.json and the parts' files")
    parser.add_argument("--dry-run", action="store_true", help="CPU, small sizes, transformers instead of vLLM")
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    parser.add_argument("--prompts", type=int, default=512, help="SGCR prompts in the vLLM part")
    parser.add_argument("--max-tokens", type=int, default=256, help="output tokens per generation")
    parser.add_argument("--max-model-len", type=int, default=4096, help="vLLM context; longer prompts are skipped")
    parser.add_argument("--train-steps", type=int, default=12, help="optimizer steps of the 150m config")
    parser.add_argument("--child", choices=PARTS, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.dry_run:
        args.prompts, args.max_tokens, args.train_steps = 4, 8, 3
    return args


def snippets(count: int) -> list[str]:
    """Distinct, compilable pieces of Python: this checkout's top-level functions and classes (no two alike, so
    vLLM's prefix cache cannot skip a prompt's code, and the syntax stage passes them all to the rewrite)."""
    out = []
    for path in sorted(p for pkg in ("transforms", "training", "pipelines") for p in (REPO / pkg).rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        out += [ast.get_source_segment(source, node) for node in ast.parse(source).body
                if isinstance(node, (ast.FunctionDef, ast.ClassDef))]
    return list(dict.fromkeys(out))[:count]


def build_model_folder(folder: Path, *, dry_run: bool, max_model_len: int) -> dict:
    """Our byte-level BPE trained on this checkout's Python + the 150m shape as a LlamaForCausalLM config; weights
    only in a dry run (the transformers backend needs them; vLLM draws dummy ones)."""
    import torch
    from transformers import LlamaForCausalLM

    from training.config import load_config
    from training.export import hf_config, hf_tokenizer
    from training.model import ModelConfig
    from transforms.tokenizer import train_tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    train_tokenizer(snippets(10**6), 2048 if dry_run else 32768).save(str(folder / "tokenizer.json"))
    tok = hf_tokenizer(folder / "tokenizer.json")
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(folder)
    shape = load_config("tiny" if dry_run else "150m").model
    cfg = ModelConfig(**{f.name: getattr(shape, f.name) for f in fields(ModelConfig)}
                      | {"vocab_size": len(tok), "max_seq_len": max_model_len})
    hf = hf_config(cfg, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id, dtype=torch.bfloat16)
    hf.save_pretrained(folder)
    if dry_run:
        LlamaForCausalLM(hf).save_pretrained(folder)
    return {"folder": str(folder), "vocab": len(tok), "dim": cfg.dim, "n_layers": cfg.n_layers,
            "max_model_len": max_model_len, "weights": "random (saved)" if dry_run else "vLLM load_format=dummy"}


def generation_settings(args: argparse.Namespace, *, batch_size: int, vllm: bool) -> dict:
    """GenerationConfig keys: vLLM with dummy bf16 weights on the GPU, the transformers backend in a dry run."""
    common = {"max_tokens": args.max_tokens, "batch_size": batch_size,
              "max_prompt_tokens": args.max_model_len - args.max_tokens}
    if not vllm:
        return {"backend": "transformers", **common}
    return {"backend": "vllm", "load_format": "dummy", "dtype": "bfloat16", "max_model_len": args.max_model_len,
            "gpu_memory_utilization": 0.85, **common}


def vllm_part(args: argparse.Namespace, model: Path) -> dict:
    """SGCR prompts on the model through our vllm backend: engine load, then one batch's generations/s."""
    from transforms.llm.handlers import GenerationConfig, PromptCounter, build_handler
    from transforms.llm.prompts import load_prompt, render_messages
    from transforms.llm.vllm_api import chat_args, engine_args, sampling_args

    cfg, vllm_cfg = (GenerationConfig(model_path=str(model), **generation_settings(
        args, batch_size=args.prompts, vllm=vllm)) for vllm in (not args.dry_run, True))  # vllm_cfg: what vLLM gets
    count = PromptCounter(str(model))
    prompt = load_prompt("sgcr")
    conversations = [m for m in (render_messages(prompt, s) for s in snippets(args.prompts))
                     if count(m) <= cfg.max_prompt_tokens]
    row = {"backend": cfg.backend, "prompts": len(conversations), "max_tokens": cfg.max_tokens,
           "vllm_llm_args": engine_args(vllm_cfg), "vllm_sampling_args": sampling_args(vllm_cfg),
           "vllm_chat_args": chat_args()}
    handler = build_handler(cfg)
    start = time.perf_counter()
    handler.load()
    row["load_s"] = round(time.perf_counter() - start, 1)
    start = time.perf_counter()
    generations = handler.generate(conversations)
    seconds = time.perf_counter() - start
    return row | {"generate_s": round(seconds, 2), "generations_per_s": round(len(generations) / seconds, 2),
                  "output_tokens_per_s": round(sum(g.completion_tokens for g in generations) / seconds),
                  "prompt_tokens_mean": round(sum(g.prompt_tokens for g in generations) / len(generations)),
                  "finish_reasons": dict(Counter(g.finish_reason for g in generations))}


def swallowcode_part(args: argparse.Namespace, model: Path, work: Path) -> dict:
    """python -m pipelines.swallowcode on snippet files: syntax -> SGCR -> SCOR through the backend, one worker."""
    import yaml

    from core.resources import find_config

    inputs = work / "code"
    inputs.mkdir(parents=True, exist_ok=True)
    codes = snippets(args.prompts)
    for i, code in enumerate(codes):
        (inputs / f"snippet_{i:04d}.py").write_text(code + "\n", encoding="utf-8")
    recipe = yaml.safe_load(find_config("default", folder="swallowcode", what="recipe", flag="--config").read_text())
    recipe |= {"name": "gpu-check", "lint": None,  # pylint is CPU work; this part times the rewrite stages
               "generation": {**recipe["generation"],
                              **generation_settings(args, batch_size=args.prompts, vllm=not args.dry_run)}}
    (work / "recipe.yaml").write_text(yaml.safe_dump(recipe), encoding="utf-8")
    cmd = [sys.executable, "-m", "pipelines.swallowcode", f"--input={inputs}/*.py", f"--config={work / 'recipe.yaml'}",
           f"--model={model}", f"--output={work / 'out'}", "--runner=DirectRunner", "--direct_num_workers=1"]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - start
    (work / "swallowcode.log").write_text(done.stdout + done.stderr, encoding="utf-8")
    if done.returncode != 0:
        raise RuntimeError(f"swallowcode exited {done.returncode} (log: {work / 'swallowcode.log'})\n"
                           f"{done.stderr[-2000:]}")
    stats = json.loads((work / "out" / "stats.json").read_text(encoding="utf-8"))
    stages = {k: v for k, v in stats["stages"].items() if k.startswith(("sgcr", "scor"))}
    generated = sum(v.get("other", {}).get("generated", 0) for v in stages.values())
    return {"inputs": len(codes), "wall_s": round(wall, 1), "generated": generated,
            "generations_per_s_incl_load": round(generated / wall, 2), "stages": stages, "command": cmd}


def train_part(args: argparse.Namespace, work: Path) -> dict:
    """The 150m config (bf16 autocast, torch.compile, its tokens per step) on synthetic shards of random ids, as
    bench/train/train_speed.py runs it; median step time and MFU of the logged windows after the first (compilation)."""
    import statistics

    from bench.train.train_speed import write_synthetic
    from training.metrics import read_metrics

    config, seq_len, vocab = ("tiny", 256, 2048) if args.dry_run else ("150m", 2048, 32768)
    every = 1 if args.dry_run else 2
    write_synthetic(work / "tokens", tokens=(args.train_steps + 2) * (2**20 if not args.dry_run else 4096),
                    vocab=vocab, seq_len=seq_len)
    cmd = [sys.executable, "-m", "training.pretrain", "--config", config, f"data.path={work / 'tokens'}",
           f"output={work / 'run'}", f"train.steps={args.train_steps}", f"log.every={every}", "eval.every=0",
           "checkpoint.every=0", "log.progress=false", "log.tensorboard=false", f"model.max_seq_len={seq_len}",
           *(["train.micro_batch_size=2"] if args.dry_run else [])]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {done.returncode}\n{done.stderr[-2000:]}")
    records = [r for r in read_metrics(work / "run") if "tokens_per_s" in r and not r.get("summary")]
    windows = records[1:] or records
    mfu = [r["mfu"] for r in windows if "mfu" in r]
    return {"config": config, "seq_len": seq_len, "vocab": vocab, "steps": args.train_steps,
            "step_s": round(statistics.median(r["step_time_s"] for r in windows), 3),
            "tokens_per_s": round(statistics.median(r["tokens_per_s"] for r in windows)),
            "mfu": round(statistics.median(mfu), 4) if mfu else None,
            "mem_peak_mib": round(max(r["mem_peak_mib"] for r in windows)), "command": cmd}


def child(args: argparse.Namespace) -> dict:
    model, work = args.out / "model", args.out / args.child
    if args.child == "vllm":
        return vllm_part(args, model)
    if args.child == "swallowcode":
        return swallowcode_part(args, model, work)
    if args.child == "train":
        return train_part(args, work)
    from scripts.gpu_check_streambp import streambp_part

    return streambp_part(dry_run=args.dry_run)


def run_child(part: str, argv: list[str]) -> dict:
    """One part in a fresh process; its last stdout line is its JSON."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, *argv, "--child", part], cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": done.returncode, "stderr": done.stderr[-3000:], "seconds": round(time.perf_counter() - start)}
    return json.loads(done.stdout.strip().splitlines()[-1]) | {"seconds": round(time.perf_counter() - start, 1)}


def environment() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    import torch

    def installed(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    return {"python": sys.version.split()[0], "torch": torch.__version__, "cuda": torch.version.cuda,
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
            **{name: installed(name) for name in ("vllm", "transformers", "apache-beam")}}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return 0
    start = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"dry_run": args.dry_run, "env": environment(),
              "model": build_model_folder(args.out / "model", dry_run=args.dry_run, max_model_len=args.max_model_len)}
    for part in args.parts:
        report[part] = run_child(part, argv)
        print(f"{part}: {json.dumps(report[part])[:400]}", flush=True)
    report["seconds"] = round(time.perf_counter() - start, 1)
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(json.dumps(report, indent=2))
    return 1 if any("error" in report[p] for p in args.parts) else 0


if __name__ == "__main__":
    sys.exit(main())
