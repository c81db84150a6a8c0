"""A grid's lease (``benchmark.run.lease``) on a real folder: a second run of a grid is refused with
who holds it; another grid takes its own; a holder whose process died here (a real SIGKILLed
process) or whose heartbeat is older than the bound is taken over, by one of several runs trying at
once; the lease is given back on an exception and on Ctrl-C, and ``run_grid`` holds it."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, replace

import pytest

from benchmark.run.lease import GridAlreadyRunning, Holder, acquire, lease_path
from benchmark.spec.settings import Settings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def lease_settings(tmp_path):
    return Settings(results=str(tmp_path / "results"), mlflow_dir=tmp_path / "mlflow", heartbeat_seconds=3600,
                    stale_grid_seconds=900).resolved()


def take(settings, grid_id="g1", **kwargs):
    return acquire(settings, f"grid-{grid_id}", grid_id, **kwargs)


def test_a_second_run_of_a_grid_is_refused_naming_the_holder_and_another_grid_runs_beside_it(lease_settings):
    first = take(lease_settings)
    with pytest.raises(GridAlreadyRunning) as refused:
        take(lease_settings)
    message = str(refused.value)
    assert message.startswith(f"grid 'grid-g1' (id g1) is already running on this results folder "
                              f"({lease_settings.results}) since ")
    assert f"pid {os.getpid()}" in message and f"on host {first.holder.host}" in message
    assert "Wait for it to finish" in message and "900 s" in message and str(first.path) in message
    other = take(lease_settings, "g2")  # a different grid on the same results: its own lease
    assert {p.name for p in first.path.parent.glob("*.json")} == {"g1.json", "g2.json"}
    first.release()
    other.release()
    assert list(first.path.parent.iterdir()) == []  # nothing left behind, no temporary file either
    take(lease_settings).release()  # free again


def test_the_lease_is_given_back_on_an_exception_and_on_ctrl_c(lease_settings):
    for interrupt in (RuntimeError("a cell blew up"), KeyboardInterrupt()):
        with pytest.raises(type(interrupt)):
            with take(lease_settings) as lease:
                raise interrupt
        assert not lease.path.exists()


def test_a_lease_whose_process_was_killed_on_this_host_is_taken_over_with_a_warning(lease_settings, caplog):
    hold_and_die = ("import os, signal, sys; from benchmark.run.lease import acquire; "
                    "from benchmark.spec.settings import Settings; s = Settings(results=sys.argv[1]); "
                    "acquire(s, 'grid-g1', 'g1').own('prefect-flow-run:abc'); os.kill(os.getpid(), signal.SIGKILL)")
    # a real holder, SIGKILLed while it holds the lease: no finally runs
    holder = subprocess.run([sys.executable, "-c", hold_and_die, lease_settings.results], cwd=ROOT,
                            capture_output=True, text=True, timeout=60, check=False)
    assert holder.returncode == -signal.SIGKILL, holder.stderr
    dead = Holder.read(lease_path(lease_settings, "g1"))
    assert dead is not None and dead.pid != os.getpid()
    with caplog.at_level(logging.WARNING, logger="benchmark.run.lease"):
        lease = take(lease_settings)
    assert lease.holder.pid == os.getpid()
    assert f"its process {dead.pid} on {dead.host} is gone" in caplog.text
    # what the new holder needs to close the dead run's Prefect runs (flows/lost.py)
    assert lease.taken_over == dead and dead.owner == "prefect-flow-run:abc"
    assert lease.why == f"its process {dead.pid} on {dead.host} is gone"
    lease.own("prefect-flow-run:def")
    assert Holder.read(lease.path).owner == "prefect-flow-run:def"
    fresh = take(lease_settings, "g2")
    assert fresh.taken_over is None
    fresh.release()
    lease.release()


def test_a_holder_silent_longer_than_the_bound_is_taken_over_and_then_cannot_remove_the_new_lease(lease_settings):
    # a holder on another machine (its pid means nothing here) that stopped beating
    elsewhere = take(lease_settings, host="machine-b")
    quick = replace(lease_settings, stale_grid_seconds=1)
    with pytest.raises(GridAlreadyRunning, match="on host machine-b"):
        take(quick)  # its heartbeat is fresh
    time.sleep(1.3)
    mine = take(quick)  # silent for more than stale_grid_seconds: taken over
    assert mine.holder.token != elsewhere.holder.token
    assert elsewhere.beat() is False  # if it wakes up, it learns that it lost the lease...
    elsewhere.release()  # ...and giving it back leaves the new holder's lease alone
    assert Holder.read(mine.path) == mine.holder
    mine.release()


def test_the_heartbeat_advances_while_the_lease_is_held(lease_settings):
    with take(replace(lease_settings, heartbeat_seconds=0.1)) as lease:
        first = Holder.read(lease.path).heartbeat
        time.sleep(0.5)
        later = Holder.read(lease.path)
        assert later.heartbeat > first and later.token == lease.holder.token


def test_several_runs_taking_over_one_stale_lease_at_once_leave_one_winner(lease_settings):
    path = lease_path(lease_settings, "g1")
    path.parent.mkdir(parents=True)
    dead_pid = 2 ** 22 + 12345  # above Linux's default pid_max: no such process
    stale = Holder("grid-g1", "g1", "this-host", dead_pid, "someone", "tlbench run", 0.0, 0.0, "dead")
    path.write_text(stale.json())
    start, won, refused = threading.Barrier(8), [], []

    def contend() -> None:
        start.wait()
        try:
            won.append(take(lease_settings, host="this-host", is_alive=lambda pid: pid != dead_pid))
        except GridAlreadyRunning:
            refused.append(1)

    threads = [threading.Thread(target=contend) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert (len(won), len(refused)) == (1, 7)
    assert Holder.read(path) == won[0].holder
    won[0].release()


def test_a_damaged_lease_file_counts_as_silent_since_it_was_written(lease_settings):
    path = lease_path(lease_settings, "g1")
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(GridAlreadyRunning, match="unreadable lease file"):
        take(lease_settings)
    old = time.time() - 1000
    os.utime(path, (old, old))
    take(lease_settings).release()  # older than stale_grid_seconds (900 s): taken over


def test_run_grid_holds_the_grid_lease_and_refuses_to_run_it_twice(settings):
    from benchmark.run.grid import run_grid
    from benchmark.run.plan import plan_grid
    from benchmark.spec.profiles import load_grid

    spec = load_grid("smoke", ["target_sizes=[240]", "modes=[scratch]", "baselines=[naive]"])
    plan = plan_grid(spec, settings)
    with acquire(settings, spec.name, plan.grid_id) as held:
        with pytest.raises(GridAlreadyRunning, match="is already running on this results folder"):
            run_grid(spec, settings)
        assert Holder.read(held.path) == held.holder  # the refused run left the lease alone
    assert not (settings.mlflow_dir / "mlflow.db").exists()  # refused before MLflow was opened
    assert asdict(held.holder)["grid_id"] == plan.grid_id
