"""Data layer: everything between a file on disk and the arrays a model trains on.

* :mod:`benchmark.data.sources`: the registry of sources (``m4``, ``ett``, ``sunspots``,
  ``sunspots_yearly``, ``sine``, ``csv``), option parsing, loading into a tidy
  ``unique_id, ds, y`` frame, labels and data fingerprints.
* :mod:`benchmark.data.validation`: checks of every loaded frame (missing values, timestamps,
  lengths) with errors that say how to fix the input; optional gap filling.
* :mod:`benchmark.data.splits`: the target split (history, validation, fixed test segment), the
  scaler, and the arrays of one cell or of a pretraining panel.
* :mod:`benchmark.data.windows`: sliding windows and the recursive multi-step loop.
* :mod:`benchmark.data.loading`: the per-process cache of loaded sources, and the checks of a
  grid's targets and pretraining source before anything trains.

Import the submodules directly; this package imports nothing on its own.
"""
