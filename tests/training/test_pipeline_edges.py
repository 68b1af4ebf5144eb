"""training/parallel/pipeline.py run for real in one process: a gloo group of world size 1, torch's own
schedules driving TimedStage (issue 16, the full mutation run by helper E). The oracle is the whole model run
with plain autograd: the summed token cross-entropy over the step's tokens and its gradients; the recorded
spans are checked against the order GPipe and ZB-V are defined to run."""
from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from training.model import Llama, ModelConfig
from training.parallel.partition import balanced_layout
from training.parallel.pipeline import IGNORE, Plan, build_pipeline, stage_module, tie_local_copies

SMALL = dict(vocab_size=64, dim=16, n_heads=2, n_kv_heads=1, ffn_dim=32, max_seq_len=16)


def _batch(rows: int, seq: int = 8):
    g = torch.Generator().manual_seed(rows)
    inputs = torch.randint(0, 64, (rows, seq), generator=g)
    targets = torch.randint(0, 64, (rows, seq), generator=g)
    return inputs, targets


def _reference(full: Llama, inputs, targets, tokens: float):
    """Loss and gradients of the whole model by plain autograd: summed token cross-entropy / tokens."""
    ref = Llama(full.cfg)
    ref.load_state_dict(full.state_dict())
    logits = ref(inputs)
    loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum") / tokens
    loss.backward()
    return float(loss), {n: p.grad for n, p in ref.named_parameters()}


def _pipeline(schedule: str, spr: int, microbatches: int, group):
    torch.manual_seed(0)
    full = Llama(ModelConfig(n_layers=2, **SMALL))
    layout = balanced_layout(full.cfg, spr, seq_len=8)
    plan = Plan(schedule=schedule, pp=1, dp=1, stages_per_rank=spr, microbatches=microbatches, layout=layout)
    return full, build_pipeline(full, plan, pp_rank=0, device=torch.device("cpu"), pp_group=group)


def test_gpipe_on_one_rank_matches_the_whole_model_and_records_full_backwards(group):
    """3 rows in 2 microbatches: a padding row is added and ignored. GPipe runs F0 F1 then B0 B1 (torch calls
    GPipe's backward without full_backward, so each is a full B, not an input-gradient I)."""
    full, pipe = _pipeline("gpipe", 1, 2, group)
    inputs, targets = _batch(3)
    tokens = float(targets.numel())
    want_loss, want_grads = _reference(full, inputs, targets, tokens)
    spans = []
    loss = pipe.run(inputs, targets, tokens=tokens, spans=spans)
    assert loss == pytest.approx(want_loss, rel=1e-5)
    got = dict(pipe.parts[0].named_parameters())
    assert set(got) == set(want_grads)
    for name, grad in want_grads.items():
        torch.testing.assert_close(got[name].grad, grad, rtol=1e-4, atol=1e-6)
    assert [(s.rank, s.stage, s.kind, s.microbatch) for s in spans] == [
        (0, 0, "F", 0), (0, 0, "F", 1), (0, 0, "B", 0), (0, 0, "B", 1)]
    assert all(s.end >= s.start for s in spans)
    assert pipe.stages[0].spans is None  # recording stops with the step
    pipe.run(inputs, targets, tokens=tokens)  # not recorded
    assert len(spans) == 4


def test_evaluating_gpipe_gives_the_loss_and_leaves_no_gradients(group):
    full, pipe = _pipeline("gpipe", 1, 2, group)
    inputs, targets = _batch(4)
    targets[0, :3] = IGNORE  # ignored targets count for neither loss nor tokens
    tokens = float((targets != IGNORE).sum())
    want_loss, _ = _reference(full, inputs, targets, tokens)
    assert pipe.run(inputs, targets, tokens=tokens, train=False) == pytest.approx(want_loss, rel=1e-5)
    assert all(p.grad is None for p in pipe.parts[0].parameters())


def test_zbv_on_one_rank_splits_backwards_and_evaluation_drops_their_gradients(group):
    """ZB-V on one rank holds stages 0 and 1 (V placement). Its loss and summed gradients match the whole model;
    input-gradient steps are recorded as I, weight steps as W; an evaluation runs a full step (torch 2.13's
    eval fails for V schedules) and then drops the gradients it made."""
    full, pipe = _pipeline("zbv", 2, 2, group)
    assert [s.stage_index for s in pipe.stages] == [0, 1]
    inputs, targets = _batch(2)
    tokens = float(targets.numel())
    want_loss, want_grads = _reference(full, inputs, targets, tokens)
    spans = []
    assert pipe.run(inputs, targets, tokens=tokens, spans=spans) == pytest.approx(want_loss, rel=1e-5)
    for part in pipe.parts:
        for name, p in part.named_parameters():
            torch.testing.assert_close(p.grad, want_grads[name], rtol=1e-4, atol=1e-6)
    kinds = {s.kind for s in spans}
    assert {"F", "I", "W"} <= kinds
    for m in range(2):
        for stage in (0, 1):
            assert sum(s.kind == "F" and s.microbatch == m and s.stage == stage for s in spans) == 1
            assert sum(s.kind in "BI" and s.microbatch == m and s.stage == stage for s in spans) == 1
    for part in pipe.parts:
        part.zero_grad(set_to_none=True)
    assert pipe.run(inputs, targets, tokens=tokens, train=False) == pytest.approx(want_loss, rel=1e-5)
    assert all(p.grad is None for part in pipe.parts for p in part.parameters())


def test_a_plan_is_frozen():
    layout = balanced_layout(ModelConfig(n_layers=2, **SMALL), 1, seq_len=8)
    plan = Plan(schedule="gpipe", pp=1, dp=1, stages_per_rank=1, microbatches=2, layout=layout)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.microbatches = 4
    assert len({plan, dataclasses.replace(plan)}) == 1


@pytest.mark.parametrize("units", [("embed", "layers.0"), ("layers.1", "norm", "head")])
def test_tying_on_a_rank_that_holds_only_one_end_changes_nothing(units):
    """Tied embeddings, pp > 1 without V placement: the first rank holds the embedding and no head, the last
    the head and no embedding; there is nothing on the rank to tie, so the parts stay as they are."""
    full = Llama(ModelConfig(n_layers=2, **{**SMALL, "tie_embeddings": True}))
    part = stage_module(full, units)
    before = {n: p for n, p in part.named_parameters()}
    tie_local_copies([part], tied=True)
    assert {n: p for n, p in part.named_parameters()} == before
