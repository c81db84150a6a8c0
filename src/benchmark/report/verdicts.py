"""The report's verdict sections (issue #16): the headline that names the baselines, the
pretrained body on its source, skill against the baselines, pairwise win rates (table and heat
map) and the Diebold-Mariano forecast comparisons. HTML and one figure; the numbers come from
:mod:`benchmark.results.verdicts`.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from benchmark.report.pages import esc, image, table
from benchmark.results import verdicts

WIN_RATES_FILE = "win_rates.png"


def comparisons_for(agg: pd.DataFrame, rows: pd.DataFrame, errors: Mapping[str, np.ndarray],
                    metric: str) -> pd.DataFrame:
    """The report's Diebold-Mariano comparisons (:func:`benchmark.results.verdicts.forecast_comparisons`),
    each model tested against the baseline its verdict names, and the verdict's model against the
    naive forecast where that is another baseline; empty without per-origin errors."""
    if not errors:
        return pd.DataFrame()
    return verdicts.forecast_comparisons(rows, errors, baselines=verdicts.verdict_baselines(agg, metric),
                                         anchors=verdicts.verdict_anchors(agg, metric))


def headline_section(agg: pd.DataFrame, metric: str, comparisons: pd.DataFrame | None = None,
                     rows: pd.DataFrame | None = None) -> str:
    """The verdict sentences, first thing on the page, each with its Diebold-Mariano test when
    ``comparisons`` (:func:`comparisons_for`) has it; then, when ``rows`` hold a body scored on its
    source, whether that body beats the source's best baseline (:func:`source_verdicts`), so the
    first screen says whether the body was worth transferring."""
    lines = verdicts.headline(agg, metric, comparisons)
    if rows is not None:
        lines += source_verdicts(_source_rows(rows))
    items = "".join(f"<li>{esc(line)}</li>" for line in lines) or "<li>(no finished cells)</li>"
    return ("<h2 id='verdict'>Verdict</h2><ul class='verdict'>" + items + "</ul>"
            f"<p class='note'>Every model (architecture/mode, mean {esc(metric)} over seeds) against every "
            "baseline on the same test origins; the test of the best model against the best baseline (and "
            f"against {esc(verdicts.ANCHOR)}, where the best baseline is another) is "
            "a Diebold-Mariano test on squared per-origin errors (see below). A transfer mode that beats "
            "scratch but not the naive forecast has not earned its place.</p>")


def source_section(rows: pd.DataFrame) -> str:
    """The pretrained bodies on their source's own protocol (M4), next to seasonal naive, Naive2
    and the statistical baselines (:func:`source_baselines`), with :func:`source_verdicts`."""
    source = _source_rows(rows)
    if source.empty:
        return ("<h2>The pretrained body on its source</h2><p class='note'>No body of this grid was scored on "
                "its source (a subset of the source, a pinned version, or no transfer mode); run "
                "<code>tlbench evaluate-source --model ...</code>.</p>")
    shown = source.assign(model=np.where(source["architecture"] == "baseline", source["mode"],
                                         source["architecture"] + "/" + source["mode"]))
    is_baseline = (source["architecture"] == "baseline").to_numpy()
    shown = shown.assign(normalisation=shown["normalisation"].where(~is_baseline, None),
                         lookback=shown["lookback"].astype(object).where(~is_baseline, None),
                         pretrain_seed=shown["pretrain_seed"].astype(object).where(~is_baseline, None))
    shown = shown.drop_duplicates(["target", "model", "pretrain_seed", "normalisation", "lookback"])
    shown = shown.sort_values(["target", "owa"], kind="stable")
    return ("<h2>The pretrained body on its source</h2>"
            "<p class='note'>Each body pretrained for this grid, scored on its source's own test "
            "(M4 Hourly: 48 steps ahead, all 414 series; OWA relative to Naive2, below 1 beats it), next "
            "to the statistical baselines scored there by <code>tlbench evaluate-source --method</code>. "
            "Transfer a body that loses to seasonal naive here with care.</p>"
            + "".join(f"<p class='verdict'>{esc(line)}</p>" for line in source_verdicts(source))
            + table(shown, ["target", "model", "pretrain_seed", "normalisation", "lookback", "horizon",
                            "smape", "mase", "owa", "target_size"]))


def _source_rows(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.loc[rows["kind"] == "source"] if "kind" in rows.columns else rows.iloc[0:0]


def source_verdicts(source: pd.DataFrame) -> list[str]:
    """Per source target: which baselines scored there the best pretrained body beats and which it
    does not (by OWA), in words, e.g. ``The pretrained body lstm/pretrained (OWA 0.626) beats Naive2
    (1.000) but not MSTL (0.604) on m4/Hourly.``"""
    lines = []
    for target, (body, baselines) in verdicts.source_standings(source).items():
        if baselines.empty:
            continue
        beaten = baselines.loc[baselines["owa"] > body["owa"]]
        unbeaten = baselines.loc[baselines["owa"] <= body["owa"]]
        if unbeaten.empty:
            verb = f"beats every baseline, the best of them {_named(beaten.iloc[:1], 'and')},"
        elif beaten.empty:
            verb = f"does not beat {_named(unbeaten, 'or')}"
        else:
            verb = f"beats {_named(beaten, 'and')} but not {_named(unbeaten, 'or')}"
        lines.append(f"The pretrained body {body['architecture']}/{body['mode']} (OWA {body['owa']:.3f}) {verb} "
                     f"on {target}.")
    return lines


def _named(baselines: pd.DataFrame, conjunction: str) -> str:
    """``MSTL (0.604), seasonal naive forecast (0.628) or Naive2 (1.000)``: baselines in words with their OWA."""
    names = [f"{verdicts.BASELINE_WORDS.get(b.mode, str(b.mode)).removeprefix('the ')} ({b.owa:.3f})"
             for b in baselines.itertuples()]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} {conjunction} {names[-1]}"


def source_baselines(board, rows: pd.DataFrame) -> pd.DataFrame:
    """The latest ``tlbench evaluate-source --method`` rows (grid ``evaluate-source``, kind
    ``source``, architecture ``baseline``) of the sources that ``rows`` score a body on: what
    the source section shows next to the bodies. ``board``: a :class:`benchmark.results.leaderboard.Leaderboard`."""
    targets = rows.loc[rows["kind"] == "source", "target"].unique().tolist() if "kind" in rows.columns else []
    if not targets:
        return rows.iloc[0:0]
    found = board.read(grid="evaluate-source", kind="source", architecture="baseline", target=targets)
    if found.empty:
        return found
    found = found.sort_values("finished_at", kind="stable").drop_duplicates(["target", "mode"], keep="last")
    return found.loc[~found["mode"].isin(rows.loc[rows["kind"] == "source", "mode"])]  # the grid's own first


def win_rate_figure(rates: pd.DataFrame) -> Figure:
    """Heat map of :func:`benchmark.results.verdicts.win_rate_table` (row beats column), 0 to 1."""
    n = max(1, len(rates))
    fig = Figure(figsize=(2.5 + 0.55 * n, 1.8 + 0.45 * n))
    ax = fig.add_subplot(1, 1, 1)
    values = rates.to_numpy(float) if len(rates) else np.zeros((1, 1))
    shown = ax.imshow(np.ma.masked_invalid(values), cmap="RdYlGn", vmin=0.0, vmax=1.0)
    labels = list(rates.index)
    ax.set_xticks(range(len(labels)), labels=labels, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(labels)), labels=labels, fontsize=7)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            if np.isfinite(values[i, j]):
                ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=6)
    ax.set_xlabel("against", fontsize=8)
    ax.set_title("share of (target, size) units where the row beats the column", fontsize=8)
    fig.colorbar(shown, ax=ax, fraction=0.04)
    fig.tight_layout()
    return fig


def evidence_sections(agg: pd.DataFrame, comparisons: pd.DataFrame, metric: str,
                      images: Mapping[str, tuple[str, bytes]]) -> list[str]:
    """Skill against the baselines, win rates (with the heat map in ``images['win-rates']``) and
    the Diebold-Mariano ``comparisons`` (:func:`comparisons_for`)."""
    sections = ["<h2>Skill against the baselines</h2>",
                f"<p class='note'>Geometric mean over (target, size) of each model's mean {esc(metric)} divided "
                "by the reference baseline's, with a bootstrap 95% interval over (target, size); skill = 1 - "
                f"ratio (above 0: better than the reference). {esc(verdicts.BEST_BASELINE)}: in each (target, "
                "size), the baseline with the lowest mean there.</p>"]
    for reference in (verdicts.BEST_BASELINE, "seasonal_naive", "naive"):  # best: of all the grid's baselines
        summary = verdicts.ratio_summary(agg, reference=reference, metric=metric)
        if len(summary):
            which = _best_baselines_named(agg, metric) if reference == verdicts.BEST_BASELINE else ""
            sections += [f"<h3>against {esc(reference)}{esc(which)}</h3>",
                         table(summary, ["architecture", "mode", "n_units", "geomean_ratio", "ci_low", "ci_high",
                                         "skill"])]
    rates = verdicts.win_rate_table(agg, metric)
    sections += ["<h2>Win rates</h2>",
                 "<p class='note'>Share of (target, size) units where the row's mean "
                 f"{esc(metric)} is lower than the column's (ties count half), baselines included.</p>"]
    if len(rates):
        sections.append(image(images, "win-rates", "Pairwise win rates: green, the row wins."))
        sections.append(table(rates.reset_index(), ["method", *rates.columns]))
    sections.append("<h2>Forecast comparisons (Diebold-Mariano)</h2>")
    if comparisons.empty:
        sections.append("<p class='note'>No per-origin errors to compare (rows written before they "
                        "were kept, or no model or no baseline in the grid).</p>")
        return sections
    sections += [f"<p class='note'>Each model against the best baseline (the verdict's, by mean {esc(metric)}), the verdict's "
                 f"model also against {esc(verdicts.ANCHOR)} where the best baseline is another, and "
                 "each transfer mode against its scratch, on the "
                 "squared per-origin errors of the test segment: Diebold-Mariano with the Harvey-Leybourne-"
                 "Newbold small-sample correction, autocovariance lags set by the horizon, per seed and "
                 "pooled over seeds (each origin's error averaged over seeds). Multiple comparisons: "
                 f"{esc(verdicts.CORRECTION)}; significant = Holm-adjusted p &lt; {verdicts.SIGNIFICANCE:g}; "
                 "holm_family: how many tests that p was adjusted over (a mode or a baseline more in the grid "
                 "adds tests and moves every adjusted p). "
                 "A negative difference means the mode is more accurate.</p>",
                 table(comparisons, ["target", "target_size", "architecture", "mode", "against", "seed",
                                     "n_origins", "mean_loss_difference", "statistic", "p_value", "p_holm",
                                     "holm_family", "significant"])]
    return sections


def _best_baselines_named(agg: pd.DataFrame, metric: str) -> str:
    """``: ets at ETTh2:OT 720; mstl at ETTh1:OT 720, ETTh1:OT 8640``: the best baseline where."""
    where: dict[str, list[str]] = {}
    for (target, size), name in verdicts.verdict_baselines(agg, metric).items():
        where.setdefault(name, []).append(f"{target} {size}")
    return ": " + "; ".join(f"{name} at {', '.join(units)}" for name, units in sorted(where.items())) if where else ""


def verdict_figures(agg: pd.DataFrame, metric: str) -> list[tuple[str, str, Figure]]:
    """``(element id, file name, figure)`` of the verdict sections (the win-rate heat map)."""
    rates = verdicts.win_rate_table(agg, metric)
    return [("win-rates", WIN_RATES_FILE, win_rate_figure(rates))] if len(rates) else []
