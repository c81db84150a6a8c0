"""``benchmark_grid``: the flow behind ad-hoc and nightly runs. Reads the environment, builds the
settings, runs ``benchmark.grid.run_grid`` with the Prefect engine and publishes the leaderboard
as a table artifact plus a markdown summary."""

from __future__ import annotations

import os
from typing import Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from benchmark.config import load_grid
from benchmark.grid import GridResult, run_grid
from benchmark.settings import Settings
from flows.engine import PrefectEngine


def _publish(result: GridResult) -> None:
    from benchmark.leaderboard import aggregate

    if len(result.leaderboard):
        agg = aggregate(result.leaderboard).sort_values(["target", "target_size", "rank"])
        columns = [c for c in ("target", "target_size", "architecture", "mode", "mase_mean",
                               "smape_mean", "mae_mean", "rank", "improvement_vs_scratch_pct",
                               "n_seeds") if c in agg.columns]
        table = agg[columns].round(4).astype(object).where(agg[columns].notna(), None)
        create_table_artifact(table.to_dict(orient="records"), key="leaderboard",
                              description=f"grid {result.grid} ({result.grid_id})")
    counts = result.counts()
    lines = [f"# Grid `{result.grid}` run `{result.run_id}`", "",
             f"- cells: {counts}", f"- wall time: {result.wall_seconds:.1f} s",
             f"- MLflow parent run: `{result.parent_run_id}`",
             f"- aggregated leaderboard: `{result.aggregate_uri}`"]
    for outcome in result.failed:
        lines.append(f"- FAILED {outcome.label}: {outcome.error}")
    create_markdown_artifact("\n".join(lines), key="grid-summary")


@flow(name="benchmark-grid", log_prints=True)
def benchmark_grid(grid: str = "smoke", overrides: list[str] | None = None,
                   execution: Literal["local"] = "local", concurrency: int = 1,
                   data_dir: str | None = None, results: str | None = None,
                   tracking_uri: str | None = None, fail_on_cell_errors: bool = True) -> GridResult:
    """Run a grid spec (a profile name or a YAML path, plus ``key=value`` overrides).

    Settings not given here come from the worker's environment (``TLBENCH_DATA_DIR``,
    ``TLBENCH_RESULTS``, ``MLFLOW_TRACKING_URI``). With ``fail_on_cell_errors`` the flow run ends
    FAILED when any cell failed, after the leaderboard is published.
    """
    logger = get_run_logger()
    settings = Settings.from_env(os.environ, data_dir=data_dir, results=results,
                                 tracking_uri=tracking_uri)
    spec = load_grid(grid, overrides or [])
    result = run_grid(spec, settings, PrefectEngine(concurrency), label=grid)
    _publish(result)
    logger.info("grid %s: %s in %.1f s", result.grid, result.counts(), result.wall_seconds)
    if result.failed and fail_on_cell_errors:
        raise RuntimeError(f"{len(result.failed)} cell(s) failed: "
                           + "; ".join(f"{o.label}: {o.error}" for o in result.failed))
    return result


def launch(grid: str, overrides: list[str], settings: Settings, concurrency: int = 1) -> GridResult:
    """Entry point of ``tlbench run --engine prefect``: the same flow, in this process (Prefect's
    ephemeral API unless ``PREFECT_API_URL`` points at a server)."""
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.update(settings.to_env())  # the flow reads its settings from the environment
    return benchmark_grid(grid, overrides, "local", concurrency, fail_on_cell_errors=False)
