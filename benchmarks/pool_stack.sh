#!/usr/bin/env bash
# Measure pool mode on this machine: start a throwaway Prefect server on 127.0.0.1 (its own
# PREFECT_HOME and SQLite database), create the pools, deploy prefect.yaml, start WORKERS process
# workers on the gpu pool, run `benchmarks/orchestration.py --configs pool-K` (K = WORKERS) with
# any extra arguments, then stop the workers (SIGINT) and the server (SIGTERM) by their pids.
#
# Usage: benchmarks/pool_stack.sh [orchestration.py arguments...]
#   e.g. TLBENCH_DATA_DIR=../shared/data benchmarks/pool_stack.sh --pool-batch-size 3
# Environment: WORKERS (default 2), PORT (default: a free port), TLBENCH_DATA_DIR.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
py="$root/.venv/bin/python"
workers="${WORKERS:-2}"
port="${PORT:-$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
stack="$(mktemp -d "${TMPDIR:-/tmp}/tlbench-pool-bench.XXXXXX")"

export PREFECT_HOME="$stack/prefect" PREFECT_SERVER_ANALYTICS_ENABLED=false
export PREFECT_API_URL="http://127.0.0.1:$port/api" TLBENCH_HOME="$root"
export TLBENCH_RESULTS="$stack/results" MLFLOW_TRACKING_URI="sqlite:///$stack/mlflow/mlflow.db"
export TLBENCH_ARTIFACTS="$stack/mlflow/artifacts"
mkdir -p "$stack/mlflow"

server_pid=""
cleanup() {
  "$root/deployments/stop_workers.sh" --run-dir "$stack/workers" >/dev/null 2>&1 || true
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid"
    for _ in $(seq 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$server_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT

setsid "$root/.venv/bin/prefect" server start --host 127.0.0.1 --port "$port" >"$stack/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 240); do
  curl -fsS "http://127.0.0.1:$port/api/health" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { tail -20 "$stack/server.log"; exit 1; }
  sleep 0.5
done
echo "prefect server on $PREFECT_API_URL (pid $server_pid, home $stack)"
"$root/deployments/create_pools.sh" >/dev/null
(cd "$root" && "$root/.venv/bin/prefect" --no-prompt deploy --all >"$stack/deploy.log" 2>&1)
"$root/deployments/start_workers.sh" --pool gpu --count "$workers" --run-dir "$stack/workers"
"$py" "$here/orchestration.py" --configs "pool-$workers" --resume-for "pool-$workers" "$@"
