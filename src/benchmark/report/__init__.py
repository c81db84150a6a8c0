"""The report layer: figures and the self-contained HTML report of a grid.

Owns the figures (``figures``), the HTML building blocks (``pages``), the verdict sections
(``verdicts``), the report page and the best cell it shows per size (``html``), where a grid's
report lives (``paths``, light) and a grid's report gathered from its runs (``grid``).

May import: spec, data, forecasters, results.
"""
