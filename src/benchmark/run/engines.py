"""Where a grid's jobs run: the :class:`Engine` protocol, :class:`LocalEngine` (threads of this
process), and :class:`ProcessEngine` (worker processes, one job per core), with the TensorFlow
thread settings of each.

Why processes: on a CPU, cells run as threads of one process do not run faster two at a time than
one at a time (``benchmarks/throughput.py``'s threads section and ``benchmarks/orchestration.py``;
figures in docs/performance.md). TensorFlow's thread pools belong to the process and are fixed
at its first op, and each cell spends much of its time in Python (Keras tracing, per-step
dispatch) under one GIL. Separate processes, each with one intra-op and one inter-op thread, do
scale: one job per core.

:class:`ProcessEngine` satisfies :class:`Engine`: ``map(stage, fn, items, settings)`` runs
``fn(item, settings)`` in its workers and returns the results in order. Jobs, settings and outcomes
are picklable dataclasses and ``fn`` is a module-level function of a stage module
(:mod:`benchmark.run.cells`, ...), so nothing else is needed to ship them. Workers start with
``spawn`` (never ``fork``: a forked TensorFlow runtime is unsafe) and live until
:meth:`ProcessEngine.close`, so each pays TensorFlow's import (6-25 s) once per grid, not once per
job. Each worker sets its TensorFlow threads before anything else runs in it.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import weakref
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

from benchmark.spec.errors import TlbenchError
from benchmark.spec.settings import Settings

log = logging.getLogger(__name__)


class Engine(Protocol):
    """Where jobs run. ``map`` runs ``fn(item, settings)`` for every item and returns the results
    in order; ``stage`` names the stage (``pretrain``, ``baselines``, ``cell``) for display and
    placement; ``fn`` is a module-level function (picklable), and it is what runs."""

    def map(self, stage: str, fn: Callable[[Any, Settings], Any], items: Sequence[Any],
            settings: Settings) -> list[Any]: ...


def engine_slots(engine: Engine) -> int:
    """How many jobs ``engine`` runs at once (its ``slots`` attribute; 1 when it has none). With
    more than one, :func:`benchmark.run.grid.run_grid` may call ``map`` from two threads at once
    (stages overlap)."""
    return int(getattr(engine, "slots", 1) or 1)


class LocalEngine:
    """Runs jobs in this process, ``concurrency`` at a time (threads). The engine of one-at-a-time
    runs and of tests: threads share one TensorFlow runtime and one GIL and do not make cells
    faster on a CPU (docs/performance.md); parallel cells need processes
    (:class:`ProcessEngine`, ``tlbench run --engine local --concurrency K``)."""

    def __init__(self, concurrency: int = 1):
        self.concurrency = max(1, int(concurrency))

    @property
    def slots(self) -> int:
        return self.concurrency

    def map(self, stage, fn, items, settings):
        if self.concurrency == 1 or len(items) <= 1:
            return [fn(item, settings) for item in items]
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix=f"tlbench-{stage}") as pool:
            return list(pool.map(lambda item: fn(item, settings), items))


def thread_settings(concurrency: int, cores: int | None = None) -> tuple[int, int]:
    """TensorFlow ``(intra_op, inter_op)`` threads for each of ``concurrency`` jobs sharing
    ``cores`` (default: this machine's): the cores split between the jobs, one inter-op thread.
    One job on 2 cores gets ``(2, 1)``; two jobs get ``(1, 1)`` each."""
    cores = cores or os.cpu_count() or 1
    return max(1, cores // max(1, int(concurrency))), 1


def gpu_visible() -> bool:
    """Whether TensorFlow sees a GPU in this process (lists devices without starting the runtime,
    so it may run before the thread settings, which must precede TensorFlow's first op)."""
    import tensorflow as tf  # loaded only to ask for a GPU (a worker imports it anyway)

    return bool(tf.config.list_physical_devices("GPU"))


def configure_for_concurrency(concurrency: int, cores: int | None = None) -> tuple[int, int]:
    """Set this process's TensorFlow threads for ``concurrency`` jobs run in it, when it has no
    GPU (a GPU worker keeps TensorFlow's defaults). Must run before TensorFlow's first op; later it
    only logs a warning. Returns the ``(intra, inter)`` asked for."""
    from benchmark.models.runtime import configure_threads  # TensorFlow: only where jobs train

    intra, inter = thread_settings(concurrency, cores)
    if not gpu_visible():
        configure_threads(intra, inter)
    return intra, inter


def configure_worker_device() -> str:
    """For a worker that runs one TF job at a time (a pool worker): on a CPU, one intra-op and one
    inter-op thread (one worker per core is fastest: docs/performance.md); on a GPU, TensorFlow's
    defaults. Must run before TensorFlow's first op. Returns ``"GPU"`` or ``"CPU"``."""
    from benchmark.models.runtime import configure_threads  # TensorFlow: only where jobs train

    if gpu_visible():
        return "GPU"
    configure_threads(1, 1)
    return "CPU"


@dataclass(frozen=True)
class WorkerSetup:
    """What every worker process does first: its TensorFlow threads and its logging."""

    intra: int = 1
    inter: int = 1
    log_level: int = logging.INFO
    log_format: str = "%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s"


def _init_worker(setup: WorkerSetup) -> None:
    """Runs first in every worker process, before any job and so before TensorFlow's first op."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # this process only, before TF is imported
    logging.basicConfig(level=setup.log_level, format=setup.log_format)
    for noisy in ("absl", "tensorflow", "h5py", "matplotlib", "alembic", "urllib3", "httpx",
                  "mlflow.store.db.utils"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from benchmark.models.runtime import configure_threads  # TensorFlow: after the variables above

    if not gpu_visible():
        configure_threads(setup.intra, setup.inter)
    warm_worker()  # paid here while the parent is still planning


def warm_worker() -> None:
    """Import what every cell imports anyway (TensorFlow, Keras, MLflow, the stages), once per
    worker process: a long-lived worker pays it at start, not per cell."""
    # the heavy imports themselves: Keras, TensorFlow and MLflow, here and not at the engine's import
    import benchmark.models  # noqa: F401 - Keras and TensorFlow
    import benchmark.models.training  # noqa: F401 - Keras
    import benchmark.run.cells  # noqa: F401 - MLflow; the cell stage
    import benchmark.run.pretraining  # noqa: F401 - MLflow; the pretraining stage
    import benchmark.tracking.tracker  # noqa: F401 - MLflow


def _ready() -> int:
    """A no-op job: submitting one per worker starts every worker at once."""
    return os.getpid()


class ProcessEngine:
    """Runs jobs in ``workers`` processes (default: one per core), each with TensorFlow threads
    from :func:`thread_settings` (one intra-op and one inter-op thread when there are as many
    workers as cores).

    Stages named in ``in_process`` (default: ``baselines``, NumPy only) run in the calling process,
    one job after another: starting a worker (TensorFlow's import) would cost more than they do, and
    a resumed grid with nothing to train then starts no worker at all.

    Used as a context manager, it starts its workers on entry, so that their start-up (about 7 s
    on the smoke grid's critical path otherwise) overlaps the grid's validation and data loading,
    and stops them on exit. Otherwise they start on the first ``map`` and :meth:`close` stops them;
    they are also stopped when the engine is garbage-collected. A worker that dies (killed, out of
    memory) fails the stage with a :class:`TlbenchError`; the cells finished before are in the
    leaderboard, so running the grid again resumes. The engine stays usable: the next ``map``
    starts fresh workers.
    """

    def __init__(self, workers: int | None = None, intra: int | None = None, inter: int = 1,
                 start_method: str = "spawn", in_process: Sequence[str] = ("baselines",)):
        self.workers = max(1, int(workers or os.cpu_count() or 1))
        default_intra, _ = thread_settings(self.workers)
        self.setup = WorkerSetup(intra=int(intra or default_intra), inter=int(inter),
                                 log_level=logging.getLogger().getEffectiveLevel())
        if start_method == "fork":
            raise TlbenchError("ProcessEngine(start_method='fork') is not allowed: a forked TensorFlow "
                               "runtime can deadlock. Use 'spawn' or 'forkserver'.")
        self.start_method = start_method
        self.in_process = frozenset(in_process)
        self._pool: ProcessPoolExecutor | None = None
        self._finalizer: weakref.finalize | None = None

    @property
    def slots(self) -> int:
        """Jobs at once: one per worker (``run_grid`` overlaps stages when there are several)."""
        return self.workers

    def _executor(self) -> ProcessPoolExecutor:
        """The pool, started on first use with every worker at once (the pool would otherwise start
        them one per queued job: a second worker would import TensorFlow only when the first
        stage's single job is done)."""
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, multiprocessing.get_context(self.start_method),
                                             initializer=_init_worker, initargs=(self.setup,))
            self._finalizer = weakref.finalize(self, self._pool.shutdown, wait=True, cancel_futures=True)
            for _ in range(self.workers):
                self._pool.submit(_ready)
        return self._pool

    def map(self, stage: str, fn: Callable[[Any, Settings], Any], items: Sequence[Any],
            settings: Settings) -> list[Any]:
        items = list(items)
        if not items:
            return []
        if stage in self.in_process:
            return [fn(item, settings) for item in items]
        futures: list[Future] = []
        try:
            return self._fed(fn, items, settings, futures)
        except BrokenProcessPool as exc:
            done = sum(1 for f in futures if f.done() and not f.cancelled() and f.exception() is None)
            self.close(wait=False)
            raise TlbenchError(f"a {stage} worker process died ({exc}); {done} of {len(items)} {stage} "
                               "job(s) had finished and are recorded. Run the grid again to resume; if "
                               "it happens again, lower the number of workers (memory).") from exc
        except BaseException:
            for future in futures:
                future.cancel()
            raise

    def _fed(self, fn: Callable[[Any, Settings], Any], items: list[Any], settings: Settings,
             futures: list[Future]) -> list[Any]:
        """``fn`` over ``items`` with at most one job per worker in the pool at a time (the next
        is submitted when one ends), appending each future to ``futures`` as it is submitted.

        The pool runs jobs first in, first out: a map that queued all its jobs at once would put a
        concurrent map's jobs behind every one of them (a grid's pretraining, which its transfer
        cells wait for, behind all its scratch cells). Fed like this, concurrent maps share the
        workers in turn, as the Prefect engine's task runs do."""
        pool, waiting = self._executor(), set()
        for item in items:
            if len(waiting) >= self.workers:
                done, waiting = wait(waiting, return_when=FIRST_COMPLETED)
                for future in done:
                    future.result()  # a job's exception (or a dead worker) ends the map now
            futures.append(pool.submit(fn, item, settings))
            waiting.add(futures[-1])
        return [future.result() for future in futures]

    def submit(self, fn: Callable[[Any, Settings], Any], item: Any, settings: Settings) -> Future:
        """One job in a worker: ``fn(item, settings)``'s future (for a caller that schedules jobs
        itself, e.g. Prefect task runs whose bodies should run in worker processes)."""
        return self._executor().submit(fn, item, settings)

    def close(self, wait: bool = True) -> None:
        """Stop the worker processes (after their current jobs when ``wait``)."""
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=True)
            self._pool = None

    def start(self) -> "ProcessEngine":
        """Start every worker now (they import TensorFlow while the caller goes on planning);
        otherwise they start on the first ``map``."""
        self._executor()
        return self

    def __enter__(self) -> "ProcessEngine":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()
