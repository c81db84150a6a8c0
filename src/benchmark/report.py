"""Figures and the self-contained HTML report of a benchmark.

Figures: the forecast of one cell against the observed values, a cell's learning curves, the
transfer-benefit curve (metric against target size, one line per mode, one panel per
architecture) and the training time per mode. :func:`write_report` puts them, the aggregated
leaderboard, the winners per size and the transfer horizon into one ``report.html`` whose images
are embedded as base64 ``data:`` URIs: no scripts, fonts, style sheets or links to anything
outside the file (a Content-Security-Policy in the page makes the browser refuse any that slip
in), except the best cells' ``mlflow_run_id``, a plain link to the run in the MLflow UI when the
grid was tracked on a server. The PNG files are written beside it too.

Figures are built with ``matplotlib.figure.Figure`` directly (never pyplot), so cells and reports
running in threads can draw at once without sharing global state. They never use mathtext either
(its parser is shared and not thread-safe: two threads drawing log-axis labels such as
``$10^{1}$`` at once crash): log axes get plain-text tick labels and titles are not parsed as
math. A pure library: no MLflow import, no Prefect; :func:`write_grid_report` (a grid's report
in :func:`report_dir`) takes a tracker from its caller to fetch forecasts and log the files.

Regimes and feature sets: a model row whose ``regime`` is not ``stateless`` or whose ``features``
are not ``y`` is shown as its own *variant* of the architecture, e.g. ``lstm · stateful`` or
``lstm · y+hour_of_day`` (:func:`benchmark.ranking.fold_variants`): it gets its own panel,
its own rows in every table, and is compared with the scratch mode of the same variant.
"""

from __future__ import annotations

import io
import logging
import math
import re
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter, NullLocator

from benchmark.errors import TlbenchError
from benchmark.files import atomic_write
from benchmark.pages import CSP, CSS, esc, image, table, text
from benchmark.settings import Settings

log = logging.getLogger(__name__)

REPORT_FILE = "report.html"
TRANSFER_BENEFIT_FILE = "transfer_benefit.png"
TRAINING_TIME_FILE = "training_time.png"

_BASELINE = "baseline"
_SCRATCH = "scratch"
_PANEL_SIZE = (4.6, 3.4)  # inches per panel (width, height)
_BASELINE_STYLES = ((0, (5, 3)), (0, (1, 2)), (0, (6, 2, 1, 2)), (0, (3, 3, 1, 3, 1, 3)))
#: The baselines that always set the transfer-benefit chart's y-axis (with the models and the best
#: baseline at each size); any other baseline beyond that range is drawn clipped and marked off-scale.
_AXIS_BASELINES = ("naive",)
#: A cell's MLflow run page (leaderboard rows of a grid on a tracking server carry it).
RUN_URL = "mlflow_run_url"
#: The report's additions to the page style: long column names wrap in headers, so the widest
#: table (the aggregated leaderboard) fits a 1,600 px window.
_REPORT_CSS = "th { white-space: normal; overflow-wrap: anywhere; vertical-align: bottom; min-width: 3.2em; }"


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
        raise TlbenchError(f"{caller}() needs the output of benchmark.ranking.aggregate(); missing "
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
    output of :func:`benchmark.ranking.aggregate`.
    """
    from benchmark import stats

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


# --------------------------------------------------------------------------- best cells


def best_cells(rows: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """The leaderboard row to show as "the best cell" of each (target, target_size).

    The best (architecture, mode) is the one with the lowest mean ``metric`` over its seeds (the
    leaderboard's rank 1 among models); of its seeds, the row with the median ``metric`` (the
    lower one of the middle two for an even count) stands for it, so the plot shows a typical
    forecast of the winner rather than its luckiest seed. Baselines are never chosen.
    Returns full leaderboard rows (``mlflow_run_id`` says where its ``predictions.parquet``
    artifact is) plus ``group_mean``, sorted by target and size; empty when there are no
    model rows. Regime/feature variants compete as architectures of their own
    (:func:`benchmark.ranking.fold_variants`; their ``architecture`` comes back with the
    variant label). ``metric``: default :func:`benchmark.ranking.ranking_metric` of ``rows``.
    """
    from benchmark.ranking import fold_variants, ranking_metric

    metric = ranking_metric(rows) if metric is None else metric
    needed = ["target", "target_size", "architecture", "mode", "seed", metric]
    missing = [c for c in needed if c not in rows.columns]
    if missing:
        raise TlbenchError(f"best_cells() needs leaderboard rows (Leaderboard.read()); missing "
                           f"column(s) {', '.join(missing)}")
    rows = fold_variants(rows)
    models = rows.loc[rows["architecture"] != _BASELINE]
    if "kind" in models.columns:
        models = models.loc[models["kind"] != "source"]
    models = models.loc[np.isfinite(models[metric].to_numpy(dtype=float))]
    if models.empty:
        return rows.iloc[0:0].assign(group_mean=pd.Series(dtype="float64"))
    group = ["target", "target_size", "architecture", "mode"]
    means = models.groupby(group, sort=True)[metric].mean().rename("group_mean").reset_index()
    winners = (means.sort_values(["target", "target_size", "group_mean", "architecture", "mode"], kind="stable")
               .drop_duplicates(["target", "target_size"], keep="first"))
    chosen = []
    for winner in winners.itertuples(index=False):
        part = models.loc[(models["target"] == winner.target) & (models["target_size"] == winner.target_size)
                          & (models["architecture"] == winner.architecture) & (models["mode"] == winner.mode)]
        part = part.sort_values([metric, "seed"], kind="stable")
        chosen.append(part.iloc[[(len(part) - 1) // 2]].assign(group_mean=winner.group_mean))
    return pd.concat(chosen).sort_values(["target", "target_size"], kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------- the HTML report


def write_report(rows: pd.DataFrame, out_dir: Path, title: str,
                 forecasts: Mapping[Any, tuple[Sequence, np.ndarray, np.ndarray]] | None = None,
                 metric: str | None = None, agg: pd.DataFrame | None = None,
                 errors: Mapping[str, np.ndarray] | None = None) -> Path:
    """Write ``out_dir/report.html`` (self-contained) and its PNGs beside it; returns the HTML path.

    ``rows``: leaderboard rows (:meth:`benchmark.leaderboard.Leaderboard.read`), normally one
    grid run; they are aggregated here. ``forecasts``: optional ``{size: (ds, observed,
    predicted)}`` (1-d arrays over the test segment, original scale) for the best cell of each
    size (:func:`best_cells` says which; with several targets key them by ``(target, size)``).
    The page holds the transfer-benefit curve, the winners per size, the transfer horizon, the
    training time per mode, the best cell per size (and its forecast when given) and the
    aggregated leaderboard. Every file is written to a hidden temporary name and renamed, so a
    reader never sees half a report; forecast PNGs of an earlier report that this one does not
    have are removed, so the folder holds exactly the report's files. ``agg``: the rows'
    :func:`benchmark.ranking.aggregate` by ``metric`` when the caller has it already.
    ``errors``: ``{cell_key: per-origin errors}`` (:meth:`Leaderboard.read_errors`) for the
    Diebold-Mariano comparisons. The page opens with the verdict, the baselines in it
    (:mod:`benchmark.report_verdicts`).
    """
    from benchmark.report_verdicts import verdict_figures

    from benchmark.ranking import aggregate, fold_variants, ranking_metric

    if rows is None or len(rows) == 0:
        raise TlbenchError(f"No leaderboard rows to report on for {title!r}: run the grid first, or "
                           "loosen the filters (tlbench leaderboard shows what there is)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if metric is None:  # the caller's aggregate's, else the rows' protocol's (ett_standard: mse_z)
        metric = str(agg["metric"].iloc[0]) if agg is not None and len(agg) else ranking_metric(rows)
    best = best_cells(rows, metric)
    rows = fold_variants(rows)  # after best_cells, which folds them itself
    agg = aggregate(rows, metric) if agg is None else agg

    figures = [("transfer-benefit", TRANSFER_BENEFIT_FILE, transfer_benefit_figure(agg, metric)),
               ("training-time", TRAINING_TIME_FILE, training_time_figure(agg)),
               *verdict_figures(agg, metric)]
    # [(target or "", size)] order: by target, then size, whichever way the keys are spelled
    for key in sorted(forecasts or {}, key=lambda k: k if isinstance(k, tuple) else ("", k)):
        ds, observed, predicted = forecasts[key]
        name = "-".join(str(part) for part in (key if isinstance(key, tuple) else (key,)))
        slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        figures.append((f"forecast-{slug}", f"forecast_{slug}.png",
                        forecast_figure(ds, observed, predicted, title=_forecast_title(key, best, metric))))
    images = {}
    for element_id, filename, fig in figures:
        png = _png_bytes(fig)
        atomic_write(out_dir / filename, png)
        images[element_id] = (filename, png)

    page = _render(title, rows, agg, best, images, metric, errors or {})
    path = out_dir / REPORT_FILE
    atomic_write(path, page)
    written = {filename for filename, _ in images.values()}
    for stale in out_dir.glob("forecast_*.png"):  # an earlier report's sizes: the folder matches the page
        if stale.name not in written:
            stale.unlink(missing_ok=True)
    return path


def _forecast_title(key: Any, best: pd.DataFrame, metric: str) -> str:
    target, size = key if isinstance(key, tuple) else (None, key)
    match = best.loc[best["target_size"] == size] if "target_size" in best.columns else best
    if target is not None:
        match = match.loc[match["target"] == target]
    if len(match) != 1:
        return f"n={size}" if target is None else f"{target} n={size}"
    row = match.iloc[0]
    return (f"{row['target']} n={int(row['target_size'])}: best {row['architecture']}/{row['mode']} "
            f"(seed {int(row['seed'])}, {metric} {row[metric]:.4g}; mean over seeds {row['group_mean']:.4g})")


def _png_bytes(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def _render(title: str, rows: pd.DataFrame, agg: pd.DataFrame, best: pd.DataFrame,
            images: Mapping[str, tuple[str, bytes]], metric: str, errors: Mapping[str, np.ndarray]) -> str:
    from benchmark.ranking import transfer_horizon, winners
    from benchmark.report_verdicts import comparisons_for, evidence_sections, headline_section, source_section

    wins, horizon = winners(agg, metric), transfer_horizon(agg)
    mean, ci = f"{metric}_mean", f"{metric}_ci95"
    comparisons = comparisons_for(agg, rows, errors, metric)
    sections = [f"<h1>{esc(title)}</h1>", headline_section(agg, metric, comparisons, rows), _provenance(rows, metric),
                source_section(rows)]

    sections += ["<h2>Transfer benefit</h2>", image(images, "transfer-benefit", (
        f"Mean {metric} over seeds against the target size (log axis), one line per transfer mode and one "
        "panel per architecture. Error bars: 95% t-interval of the mean over seeds (none with one seed). "
        "Grey dashed lines: baselines at each size. Lower is better."))]

    sections += evidence_sections(agg, comparisons, metric, images)
    sections += ["<h2>Best mode per architecture and size</h2>",
                 "<p class='note'>Per target, size and architecture: the mode with the lowest mean "
                 f"{esc(metric)}, its improvement over training from scratch and whether that is significant "
                 "(paired test over seeds, p &lt; 0.05), and whether it also beats the best baseline "
                 "at that size (<em>beats_baselines</em>).</p>",
                 table(wins, ["target", "target_size", "architecture", "best_mode", mean, "scratch_mean",
                              "improvement_vs_scratch_pct", "p_value_vs_scratch", "significant",
                              "best_baseline", "best_baseline_mean", "beats_baselines", "n_seeds"])]

    sections += ["<h2>Transfer horizon</h2>",
                 "<p class='note'>Up to which target size each transfer mode still beats scratch "
                 f"({esc(horizon['rule'].iloc[0]) if len(horizon) else 'no transfer modes to compare'}); "
                 "<em>sizes_above_baselines</em>: the helping sizes where it also beats every baseline.</p>",
                 table(horizon, ["target", "architecture", "mode", "largest_helping_size",
                                 "smallest_non_helping_size", "helping_sizes", "sizes_above_baselines",
                                 "sizes", "rule"])]

    sections += ["<h2>Training time</h2>", image(images, "training-time", (
        "Mean training time per mode (seconds, log axes); pretraining is not included."))]

    sections += ["<h2>Best model cell per size</h2>",
                 "<p class='note'>The (architecture, mode) with the lowest mean "
                 f"{esc(metric)} at each size among the models, shown by its median seed; the verdict at the "
                 "top says whether it beats the baselines.</p>",
                 _linked_runs(table(best, ["target", "target_size", "architecture", "mode", "seed", metric,
                                           "group_mean", "mlflow_run_id"]), best)]
    for element_id in images:
        if element_id.startswith("forecast-"):
            sections.append(image(images, element_id, "Observed (dark) and forecast (red) over the test segment."))

    columns = ["target", "target_size", "architecture", "mode", "n_seeds", mean, ci, "rank",
               "improvement_vs_scratch_pct", "p_value_vs_scratch", "test_vs_scratch", "skill_vs_seasonal_naive",
               *[f"{m}_mean" for m in ("smape", "mae", "rmse") if m != metric], "train_seconds_mean"]
    sections += ["<h2>Aggregated leaderboard</h2>",
                 f"<p class='note'>One row per (target, size, architecture, mode); statistics over seeds. "
                 f"Rank 1 = lowest mean {esc(metric)} at that size, baselines included (highlighted).</p>",
                 table(agg, columns, highlight=agg["rank"].eq(1).fillna(False).to_numpy(dtype=bool))]

    return ("<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
            f"<meta http-equiv='Content-Security-Policy' content=\"{CSP}\">\n"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>\n"
            f"<title>{esc(title)}</title>\n<style>{CSS}{_REPORT_CSS}</style>\n</head>\n<body>\n"
            + "\n".join(sections) + "\n</body>\n</html>\n")


def _linked_runs(html_table: str, best: pd.DataFrame) -> str:
    """The best-cells table with each ``mlflow_run_id`` a link to its run in the MLflow UI (rows
    with a :data:`RUN_URL`, i.e. tracked on a server), then a note on how to open the runs."""
    urls = {}
    if RUN_URL in best.columns:
        urls = {run: url for run, url in zip(best["mlflow_run_id"], best[RUN_URL])
                if isinstance(run, str) and isinstance(url, str) and url.startswith(("http://", "https://"))}
    for run, url in urls.items():  # run ids are unique hex strings: one cell each
        html_table = html_table.replace(f"<td>{esc(run)}</td>", f"<td><a href='{esc(url)}'>{esc(run)}</a></td>")
    if urls:
        note = "<em>mlflow_run_id</em> links to the cell's run in the MLflow UI."
    else:
        note = ("<em>mlflow_run_id</em>: the cell's MLflow run in a local tracking store; <code>tlbench ui</code> "
                "serves it (then search the id in the experiment's runs).")
    return html_table + f"<p class='note'>{note}</p>"


def _provenance(rows: pd.DataFrame, metric: str) -> str:
    def values(column: str, limit: int = 8, models_only: bool = False) -> str:
        if column not in rows.columns:
            return "-"
        part = rows.loc[rows["architecture"] != _BASELINE] if models_only else rows
        if "kind" in part.columns:  # the source rows have their own section
            part = part.loc[part["kind"] != "source"]
        found = [text(v) for v in sorted(part[column].dropna().unique())]
        shown = ", ".join(found[:limit]) + (f" (+{len(found) - limit} more)" if len(found) > limit else "")
        return shown or "-"

    kinds = rows["kind"].value_counts() if "kind" in rows.columns else pd.Series(dtype=int)
    finished = rows["finished_at"].max() if "finished_at" in rows.columns else None
    items = [("grid", values("grid")), ("grid id", values("grid_id")), ("runs", values("run_id")),
             ("run dates", values("run_date")),
             ("rows", f"{int(kinds.get('model', 0))} model cells, {int(kinds.get('baseline', 0))} baseline rows, "
                      f"{int(kinds.get('source', 0))} source rows"),
             ("targets", values("target")),
             ("target sizes", values("target_size")),
             ("architectures", values("architecture", models_only=True)),
             ("modes", values("mode", models_only=True)),
             ("regimes", values("regime", models_only=True)),
             ("feature sets", values("features", models_only=True)),
             ("seeds", values("seed", models_only=True)),
             ("ranking metric", metric), ("package", values("package_version")), ("git commit", values("git_commit")),
             ("last cell finished", text(finished) + " UTC" if finished is not None else "-")]
    return "<dl class='meta'>" + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items) + "</dl>"


# --------------------------------------------------------------------------- a grid's report


def report_dir(settings: Settings, grid: str) -> Path:
    """Where a grid's report goes: ``<results>/reports/<grid>/`` (:meth:`Settings.local_dir`:
    beside the MLflow store when the results live on an object store; the copy logged to the
    parent MLflow run is then the shared one)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", grid).strip("._") or "grid"
    return settings.local_dir("reports", name)


def write_grid_report(rows: pd.DataFrame, settings: Settings, grid: str, tracker=None,
                      parent_run_id: str | None = None, out_dir: Path | None = None,
                      agg: pd.DataFrame | None = None) -> Path:
    """The HTML report of ``rows`` (one grid), in ``out_dir`` or :func:`report_dir`.

    With a tracker (:class:`benchmark.tracking.Tracker`), the forecast of the best cell per size
    (:func:`best_cells`) is fetched from its MLflow run's ``predictions.parquet``; with a parent
    run too, the report and its PNGs are logged under that run's ``report/`` artifacts. Returns
    the HTML path.
    """
    forecasts = {}
    best = best_cells(rows) if tracker is not None else rows.iloc[0:0]
    several_targets = best["target"].nunique() > 1
    for cell in best.itertuples(index=False):
        if not isinstance(cell.mlflow_run_id, str):
            continue
        try:
            frame = tracker.load_frame(cell.mlflow_run_id, "predictions.parquet")
        except Exception as exc:  # noqa: BLE001 - a missing artifact costs one plot, not the report
            log.warning("report: no predictions for %s n=%s (run %s): %s", cell.target, cell.target_size,
                        cell.mlflow_run_id, exc)
            continue
        key = (cell.target, int(cell.target_size)) if several_targets else int(cell.target_size)
        forecasts[key] = (frame["ds"].to_numpy(), frame["y"].to_numpy(), frame["y_pred"].to_numpy())
    from benchmark.leaderboard import Leaderboard

    errors = Leaderboard(settings.results).read_errors(rows["cell_key"].tolist())
    from benchmark.report_verdicts import source_baselines  # the source section's statistical baselines

    extra = source_baselines(Leaderboard(settings.results), rows)
    rows = pd.concat([rows, extra], ignore_index=True) if len(extra) else rows
    if tracker is not None and "mlflow_run_id" in rows.columns:  # links from the report to the runs
        rows = rows.assign(**{RUN_URL: [tracker.run_url(run) if isinstance(run, str) else None
                                        for run in rows["mlflow_run_id"]]})
    path = write_report(rows, out_dir or report_dir(settings, grid), f"tlbench report: grid {grid}",
                        forecasts, agg=agg, errors=errors)
    if tracker is not None and parent_run_id:
        for file in sorted(path.parent.iterdir()):
            if file.is_file() and not file.name.startswith("."):
                tracker.log_file(parent_run_id, file, "report")
    return path
