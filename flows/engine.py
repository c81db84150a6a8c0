"""The in-flow Prefect engine: every stage of a grid as task runs of the grid's own flow run.

:class:`PrefectEngine` (``execution="local"``) runs each stage's jobs as Prefect task runs inside
the current flow run, ``concurrency`` at a time (threads that carry the flow run's context, so
every job shows up as a task run in the UI); progress is published as a progress artifact.
``execution="pool"`` (:class:`flows.pool.PoolEngine`) and ``execution="served"``
(:class:`flows.served.ServedEngine`) send the cells elsewhere (:mod:`flows.remote`);
:func:`flows.executions.make_engine` picks one by name.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.context import FlowRunContext
from prefect.exceptions import MissingContextError
from prefect.logging import get_run_logger

from benchmark.run.engines import ProcessEngine, gpu_visible
from benchmark.spec.settings import Settings
from tasks.stages import RUNNER, stage_task

_module_log = logging.getLogger(__name__)


def run_logger() -> logging.Logger | logging.LoggerAdapter:
    """The flow run's logger inside a run (so messages reach the UI), else this module's."""

    try:
        return get_run_logger()
    except MissingContextError:
        return _module_log


class _Progress:
    """One progress artifact per flow run, updated as jobs end (never fails a grid).

    Done, failed and still-to-go jobs are counted apart (``cell: 11 done, 1 failed, 0 to go (of
    12)``); counts add up per stage, so two maps of one stage at once (``run_grid`` starts the
    cells that need no pretraining early) show as one count."""

    def __init__(self) -> None:
        self._id = None
        self._lock = threading.Lock()
        self._counts: dict[str, list[int]] = {}  # stage -> [done, failed, total]

    def start(self, stage: str, total: int) -> None:
        with self._lock:
            self._counts.setdefault(stage, [0, 0, 0])[2] += total
        self._show(stage)

    def advance(self, stage: str, done: int = 1, failed: int = 0) -> None:
        with self._lock:
            counts = self._counts.setdefault(stage, [0, 0, 0])
            counts[0] += done
            counts[1] += failed
        self._show(stage)

    def record(self, stage: str, result: Any) -> None:
        """Count one job's result: failed when it is (or holds) an outcome with status failed."""
        outcomes = result if isinstance(result, list) else [result]
        failed = any(getattr(o, "status", None) == "failed" for o in outcomes)
        self.advance(stage, done=0 if failed else 1, failed=1 if failed else 0)

    def describe(self, stage: str) -> tuple[str, float]:
        with self._lock:
            done, failed, total = self._counts[stage]
        to_go = max(total - done - failed, 0)
        return (f"{stage}: {done} done, {failed} failed, {to_go} to go (of {total})",
                100.0 * (done + failed) / max(total, 1))

    def _show(self, stage: str) -> None:

        if FlowRunContext.get() is None:
            return  # outside a flow run there is nothing to attach it to
        try:
            description, percent = self.describe(stage)
            with self._lock:
                if self._id is None:
                    self._id = create_progress_artifact(percent, key="grid-progress",
                                                        description=description)
                else:
                    update_progress_artifact(self._id, percent, description=description)
        except Exception:  # noqa: BLE001 - progress display must never fail a grid
            _module_log.debug("progress artifact update failed", exc_info=True)


class PrefectEngine:
    """Every stage as task runs of the current flow run, ``concurrency`` at a time.

    With ``concurrency > 1`` on a machine without a GPU, the bodies of the ``pretrain`` and
    ``cell`` task runs execute in a :class:`benchmark.run.engines.ProcessEngine` of ``concurrency``
    single-threaded workers (threads of one process do not make TensorFlow cells faster on a CPU;
    processes do: docs/performance.md); the task runs themselves, their states and the UI stay in
    this flow run. ``processes`` forces the choice. Use it as a context manager (or call
    :meth:`close`) so the workers stop with the flow run.
    """

    in_process_stages = frozenset({"baselines"})

    def __init__(self, concurrency: int = 1, progress: _Progress | None = None,
                 processes: bool | None = None):
        self.concurrency = max(1, int(concurrency))
        self.progress = progress or _Progress()
        self._want_processes = processes
        self._processes = None  # benchmark.run.engines.ProcessEngine, started on first need

    @property
    def slots(self) -> int:
        return self.concurrency

    def _runner(self, stage: str):
        """Where a task body of ``stage`` runs (see ``tasks.stages.RUNNER``): None = in the thread."""
        if self.concurrency == 1 or stage in self.in_process_stages:
            return None
        if self._want_processes is None:

            self._want_processes = not gpu_visible()
        if not self._want_processes:
            return None
        if self._processes is None:

            self._processes = ProcessEngine(self.concurrency).start()
        processes = self._processes
        return lambda fn, job, settings: processes.submit(fn, job, settings).result()

    def start(self) -> "PrefectEngine":
        """Start the worker processes now (when this engine uses them), so that they import
        TensorFlow while the grid is still being planned."""
        self._runner("cell")
        return self

    def close(self) -> None:
        if self._processes is not None:
            self._processes.close()
            self._processes = None

    def __enter__(self) -> "PrefectEngine":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()

    def map(self, stage: str, fn: Callable[[Any, Settings], Any], items: Sequence[Any],
            settings: Settings) -> list[Any]:
        items = list(items)
        task = stage_task(stage, fn)
        if not items:
            return []
        self.progress.start(stage, len(items))
        results: list[Any] = [None] * len(items)
        token = RUNNER.set(self._runner(stage))
        try:
            if self.concurrency == 1:
                for i, item in enumerate(items):
                    results[i] = task(item, settings)
                    self.progress.record(stage, results[i])
                return results
            with ThreadPoolExecutor(self.concurrency, thread_name_prefix=f"prefect-{stage}") as pool:
                # Each thread runs the task in a copy of this flow run's context (RUNNER included).
                futures = {pool.submit(contextvars.copy_context().run, task, item, settings): i
                           for i, item in enumerate(items)}
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
                    self.progress.record(stage, results[futures[future]])
            return results
        finally:
            RUNNER.reset(token)
