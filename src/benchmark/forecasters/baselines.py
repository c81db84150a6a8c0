"""The registry of baselines every model is compared with: the naive family and statsforecast's methods.

:data:`BASELINES` holds :class:`~benchmark.forecasters.contract.Baseline` entries by the names
users type: ``naive``, ``seasonal_naive``, ``naive2`` and ``mean``
(:mod:`benchmark.forecasters.naive`), ``ets``, ``theta`` and ``arima``
(:mod:`benchmark.forecasters.statistical`), and ``mstl`` and ``mstl_every_origin``
(:mod:`benchmark.forecasters.mstl`); statsforecast itself is imported only when one fits.
Each entry builds a forecaster of the contract (:mod:`benchmark.forecasters.contract`), and states
its facts (``max_history``: ``arima``'s cap, which grid validation reads) and the settings that
change its numbers (``settings``: ``mstl``'s refit interval and history, which enter its rows' keys).

The grid's baseline stage forecasts every test origin ``t`` from ``values[history_start:t]`` only::

    forecaster = BASELINES.get(name).forecaster(season_length, settings.baseline_fit_seconds)
    forecaster.fit(values[history_start:test_start])
    forecaster.forecast(values[history_start:], origins - history_start, horizon)  # [n_origins, horizon]
"""

from __future__ import annotations

from benchmark.forecasters.contract import Baseline
from benchmark.forecasters.mstl import MSTL_BASELINES
from benchmark.forecasters.naive import NAIVE_FAMILY
from benchmark.forecasters.statistical import STATISTICAL
from benchmark.spec.registry import Registry

BASELINES: Registry[Baseline] = Registry("baseline")
for _baseline in NAIVE_FAMILY + STATISTICAL + MSTL_BASELINES:
    BASELINES.add(_baseline.name, _baseline)
