"""``nightly``: the scheduled benchmark. Runs the ``nightly`` profile through ``benchmark_grid``
(a subflow, so it appears nested in the UI), locally on its worker's device by default or spread
over the work pool with ``execution="pool"``; then compares the run with the previous run of the
same grid (``benchmark.results.nightly.regression_check``) and publishes the comparison as a table
artifact and a markdown summary. With regressions the flow run ends FAILED
(``fail_on_regression``) or COMPLETED under the state name ``Regressed`` (a warning). When the grid
is already running on the same results location, the subflow and this flow run end Cancelled with
the message that names the running holder (``flows/grid.py`` says why Cancelled)."""

from __future__ import annotations

from typing import Annotated, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.states import Cancelled, Completed, Failed
from pydantic import Field

from benchmark.run.ledger import METRICS, regression_check
from benchmark.spec.settings import Settings
from flows.grid import benchmark_grid


@flow(name="nightly")
def nightly(grid: str = "nightly", overrides: list[str] | None = None,
            execution: Literal["local", "pool"] = "local",
            concurrency: Annotated[int, Field(ge=1)] = 1,
            batch_size: Annotated[int, Field(ge=1)] = 4,
            metric: Literal[METRICS] = "mase",
            threshold_pct: Annotated[float, Field(ge=0)] = 5.0,
            fail_on_regression: bool = True):
    """The nightly grid, then the regression check against the previous run of the same grid.

    Args:
        grid: A profile name or a grid YAML path.
        overrides: ``dotted.key=value`` overrides.
        execution: ``local``: train on this worker; ``pool``: child runs on the work pool.
        concurrency: Jobs at once in this flow run.
        batch_size: Pool mode: cells per child run.
        metric: The metric compared (lower is better).
        threshold_pct: A group regresses when its mean metric is worse by more than this many
            percent AND by more than the seed noise (both runs' 95% CI half-widths).
        fail_on_regression: With regressions, end FAILED (True) or COMPLETED named ``Regressed``.
    """
    logger = get_run_logger()
    settings = Settings.from_environment()
    state = benchmark_grid(grid, overrides or [], execution, concurrency, batch_size, fail_on_cell_errors=False,
                           settings=settings.to_plain(), return_state=True)
    if state.is_cancelled():  # the grid is already running on these results: nothing to compare yet
        return Cancelled(message=state.message)
    result = state.result()
    check = regression_check(settings, result.grid, result.run_id, metric, threshold_pct)
    create_table_artifact(check.records(), key="regression-check", description=check.summary())
    create_markdown_artifact(check.markdown(), key="regression-summary")
    logger.info(check.summary())
    summary = {"grid": result.grid, "run_id": result.run_id, "counts": result.counts(),
               "report": result.report_path, "compared_with": check.compared_with,
               "regressions": len(check.regressions)}
    problems = []
    if result.failed:
        problems.append(f"{len(result.failed)} cell(s) failed: "
                        + "; ".join(f"{o.label}: {o.error}" for o in result.failed[:5]))
    if check.has_regressions and fail_on_regression:
        problems.append(check.summary())
    if problems:
        return Failed(message=" | ".join(problems), data=summary)
    if check.has_regressions:
        return Completed(name="Regressed", message=check.summary(), data=summary)
    return summary
