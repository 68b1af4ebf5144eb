#!/usr/bin/env bash
# One GPU, from a checkout, in under 8 minutes once installed: vLLM (dummy weights on a model folder made here: our
# tokenizer + a Llama config in the 150m shape) on SwallowCode's SGCR prompts and through the swallowcode pipeline
# (generations/s), the 150m training config's step time and MFU in bf16, StreamBP's exactness and memory on CUDA.
# Writes OUT_DIR/gpu_check.json and prints it (scripts/gpu_check.py; BENCHMARKS.md takes the figures).
#
#   bash scripts/gpu_check.sh OUT_DIR            # makes output/gpu-venv (Python 3.11, constraints-gpu.txt), checks
#   PYTHON=/path/to/python bash scripts/gpu_check.sh OUT_DIR   # an environment that already holds .[gpu,train]
#   bash scripts/gpu_check.sh --dry-run OUT_DIR  # any machine: every part small on the CPU, transformers for vLLM
#
# On a machine with 4 or more GPUs, also (not part of the one-GPU check; BENCHMARKS.md §17 has the CPU figures):
#   $py -m bench.train.vocab_parallel --device cuda --ranks 4 --dim 1024 --seq-len 2048 --layers 16 --heads 8 \
#       --microbatches 16      # vocabulary parallelism vs the end-stage layouts over NCCL, 32k-256k vocabularies
set -euo pipefail
cd "$(dirname "$0")/.."
dry=()
if [[ "${1:-}" == "--dry-run" ]]; then dry=(--dry-run); shift; fi
out="${1:?usage: bash scripts/gpu_check.sh [--dry-run] OUT_DIR [gpu_check.py flags]}"
shift

# gpu: vLLM 0.32 (torch 2.13.0 CUDA); train: the trainer, transformers, tensorboard; pytest: the StreamBP part
# reuses the CPU tests' model and tolerances (tests/training/test_streambp.py imports pytest).
install=(pip install -q -c constraints-gpu.txt -e ".[gpu,train]" pytest)
venv=output/gpu-venv  # under output/, which git ignores and `make clean` removes
if [[ -n "${PYTHON:-}" ]]; then
  py="$PYTHON"
elif [[ ${#dry[@]} -gt 0 ]]; then
  py=.venv/bin/python
  echo "install (not run in a dry run): python3.11 -m venv $venv && $venv/bin/${install[*]}"
else
  [[ -x $venv/bin/python ]] || python3.11 -m venv "$venv"
  start=$SECONDS
  "$venv"/bin/"${install[@]}"
  echo "install: $((SECONDS - start)) s"
  py=$venv/bin/python
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
exec "$py" scripts/gpu_check.py "${dry[@]}" --out "$out" "$@"
