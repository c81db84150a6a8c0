"""Load: a 200-cell grid of tiny models in pool mode on two workers, on the real stack of
``test_prefect_pool.py`` (its fixtures and helpers are imported, not copied). Prints the wall time
and the cells per minute. ``TLBENCH_LOAD_SEEDS`` (default 50) scales it: cells = 2 architectures x
2 sizes x seeds; e.g. 2 for a quick check of the test itself."""

from __future__ import annotations

import os
import time
from collections import Counter

import pytest

from tests.test_prefect_pool import (  # noqa: F401 - stack and workers are fixtures used below
    cell_runs, mlflow_cell_runs, model_rows, stack, trigger, wait_final, workers)

pytestmark = pytest.mark.e2e

SEEDS = int(os.environ.get("TLBENCH_LOAD_SEEDS", "50"))
BATCH = 25


@pytest.mark.timeout(7200)
def test_a_200_cell_pool_grid_on_two_workers_records_every_cell_once(stack, workers):
    overrides = ["modes=[scratch]", "baselines=[naive]", "architectures=[lstm,gru]", "target_sizes=[120,240]",
                 "training.max_epochs=1", f"seeds=[{','.join(str(s) for s in range(SEEDS))}]"]
    cells = 2 * 2 * SEEDS
    t0 = time.monotonic()
    # The parent's wait for its child runs must outlast the grid: 200 cells took 628 s unloaded
    # and more than 600 s (the other pool tests' limit) on a loaded CI machine.
    parent_id = trigger(stack, overrides, batch_size=max(1, min(BATCH, cells // 4)), pool_timeout_s=6000)
    parent = wait_final(stack, parent_id, timeout=6600)
    wall = time.monotonic() - t0
    assert parent.state.type.value == "COMPLETED", parent.state.message

    children = cell_runs(stack, parent_id)
    assert all(c.state.type.value == "COMPLETED" for c in children)
    assert {c.labels["tlbench.worker"] for c in children} == set(workers["gpu"])  # both workers worked
    rows = model_rows(stack)
    assert len(rows) == cells and rows["cell_key"].is_unique
    runs = mlflow_cell_runs(stack)
    finished = Counter(r.data.tags["tlbench.cell_key"] for r in runs if r.info.status == "FINISHED")
    assert set(finished) == set(rows["cell_key"]) and set(finished.values()) == {1}
    assert len(runs) == cells  # nothing RUNNING, FAILED or duplicated
    per_worker = Counter(c.labels["tlbench.worker"] for c in children)
    print(f"\nload: {cells} cells in {len(children)} child runs ({dict(per_worker)}) in {wall:.0f} s: "
          f"{cells / wall * 60:.1f} cells/min; train_seconds mean {rows['train_seconds'].mean():.2f} s")
