#!/usr/bin/env bash
# Run a Refinery job on a Slurm cluster through Dask, from a login node:
#   scripts/run_slurm.sh --jobs=4 --cores=16 --memory=64G --walltime=02:00:00 --partition=cpu --account=myproj \
#       werp --input='/shared/crawl/*.warc.gz' --output=/shared/refinery/werp
# submits 4 Dask worker jobs (dask-jobqueue SLURMCluster), waits for them, runs
# `python -m pipelines.werp --runner=DaskRunner --dask_client_address=<scheduler>` with the flags after the job
# name unchanged, and cancels the jobs when the pipeline ends, fails or is interrupted.
#   scripts/run_slurm.sh --print-job-script werp     # the sbatch script of one worker job; submits nothing
#   scripts/run_slurm.sh --help                      # every flag and its REFINERY_SLURM_* variable
# Python: $PYTHON, else the active virtualenv's, else this checkout's .venv, else python3.
# Needs: pip install -e '.[dask]' in an environment every node sees (workers run the pipeline code).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
py=${PYTHON:-}
if [[ -z $py ]]; then
  if [[ -n ${VIRTUAL_ENV:-} ]]; then py=$VIRTUAL_ENV/bin/python
  elif [[ -x $repo/.venv/bin/python ]]; then py=$repo/.venv/bin/python
  else py=python3; fi
fi
exec "$py" "$here/slurm_dask.py" "$@"
