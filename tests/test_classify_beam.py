"""The classifier stage in Beam: threshold keeps what the model calls positive; top fraction keeps the best tokens."""
from __future__ import annotations

import random

import apache_beam as beam
import numpy as np
import pandas as pd
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines import werp
from pipelines.jobs import collect_counters
from tests.pipelines.test_werp import LOCAL, assert_balanced, read_shards
from transforms.beam.classify import Classify
from transforms.beam.stages import REJECTED
from transforms.document import Document
from transforms.quality.betr import FastTextParams, train_fasttext
from transforms.quality.classifier import SCORE, ClassifierConfig, load_model, score

SCIENCE = "atom electron proton molecule energy photosynthesis cell gravity velocity reaction oxygen orbit".split()
COOKING = "recipe butter flour oven bake sugar salt garlic onion pasta sauce kitchen spoon dinner".split()


def text_of(rng: random.Random, science_share: float, words: int) -> str:
    return " ".join(rng.choice(SCIENCE if rng.random() < science_share else COOKING) for _ in range(words))


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> str:
    rng = random.Random(0)
    texts = [text_of(rng, 1.0 if i % 2 else 0.0, 30) for i in range(300)]
    path = str(tmp_path_factory.mktemp("model") / "quality.bin")
    train_fasttext(texts, [bool(i % 2) for i in range(300)], model_path=path,
                   params=FastTextParams(epoch=10, lr=0.5, bucket=10_000, thread=1))
    return path


def corpus(n: int = 60) -> list[Document]:
    """Documents from all-cooking to all-science, of different lengths."""
    rng = random.Random(1)
    return [Document(id=f"d{i}", url=f"https://x/{i}", warc_date="2024-01-01T00:00:00Z",
                     text=text_of(rng, i / (n - 1), 20 + (i * 7) % 50)) for i in range(n)]


def classify(docs, cfg: ClassifierConfig, tmp_path):
    with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as p:
        out = p | beam.Create(docs) | Classify(cfg, stat_names=(SCORE,), spill_prefix=str(tmp_path / "spill"),
                                               codec="zstd", emit_rejected=True)
        out["rows"] | "Kept" >> beam.Map(lambda r: f"{r['id']}\t{r['filter_stats'][SCORE]}\t{r['word_count']}") \
            | "SaveKept" >> beam.io.WriteToText(str(tmp_path / "kept"))
        out[REJECTED] | "Dropped" >> beam.Map(lambda r: f"{r.id}\t{r.reason}") | "SaveDropped" >> beam.io.WriteToText(
            str(tmp_path / "dropped"))
    read = lambda name: [l.split("\t") for f in tmp_path.glob(f"{name}-*") for l in f.read_text().splitlines()]  # noqa: E731
    return read("kept"), read("dropped"), collect_counters(p.result)


def test_threshold_mode_keeps_scores_at_or_above_it(model_path, tmp_path):
    docs, model = corpus(), load_model(model_path)
    kept, dropped, counters = classify(docs, ClassifierConfig(model_path=model_path, mode="threshold", threshold=0.5), tmp_path)
    expected = {d.id for d in docs if score(model, d.text) >= 0.5}
    assert {k[0] for k in kept} == expected and 0 < len(expected) < len(docs)
    assert {d[1] for d in dropped} == {"classifier.below_threshold"} and len(kept) + len(dropped) == len(docs)
    assert counters["classifier|docs_in"] == len(docs) and counters["classifier|docs_out"] == len(kept)


def test_top_fraction_keeps_the_best_scored_share_of_words(model_path, tmp_path):
    docs, model = corpus(), load_model(model_path)
    kept, dropped, counters = classify(docs, ClassifierConfig(model_path=model_path, mode="top_fraction",
                                                              top_token_fraction=0.3), tmp_path)
    words = {d.id: len(d.text.split()) for d in docs}
    scores = {d.id: score(model, d.text) for d in docs}
    kept_ids = {k[0] for k in kept}
    assert min(scores[i] for i in kept_ids) >= max(scores[d[0]] for d in dropped)  # a cut by score, nothing else
    share = sum(words[i] for i in kept_ids) / sum(words.values())
    assert 0.3 <= share <= 0.3 + max(words.values()) / sum(words.values()) + 1e-9  # at least 30%, one doc over at most
    assert {d[1] for d in dropped} == {"classifier.below_top_fraction"}
    assert counters["classifier|docs_in"] == len(docs) == counters["classifier|docs_out"] + len(dropped)


@pytest.mark.slow
def test_werp_runs_the_classifier_last_and_stores_its_score(model_path, tmp_path):
    rejected = tmp_path / "rejected"
    report = werp.run([*LOCAL, f"--output={tmp_path / 'out'}", f"--rejected_output={rejected}",
                       f"--classifier_model={model_path}", "--classifier_top_fraction=0.5"])
    df = read_shards(tmp_path / "out")
    stages = list(report["stages"])
    assert stages.index("classifier") == len(stages) - 2 and stages.index("dedup_paragraph") < stages.index("classifier")
    assert report["stages"]["classifier"]["docs_out"] == len(df) > 0
    assert df.filter_stats.map(lambda s: s[SCORE]).between(0, 1).all()
    lost = pd.concat([pd.read_parquet(f) for f in rejected.glob("part-*.parquet")])
    dropped = lost[lost.stage == "classifier"]
    model = load_model(model_path)
    assert len(dropped) and min(df.filter_stats.map(lambda s: s[SCORE])) >= max(score(model, t) for t in dropped.text)
    assert_balanced(report)
    assert not (tmp_path / "out" / "_spill").exists()


def test_a_missing_model_is_a_one_line_error(tmp_path):
    from tests.pipelines.test_werp import run_cli
    proc = run_cli("--runner=DirectRunner", f"--output={tmp_path}", f"--classifier_model={tmp_path}/none.bin")
    assert proc.returncode == 2 and "train one with `python -m pipelines.betr`" in proc.stderr.strip().splitlines()[-1]
