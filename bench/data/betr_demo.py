"""BETR on real text: GSM8K problems as the benchmark, a pool of news pages plus StackMathQA answers.

The pool: the bench corpus's 1,976 news/blog pages (main text by resiliparse) and the 395 Stack Exchange math
Q&As of ../shared/data/math/stackmathqa (question + answer), 2,371 documents, 16.7 % math. The benchmark: 300
GSM8K test problems (question + answer). `python -m pipelines.betr` embeds both with the bundled MiniLM, labels
the pool's best-ranked 10 % positive, trains fastText and reports its held-out accuracy. We then score the whole
pool with the model and report how much of its top 10 % is math — and how much of the BETR-labelled positives
would be (re-labelled here from another seeded draw of 300 problems; the trainer does not write its labels): a benchmark-targeted
classifier should pull the math Q&As up although it never saw a label saying "math".

python -m bench.data.betr_demo --input bench/out/corpus.warc.gz --data ../shared/data/math
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from bench.common import OUT, PY, REPO, machine, save_report
from bench.data.stages import read_pages


def build_pool(warc: Path, math_dir: Path, path: Path) -> dict[str, int]:
    """news + math texts -> Parquet with `text` and `source`; returns the counts."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from transforms.extract import ExtractConfig, extract_text

    cfg = ExtractConfig(extractor="resiliparse")
    news = [t for t in (extract_text(p.html, cfg) for p in read_pages(warc)) if t.strip()]
    math = []
    for file in sorted((math_dir / "stackmathqa").glob("*.jsonl")):
        for line in file.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            math.append(f"{record['Q']}\n{record['A']}")
    table = pa.table({"text": news + math, "source": ["news"] * len(news) + ["math"] * len(math)})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return {"news": len(news), "math": len(math)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, default=OUT / "corpus.warc.gz", help="the bench corpus WARC")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "math", help="shared math data")
    parser.add_argument("--examples", type=int, default=300, help="GSM8K problems used as benchmark examples")
    args = parser.parse_args(argv)
    work = OUT / "betr"
    pool = work / "pool.parquet"
    counts = build_pool(args.input, args.data, pool)
    model = work / "model.bin"
    cmd = [PY, "-m", "pipelines.betr", f"--benchmarks={args.data / 'gsm8k' / 'test.jsonl'}",
           "--benchmark_fields=question,answer", f"--examples_per_benchmark={args.examples}", f"--pool={pool}",
           f"--output={model}", "--bucket=200000", "--thread=1", "--seed=0",
           "--epoch=25", "--lr=0.5"]  # ~500 training examples: DCLM's 5 epochs at lr 0.1 learn nothing from so few
    start = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, check=True)
    wall = time.perf_counter() - start
    trained = json.loads(Path(f"{model}.report.json").read_text())

    import numpy as np
    import pyarrow.parquet as pq

    from transforms.quality.classifier import load_model, score_many

    from transforms.quality.betr import best_rank_scores, embed, label_top_fraction

    table = pq.read_table(pool).to_pydict()
    gsm = [json.loads(line) for line in (args.data / "gsm8k" / "test.jsonl").read_text().splitlines()]
    rng = np.random.default_rng(0)
    bench = [f"{gsm[i]['question']}\n{gsm[i]['answer']}" for i in rng.choice(len(gsm), args.examples, replace=False)]
    labels = label_top_fraction(best_rank_scores(embed(bench), embed(table["text"])), 0.1)
    math_in_labels = sum(s == "math" for s, y in zip(table["source"], labels) if y) / int(labels.sum())
    scores = score_many(load_model(str(model)), table["text"])
    top = np.argsort(-scores, kind="stable")[: len(scores) // 10]
    math_in_top = sum(table["source"][i] == "math" for i in top) / len(top)
    report = {"machine": machine(), "command": " ".join(["python", *cmd[1:]]), "pool": counts,
              "math_share_of_pool": round(counts["math"] / sum(counts.values()), 3),
              "math_share_of_betr_positives": round(math_in_labels, 3),
              "math_share_of_classifier_top_10pct": round(math_in_top, 3), "trainer_wall_s": round(wall, 1),
              "trainer_report": trained}
    return save_report("betr_demo", report)


if __name__ == "__main__":
    sys.exit(main())
