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

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
pool=gpu
count=""
cpu_only=0
run_dir=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --pool) pool="$2"; shift 2 ;;
    --count) count="$2"; shift 2 ;;
    --cpu) cpu_only=1; shift ;;
    --run-dir) run_dir="$2"; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "Unknown option '$1'. Known: --pool NAME, --count N, --cpu, --run-dir DIR." >&2; exit 2 ;;
  esac
done

if [[ -z "${PREFECT_API_URL:-}" ]]; then
  echo "PREFECT_API_URL is not set: cell workers need a Prefect server (not the ephemeral API)." >&2
  exit 2
fi
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$root/.venv/bin/python" ]]; then PYTHON="$root/.venv/bin/python"; else PYTHON=python3; fi
fi
run_dir="${run_dir:-${TMPDIR:-/tmp}/tlbench-cell-workers-$(id -un)}"
mkdir -p "$run_dir"
count="${count:-$(nproc)}"
host="$(hostname -s 2>/dev/null || hostname)"
export PYTHONPATH="$root/src:$root${PYTHONPATH:+:$PYTHONPATH}"

gpus=()
if [[ "$cpu_only" -eq 0 ]] && command -v nvidia-smi >/dev/null 2>&1; then
  while IFS= read -r uuid; do gpus+=("$uuid"); done < <(
    nvidia-smi -L 2>/dev/null | sed -n 's/^GPU \([0-9]*\):.*(UUID: \(GPU-[^)]*\)).*/\2/p')
fi

start_one() {  # name cuda_visible_devices
  local name="$1" devices="$2" pidfile="$run_dir/$1.pid"
  if [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "$name $(cat "$pidfile") (already running)"
    return
  fi
  # As in start_workers.sh: SIGINT back (background jobs start with it ignored), own session.
  (
    trap - INT
    cd "$root"
    CUDA_VISIBLE_DEVICES="$devices" exec setsid "$PYTHON" -m flows.served --name "$name" --pool "$pool"
  ) >"$run_dir/$name.log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  echo "$name $!"
}

if [[ ${#gpus[@]} -gt 0 ]]; then
  for i in "${!gpus[@]}"; do start_one "$host-cells-gpu$i" "${gpus[$i]}"; done
else
  for ((i = 0; i < count; i++)); do start_one "$host-cells-cpu$i" ""; done
fi
