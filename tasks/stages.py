"""The Prefect task of a grid stage: :func:`stage_task` wraps the stage function the engine maps
(``fn(job, settings)`` from a stage module: :mod:`benchmark.run.cells`, ...) in a thin task, so the task runs exactly the
function ``run_grid`` asked for. Tasks pass small references (specs, keys, paths, run ids) in and
out, never frames or models; each task run is named by its job's ``task_name``
(:class:`benchmark.run.jobs.CellNames` for cells).

A task's body runs where :data:`RUNNER` says: in the task run's own thread by default, or, when
the engine that maps the stage sets it (``flows.engine.PrefectEngine`` with ``concurrency > 1``
on a CPU), in a worker process of a :class:`benchmark.run.engines.ProcessEngine`. The task run, its
state and its place in the UI stay in the flow run either way.
"""

from __future__ import annotations

import functools
from contextvars import ContextVar
from typing import Any, Callable

from prefect import Task, task

from benchmark.spec.settings import Settings

Job = Any
StageFn = Callable[[Job, Settings], Any]
#: ``runner(fn, job, settings)`` runs a stage function somewhere and returns its result.
Runner = Callable[[StageFn, Job, Settings], Any]
RUNNER: ContextVar[Runner | None] = ContextVar("tlbench_stage_runner", default=None)

#: Task names that differ from their stage's name (as the UI has always shown them).
TASK_NAMES = {"cell": "train-cell"}


@functools.lru_cache(maxsize=None)
def stage_task(stage: str, fn: StageFn) -> Task:
    """The task that runs ``fn(job, settings)`` for ``stage`` (one per stage and function)."""

    def run(job: Job, settings: Settings) -> Any:
        runner = RUNNER.get()
        return fn(job, settings) if runner is None else runner(fn, job, settings)

    run.__name__ = run.__qualname__ = f"{stage}_{fn.__name__}"
    return task(run, name=TASK_NAMES.get(stage, stage), task_run_name="{job.task_name}", retries=0)
