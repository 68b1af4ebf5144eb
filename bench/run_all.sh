#!/usr/bin/env bash
# Re-measure every figure of BENCHMARKS.md, in order (about 2 hours on one core). Run from the repo root:
#   bash bench/run_all.sh            (make bench)
# BENCH_CORE=1 pins to core 1 instead of 0 when something else is using core 0; REPEATS overrides repetitions (--repeats).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
REPEATS=${REPEATS:-3}
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
mkdir -p bench/out
lscpu | grep 'Model name' | tee bench/out/machine.txt

# 1. The corpus: 2,000 real pages (163 sources x ~12 edited copies), and its first 489 pages for slow extractors.
$PY -m bench.data.corpus --pages 2000 --out bench/out/corpus.warc.gz
$PY -m bench.data.corpus --pages 489 --out bench/out/subset.warc.gz

# 2. datatrove's FineWeb pipeline alone.
$PY -m bench.data.datatrove_fineweb --input bench/out/corpus.warc.gz --repeats "$REPEATS"

# 3. Per-stage docs/s, plain loop vs Beam per extractor.
$PY -m bench.data.stages --input bench/out/corpus.warc.gz --subset-input bench/out/subset.warc.gz --repeats "$REPEATS"

# 4. Our job (trafilatura, fineweb recipe) vs datatrove, alternated.
$PY -m bench.data.e2e_vs_datatrove --input bench/out/corpus.warc.gz --config fineweb --repeats "$REPEATS"
$PY -m bench.data.e2e_vs_datatrove --input bench/out/corpus.warc.gz --config fineweb --extractor lines --repeats "$REPEATS"

# 5. Peak RSS at 1x and 10x (builds bench/out/corpus_x10.warc.gz, ~430 MB, on first use), with and without
#    the exact-dedup shuffle (the local runner keeps shuffle data in memory).
$PY -m bench.data.memory --pages 2000 --scales 1 10
$PY -m bench.data.memory --pages 2000 --scales 1 10 --config bench/data/bluwerp-nodedup.yaml

# 6. All quality filters vs datatrove's Gopher + C4 + FineWeb filters on the same texts.
$PY -m bench.data.filters_vs_datatrove --docs 2000 --repeats "$REPEATS"

# 7. Extraction quality (token P/R/F1 against gold) and speed per extractor.
$PY -m bench.data.extraction_quality --data ../shared/data/extraction --repeats "$REPEATS"
$PY -m scripts.train_extractor --cv --out bench/out/extract_lines_retrained.json  # the shipped weights, reproduced
$PY -m bench.data.extraction_languages --data ../shared/data/warc

# 8. MinHash signatures: ours vs datatrove's MinhashDedupSignature on the same texts (~6 minutes).
$PY -m bench.data.minhash_signatures --input bench/out/corpus.warc.gz --docs 2000 --repeats "$REPEATS"

# 9. Each dedup stage end to end on the local runner, 10k -> 100k synthetic documents (~10 minutes).
$PY -m bench.data.dedup --docs 10000 30000 100000   # none, exact, minhash, paragraph (shuffle), paragraph_files

# 10. BETR end to end on GSM8K vs news + StackMathQA (~3 minutes).
$PY -m bench.data.betr_demo --input bench/out/corpus.warc.gz --data ../shared/data/math

# 11. SwallowCode's filters: our pylint pool vs a subprocess per file, and the stdlib retention (~25 minutes).
$PY -m bench.data.pylint_speed --files 200 --skip-stdlib   # the speed comparison
$PY -m bench.data.pylint_speed --files 200                 # + retention on the whole standard library

# 12. Training: tokenize tokens/s per core, the loader, the tiny trainer on 1 core and 2 DDP ranks (~5 minutes).
$PY -m bench.data.tokenize_speed --copies 4 --vocab_size 32768 --repeats "$REPEATS"
$PY -m bench.train.loader_speed --seconds 10
$PY -m bench.train.train_speed --config tiny --steps 120
$PY -m bench.train.train_speed --config tiny --steps 120 --ranks 2
# On a GPU machine: $PY -m bench.train.train_speed --config 150m --steps 60 --tokens 60000000

# 13. StreamBP, pipelines, SkipPipe, local learning (~60 minutes; the pipeline benches need both cores idle).
$PY -m bench.train.streambp_memory
$PY -m bench.train.streambp_memory --methods ckpt streambp --lengths 2048 4096 8192 16384 --repeats 3
$PY -m bench.train.pipeline_simulator
$PY -m bench.train.pipeline_bubble
$PY -m bench.train.pipeline_vs_torch --schedules gpipe 1f1b interleaved1f1b zero-bubble zbv dualpipev
$PY -m bench.train.skippipe_sim
$PY -m bench.train.skippipe_gloo --iters 8
$PY -m bench.train.skippipe_convergence
$PY -m bench.train.local_digits
bash scripts/real_shards.sh         # real web + code shards from /work/shared/data (developer test data)
for b in 2 4; do                   # ~50 minutes on one core
    $PY -m bench.train.local_lm --data output/real/tokens_full --micro-batch 4 --steps 1000 --eval-batches 80 \
        --set optim.lr=1e-3 --blocks $b
done
$PY -m bench.train.local_memory
$PY -m bench.train.local_pipeline --steps 3
$PY -m bench.train.local_pipeline --trainer --microbatches 8 --rows 2   # needs output/demo/tokens (scripts/train_demo.sh)
$PY -m bench.data.warc_read --pages 2000 --repeats 5 --ref b10cefc
$PY -m bench.train.checkpoint_integrity --config 150m --repeats 3

# 16. Beyond one machine (~35 minutes; the scaling runs need both cores otherwise idle): what a byte range costs
#     and how evenly ranges share the work; werp on 1 and 2 local worker processes and a 2-worker Dask
#     LocalCluster, alternated; per-core rates, worker memory and shuffle bytes per recipe; Common Crawl on paper.
$PY -m bench.data.range_balance --input bench/out/corpus.warc.gz --workers 2 4 --repeats "$REPEATS"
$PY -m bench.data.scaling --input bench/out/corpus.warc.gz --repeats "$REPEATS"

# 17. Vocabulary parallelism vs the end-stage layouts, 8k-256k vocabularies on 4 gloo ranks (~10 minutes).
$PY -m bench.train.vocab_parallel

echo "results: bench/out/{datatrove_fineweb,stages,e2e_vs_datatrove,e2e_vs_datatrove_lines,extraction_languages,memory,minhash_signatures,dedup,betr_demo,pylint_speed,tokenize_speed,loader_speed,train_speed_*,warc_read,checkpoint_integrity,range_balance,scaling,vocab_parallel}.json"
