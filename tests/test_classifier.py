"""The fastText quality classifier: its input form, the positive-label probability, the token histogram, the config."""
from __future__ import annotations

import random

import numpy as np
import pytest

from core.config import ConfigError, from_mapping
from transforms.quality.betr import FastTextParams, evaluate, split_held_out, train_fasttext
from transforms.quality.classifier import (
    NEGATIVE_LABEL,
    POSITIVE_LABEL,
    ClassifierConfig,
    ScoreHistogram,
    ensure_available,
    fasttext_input,
    load_model,
    score,
    score_many,
)

SCIENCE = "atom electron proton molecule energy photosynthesis cell gravity velocity reaction oxygen orbit".split()
COOKING = "recipe butter flour oven bake sugar salt garlic onion pasta sauce kitchen spoon dinner".split()


def synthetic(n: int, *, seed: int) -> tuple[list[str], np.ndarray]:
    """Two vocabularies, half the documents each: a problem any working classifier separates."""
    rng = random.Random(seed)
    labels = np.array([i % 2 == 0 for i in range(n)])
    texts = [" ".join(rng.choice(SCIENCE if y else COOKING) for _ in range(25)) for y in labels]
    return texts, labels


@pytest.fixture(scope="module")
def model():
    texts, labels = synthetic(200, seed=1)
    return train_fasttext(texts, labels, params=FastTextParams(epoch=10, lr=0.5, bucket=10_000, thread=1))


def test_fasttext_input_is_one_line_with_dclms_words():
    text = "  Line one\n\nline\ttwo\r\nthree\u2028four\x0cfive  "
    assert fasttext_input(text) == "Line one line two three four five"
    dclm = " ".join(text.strip().splitlines())  # DCLM's classify_fasttext_hq_prob
    assert fasttext_input(text).split() == dclm.split(), "fastText splits words on whitespace: same words"
    assert fasttext_input("a\u00a0b") == "a\u00a0b", "non-breaking space stays inside the word, as in fastText"


def test_trained_classifier_separates_held_out_documents(model):
    texts, labels = synthetic(200, seed=2)
    metrics = evaluate(model, texts, labels)
    assert metrics["accuracy"] >= 0.95 and metrics["n"] == 200
    assert metrics["precision"] >= 0.95 and metrics["recall"] >= 0.95


def test_training_is_reproducible_in_a_used_process(model):
    """fasttext-numpy2 leaves memory uninitialised; train_fasttext's fresh child process makes the seed decide."""
    texts, labels = synthetic(200, seed=1)
    garbage = [np.full(1000, np.nan) for _ in range(2000)]  # leave NaN bytes on the freed heap
    del garbage
    again = train_fasttext(texts, labels, params=FastTextParams(epoch=10, lr=0.5, bucket=10_000, thread=1))
    np.testing.assert_array_equal(again.get_output_matrix(), model.get_output_matrix())
    np.testing.assert_array_equal(again.get_input_matrix(), model.get_input_matrix())


def test_score_is_the_positive_probability_in_either_label_order(model):
    science, cooking = " ".join(SCIENCE), " ".join(COOKING)
    assert model.predict(science)[0][0] == POSITIVE_LABEL and model.predict(cooking)[0][0] == NEGATIVE_LABEL
    hq_science, hq_cooking = score(model, science), score(model, cooking)
    assert hq_science > 0.9 and hq_cooking < 0.1, "cooking's first label is cc, yet the hq probability comes back"
    assert score(model, science, NEGATIVE_LABEL) == pytest.approx(1 - hq_science, abs=1e-4)
    assert score(model, "multi\nline " + science) == pytest.approx(score(model, "multi line " + science))
    assert score_many(model, [science, cooking]).tolist() == pytest.approx([hq_science, hq_cooking])
    with pytest.raises(ValueError, match="no label '__label__edu'"):
        score(model, science, "__label__edu")


def test_saved_model_loads_and_scores_the_same(model, tmp_path):
    path = str(tmp_path / "quality.bin")
    model.save_model(path)
    ensure_available(ClassifierConfig(model_path=path))
    assert score(load_model(path), " ".join(SCIENCE)) == pytest.approx(score(model, " ".join(SCIENCE)))


def test_missing_model_file_names_the_trainer(tmp_path):
    with pytest.raises(FileNotFoundError, match="pipelines.betr"):
        load_model(str(tmp_path / "absent.bin"))
    with pytest.raises(FileNotFoundError, match="pipelines.betr"):
        ensure_available(ClassifierConfig(model_path=str(tmp_path / "absent.bin")))


def exact_threshold(scores: np.ndarray, tokens: np.ndarray, fraction: float) -> float:
    """Sort-based reference: the score of the document at which the top documents reach the token share."""
    order = np.argsort(-scores, kind="stable")
    reached = np.cumsum(tokens[order]) >= fraction * tokens.sum() * (1 - 1e-12)
    return float(scores[order][np.argmax(reached)])


@pytest.mark.parametrize("fraction", [0.01, 0.1, 0.5, 1.0])
def test_histogram_threshold_is_within_one_bin_of_the_exact_one(fraction):
    rng = np.random.default_rng(7)
    scores, tokens = rng.beta(0.5, 2.0, size=20_000), rng.integers(1, 5_000, size=20_000).astype(float)
    hist = ScoreHistogram()
    hist.add_many(scores, tokens)
    exact, approx = exact_threshold(scores, tokens, fraction), hist.threshold(fraction)
    assert approx <= exact < approx + 1 / hist.n_bins
    assert tokens[scores >= approx].sum() >= fraction * tokens.sum() * (1 - 1e-12), "at least the share is kept"


def test_histogram_merge_equals_adding_everything():
    rng = np.random.default_rng(3)
    scores, tokens = rng.random(3_000), rng.integers(1, 100, size=3_000).astype(float)
    whole, parts = ScoreHistogram(n_bins=500), [ScoreHistogram(n_bins=500) for _ in range(3)]
    whole.add_many(scores, tokens)
    for i, (s, t) in enumerate(zip(scores, tokens)):
        parts[i % 3].add(s, t)
    merged = parts[0].merge(parts[1:])
    np.testing.assert_array_equal(merged.weights, whole.weights)
    assert merged.threshold(0.1) == whole.threshold(0.1)


def test_histogram_edges_and_errors():
    hist = ScoreHistogram(n_bins=10)
    with pytest.raises(ValueError, match="no tokens"):
        hist.threshold(0.1)
    hist.add(1.00001, 5)  # fastText's softmax can overshoot 1
    hist.add(-0.0, 5)
    assert hist.weights[9] == 5 and hist.weights[0] == 5 and hist.threshold(0.5) == 0.9
    with pytest.raises(ValueError, match="NaN"):
        hist.add(float("nan"), 1)
    with pytest.raises(ValueError, match="top_fraction"):
        hist.threshold(0.0)
    with pytest.raises(ValueError, match="merge"):
        hist.merge([ScoreHistogram(n_bins=11)])


def test_config_loads_from_yaml_mapping_and_validates():
    cfg = from_mapping(ClassifierConfig, {"model_path": "m.bin", "mode": "top_fraction", "top_token_fraction": 0.1},
                       where="quality")
    assert cfg.mode == "top_fraction" and cfg.label == POSITIVE_LABEL and cfg.threshold == 0.5
    bad = [
        ({"model_path": ""}, "pipelines.betr"),
        ({"model_path": "m.bin", "mode": "top"}, "not one of"),
        ({"model_path": "m.bin", "threshold": 1.5}, r"threshold \(1.5\)"),
        ({"model_path": "m.bin", "top_token_fraction": 0}, r"top_token_fraction \(0.0\)"),
        ({"model_path": "m.bin", "label": "hq"}, "__label__"),
        ({"model_path": "m.bin", "treshold": 0.2}, "valid keys are"),
        ({}, "model_path"),
    ]
    for data, message in bad:
        with pytest.raises(ConfigError, match=message):
            from_mapping(ClassifierConfig, data, where="quality")
    with pytest.raises(ValueError, match="must be 'threshold' or 'top_fraction'"):
        ClassifierConfig(model_path="m.bin", mode="top")


def test_held_out_split_is_seeded_stratified_and_disjoint():
    labels = np.array([True] * 10 + [False] * 90)
    train, held = split_held_out(labels, fraction=0.1, seed=5)
    assert set(train).isdisjoint(held) and len(train) + len(held) == 100
    assert labels[held].sum() == 1 and (~labels[held]).sum() == 9
    again = split_held_out(labels, fraction=0.1, seed=5)
    assert held.tolist() == again[1].tolist()
    assert held.tolist() != split_held_out(labels, fraction=0.1, seed=6)[1].tolist()
