#!/usr/bin/env bash
# Run a Refinery job on an Apache Flink cluster through Beam's Flink job server.
#   FLINK_MASTER=flink-jobmanager:8081 IMAGE=registry/refinery-worker:TAG scripts/run_flink.sh werp \
#       --input='s3://bucket/crawl/*.warc.gz' --output=s3://bucket/werp/run1
# Needs: a Flink cluster whose version matches the job-server jar (Beam 2.77: Flink 1.19/1.20/2.x jars),
# Java 17 on this machine, and workers that can run the SDK harness:
#   - DOCKER (default): every TaskManager pulls IMAGE (scripts/Dockerfile);
#   - EXTERNAL: run `python -m apache_beam.runners.worker.worker_pool_main --service_port=50000` as a sidecar
#     of each TaskManager (image with this package installed) and set ENV_TYPE=EXTERNAL ENV_CONFIG=localhost:50000.
# Offline clusters: Beam downloads the job-server jar from Maven Central unless FLINK_JOB_SERVER_JAR points
# to a local copy (beam-runners-flink-<flink>-job-server-2.77.0.jar).
set -euo pipefail
JOB=${1:?usage: run_flink.sh JOB [flags...]}; shift
: "${FLINK_MASTER:?set FLINK_MASTER (host:port of the JobManager REST endpoint)}"
cd "$(dirname "$0")/.."
env_flags=(--environment_type="${ENV_TYPE:-DOCKER}")
if [[ "${ENV_TYPE:-DOCKER}" == DOCKER ]]; then env_flags+=(--environment_config="${IMAGE:?set IMAGE}"); else env_flags+=(--environment_config="${ENV_CONFIG:?set ENV_CONFIG}"); fi
jar_flags=()
if [[ -n "${FLINK_JOB_SERVER_JAR:-}" ]]; then jar_flags=(--flink_job_server_jar="$FLINK_JOB_SERVER_JAR"); fi
exec python -m "pipelines.$JOB" --runner=FlinkRunner --flink_master="$FLINK_MASTER" \
  --parallelism="${PARALLELISM:-16}" "${env_flags[@]}" "${jar_flags[@]}" "$@"
