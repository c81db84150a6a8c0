"""Real services for fault tests: an ``mlflow server`` on 127.0.0.1 that a test can stop (SIGTERM,
by process group id) and start again on the same port and store. Built on the helpers in
``conftest.py`` (``free_port``, ``wait_http``, ``stop_process``), which stay the one copy."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import free_port, stop_process, wait_http

__all__ = ["MlflowServer", "create_sqlite_store", "free_port"]


def create_sqlite_store(db: Path) -> str:
    """Create a fresh MLflow SQLite store (its schema) once, before any server or fan-out touches
    it; returns its URI. Several processes creating one store at once corrupt it."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{db}"
    MlflowClient(tracking_uri=uri).search_experiments()
    return uri


class MlflowServer:
    """``mlflow server --host 127.0.0.1 --workers 1`` over a SQLite store and a local artifact
    root under ``root``; :meth:`stop` and :meth:`start` may be called again and again (same port,
    same store). The log of every start goes to ``root/server.log``."""

    def __init__(self, root: Path, port: int | None = None, start_timeout: float = 120):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.start_timeout = start_timeout
        self.backend = create_sqlite_store(self.root / "mlflow.db")
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "MlflowServer":
        log = open(self.root / "server.log", "a")
        log.write(f"\n===== start {self.starts + 1} =====\n")
        log.flush()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", "1", "--backend-store-uri", self.backend,
             "--default-artifact-root", str(self.root / "artifacts")],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.starts += 1
        try:
            wait_http(f"{self.url}/health", self.start_timeout, self.proc)
        except Exception:
            self.stop()
            raise RuntimeError("mlflow server did not start:\n" + self.log_tail())
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None:
            stop_process(self.proc, sig)

    def is_up(self) -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def log_tail(self, chars: int = 3000) -> str:
        path = self.root / "server.log"
        return path.read_text()[-chars:] if path.is_file() else ""
