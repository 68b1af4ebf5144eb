"""The research-only local-learning modules beside bench/train/local_digits.py (bench/train/local_research/):
the saved-activation measure, precise BatchNorm, Mono-Forward and Forward-Forward on scikit-learn digits."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from bench.train.local_research.forward_forward import FFConfig, ForwardForward, ff_step
from bench.train.local_research.loop import accuracy, fit, recalibrate_batchnorm
from bench.train.local_research.measure import saved_peak_bytes
from bench.train.local_research.mono_forward import layer_predictions, mono_forward
from bench.train.local_research.nets import mlp
from tests.training.test_local_core import blobs, local_mlp
from training.local import backprop_step, greedy, local_step, trainable


def test_local_step_saves_less_than_backprop_on_a_deep_mlp():
    x, y = blobs(64)
    widths = (64,) * 8
    local = local_mlp(greedy(n_blocks=0), n_modules=8, widths=widths)
    ref = local_mlp(greedy(), n_modules=1, widths=widths)
    local_peak = saved_peak_bytes(local, lambda: local_step(local, x, y))
    bp_peak = saved_peak_bytes(ref, lambda: backprop_step(ref, x, y))
    assert 0 < local_peak < bp_peak / 3


def test_recalibrated_batchnorm_holds_the_data_statistics():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    x = torch.randn(96, 4)
    recalibrate_batchnorm(model, model, x, batch_size=32)
    with torch.no_grad():
        h = model[0](x)
    torch.testing.assert_close(model[1].running_mean, h.mean(0))
    assert not model.training and model[1].momentum == 0.1


@pytest.fixture(scope="module")
def digits():
    from sklearn import datasets  # pylint: disable=import-outside-toplevel  # slow to import: only here
    d = datasets.load_digits()
    x, y = torch.tensor(d.data, dtype=torch.float32), torch.tensor(d.target)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    train, test = order[:600], order[600:1000]
    mean, sd = x[train].mean(0), x[train].std(0).clamp_min(1e-3)  # standardised: FF escapes its plateau sooner
    return (x[train] - mean) / sd, y[train], (x[test] - mean) / sd, y[test]


def test_mono_forward_learns_digits(digits):
    xtr, ytr, xte, yte = digits
    torch.manual_seed(0)
    model = mono_forward(mlp(widths=(128, 128)))
    fit(trainable(model), lambda a, b: local_step(model, a, b), xtr, ytr, lr=3e-3, epochs=15, batch_size=64, seed=0)
    per_layer = (layer_predictions(model, xte) == yte).float().mean(1)
    assert per_layer[-1] > 0.85 and per_layer.min() > 0.8, per_layer


def test_forward_forward_learns_digits(digits):
    xtr, ytr, xte, yte = digits
    torch.manual_seed(0)
    model = ForwardForward(d_in=64, widths=(128, 128), cfg=FFConfig())
    g = torch.Generator().manual_seed(0)
    hist = fit(list(model.parameters()), lambda a, b: ff_step(model, a, b, generator=g), xtr, ytr, lr=3e-2,
               epochs=15, batch_size=64, seed=0)
    assert hist[-1] < hist[0]
    assert accuracy(lambda a: model.predict(a, layers=[0]), xte, yte) > 0.6
