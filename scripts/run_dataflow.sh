#!/usr/bin/env bash
# Run a Refinery job on Google Cloud Dataflow.
#   PROJECT=my-proj REGION=europe-west4 BUCKET=gs://my-bucket scripts/run_dataflow.sh werp \
#       --input='gs://my-bucket/crawl/*.warc.gz' --output=gs://my-bucket/werp/run1
# Needs: `pip install -e '.[dataflow]'` (apache-beam[gcp]) and gcloud credentials.
# Workers get the code either from a custom image (IMAGE=...; see scripts/Dockerfile; recommended: no pip
# install at worker start) or, when IMAGE is unset, from --setup_file (Dataflow builds a source package).
set -euo pipefail
JOB=${1:?usage: run_dataflow.sh JOB [flags...]   (JOB: werp)}; shift
: "${PROJECT:?set PROJECT}" "${REGION:?set REGION}" "${BUCKET:?set BUCKET (gs://...)}"
cd "$(dirname "$0")/.."
code_flags=(--setup_file=./setup.py)
if [[ -n "${IMAGE:-}" ]]; then code_flags=(--sdk_container_image="$IMAGE" --sdk_location=container); fi
exec python -m "pipelines.$JOB" \
  --runner=DataflowRunner --project="$PROJECT" --region="$REGION" \
  --temp_location="$BUCKET/tmp" --staging_location="$BUCKET/staging" \
  --job_name="refinery-$JOB-$(date +%Y%m%d-%H%M%S)" \
  --machine_type="${MACHINE_TYPE:-n2-standard-4}" --max_num_workers="${MAX_WORKERS:-100}" \
  --experiments=use_runner_v2 "${code_flags[@]}" "$@"
