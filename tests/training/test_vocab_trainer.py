"""trainer=pipeline with pipeline.vocab_parallel=true on 2 gloo ranks follows the one-process baseline trainer
step for step (loss, learning rate, held-out loss; the tolerances of test_pipeline.py), with tied embeddings,
gradient accumulation and a traced step, for Vocab-1 on 1F1B and Vocab-2 on interleaved 1F1B; its checkpoint
reads back whole as the baseline's model (what export reads). Bitwise resume: test_preemption.py's case."""
from __future__ import annotations

import json

import pytest
import torch

from tests.training.test_pipeline import close_curves, shards  # noqa: F401 - the shards fixture
from tests.training.test_trainer import SMALL, curve, pretrain
from training.checkpoint import load_model_weights, resolve, verified_meta
from training.export import to_hf
from training.metrics import read_metrics
from training.model import Llama, ModelConfig

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("extra", [
    ["--schedule=1f1b", "--microbatches=4", "pipeline.vocab_barriers=1", "train.tokens_per_step=256",
     "pipeline.trace_steps=[2]"],
    ["--schedule=interleaved1f1b", "--microbatches=2", "pipeline.vocab_barriers=2", "model.tie_embeddings=false"],
], ids=["vocab1-1f1b-tied-traced", "vocab2-interleaved-untied"])
def test_vocabulary_parallel_trainer_follows_the_baseline(shards, tmp_path, extra):  # noqa: F811
    common = ["--config", "tiny", f"data.path={shards}", *SMALL, "train.steps=6", "eval.every=3",
              "checkpoint.every=0", "model.n_layers=4"]
    same = [e for e in extra if e.startswith(("train.tokens_per_step", "model."))]
    pretrain(*common, *same, f"output={tmp_path / 'base'}")
    pretrain(*common, *extra, "--trainer=pipeline", "pipeline.vocab_parallel=true", f"output={tmp_path / 'vp'}",
             ranks=2)
    trained = [row for row in curve(tmp_path / "vp") if any(v is not None for v in row[1:])]
    close_curves(curve(tmp_path / "base"), trained)
    if any(e.startswith("pipeline.trace_steps") for e in extra):
        trace = json.loads((tmp_path / "vp" / "pipeline" / "step-2.trace.json").read_text())
        kinds = {e["name"][0] for e in trace["traceEvents"] if e.get("ph") == "X"}
        assert kinds == {"F", "B", "S", "T"}  # the vocabulary passes are on the trace
        record = next(r for r in read_metrics(tmp_path / "vp") if "pp_bubble_measured" in r)
        assert 0 < record["pp_bubble_simulated"] < 1 and 0 < record["pp_bubble_measured"] < 1


def test_a_vocabulary_parallel_checkpoint_holds_the_same_model_as_the_baseline(shards, tmp_path):  # noqa: F811
    """The ranks' row shards form one checkpoint: read back whole (as export reads it), it equals the one-process
    baseline's weights after the same steps, with a vocabulary of 67 rows that 2 ranks split as 34 + 33."""
    common = ["--config", "tiny", f"data.path={shards}", *SMALL, "train.steps=4", "eval.every=0",
              "checkpoint.every=4", "model.n_layers=2", "model.vocab_size=67", "model.tie_embeddings=false"]
    pretrain(*common, f"output={tmp_path / 'base'}")
    pretrain(*common, "--trainer=pipeline", "pipeline.vocab_parallel=true", "--microbatches=2",
             f"output={tmp_path / 'vp'}", ranks=2)
    base, vp = weights(tmp_path / "base"), weights(tmp_path / "vp")
    assert base.keys() == vp.keys() and vp["embed.weight"].shape == (67, 32)
    for name in base:
        torch.testing.assert_close(vp[name], base[name], rtol=1e-5, atol=1e-6, msg=name)
    hf = to_hf(Llama(ModelConfig(**meta_of(tmp_path / "vp")["model"])))
    assert hf.get_output_embeddings().weight.shape == (67, 32)


def meta_of(run):
    return verified_meta(resolve(run))


def weights(run) -> dict:
    """The weights export would read from a run's newest checkpoint (training.checkpoint.load_model_weights)."""
    meta = meta_of(run)
    model = Llama(ModelConfig(**meta["model"]))
    load_model_weights(run, model, verified=meta)
    return model.state_dict()


def test_two_vocabulary_parallel_replicas_follow_ddp(shards, tmp_path):  # noqa: F811
    """4 ranks as 2 replicas x 2 stages, each replica's vocabulary split over its own 2 ranks, train as 2 DDP ranks
    (each replica creates its own vocabulary groups; the gradients of the row shards are summed over replicas)."""
    common = ["--config", "tiny", f"data.path={shards}", *SMALL, "train.steps=4", "eval.every=4", "checkpoint.every=0"]
    pretrain(*common, f"output={tmp_path / 'ddp'}", ranks=2)
    pretrain(*common, "--trainer=pipeline", "--schedule=1f1b", "--microbatches=2", "pipeline.dp=2",
             "pipeline.vocab_parallel=true", f"output={tmp_path / 'vp'}", ranks=4)
    close_curves(curve(tmp_path / "ddp"), curve(tmp_path / "vp"))
