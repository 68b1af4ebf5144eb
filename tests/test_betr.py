"""BETR ranking against brute force, the real MiniLM picking out on-topic documents, and the trainer CLI end to end."""
from __future__ import annotations

import json
import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines import betr as cli
from transforms.quality.betr import balance_classes, best_rank_scores, embed, label_top_fraction, reservoir_sample


TOPICS = {
    "science": ["Plants use photosynthesis to turn sunlight, water and carbon dioxide into glucose and oxygen.",
                "An atom has a nucleus of protons and neutrons surrounded by electrons.",
                "Gravity pulls objects toward the center of the Earth at about 9.8 meters per second squared.",
                "Cells divide by mitosis, copying their chromosomes so each daughter cell has the same DNA.",
                "Water boils at 100 degrees Celsius at sea level because its vapor pressure equals air pressure.",
                "The Moon orbits the Earth, and its gravity causes the ocean tides."],
    "cooking": ["Whisk the eggs with sugar until pale, then fold in the sifted flour.",
                "Brown the onions slowly in butter before adding the garlic and tomatoes.",
                "Let the bread dough rise in a warm kitchen until it doubles in size.",
                "Season the pasta water generously with salt before the noodles go in."],
    "football": ["The striker scored twice in the second half to win the league match.",
                 "The goalkeeper saved a penalty in the final minute of extra time.",
                 "Fans filled the stadium to watch the derby between the two rival clubs."],
    "travel": ["Our hotel in Lisbon had a rooftop terrace with views over the old town.",
               "Book the train tickets early to get a cheap fare across the Alps.",
               "The ferry to the islands leaves the harbour every morning at eight."],
    "finance": ["The central bank raised interest rates to slow inflation.",
                "Investors sold shares after the company missed its quarterly earnings forecast.",
                "A diversified index fund spreads risk across hundreds of stocks."],
    "gardening": ["Prune the rose bushes in late winter before new buds appear.",
                  "Water tomato seedlings at the base and mulch to keep the soil moist.",
                  "Plant tulip bulbs in autumn about fifteen centimetres deep."],
}
QUESTIONS = [("What gas do plants release during photosynthesis?", "oxygen"),
             ("Which particles are found in the nucleus of an atom?", "protons and neutrons"),
             ("What force keeps the Moon in orbit around the Earth?", "gravity"),
             ("At what temperature does water boil at sea level?", "100 degrees Celsius"),
             ("How do cells make copies of themselves?", "mitosis")]


def pool(n_per_topic: int, *, seed: int) -> tuple[list[str], np.ndarray]:
    """Shuffled short documents, two or three sentences of one topic each; True marks science."""
    rng = random.Random(seed)
    docs = [(" ".join(rng.sample(s, rng.choice((2, 3)))), t == "science")
            for t, s in TOPICS.items() for _ in range(n_per_topic)]
    rng.shuffle(docs)
    return [d for d, _ in docs], np.array([s for _, s in docs])


def brute_force(bench: np.ndarray, docs: np.ndarray) -> np.ndarray:
    ranks = np.argsort(np.argsort(-(bench @ docs.T), axis=1, kind="stable"), axis=1)
    return ranks.min(axis=0)


def unit_rows(rng, n: int, dim: int) -> np.ndarray:
    x = rng.normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("chunk", [None, 1, 3, 64])
def test_best_rank_equals_brute_force(chunk):
    rng = np.random.default_rng(0)
    bench, docs = unit_rows(rng, 17, 8), unit_rows(rng, 120, 8)
    expected = brute_force(bench, docs)
    got = best_rank_scores(bench, docs, chunk=chunk)
    assert got.dtype == np.int32 and got.tolist() == expected.tolist()
    assert best_rank_scores(bench, docs, chunk=chunk, max_rank=10).tolist() == np.minimum(expected, 10).tolist()


def test_best_rank_rejects_mismatched_inputs():
    rng = np.random.default_rng(1)
    with pytest.raises(ValueError, match="widths differ"):
        best_rank_scores(unit_rows(rng, 2, 4), unit_rows(rng, 3, 5))
    with pytest.raises(ValueError, match="need benchmark and pool"):
        best_rank_scores(unit_rows(rng, 0, 4), unit_rows(rng, 3, 4))


def test_top_fraction_labels_and_balanced_sampling():
    scores = np.array([5, 0, 3, 0, 9, 1, 7, 2, 8, 6], dtype=np.int32)
    assert np.flatnonzero(label_top_fraction(scores, 0.2)).tolist() == [1, 3]
    assert np.flatnonzero(label_top_fraction(scores, 0.1)).tolist() == [1], "a tie goes to the lower index"
    labels = np.arange(100) < 10
    chosen = balance_classes(labels, seed=0)
    assert labels[chosen].sum() == 10 and (~labels[chosen]).sum() == 10
    assert chosen.tolist() == balance_classes(labels, seed=0).tolist() != balance_classes(labels, seed=1).tolist()
    with pytest.raises(ValueError, match="fraction"):
        label_top_fraction(scores, 1.0)


def test_reservoir_sample_is_seeded_and_uniform():
    items = [str(i) for i in range(100)]
    assert reservoir_sample(iter(items), 10, seed=1) == reservoir_sample(iter(items), 10, seed=1)
    assert reservoir_sample(iter(items), 200, seed=1) == items and reservoir_sample(iter(items), None, seed=0) == items
    hits = np.zeros(100)
    for seed in range(2000):
        hits[[int(x) for x in reservoir_sample(iter(items), 10, seed=seed)]] += 1
    assert hits.min() > 120 and hits.max() < 280, "every item is drawn about 200 times in 2000 samples of 10%"


def test_minilm_embeds_offline_to_unit_vectors():
    vectors = embed(["The cat sat on the mat.", "A cat is sitting on a mat.", "Interest rates rose again."])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3
    assert embed([]).shape == (0, 384)


def test_science_questions_pick_the_science_documents():
    docs, is_science = pool(10, seed=3)  # 60 documents, 10 about science
    bench = [f"{q} {a}" for q, a in QUESTIONS]
    labels = label_top_fraction(best_rank_scores(embed(bench), embed(docs)), fraction=10 / 60)
    assert (labels & is_science).sum() >= 8, [d for d, y in zip(docs, labels) if y]


def write_jsonl(path, records, *, junk: str | None = None) -> str:
    with open(path, "w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record) + "\n")
        if junk:
            fh.write(junk + "\n")
    return str(path)


def test_cli_betr_mode_end_to_end(tmp_path, capsys):
    docs, _ = pool(20, seed=4)  # 120 documents, 20 about science
    pq.write_table(pa.table({"id": [str(i) for i in range(len(docs))], "text": docs}), tmp_path / "part-0.parquet")
    bench = write_jsonl(tmp_path / "sciq.jsonl", [{"question": q, "answer": a} for q, a in QUESTIONS],
                        junk="{not json")
    output = tmp_path / "models" / "betr.bin"
    code = cli.main([f"--benchmarks={bench}", "--benchmark_fields=question,answer",
                     f"--pool={tmp_path}/*.parquet", "--positive_fraction=0.1667", "--held_out=0.25",
                     "--epoch=30", "--lr=0.5", "--bucket=10000", "--thread=1", f"--output={output}"])
    assert code == 0
    report = json.loads((tmp_path / "models" / "betr.bin.report.json").read_text())
    assert report["mode"] == "betr" and report["positive"] == 20 and report["negative"] == 100
    assert report["inputs"]["benchmarks"][bench]["bad_json"] == 1 and report["inputs"]["benchmark_examples"] == 5
    assert report["inputs"]["embedder"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert report["trained_on"] + report["held_out_metrics"]["n"] == 40, "balanced: 20 positive + 20 negative"
    assert report["held_out_metrics"]["accuracy"] >= 0.8
    assert output.is_file() and "held-out accuracy" in capsys.readouterr().out


def test_cli_dclm_mode_end_to_end(tmp_path):
    rng = random.Random(0)
    science = " ".join(TOPICS["science"]).split()
    other = " ".join(s for t, ss in TOPICS.items() if t != "science" for s in ss).split()
    positives = write_jsonl(tmp_path / "pos.jsonl", [{"text": " ".join(rng.choices(science, k=30))} for _ in range(80)])
    negatives = tmp_path / "neg.parquet"
    pq.write_table(pa.table({"text": [" ".join(rng.choices(other, k=30)) for _ in range(120)]}), negatives)
    output = tmp_path / "dclm.bin"
    assert cli.main([f"--positives={positives}", f"--negatives={negatives}", "--epoch=20", "--bucket=10000",
                     "--thread=1", f"--output={output}"]) == 0
    report = json.loads((tmp_path / "dclm.bin.report.json").read_text())
    assert report["mode"] == "dclm" and (report["positive"], report["negative"]) == (80, 120)
    assert report["held_out_metrics"]["n"] == 16 and report["held_out_metrics"]["accuracy"] >= 0.9
    assert report["fasttext"]["word_ngrams"] == 2, "DCLM's setting"


@pytest.mark.parametrize("args, message", [
    (["--positives={tmp}/absent.jsonl", "--negatives={tmp}/neg.jsonl"], "matched no files"),
    (["--positives={tmp}/neg.jsonl", "--negatives={tmp}/neg.jsonl", "--text_field=body"],
     "no record has field(s) body"),
    (["--positives={tmp}/neg.jsonl"], "--negatives is empty"),
    (["--benchmarks={tmp}/neg.jsonl", "--positives={tmp}/neg.jsonl"], "either --benchmarks"),
    (["--positives={tmp}/neg.jsonl", "--negatives={tmp}/neg.jsonl", "--epoch=0"], "epoch (0)"),
    (["--positives={tmp}/neg.jsonl", "--negatives={tmp}/neg.jsonl"], "the following arguments are required: --output"),
])
def test_cli_user_errors_exit_2_with_one_line(tmp_path, capsys, args, message):
    write_jsonl(tmp_path / "neg.jsonl", [{"text": "some words"}])
    argv = [a.format(tmp=tmp_path) for a in args]
    if "required" not in message:
        argv.append(f"--output={tmp_path}/m.bin")
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("betr: error:") and message in err and "\n" not in err, err


def test_cli_help_explains_every_flag(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for flag in ("--benchmarks", "--benchmark_fields", "--pool", "--sample", "--positive_fraction", "--positives",
                 "--negatives", "--output", "--held_out", "--seed", "--epoch", "--word_ngrams", "--thread"):
        assert flag in out, flag
    assert "--runner" not in out, "this trainer is not a Beam job"


def test_cli_takes_the_config_convention_and_records_it(tmp_path):
    """--config + key=value + flags as every job: a flag wins over its key, and the report keeps what was used."""
    rng = random.Random(1)
    words = " ".join(TOPICS["science"]).split()
    positives = write_jsonl(tmp_path / "pos.jsonl", [{"text": " ".join(rng.choices(words, k=20))} for _ in range(30)])
    negatives = write_jsonl(tmp_path / "neg.jsonl", [{"text": "buy cheap watches now " * 5} for _ in range(30)])
    output = tmp_path / "m.bin"
    assert cli.main([f"--positives={positives}", f"--negatives={negatives}", "fasttext.dim=16", "fasttext.epoch=3",
                     "--epoch=7", "--bucket=1000", "held_out=0.2", f"--output={output}"]) == 0
    report = json.loads((tmp_path / "m.bin.report.json").read_text())
    assert (report["fasttext"]["dim"], report["fasttext"]["epoch"], report["fasttext"]["bucket"]) == (16, 7, 1000)
    assert report["held_out_fraction"] == 0.2 and report["config"]["dclm"]["positives"] == [positives]
    assert report["config_source"].startswith("configs/betr/default.yaml with overrides fasttext.dim=16")
    assert cli.main([f"--positives={positives}", f"--negatives={negatives}", "fasttext.dimm=16",
                     f"--output={output}"]) == 2  # a misspelt key is refused
