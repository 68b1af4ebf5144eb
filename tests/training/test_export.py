"""Export to a Hugging Face LlamaForCausalLM folder that transformers loads offline, with matching logits."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

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


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("export")
    write_markov_shards(root / "tokens", vocab=64)
    out = root / "run"
    args = ["--config", "tiny", f"data.path={root / 'tokens'}", f"output={out}", "model.vocab_size=320",
            "model.dim=32", "model.n_layers=2", "model.ffn_dim=64", "train.steps=3", "train.micro_batch_size=2",
            "log.tensorboard=false", "eval.batches=1"]
    subprocess.run([sys.executable, "-m", "training.pretrain", *args], check=True, capture_output=True,
                   env={**os.environ, "OMP_NUM_THREADS": "1"})
    return out


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
