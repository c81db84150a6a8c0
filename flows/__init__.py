"""Prefect flows: thin shells that read the environment, build ``Settings`` and call
``benchmark.grid.run_grid`` with a Prefect engine."""
