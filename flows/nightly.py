"""``nightly``: the scheduled benchmark. Runs the ``nightly`` profile through ``benchmark_grid``
(a subflow, so it appears nested in the UI)."""

from __future__ import annotations

from prefect import flow

from flows.grid import benchmark_grid


@flow(name="nightly")
def nightly(grid: str = "nightly", overrides: list[str] | None = None, concurrency: int = 1) -> dict:
    result = benchmark_grid(grid, overrides or [], "local", concurrency)
    return {"grid": result.grid, "run_id": result.run_id, "counts": result.counts()}
