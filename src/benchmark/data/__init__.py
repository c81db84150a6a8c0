"""The data layer: everything between a file on disk and the arrays a model trains on.

Owns the registry of sources (``m4``, ``ett``, ``sunspots``, ``sine``, ``csv``) and their
loading into a tidy ``unique_id, ds, y`` frame with data fingerprints (``sources``; the
per-source loaders in ``loaders``, files and downloads in ``fetch``), the checks
of every loaded frame (``validation``), evaluation protocols (``protocols``), the target split
and the arrays of a cell or of a pretraining panel (``splits``), normalisation (``normalisation``),
input features (``features``), sliding windows and forecast strategies (``windows``), and the
per-process cache plus the checks of a grid's data before anything trains (``loading``).

May import: spec.
"""
