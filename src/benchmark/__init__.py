"""tlbench's library: when does pretraining a recurrent forecaster on a large source help on a small target?

Everything that computes lives here; ``flows/`` and ``tasks/`` are thin Prefect shells over it.
This package never imports Prefect.
"""

__version__ = "0.1.0"
