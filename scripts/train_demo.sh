#!/usr/bin/env bash
# End to end on a laptop CPU, offline, in about two minutes: a synthetic crawl -> pipelines.werp -> a byte-level
# BPE -> pipelines.tokenize -> the tiny model trained 300 steps -> a Hugging Face export. It ends by comparing the
# held-out loss with the unigram entropy of the data (the loss of the best model that ignores context).
#   bash scripts/train_demo.sh          (make train-demo)
# OUT (default output/demo) must match configs/tokenize/demo.yaml's paths; ARTICLES sizes the crawl.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=output/demo
ARTICLES=${ARTICLES:-3000}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

$PY -m pipelines.sample_warc "$OUT/crawl.warc.gz" --articles "$ARTICLES"
$PY -m pipelines.werp --runner=DirectRunner --input="$OUT/crawl.warc.gz" --output="$OUT/werp"
$PY -m transforms.tokenizer train --input "$OUT/werp/documents/*.parquet" --vocab_size 2048 --output "$OUT/tokenizer.json"
$PY -m pipelines.tokenize --runner=DirectRunner --config demo --output "$OUT/tokens"
$PY -m training.pretrain --config tiny data.path="$OUT/tokens" output="$OUT/train" checkpoint.resume=false --overwrite \
    log.progress=false "$@"
$PY -m training.export --run "$OUT/train" --out "$OUT/hf"
$PY - "$OUT" <<'PYEOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
bar = json.loads((out / "tokens" / "manifest.json").read_text())["unigram_entropy"]["nats_per_token"]
runs = [json.loads(line) for line in (out / "train" / "metrics.jsonl").read_text().splitlines()]
held_out = [r["eval_loss"] for r in runs if "eval_loss" in r][-1]
print(f"held-out loss {held_out:.3f} nats/token vs unigram entropy of the data {bar:.3f}: "
      f"{bar - held_out:.3f} nats below ({'PASS' if held_out < bar else 'FAIL'})")
PYEOF
