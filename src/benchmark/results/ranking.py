"""Ranking and statistics over leaderboard rows: pure functions over frames, no I/O.

Owns :func:`aggregate` (per-group statistics over seeds, ranks, improvement over scratch,
paired tests), :func:`fold_variants` (a non-default regime or feature set becomes an architecture
of its own), :func:`winners`, :func:`transfer_horizon`, :func:`regressions` and the text-table
formatting of the CLI (:func:`format_table`). Lower is better for every metric. The statistics
themselves (intervals, paired tests) are in :mod:`benchmark.results.stats`.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from benchmark.data.protocols import DEFAULT_PROTOCOL, PROTOCOLS
from benchmark.forecasters.metrics import METRIC_NAMES, Z_METRIC_NAMES
from benchmark.spec.axes import VARIANT_DEFAULTS, is_variant_default, variant_label
from benchmark.spec.errors import TlbenchError

#: Every metric :func:`aggregate` summarises: the original-scale ones every row has, then the
#: protocol-scale ones (NaN, or absent in hand-made frames, outside the protocols that score them).
METRICS = (*METRIC_NAMES, *Z_METRIC_NAMES)
#: The ranking metric of rows under several protocols, or under one without a metric of its own.
DEFAULT_METRIC = "mase"

logger = logging.getLogger(__name__)

SIGNIFICANCE = 0.05

GROUP = ("target", "target_size", "architecture", "mode")
VARIANT_SEPARATOR = " · "
_SCRATCH = "scratch"
_BASELINE = "baseline"
_SEASONAL_NAIVE = "seasonal_naive"


def fold_variants(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with a non-default regime or feature set folded into ``architecture``: ``lstm``
    stays ``lstm``, a stateful one with an hour-of-day input becomes ``lstm · stateful ·
    y+hour_of_day``. So every grouping (:func:`aggregate`, the winners, the transfer horizon, the
    nightly comparison, the report) keeps the variants apart, and each is compared with the scratch
    mode of the same variant. Baselines and rows without those columns are left as they are;
    folding twice changes nothing."""
    present = [(column, default) for column, default in VARIANT_DEFAULTS if column in rows.columns]
    if not present or rows.empty:
        return rows
    models = (rows["architecture"] != _BASELINE).to_numpy()
    labels = rows["architecture"].astype(str).to_numpy(dtype=object).copy()
    for column, default in present:
        values = rows[column].astype(object).to_numpy()
        for i in np.flatnonzero(models & pd.notna(values)):
            if is_variant_default(column, values[i]):
                continue
            part = variant_label(column, values[i])
            if part not in labels[i].split(VARIANT_SEPARATOR)[1:]:
                labels[i] = f"{labels[i]}{VARIANT_SEPARATOR}{part}"
    return rows.assign(architecture=pd.Series(labels, index=rows.index, dtype="str"))


def ranking_metric(rows: pd.DataFrame) -> str:
    """The metric ``rows`` are ranked and judged by: the ``metric`` of their evaluation protocol
    (:class:`benchmark.data.protocols.Protocol`; ``ett_standard``: ``mse_z``, the papers' number)
    when every target row (bodies on their source aside) is under the same one, else
    :data:`DEFAULT_METRIC`. Rows without a ``protocol`` column are under the default protocol."""
    if "protocol" not in rows.columns or rows.empty:
        return DEFAULT_METRIC
    targets = rows.loc[rows["kind"] != "source"] if "kind" in rows.columns else rows
    names = set(targets["protocol"].fillna(DEFAULT_PROTOCOL).astype(str))
    if len(names) != 1 or next(iter(names)) not in PROTOCOLS:
        return DEFAULT_METRIC
    return PROTOCOLS.get(next(iter(names))).metric


def aggregate_columns(metric: str = DEFAULT_METRIC) -> list[str]:
    """The columns of :func:`aggregate`'s result, in order."""
    per_metric = [f"{m}_{s}" for m in METRICS for s in ("mean", "std")]
    return [*GROUP, "metric", "n_seeds", *per_metric, f"{metric}_ci95", "rank", "improvement_vs_scratch_pct",
            "p_value_vs_scratch", "test_vs_scratch", "skill_vs_seasonal_naive", "train_seconds_mean"]


def aggregate(df: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """One row per (target, target_size, architecture, mode), statistics over seeds; a
    non-default regime or feature set counts as an architecture of its own (:func:`fold_variants`).

    For every metric ``m``: ``m_mean`` and ``m_std`` (ddof=1; NaN with one seed); for ``metric``
    also ``{metric}_ci95``, the half-width of the 95% t-interval of the mean. ``metric`` names
    the ranking metric (default: :func:`ranking_metric` of ``df``, the protocol's); ``n_seeds``
    the distinct seeds. ``rank``: 1 = lowest mean ``metric``
    within (target, target_size), baselines included (ties share the best rank).
    ``improvement_vs_scratch_pct = 100 * (scratch_mean - mean) / scratch_mean`` against the
    ``scratch`` mode of the same (target, target_size, architecture); ``p_value_vs_scratch`` and
    ``test_vs_scratch`` from :func:`benchmark.results.stats.paired_test` over the seeds both have (both
    NaN/empty for scratch itself and baselines). ``skill_vs_seasonal_naive = 1 - mean /
    seasonal_naive_mean`` for the same (target, target_size). ``train_seconds_mean``.

    Rows of the same group and seed (e.g. two runs of one grid) are averaged first and logged:
    aggregate one run, or rows you mean to pool. Lower is better for every metric.
    """
    from benchmark.results import stats  # scipy costs ~1 s to import; writers never need it

    metric = ranking_metric(df) if metric is None else metric
    if metric not in METRICS:
        raise TlbenchError(f"Unknown metric {metric!r}. Known: {', '.join(METRICS)}.")
    needed = [*GROUP, "seed", *METRIC_NAMES, "train_seconds"]
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise TlbenchError(f"aggregate() needs leaderboard rows; missing column(s) {', '.join(missing)} "
                           "(pass the frame from Leaderboard.read())")
    columns = aggregate_columns(metric)
    if df.empty:
        return pd.DataFrame({c: pd.Series(dtype=_AGG_DTYPES.get(c, "float64")) for c in columns})
    if "kind" in df.columns:  # a body scored on its source is no cell of a target (report: its own section)
        df = df.loc[df["kind"] != "source"]
    absent = {m: math.nan for m in Z_METRIC_NAMES if m not in df.columns}
    df = df.assign(**absent) if absent else df  # frames from before the protocol scales
    df = fold_variants(df)
    group = list(GROUP)
    _warn_mixed_settings(df, group)
    values = [*METRICS, "train_seconds"]
    per_seed = df.groupby([*group, "seed"], sort=True)[values].mean()  # [groups x seeds, values]
    if len(per_seed) < len(df):
        logger.warning("aggregate: %d row(s) share (group, seed) with another row and were averaged; "
                       "filter to one run to avoid this", len(df) - len(per_seed))
    by_group = per_seed.groupby(level=group, sort=True)
    agg = pd.DataFrame({"n_seeds": by_group.size()})
    agg.insert(0, "metric", metric)
    for m in METRICS:
        agg[f"{m}_mean"] = by_group[m].mean()
        agg[f"{m}_std"] = by_group[m].std(ddof=1)
    agg[f"{metric}_ci95"] = stats.ci_half_width(agg[f"{metric}_std"].to_numpy(),
                                                by_group[metric].count().to_numpy())
    agg["train_seconds_mean"] = by_group["train_seconds"].mean()
    agg = agg.reset_index()

    mean = f"{metric}_mean"
    agg["rank"] = agg.groupby(["target", "target_size"])[mean].rank(method="min").astype("Int64")
    is_model = agg["architecture"] != _BASELINE
    scratch = agg.loc[is_model & (agg["mode"] == _SCRATCH)].set_index(["target", "target_size", "architecture"])[mean]
    scratch_mean = pd.Series(agg.set_index(["target", "target_size", "architecture"]).index.map(scratch),
                             index=agg.index, dtype="float64")
    compared = is_model & (agg["mode"] != _SCRATCH)
    with np.errstate(divide="ignore", invalid="ignore"):
        improvement = 100 * (scratch_mean - agg[mean]) / scratch_mean.where(scratch_mean != 0)
    agg["improvement_vs_scratch_pct"] = improvement.where(compared)

    tests = [_test_against_scratch(per_seed[metric], row) if comp else None
             for row, comp in zip(agg[group].itertuples(index=False), compared)]
    agg["p_value_vs_scratch"] = [t["p_value"] if t else math.nan for t in tests]
    agg["test_vs_scratch"] = pd.Series([t["method"] if t else None for t in tests], dtype="str")

    naive = agg.loc[~is_model & (agg["mode"] == _SEASONAL_NAIVE)].set_index(["target", "target_size"])[mean]
    naive_mean = pd.Series(agg.set_index(["target", "target_size"]).index.map(naive), index=agg.index,
                           dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        agg["skill_vs_seasonal_naive"] = 1 - agg[mean] / naive_mean.where(naive_mean != 0)
    agg = agg.sort_values(["target", "target_size", "rank", "architecture", "mode"], kind="stable")
    return agg[columns].reset_index(drop=True)


_AGG_DTYPES = {"target": "str", "architecture": "str", "mode": "str", "metric": "str", "test_vs_scratch": "str",
               "target_size": "int64", "n_seeds": "int64", "rank": "Int64"}


def _test_against_scratch(per_seed: pd.Series, row: tuple) -> dict:
    """Paired test of one (target, size, architecture, mode) against its scratch, by seed."""
    from benchmark.results import stats  # scipy: ~1 s to import; writers never need it

    target, size, architecture, mode = row
    try:
        ours = per_seed.loc[(target, size, architecture, mode)]
        scratch = per_seed.loc[(target, size, architecture, _SCRATCH)]
    except KeyError:
        return stats.paired_test([], [])
    paired = pd.concat([ours, scratch], axis=1, join="inner").to_numpy()  # [seeds, 2]
    return stats.paired_test(paired[:, 0], paired[:, 1])


def _warn_mixed_settings(df: pd.DataFrame, group: list[str]) -> None:
    settings = [c for c in ("lookback", "horizon") if c in df.columns]
    if settings and (df.groupby(group)[settings].nunique() > 1).any().any():
        logger.warning("aggregate: some groups mix several %s values; filter the rows to one setting "
                       "before comparing", "/".join(settings))


def _ranking_metric(agg: pd.DataFrame, metric: str | None) -> str:
    if metric is None:
        metric = str(agg["metric"].iloc[0]) if "metric" in agg.columns and len(agg) else DEFAULT_METRIC
    if f"{metric}_mean" not in agg.columns:
        raise TlbenchError(f"The aggregate has no column {metric}_mean: pass the output of aggregate()")
    return metric


def winners(agg: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """Per (target, target_size, architecture): the mode with the lowest mean ``metric`` (default:
    the aggregate's ranking metric), its improvement over scratch and whether it is significant
    (paired p < 0.05 and an improvement). If scratch wins, improvement is NaN, not significant.
    The baselines count too: ``best_baseline`` (and ``best_baseline_mean``) is the best baseline of
    that (target, size), and ``beats_baselines`` whether the winning mode beats it.
    """
    metric = _ranking_metric(agg, metric)
    mean = f"{metric}_mean"
    keys = ["target", "target_size", "architecture"]
    columns = [*keys, "best_mode", "metric", mean, "scratch_mean", "improvement_vs_scratch_pct",
               "p_value_vs_scratch", "significant", "best_baseline", "best_baseline_mean",
               "beats_baselines", "n_seeds"]
    models = agg.loc[agg["architecture"] != _BASELINE]
    if models.empty:
        return pd.DataFrame({c: pd.Series(dtype="bool" if c == "significant" else "float64") for c in columns})
    scratch = models.loc[models["mode"] == _SCRATCH].set_index(keys)[mean].rename("scratch_mean")
    best = (models.sort_values([*keys, mean], na_position="last", kind="stable")
            .drop_duplicates(keys, keep="first").rename(columns={"mode": "best_mode"}))
    best = best.join(scratch, on=keys)
    best["metric"] = metric
    best["significant"] = ((best["p_value_vs_scratch"] < SIGNIFICANCE)
                           & (best["improvement_vs_scratch_pct"] > 0)).fillna(False).astype(bool)
    baselines = best_baselines(agg, metric)
    best = best.join(baselines, on=["target", "target_size"])
    best["beats_baselines"] = (best[mean] < best["best_baseline_mean"]) | best["best_baseline_mean"].isna()
    return best[columns].reset_index(drop=True)


def best_baselines(agg: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per (target, target_size): the baseline with the lowest mean ``metric``
    (``best_baseline``, ``best_baseline_mean``), indexed by (target, target_size)."""
    mean = f"{metric}_mean"
    baselines = agg.loc[(agg["architecture"] == _BASELINE) & agg[mean].notna()]
    best = (baselines.sort_values(["target", "target_size", mean], kind="stable")
            .drop_duplicates(["target", "target_size"], keep="first"))
    return (best.set_index(["target", "target_size"])[["mode", mean]]
            .rename(columns={"mode": "best_baseline", mean: "best_baseline_mean"}))


def transfer_horizon(agg: pd.DataFrame, alpha: float = SIGNIFICANCE) -> pd.DataFrame:
    """Per (target, architecture, mode != scratch): up to which target size transfer still helps.

    A mode *helps* at a size when its mean metric beats scratch (improvement > 0) and, where a
    paired test was possible (at least 2 seeds shared with scratch), its p-value is below
    ``alpha``; with fewer seeds the mean alone decides. ``rule`` says which applied.
    ``largest_helping_size``: the largest size where it helps (None if nowhere);
    ``smallest_non_helping_size``: the smallest size where it does not (None if it always helps).
    ``sizes`` and ``helping_sizes`` list the sizes compared, ascending;
    ``sizes_above_baselines`` those helping sizes where the mode also beats every baseline.
    """
    columns = ["target", "architecture", "mode", "largest_helping_size", "smallest_non_helping_size",
               "helping_sizes", "sizes_above_baselines", "sizes", "rule"]
    metric = _ranking_metric(agg, None)
    floor = best_baselines(agg, metric)["best_baseline_mean"]
    compared = agg.loc[(agg["architecture"] != _BASELINE) & (agg["mode"] != _SCRATCH)
                       & agg["improvement_vs_scratch_pct"].notna()]
    rows = []
    for (target, architecture, mode), part in compared.groupby(["target", "architecture", "mode"], sort=True):
        part = part.sort_values("target_size")
        tested = part["p_value_vs_scratch"].notna()
        better = part["improvement_vs_scratch_pct"] > 0
        helps = better & (~tested | (part["p_value_vs_scratch"] < alpha))
        sizes = [int(s) for s in part["target_size"]]
        helping = [s for s, h in zip(sizes, helps) if h]
        not_helping = [s for s, h in zip(sizes, helps) if not h]
        if tested.all():
            rule = f"mean better than scratch and paired p < {alpha:g}"
        elif not tested.any():
            rule = "mean better than scratch (fewer than 2 paired seeds: no test)"
        else:
            rule = (f"mean better than scratch and paired p < {alpha:g}; mean only at sizes with fewer "
                    f"than 2 paired seeds ({', '.join(str(s) for s, t in zip(sizes, tested) if not t)})")
        above = [s for s, value in zip(sizes, part[f"{metric}_mean"])
                 if s in helping and not value >= floor.get((target, s), np.inf)]
        rows.append(dict(target=target, architecture=architecture, mode=mode,
                         largest_helping_size=max(helping) if helping else None,
                         smallest_non_helping_size=min(not_helping) if not_helping else None,
                         helping_sizes=tuple(helping), sizes_above_baselines=tuple(above),
                         sizes=tuple(sizes), rule=rule))
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    # object columns keep None as None (a numeric column would turn it into NaN)
    return pd.DataFrame({c: pd.Series([r[c] for r in rows], dtype=object) for c in columns})


def regressions(current_agg: pd.DataFrame, previous_agg: pd.DataFrame, metric: str = "mase",
                threshold_pct: float = 5.0) -> pd.DataFrame:
    """Groups whose mean ``metric`` got worse by more than ``threshold_pct`` AND outside seed noise.

    Outside noise: the increase exceeds the sum of both runs' 95% CI half-widths (taken from
    ``{metric}_ci95`` or computed from ``{metric}_std`` and ``n_seeds``). When either run has a
    single seed there is no interval and the threshold alone decides (the reason says so). Only
    groups present in both aggregates are compared. Columns: the group, ``previous``, ``current``,
    ``change_pct``, both half-widths and seed counts, and a ``reason`` string.
    """
    from benchmark.results import stats  # scipy: ~1 s to import; writers never need it

    keys = list(GROUP)
    columns = [*keys, "metric", "previous", "current", "change_pct", "previous_ci95", "current_ci95",
               "previous_n_seeds", "current_n_seeds", "reason"]

    def side(agg: pd.DataFrame, name: str) -> pd.DataFrame:
        if f"{metric}_mean" not in agg.columns:
            raise TlbenchError(f"regressions(): the {name} aggregate has no {metric}_mean column; pass "
                               "aggregate() outputs")
        if f"{metric}_ci95" in agg.columns:
            half = agg[f"{metric}_ci95"].to_numpy(dtype=float)
        else:
            half = stats.ci_half_width(agg[f"{metric}_std"].to_numpy(dtype=float),
                                       agg["n_seeds"].to_numpy(dtype=float))
        return pd.DataFrame({**{k: agg[k].to_numpy() for k in keys}, name: agg[f"{metric}_mean"].to_numpy(),
                             f"{name}_ci95": half, f"{name}_n_seeds": agg["n_seeds"].to_numpy()})

    both = side(previous_agg, "previous").merge(side(current_agg, "current"), on=keys, how="inner")
    with np.errstate(divide="ignore", invalid="ignore"):
        both["change_pct"] = 100 * (both["current"] - both["previous"]) / both["previous"]
    increase = both["current"] - both["previous"]
    noise = both["previous_ci95"] + both["current_ci95"]
    has_ci = noise.notna()
    over_threshold = both["change_pct"] > threshold_pct
    flagged = over_threshold & (~has_ci | (increase > noise))
    both = both.loc[flagged].copy()
    both["metric"] = metric
    both["reason"] = [
        (f"{metric} {r.previous:.4g} -> {r.current:.4g} (+{r.change_pct:.1f}%), above the {threshold_pct:g}% "
         + (f"threshold and outside seed noise (increase {r.current - r.previous:.4g} > combined 95% CI "
            f"half-widths {r.previous_ci95 + r.current_ci95:.4g})" if not math.isnan(r.previous_ci95 + r.current_ci95)
            else "threshold (a single seed on one side: no interval, threshold only)"))
        for r in both.itertuples(index=False)]
    return both[columns].sort_values("change_pct", ascending=False, kind="stable").reset_index(drop=True)


def format_table(df: pd.DataFrame, columns: Sequence[str] | None = None, max_rows: int = 50) -> str:
    """A fixed-width text table: numbers right-aligned with 4 significant digits, text left-aligned,
    missing values as ``-``; at most ``max_rows`` rows, then a line saying how many were left out."""
    columns = list(columns) if columns is not None else list(df.columns)
    unknown = [c for c in columns if c not in df.columns]
    if unknown:
        raise TlbenchError(f"format_table: unknown column(s) {', '.join(unknown)}. Known: {', '.join(df.columns)}.")
    if df.empty:
        return "(no rows)"
    shown = df[columns].head(max_rows)
    cells = [[_format_cell(v) for v in shown[c]] for c in columns]
    numeric = [pd.api.types.is_numeric_dtype(shown[c]) and not pd.api.types.is_bool_dtype(shown[c]) for c in columns]
    widths = [max(len(c), *(len(v) for v in col)) for c, col in zip(columns, cells)]

    def line(values: Iterable[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w)
                         for v, w, num in zip(values, widths, numeric)).rstrip()

    out = [line(columns), line("-" * w for w in widths)]
    out += [line(row) for row in zip(*cells)]
    if len(df) > max_rows:
        out.append(f"... {len(df) - max_rows} more row(s)")
    return "\n".join(out)


def _format_cell(value: Any) -> str:
    if value is None or value is pd.NA or value is pd.NaT:
        return "-"
    if isinstance(value, (float, np.floating)):
        return "-" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)
