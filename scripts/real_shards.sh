#!/usr/bin/env bash
# Real-text token shards for benchmarks (python -m bench.train.local_lm --data output/real/tokens), offline, through our own
# pipelines, from the developer test data in /work/shared/data (the project itself does not need it):
#   web:  the extraction test pages packed as a crawl (bench/data/real_corpus.py) + the real WARC excerpts in
#         shared/data/warc (malformed ones are counted and skipped) -> pipelines.werp, default Blu-WERP recipe
#   code: a subset of this interpreter's standard library (bench.data.real_corpus stdlib: top-level modules + 25 pure-Python
#         packages, ~360 files, 8 MB) -> pipelines.swallowcode --config=filter (compile + pylint >= 7, no LLM)
#   then a 4,096-symbol byte-level BPE trained on all the web text and as many characters of code (so that neither
#   dominates the merges), and pipelines.tokenize with configs/tokenize/real.yaml (web and code at equal token
#   shares, seq_len 256, a fifth of the documents held out).
#   bash scripts/real_shards.sh             (~4 min on one core; CORE=1 pins every step to core 1)
# Writes output/real/{pages.warc.gz,werp,swallowcode,tokenizer.json,tokens,tokens_full,stats.json}.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${SHARED_DATA:-/work/shared/data}
OUT=output/real
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-1}
PIN=()
if [[ -n "${CORE:-}" ]]; then PIN=(taskset -c "$CORE"); fi

for d in "$DATA/extraction" "$DATA/warc"; do
    if [[ ! -d "$d" ]]; then
        echo "error: $d not found. scripts/real_shards.sh is a benchmark helper that reads the developer test data" \
             "in /work/shared/data (set SHARED_DATA=... if it lives elsewhere); the project itself does not need it." >&2
        exit 2
    fi
done
mkdir -p "$OUT"
step() { echo "== $1 ($(date +%T))"; }

step "pack the extraction pages into a WARC"
"${PIN[@]}" $PY -m bench.data.real_corpus warc --data "$DATA" --out "$OUT/pages.warc.gz"

step "werp: pages + shared/data/warc"
"${PIN[@]}" $PY -m pipelines.werp --runner=DirectRunner --input="$OUT/pages.warc.gz" --input="$DATA/warc/**" \
    --output="$OUT/werp"

step "swallowcode filter: stdlib subset"
STDLIB=$($PY -m bench.data.real_corpus stdlib)
"${PIN[@]}" $PY -m pipelines.swallowcode --runner=DirectRunner --config=filter --input="$STDLIB" \
    --output="$OUT/swallowcode"

step "BPE tokenizer (vocab 4096): all web text, then as many characters of code"
# Inputs are read in the order given and --max_chars stops the sample: web first, then code up to twice the web text.
WEB_CHARS=$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['stages']['write']['chars_out'])" \
    "$OUT/werp/stats.json")
"${PIN[@]}" $PY -m transforms.tokenizer train --input "$OUT/werp/documents/*.parquet" \
    --input "$OUT/swallowcode/documents/*.parquet" --max_chars $((2 * WEB_CHARS)) --vocab_size 4096 \
    --output "$OUT/tokenizer.json"

step "tokenize: configs/tokenize/real.yaml"
"${PIN[@]}" $PY -m pipelines.tokenize --runner=DirectRunner --config configs/tokenize/real.yaml --output "$OUT/tokens"

step "tokenize: configs/tokenize/real-full.yaml (all of the code, no document twice; BENCHMARKS §14's main figure)"
"${PIN[@]}" $PY -m pipelines.tokenize --runner=DirectRunner --config configs/tokenize/real-full.yaml \
    --output "$OUT/tokens_full"

step "stats"
$PY -m bench.data.real_corpus stats --werp "$OUT/werp" --code "$OUT/swallowcode" --tokens "$OUT/tokens" | tee "$OUT/stats.json"
