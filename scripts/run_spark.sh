#!/usr/bin/env bash
# Run a Refinery job on an Apache Spark cluster through Beam's Spark job server.
#   SPARK_MASTER=spark://spark-master:7077 IMAGE=registry/refinery-worker:TAG scripts/run_spark.sh werp \
#       --input='hdfs:///crawl/*.warc.gz' --output=hdfs:///werp/run1
# Needs: Spark 3.x standalone cluster, Java 17 here, SDK harness on workers (DOCKER with IMAGE, or EXTERNAL
# worker pools as in run_flink.sh). Offline: SPARK_JOB_SERVER_JAR=/path/beam-runners-spark-3-job-server-2.77.0.jar.
# For a cluster behind a REST endpoint instead: SPARK_REST_URL=http://master:6066 submits an uber jar.
set -euo pipefail
JOB=${1:?usage: run_spark.sh JOB [flags...]}; shift
: "${SPARK_MASTER:?set SPARK_MASTER (spark://host:7077)}"
cd "$(dirname "$0")/.."
env_flags=(--environment_type="${ENV_TYPE:-DOCKER}")
if [[ "${ENV_TYPE:-DOCKER}" == DOCKER ]]; then env_flags+=(--environment_config="${IMAGE:?set IMAGE}"); else env_flags+=(--environment_config="${ENV_CONFIG:?set ENV_CONFIG}"); fi
extra=()
if [[ -n "${SPARK_JOB_SERVER_JAR:-}" ]]; then extra+=(--spark_job_server_jar="$SPARK_JOB_SERVER_JAR"); fi
if [[ -n "${SPARK_REST_URL:-}" ]]; then extra+=(--spark_submit_uber_jar --spark_rest_url="$SPARK_REST_URL"); fi
exec python -m "pipelines.$JOB" --runner=SparkRunner --spark_master_url="$SPARK_MASTER" \
  "${env_flags[@]}" "${extra[@]}" "$@"
