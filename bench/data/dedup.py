"""Each dedup stage end to end on the local runner: docs/s, peak memory from 10k to 100k documents, shuffle volume.

Corpus: synthetic, seeded. Words are drawn from a Zipf(1) law over a 50k-word vocabulary (English unigram
statistics, so unplanted documents share about as many 13-grams and 5-grams as real text); documents of 3-12
paragraphs of 15-80 words. Planted: 10% exact copies of an earlier document, 10% near copies (5-15% of words
replaced), 15% documents that copy 1-3 paragraphs of earlier ones. Written once to bench/out/dedup/docs-N.parquet
in the shard schema; each measurement is a whole process pinned to one core (bench/common.run_pinned) that
reads the file, runs one stage (or none: read and write only, the baseline) and writes shards. `paragraph`
exchanges n-grams through the runner's shuffle, `paragraph_files` through files (what werp does on this runner).

python -m bench.data.dedup --docs 10000 30000 100000 --stages none exact minhash paragraph paragraph_files
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench.common import OUT, PY, REPO, machine, run_pinned, save_report

VOCAB_SIZE = 50_000
STAGES = ("none", "exact", "minhash", "paragraph", "paragraph_files")
EXTRA_FLAGS = [f for f in os.environ.get("DEDUP_FLAGS", "").split() if f]


def build_corpus(n_docs: int, path: Path, *, seed: int = 0) -> None:
    """The planted corpus as a Parquet file in the shard schema."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from transforms.document import Document
    from transforms.io.parquet import document_row, document_schema

    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(VOCAB_SIZE)])
    p = 1.0 / np.arange(1, VOCAB_SIZE + 1)
    p /= p.sum()
    texts: list[str] = []
    rows = []
    for i in range(n_docs):
        kind = rng.random()
        if texts and kind < 0.10:
            text = texts[rng.integers(len(texts))]
        elif texts and kind < 0.20:
            words = texts[rng.integers(len(texts))].split(" ")
            for pos in rng.choice(len(words), size=max(1, int(len(words) * rng.uniform(0.05, 0.15))), replace=False):
                words[pos] = vocab[rng.choice(VOCAB_SIZE, p=p)]
            text = " ".join(words)
        else:
            paras = [" ".join(vocab[rng.choice(VOCAB_SIZE, size=rng.integers(15, 81), p=p)])
                     for _ in range(rng.integers(3, 13))]
            if texts and kind < 0.35:
                source = texts[rng.integers(len(texts))].split("\n")
                for _ in range(rng.integers(1, 4)):
                    paras.insert(int(rng.integers(len(paras) + 1)), source[rng.integers(len(source))])
            text = "\n".join(paras)
        texts.append(text)
        date = f"2024-{1 + i * 12 // n_docs:02d}-01T00:00:{i % 60:02d}Z"
        rows.append(document_row(Document(id=f"<urn:uuid:{i:012d}>", url=f"https://site{i % 997}.example/{i}",
                                          warc_date=date, text=text, language="en", language_score=1.0), ()))
    path.parent.mkdir(parents=True, exist_ok=True)
    # Row groups of 1,000 documents, as the pipeline's own shards: a reader holds one row group at a time.
    pq.write_table(pa.Table.from_pylist(rows, schema=document_schema(())), path, compression="zstd",
                   row_group_size=1000)


def run_stage(stage: str, input_path: str, out: str) -> None:
    """The measured process: read -> one dedup stage -> shards + stats.json (what werp runs after its filters)."""
    import apache_beam as beam
    from apache_beam.io.parquetio import ReadFromParquet
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipelines.jobs import run_job
    from pipelines.runners import make_runner
    from transforms.beam.dedup import Dedup
    from transforms.beam.write import ToRows, WriteDocuments
    from transforms.dedup.config import DedupConfig
    from transforms.dedup.minhash import MinHashConfig
    from transforms.dedup.paragraph import ParagraphDedupConfig
    from transforms.io.parquet import document_from_row

    cfg = DedupConfig(exact=stage == "exact", minhash=MinHashConfig() if stage == "minhash" else None,
                      paragraph=ParagraphDedupConfig() if stage.startswith("paragraph") else None,
                      ngram_exchange="files" if stage == "paragraph_files" else "shuffle")

    def build(p):
        docs = p | ReadFromParquet(input_path) | beam.Map(document_from_row)
        if cfg.any:
            rows = (docs | Dedup(cfg, spill_prefix=f"{out}/_spill", stat_names=(), codec="zstd", emit_rejected=False))["rows"]
        else:
            rows = docs | ToRows(())  # the baseline: read and write only
        rows | WriteDocuments(f"{out}/documents", stat_names=(), num_shards=0, codec="zstd", row_group_bytes=32 << 20)
        return [*cfg.stages, "write"]

    options = PipelineOptions(["--runner=DirectRunner", *EXTRA_FLAGS])
    run_job(build=build, runner=make_runner(options), options=options, output=out, extra={"stage": stage})


def shuffle_bytes_per_doc(path: Path, sample: int = 2000) -> dict[str, float]:
    """Bytes each stage sends through the shuffle per document, from the records it emits on a sample."""
    import pyarrow.parquet as pq

    from transforms.dedup.minhash import MinHashConfig, MinHasher
    from transforms.dedup.paragraph import occurrences

    texts = pq.read_table(path, columns=["text"]).column("text").to_pylist()[:sample]
    hasher = MinHasher(MinHashConfig())
    # exact: 16-byte key + order key (two varints, ~14 bytes); minhash: per band a 9-byte key + order key, and
    # with verification the signature (4 bytes per permutation + order key) through each of two joins;
    # paragraph: one 32-byte occurrence row per distinct (n-gram, paragraph). Candidate edges, decisions and
    # spill-file paths are small next to these (a few bytes per duplicate document).
    bands = np.mean([sum(len(k) + 14 for k in hasher.band_keys(hasher.signature(t))) for t in texts])
    verify = 2 * (hasher.cfg.num_perm * 4 + 14)
    paragraph = np.mean([occurrences(t, (0, 0), 13).nbytes for t in texts])
    return {"exact": 30.0, "minhash": float(bands + verify), "minhash_no_verify": float(bands),
            "paragraph": float(paragraph)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, nargs="+", default=[10_000, 30_000, 100_000], help="corpus sizes")
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES, help="'none' = read and write")
    parser.add_argument("--run", choices=STAGES, help=argparse.SUPPRESS)  # the measured child process
    parser.add_argument("--build", type=int, help=argparse.SUPPRESS)  # the corpus-building child process
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run:
        run_stage(args.run, args.input, args.out)
        return 0
    if args.build:
        build_corpus(args.build, Path(args.out))
        return 0
    report = {"machine": machine(), "runs": {}}
    for n in args.docs:
        corpus = OUT / "dedup" / f"docs-{n}.parquet"
        if not corpus.exists():  # in a child, so this process stays small: a forked child's ru_maxrss
            subprocess.run([PY, "-m", "bench.data.dedup", "--build", str(n), "--out", str(corpus)], cwd=REPO,
                           check=True)  # counts its parent

        for stage in args.stages:
            out = Path(tempfile.mkdtemp(prefix=f"dedup_{stage}_"))
            try:
                res = run_pinned([PY, "-m", "bench.data.dedup", "--run", stage, "--input", str(corpus), "--out", str(out)],
                                 log=OUT / f"dedup.{stage}.{n}.log")
                stats = json.loads((out / "stats.json").read_text())
            finally:
                shutil.rmtree(out, ignore_errors=True)
            written = stats["stages"]["write"]["docs_out"]
            run = {"docs": n, "stage": stage, "wall_s": round(res["wall_s"], 1), "docs_per_s": round(n / res["wall_s"], 1),
                   "maxrss_mib": round(res["maxrss_mib"], 1), "tree_rss_peak_mib": round(res["tree_rss_mib"], 1),
                   "written": written, "removed": n - written,
                   "edited": stats["stages"].get(f"dedup_{stage.split('_')[0]}", {}).get("edited", {})}
            report["runs"][f"{stage}@{n}"] = run
            print(json.dumps(run), file=sys.stderr)
    first = OUT / "dedup" / f"docs-{args.docs[0]}.parquet"
    report["shuffle_mib_per_million_docs"] = {k: round(v * 1e6 / 2**20, 1) for k, v in shuffle_bytes_per_doc(first).items()}
    if len(args.docs) > 1:
        lo, hi = args.docs[0], args.docs[-1]
        report["maxrss_growth"] = {s: round(report["runs"][f"{s}@{hi}"]["maxrss_mib"] / report["runs"][f"{s}@{lo}"]["maxrss_mib"], 2)
                                   for s in args.stages}
    return save_report("dedup", report)


if __name__ == "__main__":
    sys.exit(main())
