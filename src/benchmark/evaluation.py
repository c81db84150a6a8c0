"""The M4 evaluation protocol on a whole source: forecast each series' test part (``horizon``
steps) from its training part, score sMAPE and MASE per series, average over series, and relate
both to Naive2 as the OWA. Used to check the baselines against the published M4 figures and to
score a pretrained model on its own source (``tlbench evaluate-source --model``), so the
leaderboard shows how good the pretrained model is before anyone transfers it.

For ``m4`` the test part is the official test file; for any other source it is the last
``horizon`` points of every series.

A method forecasts either one series at a time (a :data:`Forecaster` callable, as the baselines
do) or all series at once (a :class:`BatchForecaster`, as a Keras model does: one ``predict``
call per step over every series). :class:`ModelForecaster` turns a tlbench seq2one model into a
batch forecaster; :func:`load_source_model` finds one by path or registry reference, and
:func:`record_source_scores` writes its scores onto its MLflow run.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

import numpy as np

from benchmark.baselines import BASELINES
from benchmark.config import DataSpec
from benchmark.data.sources import load_m4_test, load_source, parse_options, source_label
from benchmark.errors import DataError, TlbenchError
from benchmark.metrics import mase, smape
from benchmark.settings import Settings
from benchmark.statistical import METHODS as STATISTICAL_METHODS, StatisticalForecaster

log = logging.getLogger(__name__)

#: ``forecaster(history_1d, horizon) -> (horizon,)``: one series at a time (the baselines).
Forecaster = Callable[[np.ndarray, int], np.ndarray]


@runtime_checkable
class BatchForecaster(Protocol):
    """Forecasts every series at once: ``forecast_batch(histories, horizon) -> [n, horizon]``,
    ``histories`` a list of n 1-D arrays of possibly different lengths (original scale)."""

    def forecast_batch(self, histories: Sequence[np.ndarray], horizon: int) -> np.ndarray: ...


def train_test_series(source: DataSpec, data_dir: Path, horizon: int,
                      allow_download: bool = True) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(unique_id, training values, the next horizon values)`` for every series, in id order."""
    train = load_source(source, data_dir, allow_download=allow_download)
    label = source_label(source)
    train_groups = train.groupby("unique_id", sort=True).indices  # id -> row positions
    y_train = train["y"].to_numpy()
    if source.source == "m4":
        options, _ = parse_options(source)
        test = load_m4_test(options.group, data_dir, allow_download=allow_download)
        test_groups = test.groupby("unique_id", sort=True).indices
        y_test = test["y"].to_numpy()
        out = []
        for uid, rows in train_groups.items():
            future = y_test[test_groups[uid]] if uid in test_groups else np.empty(0)
            if len(future) < horizon:
                raise DataError(f"{label}: series {uid} has {len(future)} test points, fewer than "
                                f"horizon {horizon}: choose horizon <= {len(future)}.")
            out.append((uid, y_train[rows], future[:horizon]))
        return out
    out = []
    for uid, rows in train_groups.items():
        values = y_train[rows]
        if len(values) <= horizon:
            raise DataError(f"{label}: series {uid} has {len(values)} points, not more than "
                            f"horizon {horizon}: choose a smaller horizon.")
        out.append((uid, values[:-horizon], values[-horizon:]))
    return out


def evaluate_source(source: DataSpec, method: str, data_dir: Path,
                    forecaster: Forecaster | BatchForecaster | None = None, *,
                    protocol: tuple[int, int] = (48, 24), allow_download: bool = True,
                    max_series: int | None = None) -> dict:
    """M4-protocol scores of one method on every series of a source.

    ``protocol``: ``(horizon, season_length)``, M4 Hourly's ``(48, 24)`` by default.

    ``method`` names a baseline, or labels ``forecaster`` when one is given: a per-series
    ``forecaster(history_1d, horizon) -> (horizon,)`` or a :class:`BatchForecaster`, called once
    with every series. ``max_series`` keeps the first k series in id order (a quick check; the
    protocol's figures are over all of them). Returns ``method``, ``source``, ``smape`` and
    ``mase`` (means over series), ``owa = 0.5 * (smape / smape_naive2 + mase / mase_naive2)``, the
    Naive2 scores ``smape_naive2``/``mase_naive2`` on the same series, ``n_series`` and ``horizon``.
    A statistical baseline (``ets``, ``theta``, ``mstl``, ``arima``) is fitted per series in two
    processes, each fit under the time limit; a series whose fit failed or timed out is scored
    with Naive2's forecast and listed in ``failed_series`` (id -> why; empty when none failed).
    """
    horizon, season_length = protocol
    if forecaster is None and method in STATISTICAL_METHODS:  # statsforecast fits: 2 processes
        forecaster = StatisticalForecaster(method, season_length, workers=2)
    if forecaster is None:
        baseline = BASELINES.get(method)  # an unknown name lists the known baselines

        def forecaster(history: np.ndarray, steps: int) -> np.ndarray:
            return baseline.forecast(history, steps, season_length)

    if max_series is not None and max_series < 1:
        raise TlbenchError(f"max_series must be at least 1, got {max_series}; leave it unset for all series.")
    naive2 = BASELINES.get("naive2")
    scores = {"smape": [], "mase": [], "smape_naive2": [], "mase_naive2": []}
    series = train_test_series(source, data_dir, horizon, allow_download)[:max_series]
    predictions = _forecast_all(forecaster, series, horizon)  # [n_series, horizon]
    failed = {series[i][0]: error for i, error in getattr(forecaster, "failures", {}).items()}
    for i in getattr(forecaster, "failures", {}):  # a failed fit is scored as Naive2, and listed
        predictions[i] = naive2.forecast(series[i][1], horizon, season_length)
    for (uid, history, future), prediction in zip(series, predictions):
        reference = naive2.forecast(history, horizon, season_length)
        scores["smape"].append(smape(future, prediction))
        scores["mase"].append(mase(future, prediction, history, season_length))
        scores["smape_naive2"].append(smape(future, reference))
        scores["mase_naive2"].append(mase(future, reference, history, season_length))
    means = {key: float(np.mean(values)) for key, values in scores.items()}
    owa = 0.5 * (means["smape"] / means["smape_naive2"] + means["mase"] / means["mase_naive2"])
    return {"method": method, "source": source_label(source), "smape": means["smape"],
            "mase": means["mase"], "owa": float(owa), "smape_naive2": means["smape_naive2"],
            "mase_naive2": means["mase_naive2"], "n_series": len(series), "horizon": horizon,
            "failed_series": failed}



def _forecast_all(forecaster: Forecaster | BatchForecaster,
                  series: list[tuple[str, np.ndarray, np.ndarray]], horizon: int) -> np.ndarray:
    """Every series' forecast, ``[n_series, horizon]`` float64: one batch call, or one call per series."""
    if isinstance(forecaster, BatchForecaster):
        out = np.asarray(forecaster.forecast_batch([history for _, history, _ in series], horizon),
                         dtype=np.float64)
        if out.shape != (len(series), horizon):
            raise ValueError(f"batch forecaster returned shape {out.shape} for {len(series)} series, "
                             f"expected ({len(series)}, {horizon})")
        return out
    rows = []
    for uid, history, _ in series:
        prediction = np.asarray(forecaster(history, horizon), dtype=np.float64).reshape(-1)
        if prediction.shape != (horizon,):
            raise ValueError(f"forecaster returned {prediction.shape[0]} values for series {uid}, "
                             f"expected horizon {horizon}")
        rows.append(prediction)
    return np.stack(rows) if rows else np.zeros((0, horizon))


# --------------------------------------------------------------------------- a model as forecaster


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
        from benchmark.data.normalisation import NORMALISATIONS

        self.model = model
        self.normalisation = NORMALISATIONS.get(normalisation)
        self.lookback = int(input_shape[1])
        self.model_horizon = int(output_shape[1])
        self.batch_size = batch_size

    def strategy(self, horizon: int) -> str:
        """How a ``horizon``-step forecast is made, in words (logged and printed)."""
        how = (f"direct ({self.model_horizon}-step model)" if self.model_horizon >= horizon else
               f"recursive ({-(-horizon // self.model_horizon)} x {self.model_horizon}-step)")
        return f"{how}, lookback {self.lookback}, normalisation {self.normalisation.name}"

    def forecast_batch(self, histories: Sequence[np.ndarray], horizon: int) -> np.ndarray:
        from benchmark.training import predict

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


# --------------------------------------------------------------------------- finding the model


@dataclass(frozen=True)
class SourceModel:
    """A pretrained model found by :func:`load_source_model`: ``label`` says which (a path or
    ``models:/NAME/VERSION``); ``run_id`` is the MLflow run that trained it, when known."""

    model: Any
    label: str
    run_id: str | None
    normalisation: str = "global"


_REGISTRY_REF = re.compile(r"^(?:models:/)?(?P<name>[^/@\s]+)(?:@(?P<alias>[^/@\s]+)|/(?P<version>[^/@\s]+))$")
_REF_FORMS = ("a .keras file (or its folder, as under <results>/pretrained/<key>/), "
              "models:/NAME@ALIAS, models:/NAME/VERSION or NAME@ALIAS")


def load_source_model(ref: str, settings: Settings) -> SourceModel:
    """The model ``ref`` names: a ``.keras`` file or a folder holding ``model.keras``, or a
    registry reference (``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``NAME@ALIAS``).

    A file is checksum-verified against its ``meta.json`` (tlbench's pretrained cache) or its
    ``<file>.sha256``; one with neither is loaded unverified, with a warning. The run id comes from
    ``meta.json``'s ``mlflow_run_id`` or the registry version's run. Raises TlbenchError for a
    missing file, an unknown reference or a model that will not load.
    """
    path = Path(ref).expanduser()
    if path.is_dir():
        path = path / "model.keras"
        if not path.is_file():
            raise TlbenchError(f"--model {ref}: the folder has no model.keras. Pass {_REF_FORMS}.")
    if path.is_file():
        return _load_file(path)
    if ref.endswith(".keras"):
        raise TlbenchError(f"--model {ref}: no such file. Pretrained models are cached under "
                           f"<results>/pretrained/<key>/model.keras (results: {settings.results}).")
    match = _REGISTRY_REF.match(ref)
    if match is None or not (ref.startswith("models:/") or match["alias"]):
        raise TlbenchError(f"--model {ref!r} is neither an existing file nor a registry reference. "
                           f"Pass {_REF_FORMS} (e.g. models:/pretrained-lstm-m4-hourly@current).")
    return _load_registered(match["name"], match["alias"] or match["version"], settings)


def _load_file(path: Path) -> SourceModel:
    from benchmark.pretrain import checksum_path, load_pretrained

    meta_path = path.with_name("meta.json")
    meta = json.loads(meta_path.read_text()) if path.name == "model.keras" and meta_path.is_file() else {}
    if meta.get("sha256"):
        model = load_pretrained(path, meta["sha256"])
    elif checksum_path(path).is_file():
        model = load_pretrained(path)
    else:
        import keras

        import benchmark.models  # noqa: F401 - registers tlbench's custom layers (Rescale)

        log.warning("%s has no meta.json or %s: loading it unverified", path, checksum_path(path).name)
        try:
            model = keras.saving.load_model(path, safe_mode=True, compile=False)
        except Exception as exc:  # noqa: BLE001 - any load failure is the user's file
            raise TlbenchError(f"--model {path} does not load as a Keras model "
                               f"({type(exc).__name__}: {exc}).") from exc
    return SourceModel(model, str(path), meta.get("mlflow_run_id") or None,
                       meta.get("normalisation") or model_normalisation(model))


def _load_registered(name: str, version_or_alias: str, settings: Settings) -> SourceModel:
    from benchmark.tracking import Tracker

    if settings.tracking_uri.startswith("sqlite:///"):
        store = Path(settings.tracking_uri.removeprefix("sqlite:///"))
        if not store.is_file():
            raise TlbenchError(f"--model models:/{name}: there is no MLflow store at {store}, so no "
                               "registered model. Pass the store the model was registered in with "
                               "--tracking-uri (or $MLFLOW_TRACKING_URI), or a .keras file.")
    tracker = Tracker(settings, settings.experiment or "tlbench-evaluate")
    version, run_id = tracker.resolve_model_version(name, version_or_alias)
    model = tracker.load_registered_keras(name, version)
    return SourceModel(model, f"models:/{name}/{version}", run_id or None, model_normalisation(model))


def model_normalisation(model: Any) -> str:
    """The normalisation a model was trained with, as far as the model itself tells: its window
    stage's (``last_value``, ``window``), else ``global`` (a ``minmax`` body is known only from
    its ``meta.json``)."""
    from benchmark.models.architectures import window_stage_of

    return window_stage_of(model) or "global"


# --------------------------------------------------------------------------- recording


#: Metric names written on a pretrained model's run, from :func:`evaluate_source`'s keys.
SOURCE_METRICS = {"smape": "m4_smape", "mase": "m4_mase", "owa": "m4_owa"}


def source_metrics(result: dict) -> dict[str, float]:
    """``result``'s sMAPE, MASE and OWA under their run-metric names (:data:`SOURCE_METRICS`)."""
    return {name: float(result[key]) for key, name in SOURCE_METRICS.items()}


def record_source_scores(settings: Settings, run_id: str, result: dict, strategy: str) -> dict[str, float]:
    """Log ``result``'s sMAPE, MASE and OWA as :data:`SOURCE_METRICS` on MLflow run ``run_id``
    (and how the forecast was made as the tag ``m4_eval``); returns what was logged."""
    from benchmark.tracking import Tracker

    metrics = source_metrics(result)
    tracker = Tracker(settings, settings.experiment or "tlbench-evaluate")
    try:
        tracker.log_metrics(run_id, metrics)
        tracker.set_tags(run_id, {"m4_eval": f"{result['source']} {result['horizon']}-step test, "
                                             f"{result['n_series']} series, {strategy}"})
    except Exception as exc:  # noqa: BLE001 - an MLflow error here is a wrong store or run id
        raise TlbenchError(f"could not record the scores on MLflow run {run_id} at "
                           f"{settings.tracking_uri} ({type(exc).__name__}: {exc}). Pass the "
                           "--tracking-uri the model was trained with.") from exc
    return metrics


def record_baseline_on_source(settings: Settings, source: DataSpec, result: dict) -> str:
    """``tlbench evaluate-source --method NAME``'s full-protocol result as one leaderboard row of
    kind ``source`` (grid ``evaluate-source``, architecture ``baseline``, mode NAME), which every
    grid report's source section shows next to the pretrained bodies. Returns the results location."""
    from benchmark import __version__
    from benchmark.config import ModelSpec, PretrainSpec, spec_hash
    from benchmark.jobs import PretrainJob, RunContext, now
    from benchmark.leaderboard import Leaderboard
    from benchmark.stages import source_rows

    stamp, method = now(), result["method"]
    context = RunContext("evaluate-source", "evaluate-source", f"{stamp:%Y%m%dT%H%M%S}", f"{stamp:%Y-%m-%d}",
                         "tlbench-evaluate", None, None)
    key = spec_hash("evaluate-source", method, source, result["n_series"], __version__)
    job = PretrainJob(key, ModelSpec(architecture="baseline", normalisation="none"), PretrainSpec(source=source),
                      1, int(result["horizon"]), context)
    # source_rows gives the "pretrained" entry the method's scores; that entry is the method's row
    rows = [{**row, "mode": method, "cell_key": f"source-{key}-{method}", "pretrain_seed": None}
            for row in source_rows(job, result, None) if row["mode"] == "pretrained"]
    Leaderboard(settings.results).append(rows)
    return settings.results


#: The statistical methods every body pretrained on a whole source is compared with in the report's
#: source section: MSTL, the strongest measured on M4 Hourly (OWA 0.604, docs/models.md).
SOURCE_REFERENCES = ("mstl",)


def ensure_source_references(settings: Settings, source: DataSpec, protocol: tuple[int, int],
                             methods: Sequence[str] = SOURCE_REFERENCES) -> list[str]:
    """Score each of ``methods`` on ``source``'s full protocol and record it as
    :func:`record_baseline_on_source` does, unless the results already hold its row (so once per
    results location: MSTL takes about a minute on M4 Hourly with 2 processes). Called after a
    body is scored on its source, so the report can say whether the body beats them without
    anyone running ``evaluate-source --method`` first. Never raises (the body is scored and
    recorded already): a failure is logged. Returns the methods scored now."""
    from benchmark.data.sources import source_label
    from benchmark.leaderboard import Leaderboard

    scored = []
    try:
        have = Leaderboard(settings.results).read(grid="evaluate-source", kind="source",
                                                  architecture="baseline", target=[source_label(source)])
        for method in (m for m in methods if have.empty or m not in set(have["mode"])):
            result = evaluate_source(source, method, settings.data_dir, protocol=protocol,
                                     allow_download=settings.allow_download)
            record_baseline_on_source(settings, source, result)
            scored.append(method)
    except Exception:  # noqa: BLE001 - a missing reference row costs a sentence, not the body
        log.warning("could not score the reference methods %s on %s", list(methods), source, exc_info=True)
    return scored
