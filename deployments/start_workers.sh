#!/usr/bin/env bash
# Start tlbench's Prefect process workers on this machine, in the background.
#
#   gpu pool, machine with GPUs: one worker per GPU (nvidia-smi -L), each pinned to its GPU with
#       CUDA_VISIBLE_DEVICES=<GPU UUID> and --limit 1: one cell batch per GPU at a time.
#   gpu pool, machine without GPUs: --count workers (default: the number of cores), --limit 1
#       each; a CPU batch trains single-threaded (flows/cell.py), so N workers use N cores.
#   any other pool (--pool cpu) or --cpu: --count CPU workers (default: 1 for other pools, the
#       number of cores for gpu), GPUs hidden (CUDA_VISIBLE_DEVICES=""), so a pool-mode parent
#       never takes memory on a GPU that a cell worker owns.
#
# Every worker runs in its own session (its process group id is its pid). Its pid goes to
# RUN_DIR/<name>.pid and its output to RUN_DIR/<name>.log; one "name pid" line per worker is
# printed. Stop one with SIGINT (a worker ignores SIGTERM): kill -INT "$(cat RUN_DIR/<name>.pid)",
# or all of them with deployments/stop_workers.sh.
#
# First, flow runs that processes of this host left RUNNING when they died (a lost machine, its
# workers started again) are closed, with the reason, so that they free their pool slots
# (python -m flows.lost; docs/orchestration.md).
#
# Usage: deployments/start_workers.sh [--pool gpu] [--count N] [--cpu] [--run-dir DIR]
#        (RUN_DIR default: ${TMPDIR:-/tmp}/tlbench-workers-$USER)
# Environment: PREFECT_API_URL (required); TLBENCH_HOME (the checkout flow runs start in, see
# prefect.yaml; default: this checkout); TLBENCH_DATA_DIR, TLBENCH_RESULTS, MLFLOW_TRACKING_URI,
# TLBENCH_ARTIFACTS are passed on to every flow run; PREFECT (the prefect executable).
set -euo pipefail

help_lines=2,25
source "$(dirname "${BASH_SOURCE[0]}")/workers_lib.sh"
parse_worker_options "$@"

require_api_url "a worker would poll a private, temporary server."
PREFECT="${PREFECT:-$(venv_or prefect prefect)}"
export TLBENCH_HOME="${TLBENCH_HOME:-$root}"
run_dir="${run_dir:-${TMPDIR:-/tmp}/tlbench-workers-$(id -un)}"
if [[ "$pool" == gpu ]]; then count="${count:-$(nproc)}"; else count="${count:-1}"; fi
host="$(hostname -s 2>/dev/null || hostname)"

if ! "$PREFECT" --no-prompt work-pool inspect "$pool" >/dev/null 2>&1; then
  echo "Work pool '$pool' does not exist on $PREFECT_API_URL: create it with deployments/create_pools.sh" >&2
  exit 2
fi

# Runs that processes of this host left RUNNING when they died (a lost machine restarted) are
# closed first, so they free their pool slots before the workers poll (flows/lost.py).
PYTHONPATH="$root/src:$root${PYTHONPATH:+:$PYTHONPATH}" "$(venv_or python python3)" -m flows.lost --pool gpu \
  || echo "could not check for runs left open by dead processes of this host (see above); starting anyway" >&2

if [[ "$pool" == gpu ]]; then visible_gpus; else gpus=(); fi
start_all "$host-$pool" "$PREFECT" --no-prompt worker start --pool "$pool" --limit 1 --install-policy never
