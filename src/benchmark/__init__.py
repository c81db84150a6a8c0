"""tlbench's library: when does pretraining a recurrent forecaster on a large source help on a small target?

Packages by layer, each importing only from the layers below it (each ``__init__`` says what it
owns and what it may import; ``tests/test_architecture.py`` holds the rules):

    spec         the typed spec tree, settings, errors, registries, the catalogue of names
    data         sources, checks, protocols, splits, normalisation, features, windows
    models       architectures, heads, transfer modes, training, pretraining (Keras)
    forecasters  one contract: baselines, statsforecast models, trained models; metrics
    results      the leaderboard store, ranking, statistics, verdicts, the nightly check
    tracking     MLflow (the only importer of mlflow)
    report       figures and the HTML report
    run          validation, plan, jobs, stages, dispatch, resume, repair, engines, run_grid
    cli, console the command line and its terminal (the top)

``flows/`` and ``tasks/`` are thin Prefect shells over ``run`` and ``spec``. This package never
imports Prefect.
"""

__version__ = "0.1.0"
