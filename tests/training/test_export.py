"""Export to a Hugging Face LlamaForCausalLM folder that transformers loads offline, with matching logits, a model
card that tells the run's data, config, held-out score and command, and the trained context as model_max_length."""
from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
import yaml

from tests.training.markov import write_markov_shards
from training.checkpoint import load_model_weights
from training.export import export, main
from training.model import Llama, ModelConfig

pytestmark = pytest.mark.slow


def byte_bpe(path: Path, vocab: int) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    text = [p.read_text(encoding="utf-8") for p in sorted((Path(__file__).parents[2] / "training").rglob("*.py"))]
    tok.train_from_iterator(text, trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<|endoftext|>", "<|pad|>"],
                                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.save(str(path))
    return path


# A tokenize manifest as pipelines.tokenize writes it (transforms/beam/packing.py), with a two-source mixture.
MANIFEST = {"seq_len": 32, "vocab_size": 64, "eos_id": 0, "tokenizer_sha256": "markov", "config": "mixture",
            "sources": {"code": {"documents": 40, "tokens_available": 9000, "tokens_taken": 8000,
                                 "target_weight": 0.2, "realised_weight": 0.18, "realised_repeats": 0.89},
                        "web": {"documents": 300, "tokens_available": 40000, "tokens_taken": 36000,
                                "target_weight": 0.8, "realised_weight": 0.82, "realised_repeats": 0.9}},
            "splits": {"train": {"shards": 4, "documents": 320, "rows": 1248, "tokens": 39936},
                       "valid": {"shards": 1, "documents": 20, "rows": 124, "tokens": 3968}}}
ARGS = ["--config", "tiny", "model.vocab_size=320", "model.dim=32", "model.n_layers=2", "model.ffn_dim=64",
        "train.steps=3", "train.micro_batch_size=2", "log.tensorboard=false", "eval.batches=1", "eval.every=2",
        "checkpoint.every=2"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """Three steps of the tiny model, evaluated and checkpointed at steps 2 and 3."""
    root = tmp_path_factory.mktemp("export")
    write_markov_shards(root / "tokens", vocab=64)
    (root / "tokens" / "manifest.json").write_text(json.dumps(MANIFEST))
    out = root / "run"
    subprocess.run([sys.executable, "-m", "training.pretrain", *ARGS, *launch_args(out)], check=True,
                   capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return out


def launch_args(out: Path) -> list[str]:
    return [f"data.path={out.parent / 'tokens'}", f"output={out}"]


def read_card(path: Path) -> tuple[dict, str]:
    """README.md split into its YAML front matter (between the first two --- lines) and the Markdown body."""
    text = path.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    front, body = text[4:].split("\n---\n", 1)
    return yaml.safe_load(front), body


def evals_up_to(run: Path, step: int) -> dict:
    """The last held-out evaluation at or before `step`, read straight from metrics.jsonl."""
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if "eval_loss" in r and r["step"] <= step][-1]


@pytest.mark.parametrize("tied", [True, False])
def test_exported_model_loads_offline_and_matches_our_logits(tmp_path, tied):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=320, dim=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=64, max_seq_len=64,
                      tie_embeddings=tied, rope_theta=500.0)
    ours = Llama(cfg).eval()
    from training.export import hf_tokenizer, to_hf

    hf_dir = tmp_path / "hf"
    to_hf(ours, eos_id=0, pad_id=1).save_pretrained(hf_dir)
    hf_tokenizer(byte_bpe(tmp_path / "tok.json", 300)).save_pretrained(hf_dir)
    loaded = AutoModelForCausalLM.from_pretrained(hf_dir, local_files_only=True).eval()
    x = torch.randint(0, 320, (2, 40))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x).logits, ours(x), rtol=1e-5, atol=1e-5)
    tok = AutoTokenizer.from_pretrained(hf_dir, local_files_only=True)
    text = "def f(x):\n    return x  # é ∑"
    assert tok.decode(tok(text)["input_ids"]) == text and tok.eos_token == "<|endoftext|>"


def test_cli_exports_the_newest_checkpoint_of_a_run(run, tmp_path):
    from transformers import AutoModelForCausalLM

    tok = byte_bpe(tmp_path / "tok.json", 300)
    assert main(["--run", str(run), "--out", str(tmp_path / "hf"), "--tokenizer", str(tok)]) == 0
    ours = Llama(ModelConfig(vocab_size=320, dim=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=64, max_seq_len=32,
                             tie_embeddings=True))
    meta = load_model_weights(run, ours)
    assert meta["step"] == 3
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "hf", local_files_only=True).eval()
    x = torch.randint(0, 320, (1, 32))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x).logits, ours.eval()(x), rtol=1e-5, atol=1e-5)
    assert (tmp_path / "hf" / "model.safetensors").is_file() and (tmp_path / "hf" / "tokenizer.json").is_file()


def test_export_refuses_a_folder_without_checkpoints_and_a_too_big_tokenizer(run, tmp_path):
    assert main(["--run", str(tmp_path), "--out", str(tmp_path / "hf")]) == 2
    big = byte_bpe(tmp_path / "big.json", 400)
    with pytest.raises(Exception, match="tokenizer"):
        export(run, tmp_path / "hf2", tokenizer=str(big))


@pytest.mark.parametrize("checkpoint", [None, "step-00000002"])
def test_the_export_carries_a_model_card_and_the_trained_context(run, tmp_path, checkpoint):
    """README.md: Hugging Face front matter (library, tags, the held-out loss and perplexity of the last evaluation up
    to the exported step, as metrics.jsonl has them), then the mixture and shards the run read, its resolved config
    and the command that launched it. The tokenizer's model_max_length is the shards' 32 tokens, not 1e30."""
    from transformers import AutoTokenizer

    tok = byte_bpe(tmp_path / "tok.json", 300)
    source = run if checkpoint is None else run / "checkpoints" / checkpoint
    assert main(["--run", str(source), "--out", str(tmp_path / "hf"), "--tokenizer", str(tok)]) == 0
    assert AutoTokenizer.from_pretrained(tmp_path / "hf", local_files_only=True).model_max_length == 32
    front, body = read_card(tmp_path / "hf" / "README.md")
    expected = evals_up_to(run, 3 if checkpoint is None else 2)
    assert expected["step"] == (3 if checkpoint is None else 2)
    assert front["library_name"] == "transformers" and {"refinery", "trainer-baseline"} <= set(front["tags"])
    metrics = {m["type"]: m["value"] for m in front["model-index"][0]["results"][0]["metrics"]}
    assert metrics == {"loss": expected["eval_loss"], "perplexity": expected["eval_ppl"]}
    assert metrics["perplexity"] == pytest.approx(math.exp(metrics["loss"]), rel=1e-12)
    assert (f"Held-out loss {expected['eval_loss']:.4f} nats/token, perplexity {math.exp(expected['eval_loss']):.2f}, "
            f"at step {expected['step']} over 64 held-out tokens") in body  # 1 batch x 2 rows x 32 tokens
    for name, source_stats in MANIFEST["sources"].items():
        assert (f"| {name} | {source_stats['documents']:,} | {source_stats['tokens_taken']:,} | "
                f"{source_stats['target_weight']} | {source_stats['realised_weight']} |") in body
    for split, label in (("train", "Train"), ("valid", "Held-out")):
        files = sorted((run.parent / "tokens" / split).glob("*.parquet"))
        tokens = [pq.ParquetFile(f).metadata.num_rows * 32 for f in files]
        assert f"{label} shards the run read ({sum(tokens):,} tokens):" in body
        assert all(f"| {f.name} | {n:,} |" in body for f, n in zip(files, tokens))
    config = yaml.safe_load(body.split("```yaml\n", 1)[1].split("```", 1)[0])
    assert config == yaml.safe_load((run / "config.yaml").read_text()) and config["train"]["steps"] == 3
    command = "python -m training.pretrain " + " ".join(shlex.quote(a) for a in [*ARGS, *launch_args(run)])
    assert f"Started:\n\n```bash\n{command}\n```" in body


def test_a_lone_checkpoint_gets_a_card_that_says_what_is_missing(tmp_path):
    """A checkpoint folder outside any run: the card has no model-index and says it found no run, rather than guess."""
    from tests.training.test_run_folder import save_one_checkpoint

    save_one_checkpoint(tmp_path / "ckpts")
    assert main(["--run", str(tmp_path / "ckpts"), "--out", str(tmp_path / "hf")]) == 0
    front, body = read_card(tmp_path / "hf" / "README.md")
    assert front["library_name"] == "transformers" and "model-index" not in front
    assert "No held-out evaluation at or before this step" in body and "## Missing from this card" in body
    assert f"- no run folder (config.yaml, metrics.jsonl) above {tmp_path / 'ckpts' / 'step-00000001'}" in body
