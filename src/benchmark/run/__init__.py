"""The run layer: running a grid, from a validated plan to its leaderboard rows.

Owns grid validation against the registries (``validation``), the plan (``plan``), the jobs and
outcomes the stages hand each other (``jobs``), one module per stage (``pretraining``,
``baselines``, ``cells``) with the rows they write (``rows``), a pretraining's progress file
(``progress``), a model scored on its source's protocol (``source``), the order cells are
dispatched in (``dispatch``), resuming and repairing the ledger (``resume``, ``repair``), what an
orchestrator asks of the ledger (``ledger``), one run of a grid at a time per results location
(``lease``), the engines (``engines``) and :func:`run_grid`
(``grid``), the one function that the CLI, the Prefect flows and the tests all call.

May import: spec, data, models, forecasters, results, tracking, report.
"""
