"""The forecasters layer: everything that turns a history into a forecast, behind one contract.

Owns the contract every forecaster meets (``contract``: fit on the history before the first
origin, forecast ``horizon`` steps from each origin using only what came before it, and capability
facts on the forecaster), the point-forecast metrics (``metrics``), the naive family (``naive``),
statsforecast's ETS, Theta, MSTL and ARIMA (``statistical``), MSTL from every test origin, refit
every k origins and filtered forward in between (``mstl``), the registry of baselines the grids
name (``baselines``), a trained Keras model as a forecaster (``trained``), and the M4 protocol over
a whole source (``source``). The regimes of ``models`` meet the same contract.

May import: spec, data, models.
"""
