"""``benchmark_grid``: the flow behind ad-hoc and nightly runs. Builds the settings once from its
parameters and the worker's environment (the flow is an edge), runs ``benchmark.run.grid.run_grid`` with a Prefect engine and publishes the leaderboard
as a table artifact plus a markdown summary.

``execution="local"`` trains every cell in this flow run (task runs, ``concurrency`` at a time);
``execution="pool"`` pretrains and runs the baselines here, then sends the cells to the work pool
in child runs of ``batch_size`` cells (``flows.pool.PoolEngine``, docs/orchestration.md).

A grid already running on the same results location (its lease, ``benchmark.run.lease``) ends the
flow run at once as **Cancelled**, with the message that names the running holder: not Failed,
since nothing is broken and the other run records every cell (a red run would page whoever watches
failures, and a retry would only collide again); not Completed, which would claim a result this
run did not produce."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from prefect import flow, get_run_logger
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.client.orchestration import get_client
from prefect.runtime import flow_run
from prefect.states import Cancelled
from pydantic import Field

from benchmark.run.grid import local_report_url, run_grid
from benchmark.run.jobs import GridResult
from benchmark.run.lease import GridAlreadyRunning
from benchmark.spec.profiles import load_grid, profile_names
from benchmark.spec.settings import Settings, apply_mlflow_http_policy
from flows.cell import label_flow_run, worker_name
from flows.executions import make_engine
from flows.lost import on_lease


def _flow_run_name() -> str:
    """The flow run's name while it starts: ``grid-<grid>-<UTC time>`` (the grid's name, or its
    YAML file's stem); :func:`_rename` then gives it the grid's run id."""

    grid = str(flow_run.parameters.get("grid", "grid"))
    label = Path(grid).stem if grid.endswith((".yaml", ".yml")) else grid
    return f"grid-{label}-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}"


def _rename(result: GridResult) -> None:
    """Name the flow run as the grid's MLflow parent run is named, ``grid-<grid>-<run id>``, so
    the dashboard's run and the MLflow run are found by the same words. Presentation: never raises."""

    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run(flow_run.get_id(), name=f"grid-{result.grid}-{result.run_id}")
    except Exception:  # noqa: BLE001 - the results are recorded; a name is not worth failing for
        get_run_logger().warning("could not rename the flow run", exc_info=True)


def summary_markdown(result: GridResult, ui_report: str | None = None) -> str:
    """The grid's summary artifact (markdown): the verdict, the cells per outcome, where the
    leaderboard and the report are (a link on a tracking server; for a local store the file's
    path and ``ui_report``, the report on ``tlbench ui``: Prefect renders no ``file://``
    link), and each failed cell."""
    counts = ", ".join(f"{n} {status}" for status, n in sorted(result.counts().items())) or "none"
    lines = [f"# Grid `{result.grid}` run `{result.run_id}`", "",
             *(f"**Verdict:** {line}" + "  " for line in result.verdict), "",
             f"- cells: {counts}", f"- wall time: {result.wall_seconds:.1f} s",
             f"- MLflow parent run: `{result.parent_run_id}`",
             f"- aggregated leaderboard: `{result.aggregate_uri}`"]
    if result.report_url:  # the copy stored with the grid's MLflow run, on the tracking server
        lines.append(f"- report: [HTML report]({result.report_url}) (MLflow run "
                     f"`{result.parent_run_id}`, artifacts `report/`)")
    elif result.report_path:  # a local tracking store: no URL another machine can open
        where = f"[HTML report]({ui_report})" if ui_report else "the HTML report"
        lines.append(f"- report: `{Path(result.report_path).resolve()}` on the machine that ran the grid; "
                     f"run `tlbench ui` there to open {where} (MLflow run `{result.parent_run_id}`, "
                     "artifacts `report/`)")
    lines += [f"- FAILED {outcome.label}: {outcome.error}" for outcome in result.failed]
    return "\n".join(lines)


def _publish(result: GridResult, ui_report: str | None = None) -> None:
    if result.aggregate is not None:
        agg = result.aggregate.sort_values(["target", "target_size", "rank"])
        columns = [c for c in ("target", "target_size", "architecture", "mode", "mase_mean",
                               "smape_mean", "mae_mean", "rank", "improvement_vs_scratch_pct",
                               "n_seeds") if c in agg.columns]
        table = agg[columns].round(4).astype(object).where(agg[columns].notna(), None)
        create_table_artifact(table.to_dict(orient="records"), key="leaderboard",
                              description=f"grid {result.grid} ({result.grid_id})")
    if result.report_url:
        create_link_artifact(result.report_url, link_text="HTML report (MLflow)", key="grid-report",
                             description=f"grid {result.grid} run {result.run_id}: the report stored "
                                         "with the grid's MLflow run")
    elif ui_report:
        create_link_artifact(ui_report, link_text="HTML report (run `tlbench ui` first)", key="grid-report",
                             description=f"grid {result.grid} run {result.run_id}: the report stored with the "
                                         f"grid's MLflow run in a local store; file {result.report_path}")
    create_markdown_artifact(summary_markdown(result, ui_report), key="grid-summary")


#: The profiles shipped with the package, offered as choices by the dashboard's form.
GridProfile = Literal[tuple(profile_names())]


@flow(name="benchmark-grid", log_prints=True, flow_run_name=_flow_run_name)
def benchmark_grid(grid: Union[Annotated[GridProfile, Field(title="profile")],
                               Annotated[str, Field(title="grid YAML path")]] = "smoke", overrides: list[str] | None = None,
                   execution: Literal["local", "pool", "served"] = "local",
                   concurrency: Annotated[int, Field(ge=1)] = 1,
                   batch_size: Annotated[int, Field(ge=1)] = 4,
                   data_dir: str | None = None, results: str | None = None,
                   tracking_uri: str | None = None, fail_on_cell_errors: bool = True,
                   pool_timeout_s: Annotated[float, Field(gt=0)] = 24 * 3600.0,
                   settings: dict[str, Any] | None = None) -> GridResult:
    """Run a grid spec (a profile name or a YAML path, plus ``key=value`` overrides).

    Args:
        grid: A shipped profile (the choices) or the path of a grid YAML file on the worker.
        overrides: ``dotted.key=value`` overrides, e.g. ``training.max_epochs=3``.
        execution: ``local``: train every cell in this flow run; ``pool``: send the cells to the
            work pool as child runs of the ``train-cell`` deployment; ``served``: send each cell as
            a ``train-cell`` task run to long-lived cell workers (flows/served.py).
        concurrency: Jobs run at once in this flow run (every stage in local mode; pretraining
            and baselines in pool mode). Above 1 on a machine without a GPU, the jobs run in as
            many single-threaded worker processes (their task runs stay in this flow run).
        batch_size: Pool mode: cells per child flow run (each child run costs about 20 s of start-up).
        data_dir: Data folder; default: ``TLBENCH_DATA_DIR`` of the machine running this flow.
        results: Results location (leaderboard, pretrained models); default: ``TLBENCH_RESULTS``.
            Pool mode passes it to every child run: it must mean the same place on every worker.
        tracking_uri: MLflow tracking URI; default: ``MLFLOW_TRACKING_URI``. Passed on like ``results``.
        fail_on_cell_errors: End this flow run FAILED when any cell failed (after publishing).
        pool_timeout_s: Pool mode: the longest wait for all child runs; children still open then
            are marked CRASHED (or CANCELLED when they never started) and their cells failed.
        settings: Every setting as plain data (``Settings.to_plain()``, no secrets), as ``tlbench
            run`` passes them; ``data_dir``, ``results`` and ``tracking_uri`` above override it.

    Settings not given here come from the worker's environment (``TLBENCH_DATA_DIR``,
    ``TLBENCH_RESULTS``, ``MLFLOW_TRACKING_URI``, ``TLBENCH_ARTIFACTS``).
    """
    logger = get_run_logger()
    label_flow_run(worker_name())  # host and pid: a lost machine's run is found dead later (flows/lost.py)
    # Only the parameters that were given override ``settings``: a ``None`` here must not erase
    # the value the CLI passed in ``settings`` (it would fall back to the worker's environment).
    given = {name: value for name, value in (("data_dir", data_dir), ("results", results),
                                             ("tracking_uri", tracking_uri)) if value is not None}
    built = Settings.from_environment(**{**(settings or {}), **given})
    apply_mlflow_http_policy(built)
    spec = load_grid(grid, overrides or [])
    try:
        with make_engine(execution, concurrency, batch_size, timeout_s=pool_timeout_s,
                         lost_after_s=built.lost_worker_seconds) as engine:
            # once the grid's lease is held: this flow run is recorded in it, and the Prefect runs
            # of a dead run it was taken from are closed (flows/lost.py)
            result = run_grid(spec, built, engine, label=grid,
                              on_lease=partial(on_lease, pool="gpu", lost_after_s=built.lost_worker_seconds))
    except GridAlreadyRunning as exc:  # Cancelled with the holder named: see the module's docstring
        logger.warning("%s", exc)
        return Cancelled(message=str(exc))
    _rename(result)
    _publish(result, local_report_url(result, spec, built))
    logger.info("grid %s (%s): %s in %.1f s", result.grid, execution, result.counts(),
                result.wall_seconds)
    if result.failed and fail_on_cell_errors:
        raise RuntimeError(f"{len(result.failed)} cell(s) failed: "
                           + "; ".join(f"{o.label}: {o.error}" for o in result.failed))
    return result


def launch(grid: str, overrides: list[str], settings: Settings, concurrency: int = 1) -> GridResult:
    """Entry point of ``tlbench run --engine prefect``: the same flow, in this process (Prefect's
    ephemeral API unless ``PREFECT_API_URL`` points at a server). ``settings`` reach the flow as a
    parameter, never through the environment."""
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")  # Prefect's own
    # Parameters are stored and shown by Prefect: settings holding a credential stay out of them
    # and reach the flow (in this process) through the environment; secrets in overrides (e.g. a
    # grid name) are redacted, as everything downstream redacts them.
    os.environ.update(settings.credential_env())
    state = benchmark_grid(grid, [settings.redact(item) for item in overrides], "local", concurrency,
                           fail_on_cell_errors=False, settings=settings.to_plain(), return_state=True)
    if state.is_cancelled():  # the grid runs elsewhere: the CLI prints the message, exit 2
        raise GridAlreadyRunning(state.message)
    return state.result()


if __name__ != "flows.grid":
    # Loaded by file path (a deployment's entrypoint ``flows/grid.py``: Prefect names the module
    # ``grid``): use the flow of the package module instead, so that what Prefect pickles with a
    # served cell's task run (the flow run's context, the flow in it) names ``flows.grid``, which a
    # cell worker can import; ``grid`` it cannot (docs/orchestration.md, served mode).
    from flows.grid import benchmark_grid  # noqa: E402,F811 - the package module's flow, on purpose
