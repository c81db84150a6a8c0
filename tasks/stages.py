"""One thin Prefect task per stage of a grid; each calls the library and passes small references
(specs, keys, paths, run ids) in and out, never frames or models.

A task's body runs where :data:`RUNNER` says: in the task run's own thread by default, or, when
the engine that maps the stage sets it (``flows.engine.PrefectEngine`` with ``concurrency > 1``
on a CPU), in a worker process of a :class:`benchmark.engines.ProcessEngine`. The task run, its
state and its place in the UI stay in the flow run either way.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any, Callable

from prefect import task

from benchmark import grid
from benchmark.settings import Settings

Job = Any
#: ``runner(fn, job, settings)`` runs a stage function somewhere and returns its result.
Runner = Callable[[Callable[[Job, Settings], Any], Job, Settings], Any]
RUNNER: ContextVar[Runner | None] = ContextVar("tlbench_stage_runner", default=None)


def _run(fn: Callable[[Job, Settings], Any], job: Job, settings: Settings) -> Any:
    runner = RUNNER.get()
    return fn(job, settings) if runner is None else runner(fn, job, settings)


@task(name="pretrain", task_run_name="pretrain-{job.model.architecture}-{job.key}", retries=0)
def pretrain(job: grid.PretrainJob, settings: Settings) -> grid.PretrainedRef:
    return _run(grid.run_pretraining, job, settings)


@task(name="baselines", task_run_name="baselines-n{job.cell.target_size}")
def baselines(job: grid.BaselineJob, settings: Settings) -> list[grid.CellOutcome]:
    return grid.run_baselines(job, settings)  # NumPy only: never worth a process hop


@task(name="train-cell", task_run_name="cell-{job.cell.model.architecture}-{job.cell.mode}-n{job.cell.target_size}-s{job.cell.seed}")
def train_cell(job: grid.CellJob, settings: Settings) -> grid.CellOutcome:
    return _run(grid.run_cell, job, settings)


#: Stage name (as used by ``benchmark.grid.run_grid``) -> the task that runs it.
STAGE_TASKS = {"pretrain": pretrain, "baselines": baselines, "cell": train_cell}
