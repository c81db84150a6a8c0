#!/usr/bin/env bash
# Start long-lived cell workers for served mode (benchmark_grid(execution="served"), flows/served.py):
# one per visible GPU (pinned with CUDA_VISIBLE_DEVICES), or COUNT on a machine without GPUs (one
# per core by default). Each keeps TensorFlow loaded and takes cell after cell as train-cell task
# runs; it heartbeats to work pool POOL (default gpu, which must exist: create_pools.sh) so the
# grid can tell a dead worker from a slow cell. Run it on every machine that should train cells.
#
# Usage: deployments/start_cell_workers.sh [--count N] [--cpu] [--pool NAME] [--run-dir DIR]
# Needs PREFECT_API_URL; across machines also PREFECT_TASKS_SCHEDULING_DEFAULT_STORAGE_BLOCK (a
# storage block every machine can read: task parameters go there). TLBENCH_DATA_DIR,
# TLBENCH_RESULTS, MLFLOW_TRACKING_URI, TLBENCH_ARTIFACTS are read by the workers. Prints one
# "name pid" line per worker; stop them with deployments/stop_workers.sh --run-dir DIR.
set -euo pipefail

help_lines=2,13
source "$(dirname "${BASH_SOURCE[0]}")/workers_lib.sh"
parse_worker_options "$@"

require_api_url "cell workers need a Prefect server (not the ephemeral API)."
PYTHON="${PYTHON:-$(venv_or python python3)}"
run_dir="${run_dir:-${TMPDIR:-/tmp}/tlbench-cell-workers-$(id -un)}"
count="${count:-$(nproc)}"
host="$(hostname -s 2>/dev/null || hostname)"
export PYTHONPATH="$root/src:$root${PYTHONPATH:+:$PYTHONPATH}"

visible_gpus
start_all "$host-cells" "$PYTHON" -m flows.served --pool "$pool"
