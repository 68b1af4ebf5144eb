"""MinHash signatures per second on one core: our MinHasher against datatrove 0.10.1, on the same documents.

    .venv/bin/python -m bench.data.minhash_signatures --input bench/out/corpus.warc.gz --docs 2000 --repeats 3

Documents: the bench corpus (`python -m bench.data.corpus`, 163 real pages x ~12 edited copies), each page's main
text extracted once with resiliparse (outside the clock), empty texts dropped. FineWeb's layout on both sides:
word 5-grams, 14 bands x 8 rows, seed 1. datatrove: MinhashDedupSignature with sha1 64-bit hashing (its default
xxhash fails with the installed wheel, data-anchors.md §6) and its default English (spaCy) word tokenizer.
Headline, `signature`: the per-document work only, ours `MinHasher.signature(text)`, theirs
`get_signature(get_shingles(text))`, which is exactly what its `run` does per document before packing the
rows. Also: ours with `band_keys`, and datatrove's whole block (`run` into a temporary folder: per-bucket
writes plus the final sort), since that is what a datatrove job pays. datasketch (MinHash, 112 permutations,
update_batch of the normalised 5-grams) is timed when importable. Each figure: median of --repeats passes.
"""
from __future__ import annotations

import argparse
import dataclasses
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from bench.common import OUT, REPO, machine, median, pin_one_core, save_report
from bench.data.plain_loop import recipe_for
from bench.data.stages import DEFAULT_RECIPE, rate, read_pages
from transforms.dedup.exact import normalize
from transforms.dedup.minhash import MinHashConfig, MinHasher
from transforms.extract import extract_text

CFG = MinHashConfig()  # FineWeb: 5-grams, 14 x 8, seed 1


def load_texts(warc: Path, n_docs: int) -> list[str]:
    """Main texts (resiliparse) of the first n_docs pages of the bench WARC that have any text."""
    if not warc.exists():
        raise SystemExit(f"{warc} not found; build it with: .venv/bin/python -m bench.data.corpus --out {warc}")
    cfg = dataclasses.replace(recipe_for(DEFAULT_RECIPE, None).extract, extractor="resiliparse")
    return [t for p in read_pages(warc)[:n_docs] if (t := extract_text(p.html, cfg)).strip()]


def ours() -> dict[str, Callable[[str], object]]:
    hasher = MinHasher(CFG)
    return {"signature": hasher.signature, "signature+band_keys": lambda t: hasher.band_keys(hasher.signature(t))}


def datatrove_block(folder: Path):
    """MinhashDedupSignature configured the FineWeb way, writing to `folder`."""
    from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature
    from datatrove.utils.hashing import HashConfig

    config = MinhashConfig(n_grams=CFG.ngram_words, num_buckets=CFG.bands, hashes_per_bucket=CFG.rows,
                           seed=CFG.seed, hash_config=HashConfig(precision=64, hash_fc="sha1"))
    return MinhashDedupSignature(output_folder=str(folder), config=config)


def datatrove_signature(block) -> Callable[[str], object]:
    """Its run() per document, minus the struct.pack and write: texts with no 5-gram are skipped as run() does."""
    def sign(text: str):
        shingles = block.get_shingles(text)
        return block.get_signature(shingles) if shingles.size else None

    return sign


def datatrove_run_rate(texts: list[str], *, reps: int) -> dict:
    """docs/s of the whole block (signatures, bucket files, sort) into a fresh folder per pass."""
    from datatrove.data import Document

    walls, cpus = [], []
    for _ in range(reps):
        folder = Path(tempfile.mkdtemp(prefix="dt_minhash_"))
        try:
            block = datatrove_block(folder)
            docs = (Document(text=t, id=str(i)) for i, t in enumerate(texts))
            start, cpu0 = time.perf_counter(), time.process_time()
            block.run(docs)
            walls.append(time.perf_counter() - start)
            cpus.append(time.process_time() - cpu0)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return {"docs": len(texts), "docs_per_s": round(len(texts) / median(walls), 1),
            "docs_per_cpu_s": round(len(texts) / median(cpus), 1)}


def datasketch_signature() -> Callable[[str], object] | None:
    """datasketch's MinHash over the same normalised 5-grams, or None when it is not installed."""
    try:
        from datasketch import MinHash
    except ImportError:
        return None

    def sign(text: str):
        words = normalize(text).split()
        n = CFG.ngram_words
        grams = [" ".join(words[i:i + n]).encode() for i in range(max(1, len(words) - n + 1))]
        mh = MinHash(num_perm=CFG.num_perm, seed=CFG.seed)
        mh.update_batch(grams)
        return mh.hashvalues

    return sign


def measure(texts: list[str], *, reps: int) -> dict:
    """Every figure on the same texts, each callable warmed up once (spaCy load, word table) outside the clock."""
    results = {}
    for name, fn in ours().items():
        fn(texts[0])
        results[f"refinery.{name}"] = rate(fn, texts, reps=reps)
    with tempfile.TemporaryDirectory(prefix="dt_minhash_") as folder:
        sign = datatrove_signature(datatrove_block(Path(folder)))
        sign(texts[0])
        results["datatrove.signature"] = rate(sign, texts, reps=reps)
    results["datatrove.block_run"] = datatrove_run_rate(texts, reps=reps)
    if (ds := datasketch_signature()) is not None:
        ds(texts[0])
        results["datasketch.signature"] = rate(ds, texts, reps=reps)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, default=OUT / "corpus.warc.gz", help="the bench WARC (bench/data/corpus.py)")
    parser.add_argument("--docs", type=int, default=2000, help="pages to read from the WARC (empty texts dropped)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed passes per figure; the median is reported (1 for a quick smoke run)")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.docs < 1:
        parser.error(f"--repeats ({args.repeats}) must be >= 1 and --docs ({args.docs}) >= 1")
    pin_one_core()
    texts = load_texts(args.input, args.docs)
    results = measure(texts, reps=args.repeats)
    ratio = results["refinery.signature"]["docs_per_s"] / results["datatrove.signature"]["docs_per_s"]
    cpu_ratio = results["refinery.signature"]["docs_per_cpu_s"] / results["datatrove.signature"]["docs_per_cpu_s"]
    warc = args.input.resolve()
    shown = warc.relative_to(REPO) if warc.is_relative_to(REPO) else warc
    report = {
        "machine": machine(), "reps": args.repeats, "input": str(shown),
        "texts": "bench corpus pages, main text by resiliparse", "docs": len(texts),
        "mean_words_per_doc": round(statistics.mean(len(t.split()) for t in texts), 1),
        "mean_chars_per_doc": round(statistics.mean(map(len, texts)), 1),
        "config": dataclasses.asdict(CFG), "results": results,
        "ratio_signature_ours_over_datatrove": round(ratio, 2), "ratio_cpu_ours_over_datatrove": round(cpu_ratio, 2),
        "datasketch": "timed" if "datasketch.signature" in results else "not installed",
        "command": " ".join([".venv/bin/python", "-m", "bench.data.minhash_signatures", "--input", str(shown),
                             "--docs", str(args.docs), "--repeats", str(args.repeats)]),
    }
    return save_report("minhash_signatures", report)


if __name__ == "__main__":
    sys.exit(main())
