"""MSTL from every test origin, causal and fast: refit every k points over a bounded recent history,
and between refits filter forward with the fitted parameters fixed.

A per-origin MSTL (statsforecast's ``MSTL``: an STL decomposition with daily and weekly periods,
then an ``AutoETS`` trend model on the seasonally adjusted series) costs one STL decomposition and
one ETS model selection per origin: 0.15-0.8 s on 720-2,880 points of history here, and 4-5 s on
the 11,520 points before ett-standard's last test origins; a grid has 720-2,880 origins per
(target, size). :class:`RollingMSTL` spends that only at a *refit point*, and then about a
millisecond per origin.

Refit points are the positions ``n_history + j * refit_every`` (``j = 0, 1, ...``; with
``split.test_stride`` 1, every ``refit_every`` origins), fixed by the positions alone, so an
origin's forecast never depends on which other origins are asked for. The forecast from an origin
``t``, whose last refit point is ``r <= t``:

1. at ``r``, MSTL is fitted (decomposition and trend model) on ``series[max(0, r - history):r]``
   (``history`` None: all of ``series[:r]``), with periods :func:`mstl_seasons` of that window's
   length;
2. each seasonal component is continued past ``r`` by repeating its last cycle (statsforecast's
   own seasonal forecast), and the points ``series[r:t]`` are seasonally adjusted with it;
3. the fitted trend model (its parameters fixed) filters forward through the adjusted series up to
   ``t`` (``AutoETS.forward``) and forecasts ``horizon`` steps; the continued seasonal components
   are added back.

Only points before ``t`` are read (tested: changing every value from ``t`` on leaves the forecast
unchanged). At ``t == r`` the forecast is exactly a fresh MSTL fitted on the window; with
``refit_every`` 1 and ``history`` None every origin is such a fresh fit on all of its history (the
per-origin reference, registered as ``mstl_every_origin``). Registered settings and why:
docs/models.md ("MSTL from every test origin"), measured with ``benchmarks/mstl_refit.py``.

Time limit: each refit, with the forecasts from its origins, runs under ``fit_seconds``
(``Settings.baseline_fit_seconds``), as one fit of the other statsforecast baselines does; the
first is :meth:`RollingMSTL.fit` and its origins get what that fit left. A refit that fails or runs
out of its time raises :class:`~benchmark.forecasters.statistical.FitError` naming the refit; the
grid records it as a failure row of ``mstl`` and goes on. (A limit on all refits together would
fail a whole ett-standard target on a loaded machine: about 20 refits there cost 10-40 s.)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchmark.forecasters.contract import Baseline, checked_origins, checked_series
from benchmark.forecasters.statistical import FIT_SECONDS, _finite, _guarded, forecast, mstl_seasons
from benchmark.spec.catalog import ForecasterFacts

#: ``mstl``'s refit interval in points (origins at test_stride 1): once a day of hourly data.
REFIT_EVERY = 24
#: ``mstl``'s history at each refit, in points: eight weeks of hourly data (eight weekly cycles).
REFIT_HISTORY = 1344


@dataclass
class _Refit:
    """MSTL fitted at refit point ``r`` on ``window`` = ``series[r - len(window):r]``."""

    r: int
    adjusted: np.ndarray  # [len(window)] trend + remainder: what the trend model was fitted on
    cycles: list[np.ndarray]  # the last cycle of every seasonal component, one [period] array each
    trend: Any  # the fitted AutoETS

    @classmethod
    def fit(cls, series: np.ndarray, r: int, history: int | None, season_length: int) -> "_Refit":
        from statsforecast.models import MSTL  # statsforecast: ~2 s to import; only when a baseline fits

        window = series[max(0, r - history) if history else 0:r]
        periods = mstl_seasons(season_length, len(window))
        model = MSTL(season_length=periods).fit(window)
        parts = model.model_
        seasonal = [column for column in parts.columns if column.startswith("seasonal")]
        cycles = [parts[column].to_numpy()[-period:] for column, period in zip(seasonal, sorted(periods))]
        return cls(r, (parts["trend"] + parts["remainder"]).to_numpy(), cycles, model.trend_forecaster)

    def seasonal(self, start: int, stop: int) -> np.ndarray:
        """The continued seasonal sum at positions ``r + start .. r + stop - 1``; [stop - start]."""
        steps = np.arange(start, stop)
        return sum(cycle[steps % len(cycle)] for cycle in self.cycles)

    def forecast_from(self, series: np.ndarray, t: int, horizon: int) -> np.ndarray:
        """``horizon`` steps from origin ``t >= r``, reading ``series[:t]`` only; [horizon]."""
        gap = t - self.r
        adjusted = np.concatenate([self.adjusted, series[self.r:t] - self.seasonal(0, gap)])
        trend = self.trend.forward(y=adjusted, h=horizon)["mean"]  # fixed parameters, re-filtered
        return np.asarray(trend) + self.seasonal(gap, gap + horizon)


@dataclass
class RollingMSTL:
    """MSTL as a :class:`~benchmark.forecasters.contract.Forecaster` (module docstring): refit
    every ``refit_every`` points from the end of the fitted history, each refit on the last
    ``history`` points (None: all), filtered forward in between; each refit under ``fit_seconds``."""

    season_length: int
    refit_every: int = REFIT_EVERY
    history: int | None = REFIT_HISTORY
    fit_seconds: float = FIT_SECONDS
    facts: ForecasterFacts = field(default_factory=ForecasterFacts)
    n_history: int | None = field(default=None, init=False)
    first: _Refit | None = field(default=None, init=False)
    spent: float = field(default=0.0, init=False)

    def _what(self) -> str:
        return f"baseline mstl on the test origins after {self.n_history} history points"

    def fit(self, history: np.ndarray) -> "RollingMSTL":
        """The first refit: MSTL on (the last ``self.history`` points of) ``history``."""
        history = checked_series(history)
        self.n_history, started = len(history), time.monotonic()
        self.first = _guarded(self._what(), lambda: _Refit.fit(history, len(history), self.history,
                                                               self.season_length), self.fit_seconds)
        self.spent = time.monotonic() - started
        return self

    def forecast(self, series: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
        series = checked_series(series)
        origins = checked_origins(origins, self.n_history, len(series), horizon, self.facts)
        # origin t's refit point: the last n_history + j * refit_every at or before t
        points = self.n_history + (origins - self.n_history) // self.refit_every * self.refit_every
        out = np.empty((len(origins), horizon))  # [n_origins, horizon]
        for r in (int(r) for r in np.unique(points)):
            def refit_and_filter(r: int = r) -> None:
                refit = self.first if r == self.n_history else _Refit.fit(series, r, self.history, self.season_length)
                for i in np.flatnonzero(points == r):
                    out[i] = refit.forecast_from(series, int(origins[i]), horizon)

            # each refit with its origins under the limit (the first: what fit() left of it)
            _guarded(f"{self._what()} (refit at {r})", refit_and_filter, self.fit_seconds,
                     self.spent if r == self.n_history else 0.0)
        return _finite(self._what(), out)


def _entry(name: str, refit_every: int, history: int | None, description: str) -> Baseline:
    def build(season_length: int, fit_seconds: float | None) -> RollingMSTL:
        return RollingMSTL(season_length, refit_every, history, FIT_SECONDS if fit_seconds is None else fit_seconds)

    def one_step(values: np.ndarray, start: int, test_start: int, end: int, m: int) -> np.ndarray:
        fitted = build(m, None).fit(np.asarray(values)[start:test_start])
        return fitted.forecast(np.asarray(values)[start:], np.arange(test_start, end) - start, 1)[:, 0]

    return Baseline(name, build, lambda series, horizon, m: forecast("mstl", series, horizon, m), one_step,
                    description, settings={"refit_every": refit_every, "history": history})


#: The registry entries (:data:`benchmark.forecasters.baselines.BASELINES` holds them). Their
#: ``settings`` enter each baseline row's key, so rows made with other settings are never confused.
MSTL_BASELINES: tuple[Baseline, ...] = (
    _entry("mstl", REFIT_EVERY, REFIT_HISTORY,
           f"statsforecast MSTL, periods m and 7m (AutoETS trend), refit every {REFIT_EVERY} points "
           f"on the last {REFIT_HISTORY}, filtered forward in between"),
    _entry("mstl_every_origin", 1, None,
           "statsforecast MSTL refitted on all of the history at every origin (slow: small grids)"),
)
