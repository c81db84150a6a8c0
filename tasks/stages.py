"""One thin Prefect task per stage of a grid; each calls the library and passes small references
(specs, keys, paths, run ids) in and out, never frames or models."""

from __future__ import annotations

from prefect import task

from benchmark import grid
from benchmark.settings import Settings


@task(name="pretrain", task_run_name="pretrain-{job.model.architecture}-{job.key}", retries=0)
def pretrain(job: grid.PretrainJob, settings: Settings) -> grid.PretrainedRef:
    return grid.run_pretraining(job, settings)


@task(name="baselines", task_run_name="baselines-n{job.cell.target_size}")
def baselines(job: grid.BaselineJob, settings: Settings) -> list[grid.CellOutcome]:
    return grid.run_baselines(job, settings)


@task(name="train-cell", task_run_name="cell-{job.cell.model.architecture}-{job.cell.mode}-n{job.cell.target_size}-s{job.cell.seed}")
def train_cell(job: grid.CellJob, settings: Settings) -> grid.CellOutcome:
    return grid.run_cell(job, settings)


#: Stage name (as used by ``benchmark.grid.run_grid``) -> the task that runs it.
STAGE_TASKS = {"pretrain": pretrain, "baselines": baselines, "cell": train_cell}
