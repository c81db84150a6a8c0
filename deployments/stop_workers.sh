#!/usr/bin/env bash
# Stop the workers deployments/start_workers.sh started, by their pid files: SIGINT (a worker
# ignores SIGTERM), then, after GRACE seconds (default 30), SIGKILL to the worker's process group.
#
# Usage: deployments/stop_workers.sh [--run-dir DIR] [NAME ...]   (no NAME: every worker in DIR)
set -euo pipefail

run_dir="${TMPDIR:-/tmp}/tlbench-workers-$(id -un)"
if [[ "${1:-}" == "--run-dir" ]]; then run_dir="$2"; shift 2; fi
grace="${GRACE:-30}"

names=("$@")
if [[ ${#names[@]} -eq 0 ]]; then
  for f in "$run_dir"/*.pid; do [[ -e "$f" ]] && names+=("$(basename "$f" .pid)"); done
fi

for name in "${names[@]}"; do
  pidfile="$run_dir/$name.pid"
  [[ -f "$pidfile" ]] || { echo "$name: no $pidfile" >&2; continue; }
  pid="$(cat "$pidfile")"
  if ! kill -0 "$pid" 2>/dev/null; then rm -f "$pidfile"; echo "$name: not running"; continue; fi
  kill -INT "$pid"
  for ((t = 0; t < grace * 10; t++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    echo "$name: killed after ${grace} s"
  else
    echo "$name: stopped"
  fi
  rm -f "$pidfile"
done
