#!/usr/bin/env bash
# Submit a job through Beam's portable Job API to a local job service: the same submission path Flink and
# Spark use (pipeline proto, artifact staging, SDK workers), runnable offline on a laptop.
#   scripts/run_portable_local.sh werp [flags...]
set -euo pipefail
JOB=${1:?usage: run_portable_local.sh JOB [flags...]}; shift
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
port_file=$(mktemp)
"$PY" -m apache_beam.runners.portability.local_job_service_main --port=0 --port_file="$port_file" &
svc=$!
trap 'kill $svc 2>/dev/null || true; rm -f "$port_file"' EXIT
for _ in $(seq 100); do [[ -s "$port_file" ]] && break; sleep 0.1; done
port=$(cat "$port_file")
"$PY" -m "pipelines.$JOB" --runner=PortableRunner --job_endpoint="localhost:$port" \
  --environment_type=LOOPBACK "$@"
