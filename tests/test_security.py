"""Security at tlbench's edges: servers bind to loopback unless told otherwise, models load in
Keras safe mode, nothing is unpickled from results, credentials never reach MLflow, and a grid
spec cannot make tlbench write outside its results folder."""

from __future__ import annotations

import os
import pickle
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.report.paths import report_dir
from benchmark.results.leaderboard import Leaderboard
from benchmark.run.engines import LocalEngine
from benchmark.run.grid import run_grid
from benchmark.spec.errors import SpecError, TlbenchError
from benchmark.spec.profiles import load_grid
from benchmark.spec.settings import Settings, redact

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY = ["target_sizes=[120]", "split.test_size=48", "model.units=8", "training.max_epochs=1",
        "modes=[scratch]", "seeds=[0]", "baselines=[]"]


# ------------------------------------------------------------------ loopback


def _listening_addresses(port: int) -> set[str]:
    """Local addresses of sockets LISTENing on ``port`` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address if width == 32 else ".".join(str(b) for b in bytes.fromhex(address)[::-1]))
    return found


@pytest.mark.e2e
def test_tlbench_ui_listens_on_loopback_only_by_default(tmp_path):
    from tests.conftest import free_port, stop_process, wait_http

    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "TLBENCH_RESULTS")}
    log = open(tmp_path / "ui.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "benchmark.cli", "ui", "--port", str(port)], cwd=tmp_path,
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", 120, proc)
        addresses = _listening_addresses(port)
        assert addresses == {"127.0.0.1"}, addresses  # not 0.0.0.0, not ::
    finally:
        stop_process(proc, signal.SIGTERM)
        log.close()
    assert "--host 127.0.0.1" in (tmp_path / "ui.log").read_text()


def test_shipped_scripts_and_configs_bind_to_loopback():
    """Every server command tlbench ships (scripts, Makefile, prefect.yaml, the code) names
    127.0.0.1; 0.0.0.0 appears nowhere. The multi-machine example in deployments/README.md binds
    to a named private address on purpose: that is being told otherwise."""
    files = [*REPO_ROOT.joinpath("deployments").glob("*.sh"), REPO_ROOT / "Makefile", REPO_ROOT / "prefect.yaml",
             *REPO_ROOT.joinpath("src", "benchmark").rglob("*.py"), *REPO_ROOT.joinpath("flows").glob("*.py")]
    hosts = []
    for path in files:
        text = path.read_text()
        assert "0.0.0.0" not in text, f"{path} binds to every interface"
        hosts += [(path.name, h) for h in re.findall(r"--host[\s=\"',]+(?:default=)?[\"']?([^\s\"',)]+)", text)]
    for name, host in hosts:
        assert host in ("127.0.0.1", "args.host"), f"{name} starts a server on {host}"
    from benchmark.cli import build_parser

    assert build_parser().parse_args(["ui"]).host == "127.0.0.1"


# ------------------------------------------------------------------ no code from files


def _lambda_model(marker: Path):
    import keras

    inputs = keras.Input((24, 1))
    # Python code inside the saved file: it touches `marker` whenever it is deserialised and run
    # (the path is a constant of the bytecode; a closure over it would not serialise)
    code = eval(f"lambda x: (__import__('pathlib').Path({str(marker)!r}).touch(), x)[1]")  # noqa: S307
    touched = keras.layers.Lambda(code)(inputs)
    outputs = keras.layers.Dense(1)(keras.layers.Flatten()(touched))
    return keras.Model(inputs, outputs)


def test_a_pretrained_file_with_a_lambda_layer_is_refused_and_its_code_never_runs(tmp_path):
    import keras

    from benchmark.models.pretrain import load_pretrained, save_pretrained

    marker = tmp_path / "code-ran"
    path = tmp_path / "model.keras"
    save_pretrained(_lambda_model(marker), path)  # checksummed: the file is exactly what was saved
    marker.unlink()
    with pytest.raises(TlbenchError, match="safe_mode") as info:
        load_pretrained(path)
    assert "Lambda" in str(info.value) and not marker.exists()
    # the control: an unsafe load of the same file does run its code
    keras.saving.load_model(path, safe_mode=False, compile=False)
    assert marker.exists()


def test_a_registered_model_with_a_lambda_layer_is_refused_and_its_code_never_runs(settings, tmp_path):
    from benchmark.tracking.tracker import Tracker

    marker = tmp_path / "code-ran"
    model = _lambda_model(marker)
    tracker = Tracker(settings, "security")
    run_id = tracker.start_run("lambda", "pretrain", {}, {})
    tracker.log_keras_model(run_id, model, np.zeros((2, 24, 1), "float32"))
    version = tracker.register_model("pretrained-lambda", run_id, "model", {})
    tracker.end_run(run_id)
    marker.unlink()
    with pytest.raises(ValueError, match="safe_mode"):
        tracker.load_registered_keras("pretrained-lambda", version)
    assert not marker.exists()


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_nothing_is_unpickled_from_the_results(tmp_path):
    """The code never calls a pickle loader; and a pickle planted in the leaderboard is only a
    file that does not read as Parquet."""
    pattern = re.compile(r"\bimport pickle\b|\bfrom pickle\b|cloudpickle|\bdill\b|joblib|read_pickle|"
                         r"allow_pickle\s*=\s*True|pickle\.loads?\(|torch\.load|\bshelve\b|\bmarshal\b")
    for path in [*REPO_ROOT.joinpath("src", "benchmark").rglob("*.py"), *REPO_ROOT.joinpath("flows").glob("*.py"),
                 *REPO_ROOT.joinpath("tasks").glob("*.py")]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            assert not pattern.search(line), f"{path}:{number}: {line.strip()}"
            if "np.load(" in line or "numpy.load(" in line:
                assert "allow_pickle=False" in line, f"{path}:{number}: np.load without allow_pickle=False"

    marker = tmp_path / "unpickled"
    folder = tmp_path / "results" / "cells" / "run_date=2024-05-01" / "grid=demo"
    folder.mkdir(parents=True)
    (folder / "evil-00000000.parquet").write_bytes(pickle.dumps(_Payload(marker)))
    (tmp_path / "results" / "leaderboard.pkl").write_bytes(pickle.dumps(_Payload(marker)))
    board = Leaderboard(str(tmp_path / "results"))
    assert board.read().empty and [Path(p).name for p, _ in board.skipped] == ["evil-00000000.parquet"]
    board.quarantine()
    assert not marker.exists()


# ------------------------------------------------------------------ credentials


def test_credentials_in_the_environment_reach_no_mlflow_param_or_tag_of_a_real_grid(tmp_path, data_dir,
                                                                                     monkeypatch):
    """Credential-like variables are set; one of them is also pasted into the grid's name (which
    MLflow gets as a param, a tag, a run name and the experiment name). None of the values may
    appear in any param, tag, run name or experiment name; a redaction marker shows where it
    would have. The same real run shows that a CSV target is only read."""
    from mlflow.tracking import MlflowClient

    secrets = {"AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI-K7MDENG-bPxRfiCYzEXAMPLE",
               "MLFLOW_TRACKING_PASSWORD": "hunter2-but-longer", "TLBENCH_TEST_API_TOKEN": "tok-0123456789abcdef"}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    csv_dir = tmp_path / "csv"
    csv_dir.mkdir()
    csv = csv_dir / "etth1_head.csv"
    pd.read_csv(data_dir / "ett" / "ETTh1.csv", nrows=400)[["date", "OT"]].to_csv(csv, index=False)
    before = (csv.read_bytes(), csv.stat().st_mtime_ns)
    settings = Settings.from_env(os.environ, data_dir=data_dir, results=str(tmp_path / "results"),
                                 tracking_uri="", mlflow_dir=tmp_path / "mlflow", experiment="",
                                 allow_download=False)
    assert set(secrets.values()) <= settings.secret_values
    assert not any(v in repr(settings) for v in secrets.values())
    assert not any(v in str(settings.to_env()) for v in secrets.values())
    spec = load_grid("smoke", TINY + [f"name=nightly-{secrets['AWS_SECRET_ACCESS_KEY']}",
                                      "targets=[{source: csv, options: {path: " + str(csv)
                                      + ", date_column: date, value_column: OT}}]"])
    result = run_grid(spec, settings, LocalEngine(1))
    assert result.counts() == {"finished": 1}

    client = MlflowClient(tracking_uri=settings.tracking_uri)
    experiments = client.search_experiments()
    runs = client.search_runs([e.experiment_id for e in experiments], max_results=100)
    assert len(runs) == 2  # the grid and its cell
    logged = [e.name for e in experiments]
    for run in runs:
        logged += [run.info.run_name, *run.data.params.values(), *run.data.tags.values(),
                   *run.data.params, *run.data.tags]
    for name, value in secrets.items():
        assert not [text for text in logged if value in text], f"{name}'s value reached MLflow"
    assert any(r.data.tags.get("grid") == "nightly-***" for r in runs)
    assert any(r.data.params.get("name") == "nightly-***" for r in runs)
    assert (csv.read_bytes(), csv.stat().st_mtime_ns) == before and os.listdir(csv_dir) == [csv.name]

    # nor any byte tlbench wrote: leaderboard files and folder names, the aggregate, the HTML
    # report, pretrained metadata, the MLflow store itself and every artifact logged to it
    from benchmark.results.leaderboard import Leaderboard

    rows = Leaderboard(settings.results).read()
    assert set(rows["grid"]) == {"nightly-***"}
    written = [p for root in (tmp_path / "results", tmp_path / "mlflow") for p in root.rglob("*")]
    assert any(p.name == "report.html" for p in written) and any(p.suffix == ".parquet" for p in written)
    for path in written:
        for name, value in secrets.items():
            assert value not in str(path), f"{name}'s value names {path}"
            if path.is_file():
                assert value.encode() not in path.read_bytes(), f"{name}'s value is in {path}"


def test_settings_holding_credentials_never_travel_as_flow_parameters():
    secret = "s3cr3t-tracking-pw"
    settings = Settings.from_env({"MLFLOW_TRACKING_PASSWORD": secret},
                                 tracking_uri=f"https://alice:{secret}@mlflow.example/",
                                 results="s3://AKIAEXAMPLE:abcdefgh@bucket/results")
    plain = settings.to_plain()
    assert plain["tracking_uri"] is None and plain["results"] is None  # the worker's own environment
    assert secret not in str(plain) and "abcdefgh" not in str(plain)
    assert settings.credential_env()["MLFLOW_TRACKING_URI"] == settings.tracking_uri
    clean = Settings.from_env({}, tracking_uri="http://127.0.0.1:5000")
    assert clean.to_plain()["tracking_uri"] == "http://127.0.0.1:5000" and clean.credential_env() == {}


def test_redact_removes_secrets_and_url_credentials():
    assert redact("s3://AKIAEXAMPLE:abc%2Fdef@bucket/x.csv") == "s3://***@bucket/x.csv"
    assert redact("http://user:pw@127.0.0.1:5000/api") == "http://***@127.0.0.1:5000/api"
    assert redact("run with s3cr3t-value and s3cr3t-value-long", {"s3cr3t-value", "s3cr3t-value-long"}) \
        == "run with *** and ***"
    assert redact("http://127.0.0.1:5000", {"short"}) == "http://127.0.0.1:5000"
    settings = Settings.from_env({"GITHUB_TOKEN": "ghp_abcdefghij", "MY_KEY": "1", "HOME": "/root"})
    assert settings.secret_values == frozenset({"ghp_abcdefghij"})  # "1" is too short to redact


# ------------------------------------------------------------------ paths from a grid spec


@pytest.mark.parametrize("name", ["../../evil", "/tmp/evil", "a/b", "..", "ok/../../evil"])
def test_a_grid_name_with_path_tricks_is_refused_before_anything_is_written(name, settings, tmp_path):
    spec = load_grid("smoke", [f"name={name}"])
    with pytest.raises(SpecError, match="grid.name"):
        run_grid(spec, settings, LocalEngine(1))
    assert not Path(settings.results).exists() and not settings.mlflow_dir.exists()
    assert not (tmp_path.parent / "evil").exists() and not Path("/tmp/evil").exists()


def test_hostile_names_that_reach_the_writers_stay_inside_the_results(tmp_path):
    """Defence in depth, below validation: the leaderboard percent-encodes grid names and
    sanitises cell keys; report folders are sanitised names under results."""
    import datetime as dt

    from tests.test_leaderboard import make_row

    root = tmp_path / "results"
    board = Leaderboard(str(root))
    paths = board.append([make_row(grid="../../evil", cell_key="../../../etc/x"),
                          make_row(grid="..", cell_key="..\\..\\y", seed=1),
                          make_row(grid="/abs", cell_key="/abs/z", seed=2)])
    for path in paths:
        assert Path(path).resolve().is_relative_to(root.resolve()), path
    assert sorted(board.read()["grid"]) == ["..", "../../evil", "/abs"]  # the names survive, decoded
    board.record_failure({"grid_id": "g", "grid": "../../evil", "run_id": "r", "run_date": "2024-05-01",
                          "cell_key": "../x", "target": "t", "target_size": 1, "architecture": "lstm",
                          "mode": "scratch", "seed": 0, "error": "e",
                          "failed_at": dt.datetime.now(dt.timezone.utc)})
    assert all(p.resolve().is_relative_to(root.resolve()) for p in tmp_path.rglob("*") if p.is_file())
    settings = Settings(results=str(root)).resolved()
    for name in ("../../evil", "..", "/etc", "a/../../b"):
        assert report_dir(settings, name).resolve().is_relative_to(root.resolve() / "reports")
