"""A trained Keras model seen as a forecaster: :class:`ModelForecaster` turns a tlbench seq2one
model into a :class:`benchmark.forecasters.source.BatchForecaster` over many series, scaled per
series as pretraining scaled them and chained in chunks of the model's horizon; it meets the
forecaster contract of :mod:`benchmark.forecasters.contract` too (``fit``, ``forecast`` from origins)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from benchmark.data.normalisation import NORMALISATIONS
from benchmark.forecasters.contract import checked_origins, checked_series
from benchmark.spec.catalog import ForecasterFacts
from benchmark.spec.errors import DataError, TlbenchError


class ModelForecaster:
    """A tlbench seq2one model, ``[n, lookback, 1] -> [n, model_horizon]``, as a batch forecaster.

    Each series is scaled by the series scaler of ``normalisation`` (the model's own, as
    pretraining scaled it; the window stage is inside the model) fitted on its own history, as
    pretraining scaled each series on its own training part; its last ``lookback`` points (the
    model's own lookback) are the first input, and the
    forecast is chained in chunks of the model's horizon: recursive (each prediction fed back as
    the next input) when ``model_horizon < horizon``, direct (the first ``horizon`` outputs) when
    it is at least ``horizon``. One ``predict`` call per chunk covers every series. Forecasts
    come back on the original scale.
    """

    def __init__(self, model: Any, batch_size: int = 1024, normalisation: str = "global"):
        input_shape, output_shape = tuple(model.input_shape), tuple(model.output_shape)
        if len(input_shape) != 3 or input_shape[-1] != 1 or len(output_shape) != 2:
            raise TlbenchError(f"model {model.name!r} maps {input_shape} -> {output_shape}; the M4 "
                               "protocol needs a univariate seq2one model (batch, lookback, 1) -> "
                               "(batch, horizon), as tlbench pretrains.")
        self.model = model
        self.normalisation = NORMALISATIONS.get(normalisation)
        self.lookback = int(input_shape[1])
        self.model_horizon = int(output_shape[1])
        self.batch_size = batch_size
        self.facts = ForecasterFacts(needs_training=True)  # trained (pretrained) before it forecasts
        self.n_history: int | None = None

    def fit(self, history: np.ndarray) -> "ModelForecaster":
        """The contract's fit: the model is trained already and each forecast scales its own
        history, so this only binds the history's length."""
        self.n_history = len(checked_series(history))
        return self

    def forecast(self, series: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
        """The contract's forecast: ``[n_origins, horizon]``, origin ``t`` from ``series[:t]`` only."""
        series = checked_series(series)
        origins = checked_origins(origins, self.n_history, len(series), horizon, self.facts)
        return self.forecast_batch([series[:t] for t in origins], horizon)

    def strategy(self, horizon: int) -> str:
        """How a ``horizon``-step forecast is made, in words (logged and printed)."""
        how = (f"direct ({self.model_horizon}-step model)" if self.model_horizon >= horizon else
               f"recursive ({-(-horizon // self.model_horizon)} x {self.model_horizon}-step)")
        return f"{how}, lookback {self.lookback}, normalisation {self.normalisation.name}"

    def forecast_batch(self, histories: Sequence[np.ndarray], horizon: int) -> np.ndarray:
        from benchmark.models.regimes import predict  # Keras: loaded only when a model forecasts

        short = [i for i, history in enumerate(histories) if len(history) < self.lookback]
        if short:
            raise DataError(f"{len(short)} series (the first at position {short[0]}, "
                            f"{len(histories[short[0]])} points) are shorter than the model's "
                            f"lookback {self.lookback}: the model cannot forecast them.")
        scalers = [self.normalisation.new_scaler().fit(history) for history in histories]
        window = np.stack([scaler.transform(history[-self.lookback:])
                           for scaler, history in zip(scalers, histories)])[:, :, None]  # [n, L, 1]
        chunks, produced = [], 0
        while produced < horizon:
            step = predict(self.model, window, self.batch_size)  # [n, H_model], scaled
            chunks.append(step)
            produced += step.shape[1]
            # [n, L, 1] + [n, H_model, 1] -> the last L points: the predictions become inputs
            window = np.concatenate([window, step[:, :, None]], axis=1)[:, -self.lookback:]
        scaled = np.concatenate(chunks, axis=1)[:, :horizon]  # [n, horizon]
        return np.stack([scaler.inverse_transform(row) for scaler, row in zip(scalers, scaled)])
