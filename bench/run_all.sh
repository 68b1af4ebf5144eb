#!/usr/bin/env bash
# Re-measure every figure of BENCHMARKS.md, in order (about 2 hours on one core). Run from the repo root:
#   bash bench/run_all.sh            (make bench)
# BENCH_CORE=1 pins to core 1 instead of 0 when something else is using core 0; REPS overrides repetitions.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
REPS=${REPS:-3}
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
mkdir -p bench/out
lscpu | grep 'Model name' | tee bench/out/machine.txt

# 1. The corpus: 2,000 real pages (163 sources x ~12 edited copies), and its first 489 pages for slow extractors.
$PY -m bench.corpus --pages 2000 --out bench/out/corpus.warc.gz
$PY -m bench.corpus --pages 489 --out bench/out/subset.warc.gz

# 2. datatrove's FineWeb pipeline alone.
$PY bench/datatrove_fineweb.py --input bench/out/corpus.warc.gz --reps "$REPS"

# 3. Per-stage docs/s, plain loop vs Beam per extractor.
$PY bench/stages.py --input bench/out/corpus.warc.gz --subset-input bench/out/subset.warc.gz --reps "$REPS"

# 4. Our job (trafilatura, fineweb recipe) vs datatrove, alternated.
$PY bench/e2e_vs_datatrove.py --input bench/out/corpus.warc.gz --config fineweb --reps "$REPS"

# 5. Peak RSS at 1x and 10x (builds bench/out/corpus_x10.warc.gz, ~430 MB, on first use), with and without
#    the exact-dedup shuffle (the local runner keeps shuffle data in memory).
$PY bench/memory.py --pages 2000 --scales 1 10
$PY bench/memory.py --pages 2000 --scales 1 10 --config bench/bluwerp-nodedup.yaml

# 6. All quality filters vs datatrove's Gopher + C4 + FineWeb filters on the same texts.
$PY bench/filters_vs_datatrove.py --docs 2000 --repeats "$REPS"

# 7. Extraction quality (token P/R/F1 against gold) and speed per extractor.
$PY bench/extraction_quality.py --data ../shared/data/extraction --passes "$REPS"

# 8. MinHash signatures: ours vs datatrove's MinhashDedupSignature on the same texts (~6 minutes).
$PY bench/minhash_signatures.py --input bench/out/corpus.warc.gz --docs 2000 --reps "$REPS"

# 9. Each dedup stage end to end on the local runner, 10k -> 100k synthetic documents (~10 minutes).
$PY bench/dedup.py --docs 10000 30000 100000   # none, exact, minhash, paragraph (shuffle), paragraph_files

# 10. BETR end to end on GSM8K vs news + StackMathQA (~3 minutes).
$PY bench/betr_demo.py --input bench/out/corpus.warc.gz --data ../shared/data/math

# 11. SwallowCode's filters: our pylint pool vs a subprocess per file, and the stdlib retention (~25 minutes).
$PY bench/pylint_speed.py --files 200 --skip-stdlib   # the speed comparison
$PY bench/pylint_speed.py --files 200                 # + retention on the whole standard library

# 12. Training: tokenize tokens/s per core, the loader, the tiny trainer on 1 core and 2 DDP ranks (~5 minutes).
$PY bench/tokenize_speed.py --copies 4 --vocab_size 32768 --reps "$REPS"
$PY bench/loader_speed.py --seconds 10
$PY bench/train_speed.py --config tiny --steps 120
$PY bench/train_speed.py --config tiny --steps 120 --ranks 2
# On a GPU machine: $PY bench/train_speed.py --config 150m --steps 60 --tokens 60000000

# 13. StreamBP, pipelines, SkipPipe, local learning (~60 minutes; the pipeline benches need both cores idle).
$PY bench/streambp_memory.py
$PY bench/streambp_memory.py --methods ckpt streambp --lengths 2048 4096 8192 16384 --reps 3
$PY bench/pipeline_simulator.py
$PY bench/pipeline_bubble.py
$PY bench/pipeline_vs_torch.py --schedules gpipe 1f1b interleaved1f1b zero-bubble zbv dualpipev
$PY bench/skippipe_sim.py
$PY bench/skippipe_gloo.py --iters 8
$PY bench/skippipe_convergence.py
$PY bench/local_digits.py
bash scripts/real_shards.sh         # real web + code shards from /work/shared/data (developer test data)
for b in 2 4; do                   # ~50 minutes on one core
    $PY bench/local_lm.py --data output/real/tokens_full --micro-batch 4 --steps 1000 --eval-batches 80 \
        --set optim.lr=1e-3 --blocks $b
done
$PY bench/local_memory.py
$PY bench/local_pipeline.py --steps 3
$PY bench/local_pipeline.py --trainer --microbatches 8 --rows 2   # needs output/demo/tokens (scripts/train_demo.sh)
$PY bench/warc_read.py --pages 2000 --reps 5 --ref b10cefc
$PY bench/checkpoint_integrity.py --config 150m --reps 3

# 16. Beyond one machine (~35 minutes; the scaling runs need both cores otherwise idle): what a byte range costs
#     and how evenly ranges share the work; werp on 1 and 2 local worker processes and a 2-worker Dask
#     LocalCluster, alternated; per-core rates, worker memory and shuffle bytes per recipe; Common Crawl on paper.
$PY bench/range_balance.py --input bench/out/corpus.warc.gz --workers 2 4 --reps "$REPS"
$PY bench/scaling.py --input bench/out/corpus.warc.gz --reps "$REPS"

echo "results: bench/out/{datatrove_fineweb,stages,e2e_vs_datatrove,memory,minhash_signatures,dedup,betr_demo,pylint_speed,tokenize_speed,loader_speed,train_speed_*,warc_read,checkpoint_integrity,range_balance,scaling}.json"
