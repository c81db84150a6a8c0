"""Where things live: data, results, tracking. Built once by a caller (CLI, flow, test) and passed
down; nothing else in the library reads the environment.

Embedded defaults (no server anywhere): data in ``./data``, results (Parquet leaderboard,
pretrained models, reports) in ``./results``, MLflow in a SQLite file ``./mlflow/mlflow.db`` with
artifacts in ``./mlflow/artifacts``. Every one is a setting:

==========================  ======================  =============================================
environment variable        CLI option              meaning
==========================  ======================  =============================================
``TLBENCH_DATA_DIR``        ``--data-dir``          folder with ``m4/datasets/``, ``ett/``, ...
``TLBENCH_RESULTS``         ``--results``           results location: a folder or a pyarrow URI
``MLFLOW_TRACKING_URI``     ``--tracking-uri``      any MLflow tracking URI
``TLBENCH_ARTIFACTS``       (none)                  artifact root for a SQLite tracking store
``TLBENCH_EXPERIMENT``      ``--experiment``        MLflow experiment (default: the grid's name)
==========================  ======================  =============================================
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("data")
    results: str = "results"
    tracking_uri: str = ""  # "" -> sqlite file under mlflow_dir
    artifact_location: str = ""  # "" -> mlflow_dir/artifacts for a local store
    mlflow_dir: Path = Path("mlflow")
    experiment: str | None = None  # None: the grid's name
    allow_download: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str], **overrides) -> "Settings":
        """Settings from an environment mapping (the caller passes ``os.environ``) plus overrides
        (``None`` values are ignored, so CLI options that were not given change nothing)."""
        values: dict = {}
        if env.get("TLBENCH_DATA_DIR"):
            values["data_dir"] = Path(env["TLBENCH_DATA_DIR"])
        if env.get("TLBENCH_RESULTS"):
            values["results"] = env["TLBENCH_RESULTS"]
        if env.get("MLFLOW_TRACKING_URI"):
            values["tracking_uri"] = env["MLFLOW_TRACKING_URI"]
        if env.get("TLBENCH_ARTIFACTS"):
            values["artifact_location"] = env["TLBENCH_ARTIFACTS"]
        if env.get("TLBENCH_EXPERIMENT"):
            values["experiment"] = env["TLBENCH_EXPERIMENT"]
        if env.get("TLBENCH_OFFLINE", "").lower() in ("1", "true", "yes"):
            values["allow_download"] = False
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "data_dir" in values:
            values["data_dir"] = Path(values["data_dir"])
        return cls(**values).resolved()

    def resolved(self) -> "Settings":
        """Absolute local paths, so worker threads and child processes agree on them."""
        mlflow_dir = self.mlflow_dir.absolute()
        tracking = self.tracking_uri or f"sqlite:///{mlflow_dir / 'mlflow.db'}"
        artifacts = self.artifact_location
        if not artifacts and tracking.startswith("sqlite:"):
            artifacts = (mlflow_dir / "artifacts").as_uri()
        results = self.results
        if "://" not in results:
            results = str(Path(results).absolute())
        return replace(self, data_dir=self.data_dir.absolute(), results=results,
                       tracking_uri=tracking, artifact_location=artifacts, mlflow_dir=mlflow_dir)

    def to_env(self) -> dict[str, str]:
        """The environment that reproduces these settings in a child process or worker."""
        env = {"TLBENCH_DATA_DIR": str(self.data_dir), "TLBENCH_RESULTS": self.results,
               "MLFLOW_TRACKING_URI": self.tracking_uri}
        if self.artifact_location:
            env["TLBENCH_ARTIFACTS"] = self.artifact_location
        if self.experiment:
            env["TLBENCH_EXPERIMENT"] = self.experiment
        if not self.allow_download:
            env["TLBENCH_OFFLINE"] = "1"
        return env
