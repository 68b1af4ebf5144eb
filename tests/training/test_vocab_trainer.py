"""trainer=pipeline with pipeline.vocab_parallel=true on 2 gloo ranks follows the one-process baseline trainer
step for step (loss, learning rate, held-out loss; the tolerances of test_pipeline.py), with tied embeddings,
gradient accumulation and a traced step, for Vocab-1 on 1F1B and Vocab-2 on interleaved 1F1B."""
from __future__ import annotations

import json

import pytest

from tests.training.test_pipeline import close_curves, shards  # noqa: F401 - the shards fixture
from tests.training.test_trainer import SMALL, curve, pretrain
from training.metrics import read_metrics

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
