"""SkipPipe's layer-order simulation: the full path is the model, skips and swaps run exactly the listed blocks."""
from __future__ import annotations

import pytest
import torch

from training.model import Llama, ModelConfig
from training.parallel.partition import balanced_layout, uniform_layout
from training.parallel.paths import dropped_forward, layer_order, path_forward, stage_layers
from training.parallel.skippipe import plan
from training.parallel.skippipe_check import validate
from training.parallel.skippipe_problem import heterogeneous_latency, make_problem

SEQ = 16


def model_and_tokens(n_layers: int = 8) -> tuple[Llama, torch.Tensor]:
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=97, dim=32, n_layers=n_layers, n_heads=4, n_kv_heads=2, ffn_dim=64,
                      max_seq_len=SEQ, tie_embeddings=True)
    return Llama(cfg), torch.randint(0, 97, (3, SEQ))


def test_stage_layers_reads_the_layout():
    model, _ = model_and_tokens()
    assert stage_layers(uniform_layout(model.cfg, 4, seq_len=SEQ)) == ((0, 1), (2, 3), (4, 5), (6, 7))
    assert stage_layers([["embed", "layers.0"], ["layers.1", "norm", "head"]]) == ((0,), (1,))
    with pytest.raises(ValueError, match="n_stages=6"):
        stage_layers(uniform_layout(model.cfg, 4, seq_len=SEQ), 6)


@pytest.mark.parametrize("n_stages", [1, 3, 4, 6])
def test_the_full_path_is_the_model(n_stages):
    model, tokens = model_and_tokens()
    want = model(tokens)
    for layout in (uniform_layout(model.cfg, n_stages, seq_len=SEQ), balanced_layout(model.cfg, n_stages, seq_len=SEQ)):
        every = range(n_stages)
        assert torch.equal(path_forward(model, tokens, path=list(every), layout=layout), want)
        assert torch.equal(dropped_forward(model, tokens, keep_stages=every, layout=layout), want)


@pytest.mark.parametrize("path,order", [([0, 2, 3], [0, 1, 4, 5, 6, 7]), ([0, 3, 2], [0, 1, 6, 7, 4, 5]),
                                        ([0, 2, 1, 3], [0, 1, 4, 5, 2, 3, 6, 7]), ([0], [0, 1])])
def test_a_skip_or_swap_path_runs_exactly_those_blocks(path, order):
    model, tokens = model_and_tokens()
    layout = uniform_layout(model.cfg, 4, seq_len=SEQ)
    assert layer_order(path, stage_layers(layout)) == order
    h, rope = model.embed(tokens), model.rope_for(SEQ)
    for i in order:
        h = model.layers[str(i)](h, rope)
    assert torch.equal(path_forward(model, tokens, path=path, layout=layout), model.head(model.norm(h)))


def test_gradients_reach_only_visited_layers():
    model, tokens = model_and_tokens()
    layout = uniform_layout(model.cfg, 4, seq_len=SEQ)
    path_forward(model, tokens, path=[0, 3, 1], layout=layout).square().mean().backward()
    for name, p in model.named_parameters():
        layer = int(name.split(".")[1]) if name.startswith("layers.") else None
        if layer in (4, 5):  # stage 2, skipped
            assert p.grad is None, name
        else:
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_dropping_stages_keeps_natural_order_and_stage_zero():
    model, tokens = model_and_tokens()
    layout = uniform_layout(model.cfg, 4, seq_len=SEQ)
    assert torch.equal(dropped_forward(model, tokens, keep_stages=[3, 0, 2], layout=layout),
                       path_forward(model, tokens, path=[0, 2, 3], layout=layout))
    with pytest.raises(ValueError, match="start at stage 0"):
        dropped_forward(model, tokens, keep_stages=[1, 2], layout=layout)


@pytest.mark.parametrize("path", [[1, 0], [0, 1, 1], [0, 4], []])
def test_bad_paths_are_refused(path):
    model, tokens = model_and_tokens()
    with pytest.raises(ValueError, match="path"):
        path_forward(model, tokens, path=path, layout=uniform_layout(model.cfg, 4, seq_len=SEQ))


def test_planner_paths_are_accepted():
    model, tokens = model_and_tokens(n_layers=12)
    layout = uniform_layout(model.cfg, 6, seq_len=SEQ)
    problem = make_problem(latency_s=heterogeneous_latency(12, seed=0), stages=[[2 * s, 2 * s + 1] for s in range(6)],
                           n_microbatches=6, skip=0.33, reorder=True)
    schedule = plan(problem, lns_iters=2)
    assert validate(schedule, problem) == []
    layers = stage_layers(layout, len(problem.stages))
    for path in schedule.paths:
        stages = [s for s, _ in path]
        logits = path_forward(model, tokens, path=path, layout=layout)
        assert len(layer_order(path, layers)) == 2 * problem.path_len
        assert torch.equal(logits, path_forward(model, tokens, path=stages, layout=layout))
