"""The statsforecast baselines ets, theta, mstl and arima, fitted once and re-filtered per origin.

``ets``, ``theta``, ``mstl`` and ``arima`` are statsforecast's ``AutoETS``, ``AutoTheta``,
``MSTL`` and ``AutoARIMA`` (numpy API), as forecasters of the contract
(:class:`StatsforecastForecaster`) and registry entries (:data:`STATISTICAL`, which
:data:`benchmark.forecasters.baselines.BASELINES` holds beside the naive family).

What is fitted where. On a grid's target each method is fitted once, on the history
``values[history_start:test_start]``: the training and validation parts (the models see the
validation part too, for early stopping; the other baselines estimate their means and seasonal
indices from the same points), never a test point. Its parameters then stay fixed: the forecast from each
test origin ``t`` re-filters the state through ``values[history_start:t]`` with statsforecast's
``forward``. One-step forecasts (``horizon == 1``) of ``ets`` are the one-step-ahead fitted values
of one ``forward`` pass over ``values[history_start:end]``, which use only the points before each
one (tested). The fitted values of ``theta`` (its seasonal decomposition of the whole series),
``mstl`` (a two-sided STL) and ``arima`` were found to depend on later points
(tests/test_statistical.py), so those forecast from every origin separately. On a grid's target
``mstl`` is :mod:`benchmark.forecasters.mstl`'s forecaster (refit every k origins on a bounded
history, filtered forward in between: re-running the decomposition from every origin was too
slow); its entry here serves the M4 protocol. On the M4 protocol (``forecast``) a method is fitted
on the series' training part and forecasts its test part.

Seasonal periods come from ``split.season_length`` ``m``: ``ets``, ``theta`` and ``arima`` use
``m``; ``mstl`` uses ``[m, 7 m]`` (daily and weekly for hourly data) when the history holds at
least two cycles of ``7 m``, only ``[m]`` when it holds two of ``m`` but not of ``7 m``, and is
refused (a :class:`~benchmark.spec.errors.DataError`) below two cycles of ``m``. ``arima`` is refused
above :data:`ARIMA_MAX_HISTORY` history points (AutoARIMA took 5.5 s for one fit on 960 hourly
points with ``m = 24`` here, and grows quickly); grid validation says so before anything runs.

Time limit: every series' fit (with its forecasts) runs under ``fit_seconds``, which the caller
passes from ``Settings.baseline_fit_seconds`` (``$TLBENCH_BASELINE_FIT_SECONDS``; default
:data:`FIT_SECONDS` = 60 s): a field of :class:`StatsforecastForecaster` and
:class:`StatisticalForecaster`, an argument of :func:`forecast`. A forecaster's ``forecast`` gets
what its ``fit`` left of the limit. In the main thread the limit interrupts the fit
(``SIGALRM``, at the next Python-level step: a long compiled step finishes first); elsewhere (a
Prefect task's thread) the fit runs to its end and is then failed if it overran. Either way a
:class:`FitError` says which method failed on which series and why; the grid records it as a failure row of that baseline and goes on.
"""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from benchmark.forecasters.contract import Baseline, checked_origins, checked_series
from benchmark.spec.catalog import ForecasterFacts
from benchmark.spec.errors import DataError, TlbenchError

#: The default time limit of one series' fit and forecasts, in seconds.
FIT_SECONDS = 60.0
#: The most history points ``arima`` is fitted on; larger targets are refused at validation.
ARIMA_MAX_HISTORY = 1000


class FitError(TlbenchError):
    """A statistical baseline's fit or forecast that failed or ran out of time on one series."""


@dataclass(frozen=True)
class Statistical:
    """One statsforecast method: ``build(season_length, n_history)`` returns an unfitted model;
    ``causal_fitted``: its fitted values are one-step-ahead forecasts (see module docstring)."""

    name: str
    build: Callable[[int, int], Any]
    causal_fitted: bool
    description: str
    max_history: int | None = None


def _ets(m: int, n: int):
    from statsforecast.models import AutoETS  # statsforecast: ~2 s to import; only when a baseline fits

    return AutoETS(season_length=m)


def _theta(m: int, n: int):
    from statsforecast.models import AutoTheta  # statsforecast: ~2 s to import; only when a baseline fits

    return AutoTheta(season_length=m)


def mstl_seasons(m: int, n: int) -> list[int]:
    """MSTL's periods for season length ``m`` and ``n`` history points (see module docstring)."""
    if n >= 2 * 7 * m:
        return [m, 7 * m]
    if n >= 2 * m:
        return [m]
    raise DataError(f"baseline mstl needs at least two seasons (2 x {m} = {2 * m} points) of history "
                    f"but got {n}: choose a larger target_size or a smaller season_length.")


def _mstl(m: int, n: int):
    from statsforecast.models import MSTL  # statsforecast: ~2 s to import; only when a baseline fits

    return MSTL(season_length=mstl_seasons(m, n))


def _arima(m: int, n: int):
    from statsforecast.models import AutoARIMA  # statsforecast: ~2 s to import; only when a baseline fits

    if n > ARIMA_MAX_HISTORY:
        raise DataError(f"baseline arima is limited to {ARIMA_MAX_HISTORY} history points (its fit time "
                        f"grows fast) but got {n}: use ets, theta or mstl for this size.")
    return AutoARIMA(season_length=m)


METHODS = {method.name: method for method in (
    Statistical("ets", _ets, True, "statsforecast AutoETS (exponential smoothing, season_length m)"),
    Statistical("theta", _theta, False, "statsforecast AutoTheta (M4's Theta family, season_length m)"),
    Statistical("mstl", _mstl, False, "statsforecast MSTL, periods m and 7m (AutoETS trend)"),
    Statistical("arima", _arima, False, "statsforecast AutoARIMA (season_length m), histories "
                                       f"<= {ARIMA_MAX_HISTORY} points", ARIMA_MAX_HISTORY))}

@contextmanager
def time_limit(seconds: float, what: str, spent: float = 0.0) -> Iterator[None]:
    """Raise :class:`FitError` when the block runs past what is left of ``seconds`` after ``spent``
    (interrupting it in the main thread, after the fact elsewhere)."""
    if not seconds > 0:
        raise TlbenchError(f"the baseline fit time limit must be positive, got {seconds}; set "
                           "$TLBENCH_BASELINE_FIT_SECONDS to a positive number of seconds.")
    started, left = time.monotonic(), max(seconds - spent, 1e-6)
    main = threading.current_thread() is threading.main_thread()

    def expire(signum, frame):
        raise FitError(f"{what}: the fit ran out of its time limit of {seconds:g} s; raise it "
                       "($TLBENCH_BASELINE_FIT_SECONDS) or drop this baseline for this size.")

    previous = signal.signal(signal.SIGALRM, expire) if main else None
    if main:
        signal.setitimer(signal.ITIMER_REAL, left)
    try:
        yield
    finally:
        if main:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    if time.monotonic() - started > left:
        expire(None, None)


def _fitted(method: Statistical, history: np.ndarray, season_length: int):
    model = method.build(season_length, len(history))
    return model.fit(np.asarray(history, np.float64))


def _guarded(what: str, work: Callable[[], Any], seconds: float, spent: float = 0.0) -> Any:
    """``work()`` under the time limit; any failure becomes a :class:`FitError` saying ``what``."""
    try:
        with time_limit(seconds, what, spent):
            return work()
    except (FitError, DataError):
        raise
    except Exception as exc:  # noqa: BLE001 - statsforecast raises anything (LinAlgError, ValueError, ...)
        raise FitError(f"{what} failed: {type(exc).__name__}: {exc}") from exc


def _finite(what: str, out: Any) -> np.ndarray:
    out = np.asarray(out, np.float64)
    if not np.isfinite(out).all():
        raise FitError(f"{what} produced {int((~np.isfinite(out)).sum())} non-finite forecast(s).")
    return out


def forecast(name: str, history: np.ndarray, horizon: int, season_length: int,
             fit_seconds: float = FIT_SECONDS) -> np.ndarray:
    """``horizon`` steps after ``history`` from a model fitted on ``history`` (the M4 protocol),
    fit and forecast under ``fit_seconds``; shape (horizon,)."""
    method = METHODS[name]
    what = f"baseline {name} on a series of {len(history)} points"
    return _finite(what, _guarded(what, lambda: _fitted(method, history, season_length).predict(h=horizon)["mean"],
                                  fit_seconds))


@dataclass
class StatsforecastForecaster:
    """One statsforecast method as a :class:`~benchmark.forecasters.contract.Forecaster`: ``fit``
    estimates its parameters on the history (under ``fit_seconds``); ``forecast`` re-filters the
    state through ``series[:t]`` for every origin ``t`` with those parameters fixed (one pass of
    one-step fitted values for ``horizon == 1`` where they are causal), under what the fit left
    of the limit."""

    method: Statistical
    season_length: int
    fit_seconds: float = FIT_SECONDS
    facts: ForecasterFacts = field(init=False)
    model: Any = field(default=None, init=False)
    n_history: int | None = field(default=None, init=False)
    spent: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        self.facts = ForecasterFacts(max_history=self.method.max_history)

    def _what(self) -> str:
        return f"baseline {self.method.name} on the test origins after {self.n_history} history points"

    def fit(self, history: np.ndarray) -> "StatsforecastForecaster":
        history = checked_series(history)
        self.n_history, started = len(history), time.monotonic()
        self.model = _guarded(self._what(), lambda: _fitted(self.method, history, self.season_length),
                              self.fit_seconds)
        self.spent = time.monotonic() - started
        return self

    def forecast(self, series: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
        series = checked_series(series)
        origins = checked_origins(origins, self.n_history, len(series), horizon, self.facts)

        def work() -> np.ndarray:
            if horizon == 1 and self.method.causal_fitted and len(origins):
                # fitted[i] is the one-step forecast of series[i] from the points before it
                fitted = self.model.forward(series[:origins.max() + 1], h=1, fitted=True)["fitted"]
                return np.asarray(fitted)[origins][:, None]  # [n_origins] -> [n_origins, 1]
            return np.stack([self.model.forward(series[:t], h=horizon)["mean"] for t in origins])

        what = self._what()
        return _finite(what, _guarded(what, work, self.fit_seconds, self.spent))  # [n_origins, horizon]


def _entry(method: Statistical) -> Baseline:
    name = method.name

    def build(season_length: int, fit_seconds: float | None) -> StatsforecastForecaster:
        return StatsforecastForecaster(method, season_length, FIT_SECONDS if fit_seconds is None else fit_seconds)

    def one_step(values: np.ndarray, start: int, test_start: int, end: int, m: int) -> np.ndarray:
        fitted = build(m, None).fit(np.asarray(values)[start:test_start])
        return fitted.forecast(np.asarray(values)[start:], np.arange(test_start, end) - start, 1)[:, 0]

    return Baseline(name, build, lambda history, horizon, m: forecast(name, history, horizon, m), one_step,
                    method.description, ForecasterFacts(max_history=method.max_history))


#: The statsforecast methods' registry entries (:data:`benchmark.forecasters.baselines.BASELINES` holds
#: them); ``mstl``'s is :mod:`benchmark.forecasters.mstl`'s (refits every k origins), not one fit.
STATISTICAL: tuple[Baseline, ...] = tuple(_entry(method) for method in METHODS.values() if method.name != "mstl")


# --------------------------------------------------------------------------- many series at once


def _forecast_or_error(task: tuple[str, np.ndarray, int, int, float]) -> tuple[np.ndarray | None, str | None]:
    name, history, horizon, season_length, seconds = task
    try:
        return forecast(name, history, horizon, season_length, seconds), None
    except TlbenchError as exc:
        return None, str(exc)


class StatisticalForecaster:
    """A statistical baseline as an :class:`~benchmark.forecasters.source.BatchForecaster` over many series,
    in ``workers`` processes (each series under ``fit_seconds`` in its worker's main thread).
    ``failures`` maps the position of every series whose fit failed to why, after a call; those
    rows are NaN."""

    def __init__(self, name: str, season_length: int, workers: int = 2, fit_seconds: float = FIT_SECONDS):
        if name not in METHODS:
            raise TlbenchError(f"Unknown statistical baseline {name!r}. Known: {', '.join(sorted(METHODS))}.")
        self.name, self.season_length, self.workers = name, season_length, max(1, int(workers))
        self.fit_seconds = float(fit_seconds)
        self.failures: dict[int, str] = {}

    def forecast_batch(self, histories: Sequence[np.ndarray], horizon: int) -> np.ndarray:
        tasks = [(self.name, np.asarray(h, np.float64), horizon, self.season_length, self.fit_seconds)
                 for h in histories]
        if self.workers == 1:
            results = [_forecast_or_error(task) for task in tasks]
        else:  # spawn: the caller may hold TensorFlow, which must not be forked
            with ProcessPoolExecutor(self.workers, mp_context=get_context("spawn")) as pool:
                results = list(pool.map(_forecast_or_error, tasks, chunksize=4))
        self.failures = {i: error for i, (_, error) in enumerate(results) if error}
        return np.stack([out if out is not None else np.full(horizon, np.nan) for out, _ in results])
