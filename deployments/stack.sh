#!/usr/bin/env bash
# A team's stack on one machine, up and down with one command: a PostgreSQL 15 cluster in a folder
# of your choice (created with initdb when new), databases `prefect` and `mlflow` on it, a Prefect
# server and an MLflow server on them (MLflow serves the artifacts itself), the work pools
# (create_pools.sh), the deployments (prefect --no-prompt deploy --all) and the workers
# (start_workers.sh). Everything binds to 127.0.0.1.
#
# Usage: deployments/stack.sh up|down|status|restart [--dir DIR] [--pg-port N] [--prefect-port N]
#          [--mlflow-port N] [--workers N] [--parents N] [--password-file FILE]
# Settings (a flag wins over its variable):
#   --dir            TLBENCH_STACK_DIR            the stack's folder (default: <checkout>/.stack)
#   --pg-port        TLBENCH_STACK_PG_PORT        PostgreSQL (default 5432)
#   --prefect-port   TLBENCH_STACK_PREFECT_PORT   Prefect server and dashboard (default 4200)
#   --mlflow-port    TLBENCH_STACK_MLFLOW_PORT    MLflow server and artifacts (default 5000)
#   --workers        TLBENCH_STACK_WORKERS        gpu-pool workers (default: one per GPU, else per core)
#   --parents        TLBENCH_STACK_PARENTS        cpu-pool workers, the pool-mode parents (default 1)
#   --password-file  TLBENCH_STACK_PASSWORD_FILE  the database password (or TLBENCH_STACK_PASSWORD);
#                    neither: generated once into DIR/password (mode 600), never printed
#   TLBENCH_STACK_PG_BIN (default /usr/lib/postgresql/15/bin), TLBENCH_RESULTS (default DIR/results),
#   TLBENCH_DATA_DIR (passed on to the workers), GPU_SLOTS / CPU_SLOTS (create_pools.sh).
# As root the cluster runs as the `postgres` user (PostgreSQL refuses root): DIR must be
# reachable by that user. `down` stops what `up` started, by the pid files in DIR/run and
# DIR/workers; `status` says what runs where; `restart` starts again what has stopped (a server
# killed, a worker lost: the runs it left RUNNING are closed first), with the settings `up` used
# (DIR/stack.env: only --dir is read), and leaves what runs alone. `source DIR/stack.env` points a
# shell at the stack.
set -euo pipefail

help_lines=2,26
source "$(dirname "${BASH_SOURCE[0]}")/workers_lib.sh"   # root, here, venv_or

die() { echo "stack: $*" >&2; exit 2; }

action="${1:-}"
[[ $# -gt 0 ]] && shift
case "$action" in
  up|down|status|restart) ;;
  -h|--help) sed -n "${help_lines}p" "$0"; exit 0 ;;
  *) die "unknown command '${action}'. Known: up, down, status, restart (deployments/stack.sh --help)." ;;
esac

stack_dir="${TLBENCH_STACK_DIR:-$root/.stack}"
pg_port="${TLBENCH_STACK_PG_PORT:-5432}"
prefect_port="${TLBENCH_STACK_PREFECT_PORT:-4200}"
mlflow_port="${TLBENCH_STACK_MLFLOW_PORT:-5000}"
workers="${TLBENCH_STACK_WORKERS:-}"
parents="${TLBENCH_STACK_PARENTS:-1}"
given_password_file="${TLBENCH_STACK_PASSWORD_FILE:-}"
pg_bin="${TLBENCH_STACK_PG_BIN:-/usr/lib/postgresql/15/bin}"
while [[ $# -gt 0 ]]; do
  [[ $# -ge 2 ]] || die "option '$1' needs a value."
  case "$1" in
    --dir) stack_dir="$2" ;;
    --pg-port) pg_port="$2" ;;
    --prefect-port) prefect_port="$2" ;;
    --mlflow-port) mlflow_port="$2" ;;
    --workers) workers="$2" ;;
    --parents) parents="$2" ;;
    --password-file) given_password_file="$2" ;;
    *) die "unknown option '$1'. Known: --dir, --pg-port, --prefect-port, --mlflow-port, --workers, --parents, --password-file." ;;
  esac
  shift 2
done
[[ "$stack_dir" == /* ]] || stack_dir="$PWD/$stack_dir"

PY="$(venv_or python python3)"
PREFECT="${PREFECT:-$(venv_or prefect prefect)}"
MLFLOW="$(venv_or mlflow mlflow)"
db_user=tlbench
pg_dir="$stack_dir/postgres"          # owned by the cluster's user: data/ and server.log
pg_data="$pg_dir/data"
run_dir="$stack_dir/run"              # pid files of the servers
workers_dir="$stack_dir/workers"      # pid files and logs of the workers (start_workers.sh)
log_dir="$stack_dir/logs"
password_file="$stack_dir/password"
pgpass="$stack_dir/pgpass"            # libpq/asyncpg read the password here: never in a URL or a log
env_file="$stack_dir/stack.env"

as_pg() {  # run a PostgreSQL program as the cluster's user (postgres when we are root)
  if [[ "$(id -u)" -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

alive() {  # a zombie is dead: here pid 1 may reap the daemons we stop only later
  [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null && [[ "$(ps -o stat= -p "$1" 2>/dev/null)" != Z* ]]
}

pid_of() { [[ -f "$1" ]] && cat "$1" || true; }

# ------------------------------------------------------------------------------------ stopping

descendants() {  # every live descendant of pid $1
  local kid
  for kid in $(ps -o pid= --ppid "$1" 2>/dev/null); do echo "$kid"; descendants "$kid"; done
}

stop_group() {  # name pidfile: SIGTERM to the process group, SIGKILL after 20 s, then leftovers
  local name="$1" pidfile="$2" pid t left t0=$SECONDS
  pid="$(pid_of "$pidfile")"
  if alive "$pid"; then
    left="$(descendants "$pid")"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for ((t = 0; t < 200; t++)); do alive "$pid" || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    for pid in $left; do kill -KILL "$pid" 2>/dev/null || true; done
    echo "$name: stopped ($((SECONDS - t0)) s)"
  fi
  rm -f "$pidfile"
}

stop_postgres() {
  local t0=$SECONDS
  if [[ -f "$pg_data/postmaster.pid" ]] && as_pg "$pg_bin/pg_ctl" status -D "$pg_data" >/dev/null 2>&1; then
    as_pg "$pg_bin/pg_ctl" stop -D "$pg_data" -m fast -w -t 30 >/dev/null 2>&1 \
      || kill -KILL "$(head -1 "$pg_data/postmaster.pid")" 2>/dev/null || true
    echo "postgres: stopped ($((SECONDS - t0)) s)"
  fi
  rm -f "$run_dir/postgres.pid"
}

stop_all() {  # what `up` started, newest first: workers (and their flow runs), servers, cluster
  local pidfile pid runs=""
  for pidfile in "$workers_dir"/*.pid; do
    [[ -e "$pidfile" ]] || continue
    pid="$(pid_of "$pidfile")"
    if alive "$pid"; then runs+=" $(descendants "$pid" | tr '\n' ' ')"; fi
  done
  if compgen -G "$workers_dir/*.pid" >/dev/null; then
    GRACE="${GRACE:-20}" "$here/stop_workers.sh" --run-dir "$workers_dir" | sed 's/^/worker /'
  fi
  for pid in $runs; do kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true; done
  stop_group mlflow "$run_dir/mlflow.pid"
  stop_group prefect "$run_dir/prefect.pid"
  stop_postgres
}

# ------------------------------------------------------------------------------------ status

running_pids() {  # "name pid" of every live process a pid file of this stack names
  local pidfile pid
  for pidfile in "$run_dir"/*.pid "$workers_dir"/*.pid; do
    [[ -e "$pidfile" ]] || continue
    pid="$(pid_of "$pidfile")"
    if alive "$pid"; then echo "$(basename "$pidfile" .pid) $pid"; fi
  done
}

status() {
  local pidfile name pid state api up=0 total=0
  if [[ ! -f "$env_file" ]]; then
    echo "no stack in $stack_dir: start one with deployments/stack.sh up --dir $stack_dir"
    exit 3
  fi
  source "$env_file"
  echo "stack in $stack_dir"
  for name in postgres prefect mlflow; do
    pid="$(pid_of "$run_dir/$name.pid")"
    # a cluster restarted by hand (pg_ctl) has a new postmaster: its own pid file says which
    if [[ "$name" == postgres && -f "$pg_data/postmaster.pid" ]]; then pid="$(head -1 "$pg_data/postmaster.pid")"; fi
    total=$((total + 1))
    if alive "$pid"; then state="running pid $pid"; up=$((up + 1)); else state="stopped"; fi
    case "$name" in
      postgres) echo "postgres  $state  127.0.0.1:${TLBENCH_STACK_PG_PORT:-?}  data $pg_data" ;;
      prefect) api="${PREFECT_API_URL:-?}"; echo "prefect   $state  $api (dashboard ${api%/api})" ;;
      mlflow) echo "mlflow    $state  ${MLFLOW_TRACKING_URI:-?} (artifacts $stack_dir/mlflow/artifacts)" ;;
    esac
  done
  for pidfile in "$workers_dir"/*.pid; do
    [[ -e "$pidfile" ]] || continue
    pid="$(pid_of "$pidfile")"
    total=$((total + 1))
    if alive "$pid"; then state="running pid $pid"; up=$((up + 1)); else state="stopped"; fi
    echo "worker    $state  $(basename "$pidfile" .pid)  log $workers_dir/$(basename "$pidfile" .pid).log"
  done
  echo "results   ${TLBENCH_RESULTS:-?}"
  [[ $up -gt 0 && $up -eq $total ]] || exit 3
}

# ------------------------------------------------------------------------------------ up

port_free() {  # bindable on 127.0.0.1 (a listener anywhere on that port makes it busy)
  "$PY" -c 'import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)' "$1"
}

wait_http() {  # name url pid log timeout: until the url answers 200, or fail with the log's path
  "$PY" - "$@" <<'EOF' || die "$1 did not start: see $4"
import os, sys, time, urllib.request
name, url, pid, log, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], float(sys.argv[5])
deadline = time.monotonic() + timeout
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit(1)
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.5)
sys.exit(1)
EOF
}

start_server() {  # name command...: in its own session, pid to run/<name>.pid, output to logs/<name>.log
  local name="$1"
  shift
  ( trap - INT; exec setsid "$@" ) >"$log_dir/$name.log" 2>&1 </dev/null &
  echo $! >"$run_dir/$name.pid"
}

check_before_up() {  # every refusal, before anything starts
  local running name port setting
  if [[ -e "$stack_dir" && ! -d "$stack_dir" ]] || ! mkdir -p "$stack_dir" 2>/dev/null \
      || ! touch "$stack_dir/.write-test" 2>/dev/null; then
    die "cannot write the stack folder $stack_dir: choose another with --dir or TLBENCH_STACK_DIR."
  fi
  rm -f "$stack_dir/.write-test"
  running="$(running_pids | paste -sd, - | sed 's/,/, /g')"
  if [[ -n "$running" ]] || { [[ -f "$pg_data/postmaster.pid" ]] \
      && as_pg "$pg_bin/pg_ctl" status -D "$pg_data" >/dev/null 2>&1; }; then
    die "a stack is already running in $stack_dir (${running:-postgres}): see deployments/stack.sh status --dir $stack_dir, or stop it with deployments/stack.sh down --dir $stack_dir."
  fi
  [[ -x "$pg_bin/initdb" && -x "$pg_bin/pg_ctl" ]] \
    || die "PostgreSQL 15 not found under $pg_bin: install it with apt-get install -y postgresql-15 (as root), or set TLBENCH_STACK_PG_BIN."
  if [[ "$(id -u)" -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
    die "running as root, but there is no 'postgres' user to run the cluster as (PostgreSQL refuses root): install Debian's postgresql-15, or run as another user."
  fi
  as_pg test -x "$stack_dir" \
    || die "the cluster's user (postgres) cannot enter $stack_dir (it or a parent folder is closed to others): choose a folder under /srv or /var/tmp with --dir, or chmod o+x it and its parents."
  for name in postgres prefect mlflow; do
    case "$name" in
      postgres) port="$pg_port" setting="--pg-port or TLBENCH_STACK_PG_PORT" ;;
      prefect) port="$prefect_port" setting="--prefect-port or TLBENCH_STACK_PREFECT_PORT" ;;
      mlflow) port="$mlflow_port" setting="--mlflow-port or TLBENCH_STACK_MLFLOW_PORT" ;;
    esac
    [[ "$port" =~ ^[0-9]+$ ]] || die "the $name port '$port' is not a number: set $setting."
    port_free "$port" || die "port $port ($name) is already in use on 127.0.0.1: free it, or choose another with $setting."
  done
  [[ "$pg_port" != "$prefect_port" && "$pg_port" != "$mlflow_port" && "$prefect_port" != "$mlflow_port" ]] \
    || die "the ports of postgres ($pg_port), prefect ($prefect_port) and mlflow ($mlflow_port) must differ."
  if [[ -n "$given_password_file" && ! -r "$given_password_file" ]]; then
    die "cannot read the password file $given_password_file (--password-file or TLBENCH_STACK_PASSWORD_FILE)."
  fi
}

write_password() {  # DIR/password (given or generated once) and DIR/pgpass, both mode 600
  local password given="" mask
  mask="$(umask)"
  umask 077
  if [[ -n "$given_password_file" ]]; then given="$(head -1 "$given_password_file")"; fi
  given="${given:-${TLBENCH_STACK_PASSWORD:-}}"
  # asyncpg (Prefect's driver) reads pgpass without undoing its escapes, and strips each line
  if [[ "$given" == *[:\\]* || "$given" =~ ^[[:space:]] || "$given" =~ [[:space:]]$ ]]; then
    die "the password given may not contain ':' or '\\', nor start or end with a space (Prefect's driver reads it from a pgpass file): choose another."
  fi
  if [[ -n "$given" && -f "$pg_data/PG_VERSION" && -s "$password_file" && "$given" != "$(head -1 "$password_file")" ]]; then
    die "the cluster in $pg_data was created with the password in $password_file, not the one given: give that one, or none."
  fi
  if [[ -n "$given" ]]; then
    printf '%s\n' "$given" >"$password_file"
  elif [[ ! -s "$password_file" ]]; then
    "$PY" -c 'import secrets; print(secrets.token_urlsafe(24))' >"$password_file"
  fi
  password="$(head -1 "$password_file")"
  [[ -n "$password" ]] || die "the password in $password_file is empty: give one with --password-file."
  printf '127.0.0.1:%s:*:%s:%s\n' "$pg_port" "$db_user" "$password" >"$pgpass"
  chmod 600 "$password_file" "$pgpass"
  umask "$mask"
}

start_postgres() {
  local t0=$SECONDS db
  mkdir -p "$pg_dir"
  if [[ "$(id -u)" -eq 0 ]]; then chown postgres: "$pg_dir"; fi
  chmod 700 "$pg_dir"
  if [[ ! -f "$pg_data/PG_VERSION" ]]; then
    # initdb reads the password from a file its user can open: a copy in pg_dir, removed at once
    (umask 077; head -1 "$password_file" >"$pg_dir/.pwfile")
    if [[ "$(id -u)" -eq 0 ]]; then chown postgres: "$pg_dir/.pwfile"; fi
    as_pg "$pg_bin/initdb" -D "$pg_data" -U "$db_user" --pwfile="$pg_dir/.pwfile" \
      --auth=scram-sha-256 --encoding=UTF8 --locale=C >"$log_dir/initdb.log" 2>&1 \
      || { rm -f "$pg_dir/.pwfile"; die "initdb failed: see $log_dir/initdb.log"; }
    rm -f "$pg_dir/.pwfile"
    echo "postgres: new cluster in $pg_data ($((SECONDS - t0)) s)"
  fi
  as_pg "$pg_bin/pg_ctl" start -D "$pg_data" -w -t 60 -l "$pg_dir/server.log" \
    -o "-c listen_addresses=127.0.0.1 -c port=$pg_port -c unix_socket_directories=''" >/dev/null \
    || die "PostgreSQL did not start: see $pg_dir/server.log"
  head -1 "$pg_data/postmaster.pid" >"$run_dir/postgres.pid"
  for db in prefect mlflow; do
    if [[ -z "$(PGPASSFILE="$pgpass" "$pg_bin/psql" -h 127.0.0.1 -p "$pg_port" -U "$db_user" -d postgres -tA \
        -c "SELECT 1 FROM pg_database WHERE datname = '$db'" 2>"$log_dir/psql.log")" ]]; then
      [[ ! -s "$log_dir/psql.log" ]] || die "cannot log in to PostgreSQL as $db_user (is $password_file the cluster's password?): see $log_dir/psql.log"
      PGPASSFILE="$pgpass" "$pg_bin/createdb" -h 127.0.0.1 -p "$pg_port" -U "$db_user" "$db" 2>>"$log_dir/psql.log" \
        || die "cannot create the database $db: see $log_dir/psql.log"
    fi
  done
  echo "postgres: running on 127.0.0.1:$pg_port, databases prefect and mlflow ($((SECONDS - t0)) s)"
}

write_env() {  # DIR/stack.env: what a shell needs to use the stack (no password)
  {
    echo "# Written by deployments/stack.sh up. \`source\` it to use the stack; the password is in $password_file."
    printf 'export PREFECT_API_URL=%q\n' "http://127.0.0.1:$prefect_port/api"
    printf 'export MLFLOW_TRACKING_URI=%q\n' "http://127.0.0.1:$mlflow_port"
    printf 'export TLBENCH_RESULTS=%q\n' "$results"
    printf 'export PREFECT_SERVER_ANALYTICS_ENABLED=false\n'
    # the settings `up` used, for `status` and `restart`
    printf 'TLBENCH_STACK_PG_PORT=%q\n' "$pg_port"
    printf 'TLBENCH_STACK_PREFECT_PORT=%q\n' "$prefect_port"
    printf 'TLBENCH_STACK_MLFLOW_PORT=%q\n' "$mlflow_port"
    printf 'TLBENCH_STACK_WORKERS=%q\n' "$workers"
    printf 'TLBENCH_STACK_PARENTS=%q\n' "$parents"
  } >"$env_file"
}

start_servers() {  # names...: prefect and/or mlflow, side by side (each about 10-25 s), then wait for them
  local name t0=$SECONDS
  for name in "$@"; do  # only the servers see PGPASSFILE
    case "$name" in
      prefect) start_server prefect env PGPASSFILE="$pgpass" PREFECT_HOME="$stack_dir/prefect" \
        PREFECT_SERVER_ANALYTICS_ENABLED=false \
        PREFECT_API_DATABASE_CONNECTION_URL="postgresql+asyncpg://$db_user@127.0.0.1:$pg_port/prefect" \
        "$PREFECT" server start --host 127.0.0.1 --port "$prefect_port" ;;
      # MLflow's job runner (GenAI scorers; 8 more processes, 13 s to stop) is off unless asked for.
      mlflow) start_server mlflow env PGPASSFILE="$pgpass" \
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}" \
        "$MLFLOW" server --host 127.0.0.1 --port "$mlflow_port" \
        --workers 1 --backend-store-uri "postgresql://$db_user@127.0.0.1:$pg_port/mlflow" \
        --artifacts-destination "file://$stack_dir/mlflow/artifacts" --serve-artifacts ;;
    esac
  done
  for name in "$@"; do
    case "$name" in
      prefect) wait_http prefect "http://127.0.0.1:$prefect_port/api/health" "$(pid_of "$run_dir/prefect.pid")" \
          "$log_dir/prefect.log" 240
        echo "prefect: http://127.0.0.1:$prefect_port ($((SECONDS - t0)) s)" ;;
      mlflow) wait_http mlflow "http://127.0.0.1:$mlflow_port/health" "$(pid_of "$run_dir/mlflow.pid")" \
          "$log_dir/mlflow.log" 240
        echo "mlflow: http://127.0.0.1:$mlflow_port, artifacts in $stack_dir/mlflow/artifacts ($((SECONDS - t0)) s)" ;;
    esac
  done
}

client_env() {  # what every client, worker and flow run of the stack reads
  export PREFECT_API_URL="http://127.0.0.1:$prefect_port/api" MLFLOW_TRACKING_URI="http://127.0.0.1:$mlflow_port"
  export PREFECT_HOME="$stack_dir/prefect" PREFECT_SERVER_ANALYTICS_ENABLED=false TLBENCH_RESULTS="$results"
  export TLBENCH_HOME="${TLBENCH_HOME:-$root}"
  unset PREFECT_API_DATABASE_CONNECTION_URL TLBENCH_ARTIFACTS PGPASSFILE TLBENCH_STACK_PASSWORD
}

start_workers() {  # the gpu-pool workers and the cpu-pool parents; a live one is left alone
  local t0=$SECONDS
  : >"$log_dir/workers.log"
  if [[ "$workers" != 0 ]]; then
    PREFECT="$PREFECT" "$here/start_workers.sh" --pool gpu ${workers:+--count "$workers"} --run-dir "$workers_dir" \
      >"$log_dir/workers.log" 2>&1 || die "start_workers.sh failed: see $log_dir/workers.log"
  fi
  if [[ "$parents" -gt 0 ]]; then
    PREFECT="$PREFECT" "$here/start_workers.sh" --pool cpu --count "$parents" --run-dir "$workers_dir" \
      >>"$log_dir/workers.log" 2>&1 || die "start_workers.sh failed: see $log_dir/workers.log"
  fi
  sed 's/^/worker /' "$log_dir/workers.log"
}

up() {
  local t_up=$SECONDS
  check_before_up
  results="${TLBENCH_RESULTS:-$stack_dir/results}"
  cleanup_on_fail=1
  mkdir -p "$run_dir" "$workers_dir" "$log_dir" "$stack_dir/prefect" "$stack_dir/mlflow/artifacts"
  [[ "$results" == *://* ]] || mkdir -p "$results"
  write_password
  start_postgres

  start_servers prefect mlflow
  client_env
  write_env
  t0=$SECONDS
  PREFECT="$PREFECT" "$here/create_pools.sh" >"$log_dir/pools.log" 2>&1 || die "create_pools.sh failed: see $log_dir/pools.log"
  (cd "$root" && "$PREFECT" --no-prompt deploy --all) >"$log_dir/deploy.log" 2>&1 \
    || die "prefect deploy --all failed: see $log_dir/deploy.log"
  echo "pools gpu and cpu, deployments of prefect.yaml ($((SECONDS - t0)) s)"
  start_workers
  cleanup_on_fail=0
  echo "stack up in $((SECONDS - t_up)) s: source $env_file; deployments/stack.sh down --dir $stack_dir"
}

restart() {  # start again what has stopped, with the settings of `up`; what runs is left alone
  local name pid port pidfile servers="" workers_dead=0 started=""
  [[ -f "$env_file" ]] || die "no stack in $stack_dir to restart: start one with deployments/stack.sh up --dir $stack_dir."
  source "$env_file"
  pg_port="$TLBENCH_STACK_PG_PORT" prefect_port="${TLBENCH_STACK_PREFECT_PORT:?}" mlflow_port="${TLBENCH_STACK_MLFLOW_PORT:?}"
  workers="${TLBENCH_STACK_WORKERS:-}" parents="${TLBENCH_STACK_PARENTS:-1}" results="$TLBENCH_RESULTS"
  [[ -s "$pgpass" ]] || die "$pgpass is missing: the stack in $stack_dir cannot log in to its database; bring it down and up again."
  if ! { [[ -f "$pg_data/postmaster.pid" ]] && as_pg "$pg_bin/pg_ctl" status -D "$pg_data" >/dev/null 2>&1; }; then
    port_free "$pg_port" || die "port $pg_port (postgres) is taken by another program: free it, then restart."
    start_postgres
    started+=" postgres"
  fi
  for name in prefect mlflow; do
    pid="$(pid_of "$run_dir/$name.pid")"
    if alive "$pid"; then continue; fi
    [[ -z "$pid" ]] || kill -KILL -- "-$pid" 2>/dev/null || true  # what a killed server left in its group
    case "$name" in prefect) port="$prefect_port" ;; mlflow) port="$mlflow_port" ;; esac
    port_free "$port" || die "port $port ($name) is taken by another program: free it, then restart."
    servers+=" $name"
  done
  started+="$servers"
  # shellcheck disable=SC2086
  [[ -z "$servers" ]] || start_servers $servers
  client_env
  for pidfile in "$workers_dir"/*.pid; do
    [[ -e "$pidfile" ]] || continue
    if ! alive "$(pid_of "$pidfile")"; then started+=" $(basename "$pidfile" .pid)" workers_dead=1; fi
  done
  if [[ $workers_dead -eq 1 ]]; then start_workers; fi
  if [[ -n "$started" ]]; then echo "stack in $stack_dir: restarted$started"
  else echo "stack in $stack_dir: everything runs, nothing restarted"; fi
}

cleanup_on_fail=0
on_exit() {
  local rc=$?
  if [[ $rc -ne 0 && $cleanup_on_fail -eq 1 ]]; then
    cleanup_on_fail=0
    stop_all >/dev/null 2>&1 || true
  fi
}
trap on_exit EXIT
trap 'exit 130' INT TERM

case "$action" in
  up) up ;;
  down) stop_all; echo "stack in $stack_dir: down" ;;
  status) status ;;
  restart) restart ;;
esac
