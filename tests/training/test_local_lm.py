"""Local learning on our language model: isolated modules, real memory savings, and the trainer end to end."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.training.markov import write_markov_shards
from tests.training.test_trainer import SMALL, pretrain, pretrain_here
from training.local.core import LocalModel, backprop_step, local_step, plan_modules
from training.local.lm_backbone import aux_builder, backbone, lm_loss
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


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("markov")
    write_markov_shards(root)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("method,ranks,extra,rel", [
    # MAN's EMA follows the next rank's block as it began the step (one step older than in one process)
    ("man", 2, ["--microbatches=4", "train.tokens_per_step=256", "local.clip=module"], 1e-4),
    # one clipping norm over the pipeline; 4 rows in 3 microbatches (padded); a traced window of two steps
    ("greedy", 2, ["--microbatches=3", "local.clip=global", "pipeline.trace_steps=[2,3]"], 1e-5),
    # 2 replicas x 2 stages vs 2 data-parallel ranks, per-module clipping
    ("auglocal", 4, ["--microbatches=2", "pipeline.dp=2", "local.clip=module"], 1e-5),
])
def test_decoupled_pipeline_trainer_follows_the_local_trainer_and_exports(shards, tmp_path, method, ranks, extra, rel):
    """Each rank updates its module without waiting for a later backward, yet the run is the one-process local
    run step for step; both checkpoints export to the same Hugging Face model."""
    from transformers import AutoModelForCausalLM

    from training.checkpoint import load_model_weights
    from training.export import export

    common = ["--config", "tiny", f"data.path={shards}", *SMALL, "train.steps=6", "eval.every=3", "model.n_layers=4",
              "checkpoint.every=0", "model.tie_embeddings=false", f"--method={method}", "--blocks=2"]
    same = [e for e in extra if e.startswith(("train.tokens_per_step", "local.clip"))]
    pretrain(*common, *same, "--trainer=local", f"output={tmp_path / 'local'}", ranks=ranks // 2)
    pretrain(*common, *extra, "--trainer=decoupled", f"output={tmp_path / 'pipe'}", ranks=ranks)
    keep = lambda r: {k: v for k, v in r.items() if k in ("step", "loss", "grad_norm", "eval_loss")  # noqa: E731
                      or k.startswith(("local_loss_", "local_grad_norm_"))}
    local = [keep(r) for r in read_metrics(tmp_path / "local") if not r.get("summary")]
    pipe = [keep(r) for r in read_metrics(tmp_path / "pipe") if not r.get("summary")]
    assert len(local) == len(pipe) and any("local_loss_1" in r for r in pipe)
    for a, b in zip(local, pipe):
        assert a.keys() == b.keys() and all(a[k] == pytest.approx(b[k], rel=rel, abs=1e-6) for k in a), (a, b)
    if "pipeline.trace_steps=[2,3]" in extra:
        traced = next(r for r in read_metrics(tmp_path / "pipe") if "pp_bubble_measured" in r)
        assert traced["step"] == 3 and traced["pp_traced_steps"] == 2 and 0 < traced["pp_bubble_measured"] < 1
        trace = json.loads((tmp_path / "pipe" / "pipeline" / "steps-2-3.trace.json").read_text())
        assert len([e for e in trace["traceEvents"] if e.get("ph") == "X"]) == 2 * 2 * 3 * 2  # ranks x steps x m x F/B

    x = torch.randint(0, 64, (2, 32))
    logits = []
    for run in ("local", "pipe"):
        hf = AutoModelForCausalLM.from_pretrained(export(tmp_path / run, tmp_path / f"hf-{run}"),
                                                  local_files_only=True).eval()
        with torch.no_grad():
            logits.append(hf(x).logits)
    ours = Llama(ModelConfig(vocab_size=64, dim=32, n_layers=4, n_heads=4, n_kv_heads=2, ffn_dim=64, max_seq_len=32,
                             tie_embeddings=False))
    assert load_model_weights(tmp_path / "local", ours)["step"] == 6
    with torch.no_grad():
        torch.testing.assert_close(logits[0], ours.eval()(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logits[1], logits[0], rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_decoupled_pipeline_needs_one_module_per_rank(shards, tmp_path, capsys):
    status, err = pretrain_here(capsys, "--config", "tiny", f"data.path={shards}", *SMALL, "model.tie_embeddings=false",
                                "--blocks=2", "--trainer=decoupled", f"output={tmp_path}")
    assert status == 2 and "local.blocks (2) must equal the ranks per replica (1" in err and err.count("\n") == 1
