"""The Prefect engine: runs each stage's jobs as Prefect task runs inside the current flow run.

``local`` execution runs ``concurrency`` task runs at a time in this process (threads that carry
the flow run's context, so every cell shows up as a task run in the UI); progress is published as
a Prefect progress artifact.
"""

from __future__ import annotations

import contextvars
import logging
from concurrent.futures import ThreadPoolExecutor

from prefect.artifacts import create_progress_artifact, update_progress_artifact

from tasks.stages import STAGE_TASKS

log = logging.getLogger(__name__)


class PrefectEngine:
    def __init__(self, concurrency: int = 1):
        self.concurrency = max(1, int(concurrency))
        self._progress_id = None
        self._done = 0
        self._total = 0

    def _progress(self, stage: str, done: int, total: int) -> None:
        try:
            description = f"{stage}: {done}/{total} done"
            percent = 100.0 * done / max(total, 1)
            if self._progress_id is None:
                self._progress_id = create_progress_artifact(percent, key="grid-progress",
                                                             description=description)
            else:
                update_progress_artifact(self._progress_id, percent, description=description)
        except Exception:  # noqa: BLE001 - progress display must never fail a grid
            log.debug("progress artifact update failed", exc_info=True)

    def map(self, stage, fn, items, settings):
        items = list(items)
        task = STAGE_TASKS[stage]
        if not items:
            return []
        done = 0

        def call(item):
            return task(item, settings)

        self._progress(stage, 0, len(items))
        results = [None] * len(items)
        if self.concurrency == 1:
            for i, item in enumerate(items):
                results[i] = call(item)
                done += 1
                self._progress(stage, done, len(items))
            return results
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix=f"prefect-{stage}") as pool:
            # Each thread runs the task in a copy of this flow run's context.
            futures = {pool.submit(contextvars.copy_context().run, call, item): i
                       for i, item in enumerate(items)}
            from concurrent.futures import as_completed

            for future in as_completed(futures):
                results[futures[future]] = future.result()
                done += 1
                self._progress(stage, done, len(items))
        return results
