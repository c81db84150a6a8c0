"""Prefect flows: thin shells that read the environment, build ``Settings`` and call
``benchmark.run.grid``: ``benchmark_grid`` (flows.grid) runs a grid, ``train_cell`` (flows.cell) runs a
batch of its cells on a pool worker, ``nightly`` (flows.nightly) is the scheduled grid. The
engines that map a grid's stages onto Prefect are in flows.engine (in-flow), flows.pool, flows.served
(cells elsewhere, sharing flows.remote) and flows.executions (the registry by name); flows.lost
closes the Prefect runs a grid that died left open."""
