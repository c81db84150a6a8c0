"""The self-contained HTML report of a set of leaderboard rows, and the best cell it shows per size.

:func:`write_report` puts the figures (:mod:`benchmark.report.figures`), the aggregated
leaderboard, the winners per size and the transfer horizon into one ``report.html`` whose images
are embedded as base64 ``data:`` URIs: no scripts, fonts, style sheets or links to anything
outside the file (a Content-Security-Policy in the page makes the browser refuse any that slip
in), except the best cells' ``mlflow_run_id``, a plain link to the run in the MLflow UI when the
grid was tracked on a server. The PNG files are written beside it too. A pure library: no MLflow
import, no Prefect.

Regimes and feature sets: a model row whose ``regime`` is not ``stateless`` or whose ``features``
are not ``y`` is shown as its own *variant* of the architecture, e.g. ``lstm · stateful`` or
``lstm · y+hour_of_day`` (:func:`benchmark.results.ranking.fold_variants`): it gets its own panel,
its own rows in every table, and is compared with the scratch mode of the same variant.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.report.figures import forecast_figure, png_bytes, training_time_figure, transfer_benefit_figure
from benchmark.report.pages import CSP, CSS, esc, image, table, text
from benchmark.report.paths import REPORT_FILE, TRAINING_TIME_FILE, TRANSFER_BENEFIT_FILE
from benchmark.report.verdicts import (
    comparisons_for,
    evidence_sections,
    headline_section,
    source_section,
    verdict_figures,
)
from benchmark.results.ranking import aggregate, fold_variants, ranking_metric, transfer_horizon, winners
from benchmark.results.transfer import transfer_sentences
from benchmark.spec.errors import TlbenchError
from benchmark.spec.files import atomic_write

_BASELINE = "baseline"
#: A cell's MLflow run page (leaderboard rows of a grid on a tracking server carry it).
RUN_URL = "mlflow_run_url"
#: The report's additions to the page style: long column names wrap in headers, so the widest
#: table (the aggregated leaderboard) fits a 1,600 px window.
_REPORT_CSS = "th { white-space: normal; overflow-wrap: anywhere; vertical-align: bottom; min-width: 3.2em; }"


def best_cells(rows: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """The leaderboard row to show as "the best cell" of each (target, target_size).

    The best (architecture, mode) is the one with the lowest mean ``metric`` over its seeds (the
    leaderboard's rank 1 among models); of its seeds, the row with the median ``metric`` (the
    lower one of the middle two for an even count) stands for it, so the plot shows a typical
    forecast of the winner rather than its luckiest seed. Baselines are never chosen.
    Returns full leaderboard rows (``mlflow_run_id`` says where its ``predictions.parquet``
    artifact is) plus ``group_mean``, sorted by target and size; empty when there are no
    model rows. Regime/feature variants compete as architectures of their own
    (:func:`benchmark.results.ranking.fold_variants`; their ``architecture`` comes back with the
    variant label). ``metric``: default :func:`benchmark.results.ranking.ranking_metric` of ``rows``.
    """
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

    ``rows``: leaderboard rows (:meth:`benchmark.results.leaderboard.Leaderboard.read`), normally one
    grid run; they are aggregated here. ``forecasts``: optional ``{size: (ds, observed,
    predicted)}`` (1-d arrays over the test segment, original scale) for the best cell of each
    size (:func:`best_cells` says which; with several targets key them by ``(target, size)``).
    The page holds the transfer-benefit curve, the winners per size, the transfer horizon, the
    training time per mode, the best cell per size (and its forecast when given) and the
    aggregated leaderboard. Every file is written to a hidden temporary name and renamed, so a
    reader never sees half a report; forecast PNGs of an earlier report that this one does not
    have are removed, so the folder holds exactly the report's files. ``agg``: the rows'
    :func:`benchmark.results.ranking.aggregate` by ``metric`` when the caller has it already.
    ``errors``: ``{cell_key: per-origin errors}`` (:meth:`Leaderboard.read_errors`) for the
    Diebold-Mariano comparisons. The page opens with the verdict, the baselines in it
    (:mod:`benchmark.report.verdicts`).
    """
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
        png = png_bytes(fig)
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


def _render(title: str, rows: pd.DataFrame, agg: pd.DataFrame, best: pd.DataFrame,
            images: Mapping[str, tuple[str, bytes]], metric: str, errors: Mapping[str, np.ndarray]) -> str:
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

    curve = transfer_sentences(comparisons, rows.loc[rows["kind"] == "source"] if "kind" in rows.columns else None)
    sections += ["<h2>Transfer horizon</h2>",
                 *(f"<p class='verdict'>{esc(line)}</p>" for line in curve),
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
