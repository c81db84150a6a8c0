"""Shared fixtures: the real data directory (``TLBENCH_DATA_DIR``, default ``../shared/data``)
and per-test settings whose results and MLflow store live in the test's own tmp folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = Path(os.environ.get("TLBENCH_DATA_DIR", REPO_ROOT.parent / "shared" / "data")).resolve()
    if not (path / "m4" / "datasets" / "Hourly-train.csv").is_file():
        pytest.fail(f"real data not found under {path}: set TLBENCH_DATA_DIR to the shared data folder")
    return path


@pytest.fixture(scope="module")
def single_threaded_eager():
    """For modules of tiny Keras models (``pytestmark = pytest.mark.usefixtures(...)``): one TF
    thread, and eager functions, since tracing would cost more than running them."""
    import tensorflow as tf

    from benchmark.models.runtime import configure_threads

    configure_threads(1, 1)
    tf.config.run_functions_eagerly(True)
    yield
    tf.config.run_functions_eagerly(False)


@pytest.fixture
def settings(tmp_path, data_dir):
    from benchmark.spec.settings import Settings

    return Settings(data_dir=data_dir, results=str(tmp_path / "results"),
                    mlflow_dir=tmp_path / "mlflow", allow_download=False).resolved()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float, proc=None) -> None:
    """Poll ``url`` until it answers 200, the process dies, or ``timeout`` seconds pass."""
    import time
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited early with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def stop_process(proc, sig=None, timeout: float = 15) -> None:
    """Stop a process we started, by its id: a polite signal, then SIGKILL to its group."""
    import signal

    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig or signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout)
    except Exception:  # noqa: BLE001
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(10)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real ``mlflow server`` on 127.0.0.1 with its own SQLite store and artifact folder,
    stopped (by process group id) when the session ends. Yields its tracking URI."""
    import subprocess
    import sys

    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    log = open(root / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
         "--artifacts-destination", (root / "artifacts").as_uri(), "--serve-artifacts"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", 120, proc)
    except Exception:
        stop_process(proc)
        raise RuntimeError("mlflow server did not start:\n" + (root / "server.log").read_text()[-3000:])
    yield f"http://127.0.0.1:{port}"
    stop_process(proc)
    log.close()
