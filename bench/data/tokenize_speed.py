"""Tokenize step speed, tokens/s on one core: bare `encode_batch_fast`, then the whole pipelines.tokenize job.

    .venv/bin/python -m bench.data.tokenize_speed --copies 4 --repeats 3

Corpus: real text. From ../shared/data when present: the gold main text of the CleanEval and Dragnet extraction
benchmarks and of the Scrapinghub article benchmark (web prose), StackMathQA Q&A and GSM8K problems (math with
LaTeX); else the first 20 kB of each standard-library module. Written once to bench/out/tokenize/corpus.parquet
(`--copies` times, each copy's documents prefixed with its number, so the job tokenises that many distinct
documents); a byte-level BPE (transforms.tokenizer, --vocab_size) is trained on one copy.
Each measurement is its own process pinned to BENCH_CORE with RAYON_NUM_THREADS=1 and TOKENIZERS_PARALLELISM=false,
so tokenizers' thread pool cannot use a second core. `encode`: the batches TokenizeFn makes (1 Mi chars), ids
to a numpy array as TokenizeFn does, timed inside the process (reading and loading excluded). `pipeline`: the job
on the local runner (FnApiRunner, one worker): read Parquet, tokenise, plan, mix, pack, write shards; timed as the
whole process, Python and Beam start-up included, and as the job's own wall time (stats.json).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.common import OUT, PY, REPO, machine, median, run_pinned, save_report

DATA = REPO.parent / "shared" / "data"
WORK = OUT / "tokenize"
BATCH_CHARS = 1 << 20  # transforms.beam.packing.TokenizeFn's default


def real_texts() -> tuple[list[str], str]:
    """Documents and where they came from."""
    texts = []
    if DATA.is_dir():
        for folder in ("extraction/cleaneval/dev/GoldStandard", "extraction/dragnet/GoldStandard"):
            for p in sorted((DATA / folder).glob("*.txt")):
                lines = p.read_text(encoding="utf-8", errors="replace").splitlines()
                texts.append("\n".join(ln for ln in lines if not ln.startswith("URL:")).strip())
        truth = json.loads((DATA / "extraction/scrapinghub-aeb/ground-truth.json").read_text(encoding="utf-8"))
        texts += [v["articleBody"] for v in truth.values() if v.get("articleBody")]
        for p in sorted((DATA / "math/stackmathqa").glob("*.jsonl")):
            texts += [f"{r['Q']}\n\n{r['A']}" for r in map(json.loads, p.read_text(encoding="utf-8").splitlines())]
        gsm = (DATA / "math/gsm8k/test.jsonl").read_text(encoding="utf-8").splitlines()
        texts += [f"{r['question']}\n{r['answer']}" for r in map(json.loads, gsm)]
        return [t for t in texts if t.strip()], "shared/data: extraction gold texts, StackMathQA, GSM8K"
    stdlib = Path(os.__file__).parent
    return [p.read_text(encoding="utf-8", errors="replace")[:20_000] for p in sorted(stdlib.glob("*.py"))], "stdlib"


def build(copies: int, vocab_size: int) -> dict:
    """The corpus Parquet and the tokenizer, made once per (copies, vocab_size)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from transforms.tokenizer import train_tokenizer

    texts, source = real_texts()
    WORK.mkdir(parents=True, exist_ok=True)
    corpus, tokenizer = WORK / f"corpus-x{copies}.parquet", WORK / f"tokenizer-{vocab_size}.json"
    if not corpus.exists():
        docs = [f"copy {c}: {t}" for c in range(copies) for t in texts]
        pq.write_table(pa.table({"text": docs}), corpus, row_group_size=1000, compression="zstd")
    if not tokenizer.exists():
        train_tokenizer(texts, vocab_size).save(str(tokenizer))
    return {"corpus": str(corpus), "tokenizer": str(tokenizer), "source": source, "documents": len(texts) * copies,
            "chars": sum(map(len, texts)) * copies}


def measure_encode(corpus: str, tokenizer: str, result: str) -> None:
    """The child of `encode`: encode_batch_fast over TokenizeFn-sized batches, timed in-process."""
    import numpy as np
    import pyarrow.parquet as pq

    from transforms.tokenizer import eos_id, load_tokenizer

    texts = pq.read_table(corpus, columns=["text"]).column("text").to_pylist()
    tok = load_tokenizer(tokenizer)
    tok.encode_special_tokens = True
    eos, batches, batch, size = eos_id(tok), [], [], 0
    for t in texts:
        batch.append(t)
        size += len(t)
        if size >= BATCH_CHARS:
            batches.append(batch)
            batch, size = [], 0
    batches.append(batch)
    wall, cpu, tokens = time.perf_counter(), time.process_time(), 0
    for b in batches:
        for enc in tok.encode_batch_fast(b, add_special_tokens=False):
            tokens += len(np.array([*enc.ids, eos], dtype=np.uint16))
    Path(result).write_text(json.dumps({"tokens": tokens, "wall_s": time.perf_counter() - wall,
                                        "cpu_s": time.process_time() - cpu}), encoding="utf-8")


def run_pipeline(corpus: str, tokenizer: str, out: str) -> dict:
    res = run_pinned([PY, "-m", "pipelines.tokenize", "--runner=DirectRunner", f"--input={corpus}",
                      f"--tokenizer={tokenizer}", "--seq_len=2048", f"--output={out}"], log=WORK / "pipeline.log")
    report = json.loads((Path(out) / "stats.json").read_text())
    tokens = sum(v for k, v in report["stages"]["tokenize"]["other"].items() if k.startswith("tokens."))
    return {"tokens": tokens, "process_wall_s": res["wall_s"], "job_wall_s": report["wall_time_s"],
            "maxrss_mib": res["maxrss_mib"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=4, help="corpus copies the pipeline tokenises")
    parser.add_argument("--vocab_size", type=int, default=32768)
    parser.add_argument("--repeats", type=int, default=3, help="repetitions; medians are reported")
    parser.add_argument("--encode", nargs=3, help=argparse.SUPPRESS)  # the measured child: corpus tokenizer result
    args = parser.parse_args(argv)
    if args.encode:
        measure_encode(*args.encode)
        return 0
    os.environ.update(RAYON_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")  # inherited by the pinned children
    built = build(args.copies, args.vocab_size)
    encode, pipeline = [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="tokenize_speed_") as tmp:
            result = Path(tmp) / "encode.json"
            run_pinned([PY, "-m", "bench.data.tokenize_speed", "--encode", built["corpus"], built["tokenizer"], str(result)])
            encode.append(json.loads(result.read_text()))
            pipeline.append(run_pipeline(built["corpus"], built["tokenizer"], f"{tmp}/out"))
    from transforms.tokenizer import load_tokenizer

    vocab = load_tokenizer(built["tokenizer"]).get_vocab_size()
    tokens = encode[0]["tokens"]
    rows = {"encode_batch_fast (in-process)": median([e["wall_s"] for e in encode]),
            "pipelines.tokenize, job wall time": median([p["job_wall_s"] for p in pipeline]),
            "pipelines.tokenize, whole process": median([p["process_wall_s"] for p in pipeline])}
    command = f"BENCH_CORE={os.environ.get('BENCH_CORE', '0')} .venv/bin/python -m bench.data.tokenize_speed " \
              f"--copies {args.copies} --vocab_size {args.vocab_size} --repeats {args.repeats}"
    table = [f"`{command}`", "", f"{built['documents']:,} documents, {built['chars'] / 1e6:.1f} M chars, {tokens:,} "
             f"tokens ({built['chars'] / tokens:.2f} chars/token), vocab {vocab:,}; {built['source']}; "
             f"{machine()['cpu']}, one core", "", f"| step | seconds (median of {args.repeats}) | tokens/s per core |",
             "|---|---:|---:|"]
    table += [f"| {name} | {s:.2f} | {tokens / s:,.0f} |" for name, s in rows.items()]
    print("\n".join(table))
    return save_report("tokenize_speed", {"machine": machine(), "command": command, **built, "vocab_size": vocab,
                                          "tokens": tokens, "encode": encode, "pipeline": pipeline,
                                          "seconds": rows, "tokens_per_s": {k: tokens / s for k, s in rows.items()},
                                          "table": table})


if __name__ == "__main__":
    sys.exit(main())
