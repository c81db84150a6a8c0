"""The report's figures: a cell's forecast and learning curves, a grid's transfer benefit and training time.

Per cell: the forecast against the observed values over the test segment, and the loss per
epoch. Per grid: the transfer-benefit curve (metric against target size, one line per mode, one
panel per architecture) and the training time per mode; :mod:`benchmark.report.html` puts them
on the page, :mod:`benchmark.run` logs the cell figures to the cell's MLflow run.

Figures are built with ``matplotlib.figure.Figure`` directly (never pyplot), so cells and reports
running in threads can draw at once without sharing global state. They never use mathtext either
(its parser is shared and not thread-safe: two threads drawing log-axis labels such as
``$10^{1}$`` at once crash): log axes get plain-text tick labels and titles are not parsed as
math.

Regimes and feature sets: a model row whose ``regime`` is not ``stateless`` or whose ``features``
are not ``y`` is shown as its own *variant* of the architecture, e.g. ``lstm · stateful`` or
``lstm · y+hour_of_day`` (:func:`benchmark.results.ranking.fold_variants`): it gets its own panel
and is compared with the scratch mode of the same variant.
"""

from __future__ import annotations

import io
import math
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter, NullLocator

from benchmark.spec.errors import TlbenchError

_BASELINE = "baseline"
_SCRATCH = "scratch"
_PANEL_SIZE = (4.6, 3.4)  # inches per panel (width, height)
_BASELINE_STYLES = ((0, (5, 3)), (0, (1, 2)), (0, (6, 2, 1, 2)), (0, (3, 3, 1, 3, 1, 3)))
#: The baselines that always set the transfer-benefit chart's y-axis (with the models and the best
#: baseline at each size); any other baseline beyond that range is drawn clipped and marked off-scale.
_AXIS_BASELINES = ("naive",)


# --------------------------------------------------------------------------- per-cell figures


def forecast_figure(ds: Sequence, observed: np.ndarray, predicted: np.ndarray, title: str = "") -> Figure:
    """Observed and predicted values over the test segment (original scale)."""
    fig = Figure(figsize=(10, 3.5), dpi=100)
    ax = fig.add_subplot()
    x = np.asarray(ds)
    ax.plot(x, observed, label="observed", linewidth=1.0, color="#333333")
    ax.plot(x, predicted, label="forecast", linewidth=1.0, color="#d62728", alpha=0.85)
    ax.set_title(title, fontsize=9, parse_math=False)
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def learning_curve_figure(history: Mapping[str, Sequence[float]], title: str = "") -> Figure:
    """Training and validation loss per epoch (early stopping watches the validation curve)."""
    fig = Figure(figsize=(6, 3.5), dpi=100)
    ax = fig.add_subplot()
    for name, style in (("loss", "-"), ("val_loss", "--")):
        values = list(history.get(name, []))
        if values:
            ax.plot(range(1, len(values) + 1), values, style, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (scaled)")
    ax.set_title(title, fontsize=9, parse_math=False)
    if ax.lines:
        ax.legend(fontsize=8)
    else:  # a mode that trains nothing (zeroshot): say so instead of an empty legend
        ax.text(0.5, 0.5, "no training (the pretrained model as it is)", ha="center", va="center",
                transform=ax.transAxes, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- grid figures


def _check_aggregate(agg: pd.DataFrame, needed: Iterable[str], caller: str) -> None:
    missing = [c for c in ("target", "target_size", "architecture", "mode", *needed) if c not in agg.columns]
    if missing:
        raise TlbenchError(f"{caller}() needs the output of benchmark.results.ranking.aggregate(); missing "
                           f"column(s) {', '.join(missing)}")


def _modes_in_order(modes: Iterable[str]) -> list[str]:
    """scratch first (the reference), then the others alphabetically: the same order, and so the
    same colours, in every panel and figure."""
    unique = set(modes)
    return ([_SCRATCH] if _SCRATCH in unique else []) + sorted(unique - {_SCRATCH})


def _mode_colours(modes: Sequence[str]) -> dict[str, Any]:
    palette = colormaps["tab10"]
    others = [m for m in modes if m != _SCRATCH]
    colours = {m: palette(i % 10) for i, m in enumerate(others)}
    colours[_SCRATCH] = "#111111"
    return colours


def _panels(agg: pd.DataFrame, models: pd.DataFrame) -> tuple[Figure, np.ndarray, list[str], list[str]]:
    """A figure with one row of panels per target and one column per architecture.

    Returns ``(figure, axes [targets, architectures], targets, architectures)``; panels of one
    target share their y axis, so architectures compare at a glance."""
    targets = sorted(agg["target"].unique())
    architectures = sorted(models["architecture"].unique()) or ["(no models)"]
    width, height = _PANEL_SIZE
    fig = Figure(figsize=(max(7.5, width * len(architectures)), height * len(targets) + 0.4), dpi=100)
    axes = fig.subplots(len(targets), len(architectures), squeeze=False, sharey="row")
    return fig, axes, targets, architectures


def _log_size_axis(ax, sizes: Sequence[int]) -> None:
    ax.set_xscale("log")
    ax.set_xticks(list(sizes))
    ax.set_xticklabels([str(int(s)) for s in sizes], fontsize=8)
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("target size (points, log axis)", fontsize=8)
    ax.tick_params(axis="y", which="both", labelsize=8)
    ax.grid(alpha=0.3)


def _shared_legend(fig: Figure, axes: np.ndarray) -> int:
    """One legend under the panels, the union of every panel's labels: modes in first-seen order,
    then the baselines; as many columns as fit the figure's width. Returns its number of rows."""
    handles: dict[str, Any] = {}
    for ax in axes.ravel():
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    handles = dict(sorted(handles.items(), key=lambda item: item[0].endswith("(baseline)")))
    if not handles:
        return 0
    widest = max(len(label) for label in handles)  # about 0.065 in per character at 8 pt, plus the line
    columns = max(1, min(len(handles), int(fig.get_figwidth() // (0.6 + 0.065 * widest))))
    fig.legend(list(handles.values()), list(handles), loc="lower center", fontsize=8, frameon=False,
               ncols=columns)
    return math.ceil(len(handles) / columns)


def _finish(fig: Figure, title: str, legend_rows: int) -> Figure:
    """Title above, room for the legend below (in inches, so one row of panels and six look
    alike), then a tight layout."""
    fig.suptitle(title, fontsize=10, parse_math=False)
    legend = 0.15 + 0.2 * legend_rows
    fig.set_figheight(fig.get_figheight() + legend)
    height = fig.get_figheight()
    fig.tight_layout(rect=(0, legend / height, 1, 1 - 0.3 / height))
    return fig


def transfer_benefit_figure(agg: pd.DataFrame, metric: str = "mase") -> Figure:
    """The transfer-benefit curve: mean ``metric`` (over seeds) against target size on a log axis.

    One panel per architecture (and one row of panels per target), one line per mode, error bars
    the half-width of the 95% t-interval over seeds (``{metric}_ci95``, or computed from
    ``{metric}_std`` and ``n_seeds``; none with a single seed). Baselines (the same in every
    panel of a target) are grey dashed reference lines through their value at each size. Modes
    are nudged a little sideways so their error bars do not hide each other. The y-axis of a
    target's row is set by the models (with their error bars), the naive forecast and the best
    baseline at each size (:func:`_benefit_ylim`); a baseline beyond it (the mean forecast, often)
    is clipped at the edge and its legend entry says off-scale, with its range. ``agg`` is the
    output of :func:`benchmark.results.ranking.aggregate`.
    """
    from benchmark.results import stats  # scipy: ~1 s to import; the cell figures never need it

    mean = f"{metric}_mean"
    _check_aggregate(agg, [mean, "n_seeds"], "transfer_benefit_figure")
    if f"{metric}_ci95" in agg.columns:
        half = agg[f"{metric}_ci95"].to_numpy(dtype=float)
    elif f"{metric}_std" in agg.columns:
        half = stats.ci_half_width(agg[f"{metric}_std"].to_numpy(dtype=float), agg["n_seeds"].to_numpy(dtype=float))
    else:
        half = np.full(len(agg), np.nan)
    agg = agg.assign(_half=half)
    models = agg.loc[agg["architecture"] != _BASELINE]
    baselines = agg.loc[agg["architecture"] == _BASELINE]
    fig, axes, targets, architectures = _panels(agg, models)
    modes = _modes_in_order(models["mode"])
    colours = _mode_colours(modes)
    # [modes] multiplicative x offsets, symmetric around 1: about +-4% per neighbour on the log axis
    nudge = np.exp(0.04 * (np.arange(len(modes)) - (len(modes) - 1) / 2))
    for row, target in enumerate(targets):
        sizes = sorted(int(s) for s in agg.loc[agg["target"] == target, "target_size"].unique())
        low, high = _benefit_ylim(models.loc[models["target"] == target], baselines.loc[baselines["target"] == target],
                                  mean)
        for column, architecture in enumerate(architectures):
            ax = axes[row, column]
            for i, name in enumerate(sorted(baselines.loc[baselines["target"] == target, "mode"].unique())):
                part = baselines.loc[(baselines["target"] == target) & (baselines["mode"] == name)]
                part = part.sort_values("target_size")
                values = part[mean].to_numpy(dtype=float)
                off = bool(np.any((values > high) | (values < low)))
                label = (f"{name} (baseline, off-scale: {np.nanmin(values):.3g}-{np.nanmax(values):.3g})" if off
                         else f"{name} (baseline)")
                ax.plot(part["target_size"], np.clip(values, low, high),
                        linestyle=_BASELINE_STYLES[i % len(_BASELINE_STYLES)], color="#8c8c8c", linewidth=1.1,
                        marker="^" if off else "_", markersize=6 if off else 9, label=label, clip_on=False)
            panel = models.loc[(models["target"] == target) & (models["architecture"] == architecture)]
            for i, mode in enumerate(modes):
                part = panel.loc[panel["mode"] == mode].sort_values("target_size")
                if part.empty:
                    continue
                errors = part["_half"].to_numpy(dtype=float)
                ax.errorbar(part["target_size"].to_numpy(dtype=float) * nudge[i], part[mean],
                            yerr=np.where(np.isfinite(errors), errors, 0.0), color=colours[mode],
                            marker="o", markersize=4, linewidth=2.0 if mode == _SCRATCH else 1.4,
                            capsize=3, elinewidth=1.0, label=mode)
            if panel.empty:
                ax.text(0.5, 0.5, "no model rows", transform=ax.transAxes, ha="center", fontsize=9)
            _log_size_axis(ax, sizes)
            ax.set_title(f"{architecture} · {target}", fontsize=9, parse_math=False)
            if column == 0:
                ax.set_ylabel(f"{metric} (mean over seeds; lower is better)", fontsize=8)
        if np.isfinite([low, high]).all():
            axes[row, 0].set_ylim(low, high)  # the row shares its y axis
    return _finish(fig, f"Transfer benefit: {metric} against target size (error bars: 95% CI over seeds)",
                   _shared_legend(fig, axes))


def _benefit_ylim(models: pd.DataFrame, baselines: pd.DataFrame, mean: str) -> tuple[float, float]:
    """The y range of one target's transfer-benefit panels: the model means with their error bars
    (``_half``), the baselines of :data:`_AXIS_BASELINES` and the best (lowest) baseline at each
    size, plus 8% padding. A baseline far above the models (the mean forecast) would otherwise
    squeeze every mode into one band. (nan, nan) when there is nothing to scale by."""
    half = np.nan_to_num(models["_half"].to_numpy(dtype=float))
    values = [models[mean].to_numpy(dtype=float) - half, models[mean].to_numpy(dtype=float) + half,
              baselines.loc[baselines["mode"].isin(_AXIS_BASELINES), mean].to_numpy(dtype=float)]
    if not baselines.empty:
        values.append(baselines.groupby("target_size")[mean].min().to_numpy(dtype=float))
    finite = np.concatenate(values)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return math.nan, math.nan
    low, high = float(finite.min()), float(finite.max())
    pad = 0.08 * (high - low) if high > low else 0.05 * max(abs(high), 1e-9)
    return low - pad, high + pad


def training_time_figure(agg: pd.DataFrame) -> Figure:
    """Mean training time (seconds, over seeds) against target size, one line per mode, one panel
    per architecture (and one row per target), both axes logarithmic. Modes that train nothing
    (zero seconds, e.g. ``zeroshot``) cannot sit on a log axis: their legend entry says so.
    Baselines are left out (they do not train)."""
    _check_aggregate(agg, ["train_seconds_mean"], "training_time_figure")
    models = agg.loc[agg["architecture"] != _BASELINE]
    fig, axes, targets, architectures = _panels(agg, models)
    modes = _modes_in_order(models["mode"])
    colours = _mode_colours(modes)
    for row, target in enumerate(targets):
        sizes = sorted(int(s) for s in agg.loc[agg["target"] == target, "target_size"].unique())
        for column, architecture in enumerate(architectures):
            ax = axes[row, column]
            panel = models.loc[(models["target"] == target) & (models["architecture"] == architecture)]
            drawn = False
            for mode in modes:
                part = panel.loc[panel["mode"] == mode].sort_values("target_size")
                if part.empty:
                    continue
                seconds = part["train_seconds_mean"].to_numpy(dtype=float)
                positive = seconds > 0
                label = mode if positive.any() else f"{mode} (no training)"
                ax.plot(part["target_size"].to_numpy(dtype=float)[positive], seconds[positive], marker="o",
                        markersize=4, color=colours[mode], linewidth=2.0 if mode == _SCRATCH else 1.4,
                        label=label)
                drawn = drawn or bool(positive.any())
            if drawn:
                ax.set_yscale("log")
                # plain-text labels (the default formatter's are mathtext, which is not thread-safe)
                ax.yaxis.set_major_formatter(LogFormatter(labelOnlyBase=True))
                ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.4)))
            else:
                ax.text(0.5, 0.5, "no training time recorded", transform=ax.transAxes, ha="center", fontsize=9)
            _log_size_axis(ax, sizes)
            ax.set_title(f"{architecture} · {target}", fontsize=9, parse_math=False)
            if column == 0:
                ax.set_ylabel("training time (s, mean over seeds)", fontsize=8)
    return _finish(fig, "Training time per mode", _shared_legend(fig, axes))


def png_bytes(fig: Figure) -> bytes:
    """``fig`` as PNG bytes (100 dpi), to write to a file or embed in a page."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()
