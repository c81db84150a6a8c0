"""A team's stack for real (``deployments/stack.sh``): PostgreSQL 15 (scram passwords on
127.0.0.1), a Prefect server and an MLflow server on it (MLflow serving the artifacts), the pools,
the deployments and one worker per pool, started by the one command on free ports in a fresh
folder. Two different grids at once against it: ``tlbench run --tracking-uri http://...`` and
``adhoc-benchmark`` in pool mode through the stack's Prefect, the latter started twice. Faults on
the real services: PostgreSQL stopped for 30 s; the MLflow server, then a worker, SIGKILLed and
brought back by ``stack.sh restart``. Then ``down``: no process left, the ports free. The refusals (a port taken, a second ``up``, no PostgreSQL, a folder that cannot be
written) are one line each with nothing started.

The stack's folder is not pytest's tmp_path: as root the cluster runs as ``postgres``, which
cannot enter pytest's private folders; it is a fresh ``mkdtemp`` opened for traversal (0711).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.test_prefect_pool import alive, descendants  # /proc helpers: one copy

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STACK = REPO_ROOT / "deployments" / "stack.sh"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
GRID = ["target_sizes=[240]", "modes=[scratch]", "training.max_epochs=2", "baselines=[naive]",
        "split.test_size=96", "model.units=8"]


@pytest.fixture(scope="module", autouse=True)
def postgresql_installed():
    """Outside CI a machine without PostgreSQL 15 skips this module (saying how to get it); under
    ``CI=true`` it fails (.ci/run installs it)."""
    if (PG_BIN / "initdb").is_file():
        return
    reason = f"PostgreSQL 15 not found under {PG_BIN}: apt-get install -y postgresql-15 (as root)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


def distinct_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def base_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_", "TLBENCH_", "PG"))}
    env.update({"PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}", "TLBENCH_DATA_DIR": str(data_dir),
                "TLBENCH_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_WORKER_QUERY_SECONDS": "2", "GRACE": "10",
                "TLBENCH_LOST_WORKER_S": "30"})  # the killed-worker test waits for it (120 s by default)
    return env


def stack_sh(action: str, folder: Path, ports: list[int], env: dict, *extra: str, timeout: float = 300):
    pg, prefect, mlflow = ports
    return subprocess.run([str(STACK), action, "--dir", str(folder), "--pg-port", str(pg),
                           "--prefect-port", str(prefect), "--mlflow-port", str(mlflow), *extra],
                          env=env, capture_output=True, text=True, timeout=timeout)


def new_folder() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="tlbench-stack-"))
    folder.chmod(0o711)  # the cluster's user (postgres) must enter it
    return folder


def stack_pids(folder: Path) -> list[int]:
    """Every live process the stack's pid files name, with all their descendants."""
    pids = [int(p.read_text()) for p in [*folder.glob("run/*.pid"), *folder.glob("workers/*.pid")]]
    return [p for pid in pids for p in (pid, *descendants(pid)) if alive(p)]


def psql(folder: Path, port: int, database: str, query: str) -> str:
    out = subprocess.run([str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "tlbench", "-d", database,
                          "-tAc", query], env={**os.environ, "PGPASSFILE": str(folder / "pgpass")},
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def client_side(stack: dict) -> tuple[Path, int, str, str, dict]:
    """``(folder, PostgreSQL port, MLflow tracking URI, Prefect API URL, a client's environment)``."""
    folder, (pg_port, prefect_port, mlflow_port) = stack["folder"], stack["ports"]
    api_url = f"http://127.0.0.1:{prefect_port}/api"
    env = {**stack["env"], "PREFECT_API_URL": api_url, "PREFECT_HOME": str(folder / "prefect")}
    return folder, pg_port, f"http://127.0.0.1:{mlflow_port}", api_url, env


def trigger(env: dict, overrides: list[str]) -> str:
    """``adhoc-benchmark`` in pool mode, one cell per child run, through the stack's Prefect;
    returns the flow run id."""
    out = subprocess.run([str(BIN / "prefect"), "--no-prompt", "deployment", "run", "benchmark-grid/adhoc-benchmark",
                          "--param", f"overrides={json.dumps([*GRID, *overrides])}", "--param", "execution=pool",
                          "--param", "batch_size=1"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return re.search(r"UUID: ([0-9a-f-]{36})", out.stdout).group(1)


def wait_final(api_url: str, flow_run_id: str, timeout: float):
    from prefect.client.orchestration import SyncPrefectClient

    deadline = time.monotonic() + timeout
    with SyncPrefectClient(api_url) as client:
        while not (state := client.read_flow_run(flow_run_id).state).is_final():
            assert time.monotonic() < deadline, f"adhoc-benchmark still {state.type.value} after {timeout} s"
            time.sleep(2)
    return state


@pytest.fixture(scope="module")
def team_stack(data_dir):
    """``stack.sh up`` with one gpu-pool and one cpu-pool worker; ``down`` (and, should that fail,
    SIGKILL by the pid files) at the end, even on failure."""
    folder, ports, env = new_folder(), distinct_ports(3), base_env(data_dir)
    t0 = time.monotonic()
    try:
        up = stack_sh("up", folder, ports, env, "--workers", "1", "--parents", "1")
        assert up.returncode == 0, up.stdout + up.stderr + "".join(
            f"\n--- {log.name}\n{log.read_text()[-2000:]}" for log in folder.glob("logs/*.log"))
        print(f"\nstack up: {time.monotonic() - t0:.1f} s\n{up.stdout}")
        yield {"folder": folder, "ports": ports, "env": env, "up": up}
    finally:
        stack_sh("down", folder, ports, env, timeout=120)
        for pid in stack_pids(folder):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------- refusals


def test_a_taken_port_is_refused_in_one_line_and_nothing_starts(data_dir):
    folder, ports, env = new_folder(), distinct_ports(3), base_env(data_dir)
    try:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", ports[1]))
            taken.listen()
            out = stack_sh("up", folder, ports, env, timeout=60)
        assert out.returncode == 2 and out.stdout == ""
        assert out.stderr.strip() == (f"stack: port {ports[1]} (prefect) is already in use on 127.0.0.1: free it, "
                                      "or choose another with --prefect-port or TLBENCH_STACK_PREFECT_PORT.")
        assert not list(folder.glob("run/*.pid")) and not (folder / "postgres").exists()
        assert all(port_free(p) for p in ports)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_missing_postgresql_and_unusable_folders_are_refused_in_one_line(data_dir, tmp_path):
    folder, ports, env = new_folder(), distinct_ports(3), base_env(data_dir)
    try:
        out = stack_sh("up", folder, ports, {**env, "TLBENCH_STACK_PG_BIN": "/nonexistent/bin"}, timeout=60)
        assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
        assert "PostgreSQL 15 not found under /nonexistent/bin: install it with apt-get install -y postgresql-15" \
            in out.stderr and not list(folder.glob("run/*.pid"))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    (tmp_path / "a-file").write_text("")
    out = stack_sh("up", tmp_path / "a-file" / "stack", ports, env, timeout=60)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert f"cannot write the stack folder {tmp_path / 'a-file' / 'stack'}: choose another with --dir" in out.stderr
    if os.geteuid() == 0:  # pytest's tmp_path is private (0700): the cluster's user cannot enter it
        out = stack_sh("up", tmp_path / "stack", ports, env, timeout=60)
        assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
        assert f"the cluster's user (postgres) cannot enter {tmp_path / 'stack'}" in out.stderr
        assert not (tmp_path / "stack" / "postgres").exists()


# --------------------------------------------------------------------------- the stack


def test_a_second_up_is_refused_and_the_stack_keeps_running(team_stack):
    folder, ports, env = team_stack["folder"], team_stack["ports"], team_stack["env"]
    out = stack_sh("up", folder, ports, env, timeout=60)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert f"stack: a stack is already running in {folder} (" in out.stderr
    assert f"stop it with deployments/stack.sh down --dir {folder}" in out.stderr
    status = stack_sh("status", folder, ports, env, timeout=60)
    assert status.returncode == 0, status.stdout
    assert re.search(rf"^postgres +running pid \d+ +127\.0\.0\.1:{ports[0]}", status.stdout, re.M)
    assert f"http://127.0.0.1:{ports[1]}/api" in status.stdout and f"http://127.0.0.1:{ports[2]} " in status.stdout
    assert len(re.findall(r"^worker +running", status.stdout, re.M)) == 2, status.stdout


@pytest.mark.timeout(600)
def test_two_grids_at_once_one_from_the_cli_one_through_the_deployment(team_stack):
    """Seed 1 triggered as ``adhoc-benchmark`` in pool mode (its cell on the gpu-pool worker) and,
    at the same moment, a frozen cell on a tiny body by ``tlbench run --tracking-uri http://...``:
    every cell once in the shared leaderboard, one FINISHED MLflow run per cell, rows in
    PostgreSQL, artifacts in the store MLflow serves, the body registered with its ``current``
    alias; then ``tlbench report`` links its runs on the server and ``tlbench ui`` prints the
    server's runs view (and starts nothing)."""
    from mlflow.tracking import MlflowClient

    from benchmark.results.leaderboard import Leaderboard

    folder, pg_port, tracking_uri, api_url, env = client_side(team_stack)
    t0 = time.monotonic()
    flow_run_id = trigger(env, ["seeds=[1]"])
    # a second person starts the same grid at the same moment, from the command line
    same = [a for o in [*GRID, "seeds=[1]"] for a in ("--set", o)]
    twin = subprocess.Popen([str(BIN / "tlbench"), "run", "--profile", "smoke", "--tracking-uri", tracking_uri,
                             "--results", str(folder / "results"), *same],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    body = ["modes=[frozen]", "pretrain.max_series=8", "pretrain.windows_per_series=50",
            "pretrain.training.max_epochs=1"]
    overrides = [a for o in [*GRID, "seeds=[0]", *body] for a in ("--set", o)]
    cli = subprocess.run([str(BIN / "tlbench"), "run", "--profile", "smoke", "--tracking-uri", tracking_uri,
                          "--results", str(folder / "results"), *overrides],
                         env=env, capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stdout[-3000:] + cli.stderr[-3000:]
    # its cell, and the naive baseline unless the other grid scored it first (the same key: once)
    assert re.search(r"grid smoke run \S+: (2 finished|1 finished, 1 skipped) in", cli.stdout), cli.stdout
    state = wait_final(api_url, flow_run_id, 300)
    twin_out, _ = twin.communicate(timeout=300)
    # the same grid twice: one trains it; the other is refused by the lease, or finds it finished
    held = "is already running on this results folder"
    outcomes = {("COMPLETED", 2): held in twin_out, ("CANCELLED", 0): held in (state.message or ""),
                ("COMPLETED", 0): "1 cells, 1 already finished" in twin_out}
    assert outcomes.get((state.type.value, twin.returncode)), (state.type.value, state.message, twin_out[-3000:])
    print(f"\ntwo grids at once, one of them twice: {time.monotonic() - t0:.1f} s "
          f"(deployment {state.type.value}, command line exit {twin.returncode})")

    rows = Leaderboard(str(folder / "results")).read()
    models = rows[rows["kind"] == "model"]
    assert sorted(models["seed"]) == [0, 1] and models["cell_key"].is_unique
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("tlbench-smoke")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    runs = client.search_runs([experiment.experiment_id])
    assert {r.info.status for r in runs} == {"FINISHED"}
    cells = [r for r in runs if r.data.tags.get("tlbench.kind") == "cell"]
    assert sorted(r.info.run_name for r in cells) == ["lstm·frozen·240·s0", "lstm·scratch·240·s1"]
    for run in cells:  # served by MLflow from its own artifact folder
        assert run.info.artifact_uri.startswith("mlflow-artifacts:/")
        stored = folder / "mlflow" / "artifacts" / experiment.experiment_id / run.info.run_id / "artifacts"
        assert (stored / "predictions.parquet").is_file(), sorted(p.name for p in stored.parent.rglob("*"))
    assert psql(folder, pg_port, "mlflow", "SELECT count(*) FROM runs WHERE status = 'FINISHED'") == str(len(runs))
    # the grids that ran, each a Completed flow run in PostgreSQL (which of the twins ran varies)
    assert int(psql(folder, pg_port, "prefect", "SELECT count(*) FROM flow_run WHERE state_type = 'COMPLETED'")) >= 2

    # the registry on PostgreSQL: the body's model, its moving alias, its files in the served store
    (registered,) = client.search_registered_models()
    current = client.get_model_version_by_alias(registered.name, "current")
    assert current.run_id in {r.info.run_id for r in runs if r.data.tags.get("tlbench.kind") != "cell"}
    assert list((folder / "mlflow" / "artifacts").rglob("*.keras")), "no Keras file in the served store"
    # the report links each run on the server; the UI command prints the server's view, starts nothing
    client_args = ["--results", str(folder / "results"), "--tracking-uri", tracking_uri]
    report = subprocess.run([str(BIN / "tlbench"), "report", *client_args], env=env, capture_output=True,
                            text=True, timeout=300)
    assert report.returncode == 0, report.stdout + report.stderr
    html = Path(report.stdout.split("report: ", 1)[1].strip()).read_text()
    assert f"{tracking_uri}/#/experiments/{experiment.experiment_id}/runs/" in html
    ui = subprocess.run([str(BIN / "tlbench"), "ui", *client_args], env=env, capture_output=True, text=True,
                        timeout=120)
    assert ui.returncode == 0 and f"{tracking_uri}/#/experiments" in ui.stdout, ui.stdout + ui.stderr
    assert "starting:" not in ui.stdout


def pg_ctl(folder: Path, *args: str) -> None:
    command = [str(PG_BIN / "pg_ctl"), *args, "-D", str(folder / "postgres" / "data"), "-w"]
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    out = subprocess.run(command, capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.timeout(600)
def test_a_pool_grid_survives_postgresql_stopped_for_30_s_mid_grid(team_stack):
    """PostgreSQL stops (``pg_ctl stop -m fast``) once the grid's cell batch runs on its worker and
    starts again 30 s later: the grid completes, its cell has one leaderboard row and one FINISHED
    MLflow run, and no flow run or MLflow run is left RUNNING."""
    from mlflow.tracking import MlflowClient
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    from benchmark.results.leaderboard import Leaderboard

    folder, pg_port, tracking_uri, api_url, env = client_side(team_stack)
    t0 = time.monotonic()
    flow_run_id = trigger(env, ["seeds=[7]", "training.max_epochs=20"])
    with SyncPrefectClient(api_url) as client:
        while not any(r.state.type.value == "RUNNING" for r in client.read_flow_runs(
                flow_run_filter=FlowRunFilter(name=FlowRunFilterName(like_="cells-")))):
            assert time.monotonic() - t0 < 180, "the grid's cell batch did not start within 180 s"
            time.sleep(1)
    pg_ctl(folder, "stop", "-m", "fast")
    stopped = time.monotonic()
    time.sleep(30)
    pg_ctl(folder, "start", "-l", str(folder / "postgres" / "server.log"), "-o",
           f"-c listen_addresses=127.0.0.1 -c port={pg_port} -c unix_socket_directories=''")
    print(f"\npostgres down {time.monotonic() - stopped:.0f} s, {stopped - t0:.0f} s after the trigger")
    state = wait_final(api_url, flow_run_id, 300)
    assert state.type.value == "COMPLETED", state.message
    with SyncPrefectClient(api_url) as client:
        left = [r.name for r in client.read_flow_runs() if r.state.type.value in ("RUNNING", "PENDING")]
    print(f"grid with a postgres outage: {time.monotonic() - t0:.1f} s")
    assert not left, left
    rows = Leaderboard(str(folder / "results")).read(kind="model")
    assert sorted(rows["seed"]) == [0, 1, 7] and rows["cell_key"].is_unique
    client = MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("tlbench-smoke").experiment_id])
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert [r.info.run_name for r in runs].count("lstm·scratch·240·s7") == 1


def kill_service(pidfile: Path) -> list[int]:
    """SIGKILL a stack process's group and every descendant (a server or a machine lost)."""
    pid = int(pidfile.read_text())
    victims = [pid, *descendants(pid)]
    for kill, target in [(os.killpg, pid), *[(os.kill, p) for p in victims]]:
        try:
            kill(target, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 15
    while any(alive(p) for p in victims) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in victims if alive(p)], f"{pidfile.stem} survived SIGKILL"
    return victims


def cell_runs_by_seed(tracking_uri: str, seeds: list[int]) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("tlbench-smoke")  # None until the grid's first run
    runs = client.search_runs([experiment.experiment_id]) if experiment else []
    return [r for r in runs if r.data.tags.get("tlbench.kind") == "cell" and int(r.data.tags.get("seed", -1)) in seeds]


@pytest.mark.timeout(900)
def test_a_pool_grid_survives_mlflow_and_its_worker_killed_and_restart_brings_them_back(team_stack):
    """The MLflow server SIGKILLed while a cell trains, ``stack.sh restart`` 5 s later; then the
    gpu-pool worker SIGKILLed with its flow run (a machine lost) while the next cell trains, and
    ``restart`` again (which closes the runs the dead worker left RUNNING). The grid ends in a clear
    state; if not Completed, a rerun finishes it. Then: every cell once in the leaderboard, one
    FINISHED MLflow run per cell, no MLflow or Prefect run left RUNNING, and the cell that finished
    before the worker died was not trained again."""
    from prefect.client.orchestration import SyncPrefectClient

    from benchmark.results.leaderboard import Leaderboard

    folder, _, tracking_uri, api_url, env = client_side(team_stack)
    ports, seeds = team_stack["ports"], [21, 22]

    def wait_training(count: int) -> None:  # until `count` cells of this grid have started
        deadline = time.monotonic() + 240
        while len(cell_runs_by_seed(tracking_uri, seeds)) < count:
            assert time.monotonic() < deadline, f"cell {count} of the grid did not start within 240 s"
            time.sleep(1)

    t0 = time.monotonic()
    overrides = [f"seeds={seeds}", "training.max_epochs=25"]
    flow_run_id = trigger(env, overrides)
    wait_training(1)
    kill_service(folder / "run" / "mlflow.pid")
    time.sleep(5)
    out = stack_sh("restart", folder, ports, env, timeout=300)
    assert out.returncode == 0 and out.stdout.rstrip().endswith(": restarted mlflow"), out.stdout + out.stderr
    print(f"\nmlflow killed {time.monotonic() - t0:.0f} s after the trigger, back after restart: {out.stdout}")

    wait_training(2)
    first = [r for r in cell_runs_by_seed(tracking_uri, seeds) if r.info.status == "FINISHED"]
    assert len(first) == 1, [(r.info.run_name, r.info.status) for r in cell_runs_by_seed(tracking_uri, seeds)]
    gpu_worker = next(folder.glob("workers/*-gpu-*.pid"))
    kill_service(gpu_worker)
    out = stack_sh("restart", folder, ports, env, timeout=300)
    assert out.returncode == 0 and f"restarted {gpu_worker.stem}" in out.stdout, out.stdout + out.stderr
    state = wait_final(api_url, flow_run_id, 400)
    print(f"grid after the worker was killed: {state.type.value} ({time.monotonic() - t0:.0f} s): {state.message}")
    if state.type.value != "COMPLETED":  # the rerun a user makes: only the lost cell trains
        assert state.type.value == "FAILED" and "no leaderboard row" in (state.message or ""), state.message
        rerun = wait_final(api_url, trigger(env, overrides), 400)
        assert rerun.type.value == "COMPLETED", rerun.message

    rows = Leaderboard(str(folder / "results")).read(kind="model")
    ours = rows[rows["seed"].isin(seeds)]
    assert sorted(ours["seed"]) == seeds and rows["cell_key"].is_unique
    runs = cell_runs_by_seed(tracking_uri, seeds)
    finished = [r for r in runs if r.info.status == "FINISHED"]
    assert sorted(r.data.tags["tlbench.cell_key"] for r in finished) == sorted(ours["cell_key"])
    assert first[0].info.run_id in {r.info.run_id for r in finished}  # not trained again
    assert "RUNNING" not in {r.info.status for r in runs}
    with SyncPrefectClient(api_url) as client:
        left = [r.name for r in client.read_flow_runs() if r.state.type.value in ("RUNNING", "PENDING")]
    assert not left, left
    status = stack_sh("status", folder, ports, env, timeout=60)
    assert status.returncode == 0, status.stdout  # everything runs again
    again = stack_sh("restart", folder, ports, env, timeout=60)
    assert again.returncode == 0 and again.stdout.endswith(": everything runs, nothing restarted\n"), again.stdout
    print(f"mlflow and a worker killed, grid done: {time.monotonic() - t0:.1f} s")


def test_down_stops_everything_it_started_and_frees_the_ports(team_stack):
    folder, ports, env = team_stack["folder"], team_stack["ports"], team_stack["env"]
    pids = stack_pids(folder)
    assert len(pids) >= 5, pids  # postgres, two servers, two workers (and their children)
    password = (folder / "password").read_text().strip()
    assert oct((folder / "password").stat().st_mode & 0o777) == "0o600" and len(password) >= 24
    t0 = time.monotonic()
    down = stack_sh("down", folder, ports, env, timeout=120)
    assert down.returncode == 0, down.stdout + down.stderr
    print(f"\nstack down: {time.monotonic() - t0:.1f} s")
    deadline = time.monotonic() + 10
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in pids if alive(p)]
    assert all(port_free(p) for p in ports)
    assert stack_sh("status", folder, ports, env, timeout=60).returncode == 3
    # the password is in DIR/password and DIR/pgpass only: no log, no output, no other file
    printed = team_stack["up"].stdout + team_stack["up"].stderr + down.stdout
    leaks = [str(p) for p in folder.rglob("*") if p.is_file() and p.name not in ("password", "pgpass")
             and password.encode() in p.read_bytes()]
    assert password not in printed and not leaks, leaks
