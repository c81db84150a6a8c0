"""The spec layer: the vocabulary every other layer shares, with no knowledge of any of them.

Owns the typed spec tree (grid, data, split, model, training, transfer, pretraining and cell
specs), its YAML profiles and dotted overrides, spec identity (canonical JSON, ``spec_hash``),
the table of optional grid axes, the ``Settings`` of a run (the only reader of the environment),
the errors a user can act on, the name registries, the catalogue of facts planning needs about
every registered name, and atomic local file writes.

May import: nothing of tlbench.
"""
