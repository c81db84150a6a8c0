# Shared by start_workers.sh (Prefect process workers) and start_cell_workers.sh (served-mode cell
# workers): their options, the GPU list, and starting one background worker per GPU or per slot.
# Sourced, never run. The caller sets `help_lines` (the line range of its header comment) first.

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
pool=gpu
count=""
cpu_only=0
run_dir=""

parse_worker_options() {  # "$@" of the script
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --pool) pool="$2"; shift 2 ;;
      --count) count="$2"; shift 2 ;;
      --cpu) cpu_only=1; shift ;;
      --run-dir) run_dir="$2"; shift 2 ;;
      -h|--help) sed -n "${help_lines}p" "$0"; exit 0 ;;
      *) echo "Unknown option '$1'. Known: --pool NAME, --count N, --cpu, --run-dir DIR." >&2; exit 2 ;;
    esac
  done
}

require_api_url() {  # the reason a worker needs a real server, printed when PREFECT_API_URL is unset
  if [[ -z "${PREFECT_API_URL:-}" ]]; then
    echo "PREFECT_API_URL is not set: $1" >&2
    echo "Set it to your server, e.g. export PREFECT_API_URL=http://127.0.0.1:4200/api" >&2
    exit 2
  fi
}

venv_or() {  # program fallback: this checkout's .venv/bin/<program> when there is one, else fallback
  if [[ -x "$root/.venv/bin/$1" ]]; then echo "$root/.venv/bin/$1"; else echo "$2"; fi
}

visible_gpus() {  # fills the array `gpus` with the UUIDs nvidia-smi lists (none with --cpu)
  gpus=()
  if [[ "$cpu_only" -eq 0 ]] && command -v nvidia-smi >/dev/null 2>&1; then
    while IFS= read -r uuid; do gpus+=("$uuid"); done < <(
      nvidia-smi -L 2>/dev/null | sed -n 's/^GPU \([0-9]*\):.*(UUID: \(GPU-[^)]*\)).*/\2/p')
  fi
}

start_one() {  # name cuda_visible_devices command...
  local name="$1" devices="$2" pidfile="$run_dir/$1.pid"
  shift 2
  if [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "$name $(cat "$pidfile") (already running)"
    return
  fi
  # A background job of a non-interactive shell starts with SIGINT ignored, and a worker stops
  # only on SIGINT: `trap - INT` gives it back. The job is no process-group leader, so setsid
  # execs in place: $! is the worker's own pid and the leader of its new session.
  (
    trap - INT
    cd "$root"
    CUDA_VISIBLE_DEVICES="$devices" exec setsid "$@"
  ) >"$run_dir/$name.log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  echo "$name $!"
}

start_all() {  # name_prefix command... : one worker per GPU in `gpus`, else `count` CPU workers
  local prefix="$1" i
  shift
  mkdir -p "$run_dir"
  if [[ ${#gpus[@]} -gt 0 ]]; then
    for i in "${!gpus[@]}"; do start_one "$prefix-gpu$i" "${gpus[$i]}" "$@" --name "$prefix-gpu$i"; done
  else
    for ((i = 0; i < count; i++)); do start_one "$prefix-cpu$i" "" "$@" --name "$prefix-cpu$i"; done
  fi
}
