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
# Usage: deployments/start_workers.sh [--pool gpu] [--count N] [--cpu] [--run-dir DIR]
#        (RUN_DIR default: ${TMPDIR:-/tmp}/tlbench-workers-$USER)
# Environment: PREFECT_API_URL (required); TLBENCH_HOME (the checkout flow runs start in, see
# prefect.yaml; default: this checkout); TLBENCH_DATA_DIR, TLBENCH_RESULTS, MLFLOW_TRACKING_URI,
# TLBENCH_ARTIFACTS are passed on to every flow run; PREFECT (the prefect executable).
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
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "Unknown option '$1'. Known: --pool NAME, --count N, --cpu, --run-dir DIR." >&2; exit 2 ;;
  esac
done

if [[ -z "${PREFECT_API_URL:-}" ]]; then
  echo "PREFECT_API_URL is not set: a worker would poll a private, temporary server." >&2
  echo "Set it to your server, e.g. export PREFECT_API_URL=http://127.0.0.1:4200/api" >&2
  exit 2
fi
if [[ -z "${PREFECT:-}" ]]; then
  if [[ -x "$root/.venv/bin/prefect" ]]; then PREFECT="$root/.venv/bin/prefect"; else PREFECT=prefect; fi
fi
export TLBENCH_HOME="${TLBENCH_HOME:-$root}"
run_dir="${run_dir:-${TMPDIR:-/tmp}/tlbench-workers-$(id -un)}"
mkdir -p "$run_dir"
if [[ "$pool" == gpu ]]; then count="${count:-$(nproc)}"; else count="${count:-1}"; fi
host="$(hostname -s 2>/dev/null || hostname)"

if ! "$PREFECT" --no-prompt work-pool inspect "$pool" >/dev/null 2>&1; then
  echo "Work pool '$pool' does not exist on $PREFECT_API_URL: create it with deployments/create_pools.sh" >&2
  exit 2
fi

gpus=()
if [[ "$pool" == gpu && "$cpu_only" -eq 0 ]] && command -v nvidia-smi >/dev/null 2>&1; then
  while IFS= read -r uuid; do gpus+=("$uuid"); done < <(
    nvidia-smi -L 2>/dev/null | sed -n 's/^GPU \([0-9]*\):.*(UUID: \(GPU-[^)]*\)).*/\2/p')
fi

start_one() {  # name cuda_visible_devices
  local name="$1" devices="$2" pidfile="$run_dir/$1.pid"
  if [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "$name $(cat "$pidfile") (already running)"
    return
  fi
  # A background job of a non-interactive shell starts with SIGINT ignored, and a worker stops
  # only on SIGINT: `trap - INT` gives it back. The job is no process-group leader, so setsid
  # execs in place: $! is the worker's own pid and the leader of its new session.
  (
    trap - INT
    CUDA_VISIBLE_DEVICES="$devices" exec setsid "$PREFECT" --no-prompt worker start --pool "$pool" \
      --name "$name" --limit 1 --install-policy never
  ) >"$run_dir/$name.log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  echo "$name $!"
}

if [[ ${#gpus[@]} -gt 0 ]]; then
  for i in "${!gpus[@]}"; do
    start_one "$host-$pool-gpu$i" "${gpus[$i]}"
  done
else
  for ((i = 0; i < count; i++)); do
    start_one "$host-$pool-cpu$i" ""
  done
fi
