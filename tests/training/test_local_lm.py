"""Local learning on our language model: isolated modules, real memory savings, and the trainer end to end."""
from __future__ import annotations

import pytest
import torch

from tests.training.markov import write_markov_shards
from tests.training.test_trainer import SMALL, pretrain
from training.local.core import LocalModel, backprop_step, local_step, plan_modules
from training.local.llama import aux_builder, backbone, lm_loss
from training.memory import SavedActivations
from training.metrics import read_metrics
from training.model import Llama, ModelConfig


def local_lm(method: str, k: int, *, layers: int = 8, vocab: int = 512) -> tuple[Llama, LocalModel]:
    torch.manual_seed(0)
    llama = Llama(ModelConfig(vocab_size=vocab, dim=64, n_layers=layers, n_heads=4, ffn_dim=128, max_seq_len=64))
    return llama, LocalModel(backbone(llama), groups=plan_modules(layers, k), aux=aux_builder(method, aux_depth=2))


def batch(vocab: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, vocab, (4, 64), generator=g), torch.randint(0, vocab, (4, 64), generator=g)


@pytest.mark.parametrize("method", ["greedy", "auglocal", "man"])
def test_each_module_learns_only_from_its_own_loss(method):
    """Module 0's gradients equal those of its aux loss alone: nothing arrives from later modules' losses."""
    _, model = local_lm(method, 2)
    x, y = batch()
    local_step(model, x, y, loss_fn=lm_loss())
    got = {n: p.grad.clone() for n, p in model.parts[0].named_parameters()}
    model.zero_grad()
    lm_loss()(model.auxes[0](model.parts[0](x)), y).backward()
    for name, p in model.parts[0].named_parameters():
        torch.testing.assert_close(got[name], p.grad, rtol=0, atol=0)


def test_tied_embeddings_are_refused_with_the_fix():
    llama = Llama(ModelConfig(vocab_size=64, dim=32, n_layers=2, n_heads=4, max_seq_len=16, tie_embeddings=True))
    with pytest.raises(ValueError, match="tie_embeddings=false"):
        backbone(llama)


@pytest.mark.parametrize("method", ["greedy", "auglocal", "man"])
def test_activation_memory_at_k4_is_at_most_0_6_of_backprop(method):
    """Saved activations (saved_tensors_hooks): one module plus its aux net at a time, not the whole network."""
    llama, model = local_lm(method, 4)
    x, y = batch()
    with SavedActivations(model) as local:
        local_step(model, x, y, loss_fn=lm_loss())
    with SavedActivations(llama) as full:
        backprop_step(llama, x, y, loss_fn=lm_loss())
    assert local.peak_bytes <= 0.6 * full.peak_bytes, (local.peak_bytes, full.peak_bytes)


@pytest.mark.slow
def test_local_trainer_with_man_learns_through_the_real_head(tmp_path):
    write_markov_shards(tmp_path / "tokens")
    run = tmp_path / "run"
    pretrain("--config", "tiny", f"data.path={tmp_path / 'tokens'}", *SMALL, "train.steps=40", "eval.every=20",
             "checkpoint.every=0", "--trainer=local", "--method=man", "--blocks=2", "model.tie_embeddings=false",
             "optim.lr=1e-2", f"output={run}")
    records = read_metrics(run)
    evals = [r["eval_loss"] for r in records if "eval_loss" in r and not r.get("summary")]
    assert len(evals) == 2 and evals[1] < evals[0] < 4.2
    assert any("local_loss_0" in r for r in records)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["greedy", "man"])
def test_decoupled_pipeline_gives_the_local_gradients(method):
    """Two ranks, each updating its module without waiting for the other's backward: the same gradients."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    here = Path(__file__).resolve().parent
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                           str(here / "local_pipeline_check.py"), method], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(here.parents[1])})
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("{")))
    assert not result["missing"] and result["grad_err"] <= 1e-6, result
