"""Issue 5 item 7: werp output -> tokenizer -> tokenize -> the tiny model, whose held-out loss beats the unigram bar.

The same chain as scripts/train_demo.sh, smaller (1,000 synthetic articles, 150 steps), every step through its
real command line, in a temporary folder.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from core.resources import configs_dir
from training.metrics import read_metrics

pytestmark = pytest.mark.slow


def run(*args: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    proc = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, f"{args[0]} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_werp_to_tokens_to_a_model_that_learns(tmp_path):
    crawl, werp, tok, tokens, train = (tmp_path / n for n in ("crawl.warc.gz", "werp", "tok.json", "tokens", "train"))
    run("pipelines.sample_warc", str(crawl), "--articles", "1000")
    run("pipelines.werp", "--runner=DirectRunner", f"--input={crawl}", f"--output={werp}")
    run("transforms.tokenizer", "train", "--input", f"{werp}/documents/*.parquet", "--vocab_size", "1024",
        "--output", str(tok))
    config = yaml.safe_load((configs_dir() / "tokenize" / "demo.yaml").read_text())
    config.update(tokenizer=str(tok), sources=[{**config["sources"][0], "paths": [f"{werp}/documents/*.parquet"]}],
                  valid_fraction=0.1)
    (tmp_path / "tokenize.yaml").write_text(yaml.safe_dump(config))
    run("pipelines.tokenize", "--runner=DirectRunner", f"--config={tmp_path / 'tokenize.yaml'}", f"--output={tokens}")
    manifest = json.loads((tokens / "manifest.json").read_text())
    bar = manifest["unigram_entropy"]["nats_per_token"]
    out = run("training.pretrain", "--config", "tiny", f"data.path={tokens}", f"output={train}", "train.steps=150",
              "eval.every=50", "checkpoint.every=0", "log.progress=false", "log.tensorboard=false")
    evals = [r["eval_loss"] for r in read_metrics(train) if "eval_loss" in r and not r.get("summary")]
    assert len(evals) == 3 and evals[0] > evals[-1]
    assert evals[-1] < bar - 1.0, (evals, bar, out[-2000:])  # well below: context is being used
    run("training.export", "--run", str(train), "--out", str(tmp_path / "hf"))
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tmp_path / "hf", local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "hf", local_files_only=True)
    assert tokenizer.eos_token == "<|endoftext|>" and model.config.vocab_size == manifest["vocab_size"]
