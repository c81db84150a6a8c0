"""Verdicts that hold up: what a reader acts on, with the baselines in every one of them.

Pure functions over leaderboard frames (the aggregate of :func:`benchmark.results.ranking.aggregate` and
the per-seed rows) and per-origin forecast errors; no files, no logging. What each answers:

* :func:`baseline_verdicts`: per (target, size), does any model beat every baseline, and the
  sentence that says so (``No model beats the naive forecast on ETTh1:OT at 240 points: naive MASE
  0.207, best model lstm/finetune 0.280``). The report's first lines, ``tlbench leaderboard`` and
  the Prefect artifact print these sentences.
* :func:`ratio_summary`: per (architecture, mode), the geometric mean over (target, size) of its
  error relative to a reference baseline, with a bootstrap 95% interval
  (:func:`benchmark.results.stats.geometric_mean_ratio`); below 1 is better than the reference.
* :func:`win_rate_table`: pairwise win rates between (architecture, mode) pairs and the
  baselines over (target, size) units (:func:`benchmark.results.stats.win_rates`).
* :func:`forecast_comparisons`: Diebold-Mariano tests (HLN-corrected) of each transfer mode's
  per-origin errors against its scratch and against the best baseline (the verdict's model also
  against the naive forecast, :data:`ANCHOR`, where the best baseline is another), per seed and pooled over
  seeds (each origin's squared error averaged over the seeds first, which keeps the time order
  the test assumes), with Holm's correction over the grid's comparisons (:data:`CORRECTION`); every
  adjusted p is quoted with its family's size (``Holm p 0.042 (family of 14)``), since adding a
  mode or a baseline to a grid adds tests to the family and moves every adjusted p.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import pandas as pd

from benchmark.results import stats

BASELINE, SCRATCH = "baseline", "scratch"
#: How the report and the CLI name a baseline in a sentence.
BASELINE_WORDS = {"naive": "the naive forecast", "seasonal_naive": "the seasonal naive forecast",
                  "naive2": "Naive2", "mean": "the mean forecast", "ets": "ETS (AutoETS)",
                  "theta": "Theta (AutoTheta)", "mstl": "MSTL", "mstl_every_origin": "MSTL (refitted at every origin)",
                  "arima": "ARIMA (AutoARIMA)"}
#: :func:`ratio_summary`'s reference that is, per (target, size), the best of all baselines there.
BEST_BASELINE = "best_baseline"
#: The family-wise correction the forecast comparisons use (named in the report).
CORRECTION = ("Holm over the grid's comparisons, one test each (pooled over seeds, or the one seed's); "
              "the per-seed tests behind a pooled one form a family of their own")
SIGNIFICANCE = 0.05
#: The baseline a verdict's model is also tested against when the verdict names another: the naive
#: forecast (repeat-last-value), the one a forecaster checks first; a best baseline may only mimic it,
#: as ``ets`` does on ETTh1 (forecasts within 0.06 degrees of naive's).
ANCHOR = "naive"


def _metric(agg: pd.DataFrame, metric: str | None) -> str:
    """``metric``, or the one ``agg`` was ranked by (its ``metric`` column; MASE when it has none)."""
    if metric is not None:
        return metric
    return str(agg["metric"].iloc[0]) if "metric" in agg.columns and len(agg) else "mase"


def _method(row) -> str:
    return f"{row['architecture']}/{row['mode']}"


def _number(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else "n/a"


def baseline_verdicts(agg: pd.DataFrame, metric: str | None = None,
                      comparisons: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per (target, target_size): the best model and the best baseline by mean ``metric`` (the
    aggregate's ranking metric by default), whether the model beats every baseline, its skill
    against the best baseline (``1 - model / baseline``) and the ``sentence`` that says it.

    Columns: target, target_size, metric, best_model, model_mean, best_baseline, baseline_mean,
    model_beats_baselines, skill_vs_best_baseline, p_holm, holm_family, p_holm_anchor, sentence. A size with no model rows (or no
    baseline rows) says so in its sentence and has ``model_beats_baselines`` False (or True).
    ``comparisons`` (:func:`forecast_comparisons`, tested against these best baselines: pass
    :func:`verdict_baselines`): the Diebold-Mariano test of the best model against the best
    baseline (pooled over seeds where there are several) ends the sentence and gives ``p_holm``,
    so the verdict says whether the difference is real and which way (on squared errors), e.g.
    ``...; Diebold-Mariano against naive, pooled over 3 seeds: Holm p 0.0001 (family of 14),
    lstm/scratch significantly better.`` (``holm_family``: the size of that test's Holm family).
    """
    metric = _metric(agg, metric)
    mean = f"{metric}_mean"
    label = metric.upper() if metric in ("mase", "mae", "mse", "rmse", "mape", "smape") else metric
    rows = []
    for (target, size), model, baseline, anchor in _verdict_pairs(agg, mean):
        where = f"on {target} at {int(size)} points"
        if model is None:
            sentence, beats, skill = f"No model finished {where}.", False, math.nan
        elif baseline is None:
            sentence = (f"Best model {where}: {_method(model)}, {label} {_number(model[mean])} "
                        "(no baseline to compare with).")
            beats, skill = True, math.nan
        else:
            skill = float(stats.skill_score(model[mean], baseline[mean]))
            words = BASELINE_WORDS.get(baseline["mode"], f"the {baseline['mode']} baseline")
            beats = bool(model[mean] < baseline[mean])
            if beats:
                sentence = (f"{_method(model)} beats every baseline {where}: {label} "
                            f"{_number(model[mean])} against {baseline['mode']} {_number(baseline[mean])} "
                            f"(skill {100 * skill:.1f}%).")
            else:
                sentence = (f"No model beats {words} {where}: {baseline['mode']} {label} "
                            f"{_number(baseline[mean])}, best model {_method(model)} {_number(model[mean])}.")
        test = _verdict_test(comparisons, target, size, model, baseline)
        if test is not None:
            sentence = f"{sentence[:-1]}; {test[1]}."
        also = _verdict_test(comparisons, target, size, model, anchor,
                             named=f"{ANCHOR} ({label} {_number(anchor[mean])})" if anchor is not None else "")
        if also is not None:
            sentence = f"{sentence[:-1]}; {also[1]}."
        rows.append(dict(target=target, target_size=int(size), metric=metric,
                         best_model=_method(model) if model is not None else None,
                         model_mean=float(model[mean]) if model is not None else math.nan,
                         best_baseline=baseline["mode"] if baseline is not None else None,
                         baseline_mean=float(baseline[mean]) if baseline is not None else math.nan,
                         model_beats_baselines=beats, skill_vs_best_baseline=skill,
                         p_holm=test[0] if test is not None else math.nan,
                         holm_family=test[2] if test is not None else 0,
                         p_holm_anchor=also[0] if also is not None else math.nan, sentence=sentence))
    columns = ["target", "target_size", "metric", "best_model", "model_mean", "best_baseline",
               "baseline_mean", "model_beats_baselines", "skill_vs_best_baseline", "p_holm", "holm_family", "p_holm_anchor",
               "sentence"]
    return pd.DataFrame(rows, columns=columns)


def _verdict_pairs(agg: pd.DataFrame, mean: str):
    """Per (target, size): ``((target, size), best model, best baseline, anchor)``, rows of ``agg``
    by lowest ``mean`` (None where there is none); ``anchor`` is the :data:`ANCHOR` baseline's row
    where the grid has it and it is not already the best baseline, else None."""
    for (target, size), part in agg.groupby(["target", "target_size"], sort=True):
        part = part.loc[part[mean].notna()]
        models = part.loc[part["architecture"] != BASELINE].sort_values(mean, kind="stable")
        baselines = part.loc[part["architecture"] == BASELINE].sort_values(mean, kind="stable")
        anchor = baselines.loc[baselines["mode"] == ANCHOR]
        yield ((target, int(size)), models.iloc[0] if len(models) else None,
               baselines.iloc[0] if len(baselines) else None,
               anchor.iloc[0] if len(anchor) and baselines.iloc[0]["mode"] != ANCHOR else None)


def _verdict_test(comparisons: pd.DataFrame | None, target, size, model, baseline,
                  named: str = "") -> tuple[float, str, int] | None:
    """``(Holm p, clause, Holm family size)`` of the Diebold-Mariano test of ``model`` against
    ``baseline`` in ``comparisons``: the pooled row, or the one seed's; None when there is none.
    ``named``: how the clause names the baseline (its name by default)."""
    if comparisons is None or comparisons.empty or model is None or baseline is None:
        return None
    found = comparisons.loc[(comparisons["target"] == target) & (comparisons["target_size"] == int(size))
                            & (comparisons["architecture"] == model["architecture"])
                            & (comparisons["mode"] == model["mode"]) & (comparisons["against"] == baseline["mode"])]
    pooled = found.loc[found["seed"].astype(str) == "pooled"]
    if len(pooled) != 1 and len(found) != 1:
        return None
    test = (pooled if len(pooled) == 1 else found).iloc[0]
    named = named or str(baseline["mode"])
    seeds = int(found["seed"].astype(str).ne("pooled").sum())
    over = f"pooled over {seeds} seeds" if len(pooled) == 1 else f"seed {test['seed']}"
    p_holm = float(test["p_holm"])
    members = int(test["holm_family"]) if "holm_family" in test else 0  # Holm's m for this test
    if not math.isfinite(p_holm):
        why = test["note"] if isinstance(test["note"], str) and test["note"] else "n/a"
        return p_holm, f"Diebold-Mariano against {named}, {over}: no test ({why})", members
    family = f" (family of {members})" if members else ""
    if not bool(test["significant"]):
        verdict = "no significant difference"
    else:  # the test's own direction (squared errors), which a MASE verdict need not share
        verdict = f"{_method(model) if test['mean_loss_difference'] < 0 else baseline['mode']} significantly better"
    return p_holm, f"Diebold-Mariano against {named}, {over}: Holm p {p_holm:.2g}{family}, {verdict}", members


def verdict_baselines(agg: pd.DataFrame, metric: str | None = None) -> dict[tuple[str, int], str]:
    """``{(target, size): best baseline by mean metric}``: the baseline each verdict names, for
    :func:`forecast_comparisons` to test the models against."""
    if not len(agg):
        return {}
    return {unit: baseline["mode"] for unit, _, baseline, _ in _verdict_pairs(agg, f"{_metric(agg, metric)}_mean")
            if baseline is not None}


def verdict_anchors(agg: pd.DataFrame, metric: str | None = None) -> dict[tuple[str, int], tuple[str, str]]:
    """``{(target, size): (architecture, mode) of the verdict's best model}`` where the grid has the
    :data:`ANCHOR` baseline and the verdict names another: :func:`forecast_comparisons` tests that
    model against the anchor too (one test more in Holm's family per such verdict), and the verdict
    quotes it, so a verdict against ``ets`` also says whether the model beats the naive forecast."""
    if not len(agg):
        return {}
    return {unit: (model["architecture"], model["mode"])
            for unit, model, _, anchor in _verdict_pairs(agg, f"{_metric(agg, metric)}_mean")
            if model is not None and anchor is not None}


def headline(agg: pd.DataFrame, metric: str | None = None, comparisons: pd.DataFrame | None = None) -> list[str]:
    """The verdict sentences of :func:`baseline_verdicts`, one per (target, size)."""
    return baseline_verdicts(agg, metric, comparisons)["sentence"].tolist() if len(agg) else []


def ratio_summary(agg: pd.DataFrame, reference: str = "seasonal_naive", metric: str | None = None,
                  seed: int = stats.BOOTSTRAP_SEED) -> pd.DataFrame:
    """Per (architecture, mode) model: the geometric mean over (target, size) of ``mean metric /
    reference baseline's mean metric``, with its bootstrap 95% interval over (target, size).

    Columns: architecture, mode, reference, n_units, geomean_ratio, ci_low, ci_high, skill
    (``1 - geomean_ratio``). Empty when the reference baseline is not in ``agg``.
    ``reference`` :data:`BEST_BASELINE`: per (target, size), the baseline with the lowest mean.
    """
    metric = _metric(agg, metric)
    mean = f"{metric}_mean"
    columns = ["architecture", "mode", "reference", "n_units", "geomean_ratio", "ci_low", "ci_high", "skill"]
    ref = agg.loc[(agg["architecture"] == BASELINE) & ((agg["mode"] == reference) | (reference == BEST_BASELINE))]
    if ref.empty:
        return pd.DataFrame(columns=columns)
    ref = ref.groupby(["target", "target_size"])[mean].min()  # one row each, or the best of them
    models = agg.loc[agg["architecture"] != BASELINE]
    rows = []
    for (architecture, mode), part in models.groupby(["architecture", "mode"], sort=True):
        denominators = part.set_index(["target", "target_size"]).index.map(ref)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = part[mean].to_numpy(float) / np.asarray(denominators, float)
        summary = stats.geometric_mean_ratio(ratios, seed=seed)
        rows.append(dict(architecture=architecture, mode=mode, reference=reference, n_units=summary.n,
                         geomean_ratio=summary.estimate, ci_low=summary.low, ci_high=summary.high,
                         skill=1 - summary.estimate))
    return pd.DataFrame(rows, columns=columns).sort_values("geomean_ratio", kind="stable").reset_index(drop=True)


def win_rate_table(agg: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """Pairwise win rates between every (architecture/mode) pair and every baseline, over the
    (target, size) units where both have a mean ``metric``: ``W[row, column]`` = share of units
    where ``row`` has the lower error (ties half). A square frame indexed by method names, rows
    and columns ordered by their mean win rate (best first); the diagonal is NaN."""
    metric = _metric(agg, metric)
    mean = f"{metric}_mean"
    if agg.empty:
        return pd.DataFrame()
    methods = agg["architecture"].astype(str) + "/" + agg["mode"].astype(str)
    methods = methods.where(agg["architecture"] != BASELINE, agg["mode"].astype(str))
    table = (agg.assign(method=methods).pivot_table(index=["target", "target_size"], columns="method",
                                                    values=mean, aggfunc="mean"))
    rates = stats.win_rates(table.to_numpy(float))  # [methods, methods]
    frame = pd.DataFrame(rates, index=table.columns, columns=table.columns)
    order = frame.mean(axis=1, skipna=True).sort_values(ascending=False, kind="stable").index
    return frame.loc[order, order].rename_axis(index="method", columns="against")


def forecast_comparisons(rows: pd.DataFrame, errors: Mapping[str, np.ndarray], alpha: float = SIGNIFICANCE,
                         baselines: Mapping[tuple[str, int], str] | None = None,
                         anchors: Mapping[tuple[str, int], tuple[str, str]] | None = None) -> pd.DataFrame:
    """Diebold-Mariano tests of every model (scratch included) against the best baseline of its
    (target, size), and of every transfer mode against its scratch, per seed and pooled over
    seeds, Holm-corrected (:data:`CORRECTION`): the family that decides is one test per
    comparison, the pooled one (or the one seed's where there is one seed), which the verdicts
    quote; the per-seed tests behind a pooled one say how the seeds agree and are corrected in a
    family of their own, so three views of one comparison do not count as three hypotheses.

    ``rows``: leaderboard rows (one per cell and baseline; ``architecture`` already folded with
    its variants, ``cell_key`` set). ``errors``: ``cell_key -> [n_origins, horizon]`` forecast
    errors on the test segment (the same origins for every row of a (target, size)). The best
    baseline is ``baselines[(target, size)]`` where given (the verdicts' own, by the ranking
    metric: :func:`verdict_baselines`), else the one with the lowest mean absolute per-origin
    error. ``anchors[(target, size)]`` (:func:`verdict_anchors`): the (architecture, mode) also
    tested against the :data:`ANCHOR` baseline, where that is not the best. Squared-error loss.

    Columns: target, target_size, architecture, mode, against (``scratch`` or the baseline's
    name), seed (an int, or ``pooled``), n_origins, mean_loss_difference (negative: the mode is
    better), statistic, p_value, p_holm, holm_family (how many tests, with a p-value, its Holm
    family holds: adding a mode or a baseline adds tests and moves every adjusted p, so the report
    prints it next to each), significant, note.
    """
    columns = ["target", "target_size", "architecture", "mode", "against", "seed", "n_origins",
               "mean_loss_difference", "statistic", "p_value", "p_holm", "holm_family", "significant", "note"]
    have = rows.loc[rows["cell_key"].isin(list(errors))]
    out = []
    for (target, size), part in have.groupby(["target", "target_size"], sort=True):
        candidates = part.loc[part["architecture"] == BASELINE]
        best_baseline = None
        named = (baselines or {}).get((target, int(size)))
        if named in set(candidates["mode"]):
            best_baseline = candidates.loc[candidates["mode"] == named].iloc[0]
        elif len(candidates):
            scores = {r.mode: float(np.nanmean(np.abs(errors[r.cell_key]))) for r in candidates.itertuples()}
            best_baseline = candidates.loc[candidates["mode"] == min(scores, key=scores.get)].iloc[0]
        models = part.loc[part["architecture"] != BASELINE]
        for (architecture, mode), cells in models.groupby(["architecture", "mode"], sort=True):
            references = []  # scratch is tested against the best baseline only
            if mode != SCRATCH:
                scratch = models.loc[(models["architecture"] == architecture) & (models["mode"] == SCRATCH)]
                references.append((SCRATCH, {int(r.seed): errors[r.cell_key] for r in scratch.itertuples()}))
            if best_baseline is not None:
                references.append((best_baseline["mode"], errors[best_baseline["cell_key"]]))
            anchor = candidates.loc[candidates["mode"] == ANCHOR]
            if ((anchors or {}).get((target, int(size))) == (architecture, mode) and len(anchor)
                    and (best_baseline is None or best_baseline["mode"] != ANCHOR)):
                references.append((ANCHOR, errors[anchor.iloc[0]["cell_key"]]))
            ours = {int(r.seed): errors[r.cell_key] for r in cells.itertuples()}
            for against, reference in references:
                for seed, result in _tests(ours, reference):
                    out.append(dict(target=target, target_size=int(size), architecture=architecture,
                                    mode=mode, against=against, seed=seed, n_origins=result.n,
                                    mean_loss_difference=result.mean_difference,
                                    statistic=result.statistic, p_value=result.p_value, note=result.note))
    frame = pd.DataFrame(out, columns=[c for c in columns if c not in ("p_holm", "holm_family", "significant")])
    frame["p_holm"], frame["holm_family"], frame["significant"] = np.nan, 0, False
    deciding = deciding_mask(frame)
    for family in (deciding, ~deciding):  # the deciding tests; the seeds behind a pool
        if family.any():
            p_values = frame.loc[family, "p_value"].to_numpy(float)
            corrected = stats.holm(p_values, alpha)
            frame.loc[family, "p_holm"], frame.loc[family, "significant"] = corrected.adjusted, corrected.reject
            frame.loc[family, "holm_family"] = int(np.count_nonzero(~np.isnan(p_values)))  # Holm's m
    frame["significant"] = frame["significant"].astype(bool)
    frame["seed"] = frame["seed"].astype(object)
    return frame[columns]


def source_standings(source: pd.DataFrame | None) -> dict[str, tuple[pd.Series, pd.DataFrame]]:
    """Per source target whose pretrained bodies were scored there (OWA on the source's own
    protocol): its best body, and its baselines best first, one row per method. Empty when no body
    was scored (pretrained on part of its source, or pinned)."""
    if source is None or "owa" not in source.columns:
        return {}
    out = {}
    for target, part in source.loc[source["owa"].notna()].groupby("target", sort=True):
        bodies = part.loc[part["architecture"] != "baseline"].sort_values("owa", kind="stable")
        baselines = part.loc[part["architecture"] == "baseline"].sort_values("owa", kind="stable")
        if not bodies.empty:
            out[target] = (bodies.iloc[0], baselines.drop_duplicates("mode"))
    return out


def deciding_mask(comparisons: pd.DataFrame) -> np.ndarray:
    """Which rows of :func:`forecast_comparisons` decide their comparison: the pooled test where
    the seeds were pooled, else the one seed's (the Holm family the verdicts quote)."""
    comparison = ["target", "target_size", "architecture", "mode", "against"]
    pooled = (comparisons["seed"].astype(str) == "pooled").to_numpy()
    has_pool = comparisons.set_index(comparison).index.isin(comparisons.loc[pooled].set_index(comparison).index)
    return pooled | ~has_pool


def _tests(ours: Mapping[int, np.ndarray], reference):
    """``(seed, DieboldMarianoResult)`` per seed, then pooled: each origin's squared error averaged
    over the seeds first. Against a single (array) reference: every seed of ``ours``. Against a
    per-seed (dict) reference: the seeds both sides have, except that a mode with one seed against
    a reference with several (``zeroshot``: one body and no training, so no seeds of its own) is
    held against every seed of the reference, as a baseline is held against every seed of a mode."""
    if not isinstance(reference, Mapping):
        seeds, mine, theirs = sorted(ours), ours.__getitem__, (lambda s: reference)
    elif len(ours) == 1 and len(reference) > 1:
        (only,) = ours.values()
        seeds, mine, theirs = sorted(reference), (lambda s: only), reference.__getitem__
    else:
        seeds, mine, theirs = sorted(set(ours) & set(reference)), ours.__getitem__, reference.__getitem__
    for seed in seeds:
        yield seed, stats.diebold_mariano(_shaped(mine(seed)), _shaped(theirs(seed)))
    if len(seeds) > 1:  # each origin's squared error averaged over the seeds, then one test
        pooled_ours = np.mean([np.square(_shaped(mine(s))) for s in seeds], axis=0)
        pooled_ref = np.mean([np.square(_shaped(theirs(s))) for s in seeds], axis=0)
        yield "pooled", stats.diebold_mariano(pooled_ours, pooled_ref, loss="precomputed")


def _shaped(errors: np.ndarray) -> np.ndarray:
    errors = np.asarray(errors, dtype=float)
    return errors if errors.ndim == 2 else errors.reshape(-1, 1)  # [n] -> [n, 1]
