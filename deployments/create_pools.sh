#!/usr/bin/env bash
# Create (or update) tlbench's two work pools on the Prefect server at PREFECT_API_URL.
#
#   gpu  where cells train (deployment train-cell) and the nightly grid runs: one slot per
#        accelerator. Concurrency limit GPU_SLOTS = the number of GPUs of every machine that
#        serves the pool together (default: this machine's GPUs, or its cores when it has none).
#   cpu  pool-mode parents (deployment adhoc-benchmark): they pretrain, run the baselines and
#        wait for their child runs. Concurrency limit CPU_SLOTS (default 2).
#
# Usage:
#   deployments/create_pools.sh                                   # two process pools
#   GPU_SLOTS=16 GPU_POOL_TYPE=docker deployments/create_pools.sh
#   GPU_SLOTS=64 GPU_POOL_TYPE=kubernetes deployments/create_pools.sh
# Environment: PREFECT_API_URL (required), PREFECT (the prefect executable; default: the
# checkout's .venv/bin/prefect, else prefect on PATH), GPU_POOL_TYPE and CPU_POOL_TYPE
# (process | docker | kubernetes; default process; the base job template is
# deployments/job_templates/<type>.json), GPU_SLOTS, CPU_SLOTS.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
if [[ -z "${PREFECT:-}" ]]; then
  if [[ -x "$root/.venv/bin/prefect" ]]; then PREFECT="$root/.venv/bin/prefect"; else PREFECT=prefect; fi
fi
if [[ -z "${PREFECT_API_URL:-}" ]]; then
  echo "PREFECT_API_URL is not set: prefect would create the pools on a private, temporary server." >&2
  echo "Set it to your server, e.g. export PREFECT_API_URL=http://127.0.0.1:4200/api" >&2
  exit 2
fi

gpu_count() {
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true
  else
    echo 0
  fi
}

default_gpu_slots="$(gpu_count)"
if [[ "$default_gpu_slots" -eq 0 ]]; then default_gpu_slots="$(nproc)"; fi
GPU_SLOTS="${GPU_SLOTS:-$default_gpu_slots}"
CPU_SLOTS="${CPU_SLOTS:-2}"
GPU_POOL_TYPE="${GPU_POOL_TYPE:-process}"
CPU_POOL_TYPE="${CPU_POOL_TYPE:-process}"

create_pool() {  # name type limit
  local name="$1" type="$2" limit="$3" template="$here/job_templates/$2.json"
  if [[ ! -f "$template" ]]; then
    echo "Unknown pool type '$type': no $template. Known: process, docker, kubernetes." >&2
    exit 2
  fi
  "$PREFECT" --no-prompt work-pool create "$name" --type "$type" \
    --base-job-template "$template" --overwrite >/dev/null
  "$PREFECT" --no-prompt work-pool set-concurrency-limit "$name" "$limit" >/dev/null
  echo "work pool '$name': type $type, concurrency limit $limit, template $template"
}

create_pool gpu "$GPU_POOL_TYPE" "$GPU_SLOTS"
create_pool cpu "$CPU_POOL_TYPE" "$CPU_SLOTS"
