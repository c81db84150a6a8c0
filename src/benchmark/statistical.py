"""The statistical baselines ``ets``, ``theta``, ``mstl`` and ``arima``: statsforecast's
``AutoETS``, ``AutoTheta``, ``MSTL`` and ``AutoARIMA`` (numpy API), registered in
:data:`benchmark.baselines.BASELINES` beside naive, seasonal naive, Naive2 and mean.

What is fitted where. On a grid's target each method is fitted once, on the history
``values[history_start:test_start]``: the training and validation parts (the models see the
validation part too, for early stopping; the other baselines estimate their means and seasonal
indices from the same points), never a test point. Its parameters then stay fixed: the forecast from each
test origin ``t`` re-filters the state through ``values[history_start:t]`` with statsforecast's
``forward`` (for ``mstl`` that re-runs the STL decomposition, with its fixed smoothing settings, on
those points, and re-filters the fitted trend model). One-step forecasts (``horizon == 1``) of
``ets`` are the one-step-ahead fitted values of one ``forward`` pass over
``values[history_start:end]``, which use only the points before each one (tested). The fitted
values of ``theta`` (its seasonal decomposition of the whole series), ``mstl`` (a two-sided STL)
and ``arima`` were found to depend on later points (tests/test_statistical.py), so those three
forecast from every origin separately. On the M4 protocol (``forecast``) a method is fitted on the
series' training part and forecasts its test part.

Seasonal periods come from ``split.season_length`` ``m``: ``ets``, ``theta`` and ``arima`` use
``m``; ``mstl`` uses ``[m, 7 m]`` (daily and weekly for hourly data) when the history holds at
least two cycles of ``7 m``, only ``[m]`` when it holds two of ``m`` but not of ``7 m``, and is
refused (a :class:`~benchmark.errors.DataError`) below two cycles of ``m``. ``arima`` is refused
above :data:`ARIMA_MAX_HISTORY` history points (AutoARIMA took 5.5 s for one fit on 960 hourly
points with ``m = 24`` here, and grows quickly); grid validation says so before anything runs.

Time limit: every series' fit (with its forecasts) runs under ``Settings.baseline_fit_seconds``
(``$TLBENCH_BASELINE_FIT_SECONDS``, default :data:`FIT_SECONDS` = 60 s; the grid's baseline stage
applies it with :func:`set_fit_seconds`). In the main thread the limit interrupts the fit
(``SIGALRM``, at the next Python-level step: a long compiled step finishes first); elsewhere (a
Prefect task's thread) the fit runs to its end and is then failed if it overran. Either way a :class:`FitError` says which method failed on which
series and why; the grid records it as a failure row of that baseline and goes on.
"""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from benchmark.baselines import BASELINES, Baseline
from benchmark.errors import DataError, TlbenchError

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
    from statsforecast.models import AutoETS

    return AutoETS(season_length=m)


def _theta(m: int, n: int):
    from statsforecast.models import AutoTheta

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
    from statsforecast.models import MSTL

    return MSTL(season_length=mstl_seasons(m, n))


def _arima(m: int, n: int):
    from statsforecast.models import AutoARIMA

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

_fit_seconds = FIT_SECONDS


def set_fit_seconds(seconds: float) -> None:
    """Set the per-series time limit of every statistical fit in this process (> 0)."""
    global _fit_seconds
    if not seconds > 0:
        raise TlbenchError(f"the baseline fit time limit must be positive, got {seconds}")
    _fit_seconds = float(seconds)


@contextmanager
def time_limit(seconds: float, what: str) -> Iterator[None]:
    """Raise :class:`FitError` when the block runs longer than ``seconds`` (interrupting it in the
    main thread, after the fact elsewhere)."""
    started = time.monotonic()
    main = threading.current_thread() is threading.main_thread()

    def expire(signum, frame):
        raise FitError(f"{what}: the fit ran out of its time limit of {seconds:g} s; raise it "
                       "($TLBENCH_BASELINE_FIT_SECONDS) or drop this baseline for this size.")

    previous = signal.signal(signal.SIGALRM, expire) if main else None
    if main:
        signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        if main:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    if time.monotonic() - started > seconds:
        expire(None, None)


def _fitted(method: Statistical, history: np.ndarray, season_length: int):
    model = method.build(season_length, len(history))
    return model.fit(np.asarray(history, np.float64))


def _guarded(method: Statistical, where: str, work: Callable[[], np.ndarray]) -> np.ndarray:
    """``work()`` under the time limit; any failure becomes a :class:`FitError` naming ``where``."""
    what = f"baseline {method.name} on {where}"
    try:
        with time_limit(_fit_seconds, what):
            out = np.asarray(work(), np.float64)
    except (FitError, DataError):
        raise
    except Exception as exc:  # noqa: BLE001 - statsforecast raises anything (LinAlgError, ValueError, ...)
        raise FitError(f"{what} failed: {type(exc).__name__}: {exc}") from exc
    if not np.isfinite(out).all():
        raise FitError(f"{what} produced {int((~np.isfinite(out)).sum())} non-finite forecast(s).")
    return out


def forecast(name: str, history: np.ndarray, horizon: int, season_length: int) -> np.ndarray:
    """``horizon`` steps after ``history`` from a model fitted on ``history``; shape (horizon,)."""
    method = METHODS[name]
    return _guarded(method, f"a series of {len(history)} points",
                    lambda: _fitted(method, history, season_length).predict(h=horizon)["mean"])


def at_origins(name: str, values: np.ndarray, history_start: int, test_start: int,
               origins: np.ndarray, horizon: int, season_length: int) -> np.ndarray:
    """Forecasts from every origin ``t`` in ``origins`` (``[n_origins, horizon]``) by a model fitted
    on ``values[history_start:test_start]`` and re-filtered through ``values[history_start:t]``."""
    method, values = METHODS[name], np.asarray(values, np.float64)
    origins = np.asarray(origins, int)

    def work() -> np.ndarray:
        model = _fitted(method, values[history_start:test_start], season_length)
        if horizon == 1 and method.causal_fitted and len(origins):
            # fitted[i] is the one-step forecast of values[history_start + i] from the points before it
            fitted = model.forward(values[history_start:origins.max() + 1], h=1, fitted=True)["fitted"]
            return np.asarray(fitted)[origins - history_start][:, None]  # [n_origins] -> [n_origins, 1]
        return np.stack([model.forward(values[history_start:t], h=horizon)["mean"] for t in origins])

    return _guarded(method, f"the test origins after {test_start - history_start} history points", work)


def _register(method: Statistical) -> None:
    name = method.name
    BASELINES.add(name, Baseline(
        name, lambda history, horizon, m: forecast(name, history, horizon, m),
        lambda values, start, test_start, end, m: at_origins(
            name, values, start, test_start, np.arange(test_start, end), 1, m)[:, 0],
        method.description, origins=lambda values, start, test_start, origins, horizon, m: at_origins(
            name, values, start, test_start, origins, horizon, m),
        max_history=method.max_history))


for _method in METHODS.values():
    _register(_method)


# --------------------------------------------------------------------------- many series at once


def _forecast_or_error(task: tuple[str, np.ndarray, int, int, float]) -> tuple[np.ndarray | None, str | None]:
    name, history, horizon, season_length, seconds = task
    set_fit_seconds(seconds)  # a worker process starts with the default
    try:
        return forecast(name, history, horizon, season_length), None
    except TlbenchError as exc:
        return None, str(exc)


class StatisticalForecaster:
    """A statistical baseline as an :class:`~benchmark.evaluation.BatchForecaster` over many series,
    in ``workers`` processes (each series under the time limit in its worker's main thread).
    ``failures`` maps the position of every series whose fit failed to why, after a call; those
    rows are NaN."""

    def __init__(self, name: str, season_length: int, workers: int = 2):
        if name not in METHODS:
            raise TlbenchError(f"Unknown statistical baseline {name!r}. Known: {', '.join(sorted(METHODS))}.")
        self.name, self.season_length, self.workers = name, season_length, max(1, int(workers))
        self.failures: dict[int, str] = {}

    def forecast_batch(self, histories: Sequence[np.ndarray], horizon: int) -> np.ndarray:
        tasks = [(self.name, np.asarray(h, np.float64), horizon, self.season_length, _fit_seconds)
                 for h in histories]
        if self.workers == 1:
            results = [_forecast_or_error(task) for task in tasks]
        else:  # spawn: the caller may hold TensorFlow, which must not be forked
            with ProcessPoolExecutor(self.workers, mp_context=get_context("spawn")) as pool:
                results = list(pool.map(_forecast_or_error, tasks, chunksize=4))
        self.failures = {i: error for i, (_, error) in enumerate(results) if error}
        return np.stack([out if out is not None else np.full(horizon, np.nan) for out, _ in results])
