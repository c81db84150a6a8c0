"""The nightly regression check: tonight's aggregated leaderboard against the previous run of the
same grid.

A *run* is one call of :func:`benchmark.run.grid.run_grid`; its rows in the Parquet leaderboard carry
its ``run_id``. "The same grid" is the grid's name (its partition), so a nightly whose spec was
edited is still compared with the night before; the comparison lists both ``grid_id`` values so
a changed spec is visible. Runs are ordered by the earliest ``started_at`` of their rows.

Only the rows a run wrote itself count as that run's results: a cell that was already finished
(the same cell key: spec, data fingerprint, package version) is skipped by ``run_grid`` and
writes nothing, so a run that trained nothing has nothing to compare, and the report says so.

Which groups are flagged is decided by :func:`benchmark.results.ranking.regressions` (worse by more
than a threshold AND outside the seed noise); this module finds the two runs, aggregates each and
presents the result. A pure library: no Prefect, no MLflow.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from benchmark.results.leaderboard import Leaderboard
from benchmark.results.ranking import GROUP, aggregate, regressions
from benchmark.spec.errors import TlbenchError

#: Columns of :attr:`RegressionReport.comparison`.
COMPARISON_COLUMNS = [*GROUP, "metric", "previous", "current", "change_pct", "previous_ci95", "current_ci95",
                      "previous_n_seeds", "current_n_seeds", "regressed"]


@dataclass(frozen=True)
class RegressionReport:
    """The outcome of :func:`regression_check`.

    ``regressions``: the flagged groups (:func:`benchmark.results.ranking.regressions` columns, worst
    first); ``comparison``: every group present in both runs (:data:`COMPARISON_COLUMNS`, with a
    ``regressed`` flag); ``compared_with``: the previous run's id, or None when there was
    nothing to compare (``note`` says why).
    """

    grid: str
    run_id: str
    metric: str
    threshold_pct: float
    compared_with: str | None
    regressions: pd.DataFrame
    comparison: pd.DataFrame
    note: str = ""
    grid_ids: tuple[str, ...] = ()

    @property
    def has_regressions(self) -> bool:
        return len(self.regressions) > 0

    def markdown(self) -> str:
        """A Markdown summary: what was compared with what, and one line per regression."""
        head = (f"# Regression check: grid `{self.grid}` run `{self.run_id}`\n\n"
                f"- metric: `{self.metric}`, threshold: {self.threshold_pct:g}% and outside seed noise "
                "(the combined 95% CI half-widths of both runs)")
        if self.compared_with is None:
            return f"{head}\n- **no comparison**: {self.note}\n"
        lines = [head, f"- compared with run `{self.compared_with}`: {len(self.comparison)} group(s) in both runs"]
        if len(set(self.grid_ids)) > 1:
            lines.append(f"- the grid spec changed between the runs (grid ids {', '.join(self.grid_ids)})")
        if self.note:
            lines.append(f"- {self.note}")
        if not self.has_regressions:
            lines.append(f"- **no regressions** ({self.metric} worse by more than {self.threshold_pct:g}% outside "
                         "seed noise: none)")
            return "\n".join(lines) + "\n"
        lines += [f"- **{len(self.regressions)} regression(s)**", "",
                  "| target | size | architecture | mode | previous | current | change | reason |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in self.regressions.itertuples(index=False):
            lines.append(f"| {_cell(r.target)} | {r.target_size} | {_cell(r.architecture)} | {_cell(r.mode)} | "
                         f"{r.previous:.4g} | {r.current:.4g} | +{r.change_pct:.1f}% | {_cell(r.reason)} |")
        return "\n".join(lines) + "\n"

    def summary(self) -> str:
        """One line for logs and a failed flow run's message."""
        if self.compared_with is None:
            return f"grid {self.grid} run {self.run_id}: no comparison ({self.note})"
        if not self.has_regressions:
            return (f"grid {self.grid} run {self.run_id}: no regressions against run {self.compared_with} "
                    f"({len(self.comparison)} groups compared)")
        worst = "; ".join(f"{r.target} n={r.target_size} {r.architecture}/{r.mode} +{r.change_pct:.1f}%"
                          for r in self.regressions.head(5).itertuples(index=False))
        more = f" (+{len(self.regressions) - 5} more)" if len(self.regressions) > 5 else ""
        return (f"grid {self.grid} run {self.run_id}: {len(self.regressions)} regression(s) in {self.metric} "
                f"against run {self.compared_with}: {worst}{more}")

    def records(self) -> list[dict[str, Any]]:
        """:attr:`comparison` as JSON-safe dicts (NaN -> None, numbers rounded), regressions first:
        the rows of a table artifact."""
        frame = self.comparison.sort_values(["regressed", "change_pct"], ascending=[False, False], kind="stable")
        return [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def _cell(text: Any) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _plain(value: Any) -> Any:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else round(float(value), 6)
    if value is None or value is pd.NA:
        return None
    return str(value)


def _run_starts(rows: pd.DataFrame) -> pd.Series:
    """run_id -> the earliest started_at of its rows, oldest first."""
    return rows.groupby("run_id")["started_at"].min().sort_values(kind="stable")


def _run_id_time(run_id: str) -> pd.Timestamp | None:
    """The start time in a run id made by ``run_grid`` (``YYYYmmddTHHMMSS-xxxxxx``, UTC)."""
    try:
        return pd.Timestamp(dt.datetime.strptime(run_id.split("-", 1)[0], "%Y%m%dT%H%M%S"), tz="UTC")
    except ValueError:
        return None


def _earlier_runs(rows: pd.DataFrame, before_run_id: str) -> list[str]:
    """Run ids of ``rows`` that started before ``before_run_id``, most recent first."""
    starts = _run_starts(rows)
    if before_run_id in starts.index:
        cutoff = starts[before_run_id]
    else:
        cutoff = _run_id_time(before_run_id)
        if cutoff is None:
            known = ", ".join(starts.index[-5:]) or "none"
            raise TlbenchError(f"Run {before_run_id!r} has no rows in the leaderboard and is not a run id made by "
                               f"run_grid (YYYYmmddTHHMMSS-xxxxxx), so runs before it cannot be found. Most "
                               f"recent runs: {known}.")
    earlier = starts.loc[(starts < cutoff) & (starts.index != before_run_id)]
    return list(earlier.index[::-1])


def previous_aggregate(leaderboard: Leaderboard, grid: str, before_run_id: str,
                       metric: str = "mase") -> pd.DataFrame | None:
    """The aggregated leaderboard (:func:`benchmark.results.ranking.aggregate`) of the most recent run
    of ``grid`` that started before ``before_run_id``, from that run's own rows; None if there
    is no earlier run."""
    rows = leaderboard.read(grid=grid)
    if rows.empty:
        return None
    earlier = _earlier_runs(rows, before_run_id)
    if not earlier:
        return None
    return aggregate(rows.loc[rows["run_id"] == earlier[0]], metric)


def regression_check(leaderboard: Leaderboard, grid: str, run_id: str, metric: str = "mase",
                     threshold_pct: float = 5.0) -> RegressionReport:
    """Compare run ``run_id`` of ``grid`` with the most recent earlier run of the same grid.

    Every (target, target_size, architecture, mode) present in both runs whose mean ``metric``
    got worse by more than ``threshold_pct`` percent and by more than the combined 95% CI
    half-widths of both runs (seed noise) is a regression; with a single seed on either side the
    threshold alone decides. Returns a :class:`RegressionReport`; ``compared_with`` is None (and
    ``note`` says why) when the run wrote no rows or there is no earlier run.
    """
    if threshold_pct < 0 or not math.isfinite(threshold_pct):
        raise TlbenchError(f"threshold_pct must be a finite percentage >= 0, got {threshold_pct!r}")
    rows = leaderboard.read(grid=grid)
    current_rows = rows.loc[rows["run_id"] == run_id]
    nothing = aggregate(rows.iloc[0:0], metric)
    no_regressions = regressions(nothing, nothing, metric, threshold_pct)
    empty = RegressionReport(grid, run_id, metric, threshold_pct, None, no_regressions,
                             _comparison(nothing, nothing, no_regressions, metric))
    if current_rows.empty:
        return replace(empty, note=f"run {run_id} wrote no rows for grid {grid!r} (no cell ran: every cell was "
                                 "already finished under the same key, or the run failed before any finished), "
                                 "so there is nothing to compare")
    earlier = _earlier_runs(rows, run_id)
    if not earlier:
        return replace(empty, note=f"no earlier run of grid {grid!r} in the leaderboard: this run is the first, "
                                 "the baseline for the next comparison")
    previous_id = earlier[0]
    previous_rows = rows.loc[rows["run_id"] == previous_id]
    current_agg, previous_agg = aggregate(current_rows, metric), aggregate(previous_rows, metric)
    flagged = regressions(current_agg, previous_agg, metric, threshold_pct)
    comparison = _comparison(current_agg, previous_agg, flagged, metric)
    grid_ids = tuple(dict.fromkeys([*previous_rows["grid_id"].unique(), *current_rows["grid_id"].unique()]))
    note = ""
    if comparison.empty:
        note = (f"runs {previous_id} and {run_id} share no (target, size, architecture, mode): nothing was "
                "compared")
    return RegressionReport(grid, run_id, metric, threshold_pct, previous_id, flagged, comparison, note, grid_ids)


def _comparison(current_agg: pd.DataFrame, previous_agg: pd.DataFrame, flagged: pd.DataFrame,
                metric: str) -> pd.DataFrame:
    """Every group in both aggregates, side by side, with the ``regressed`` flag from ``flagged``."""
    keys = list(GROUP)
    mean, ci = f"{metric}_mean", f"{metric}_ci95"

    def side(agg: pd.DataFrame, name: str) -> pd.DataFrame:
        return agg[[*keys, mean, ci, "n_seeds"]].rename(
            columns={mean: name, ci: f"{name}_ci95", "n_seeds": f"{name}_n_seeds"})

    both = side(previous_agg, "previous").merge(side(current_agg, "current"), on=keys, how="inner")
    with np.errstate(divide="ignore", invalid="ignore"):
        both["change_pct"] = 100 * (both["current"] - both["previous"]) / both["previous"]
    both["metric"] = metric
    marked = set(map(tuple, flagged[keys].itertuples(index=False)))
    both["regressed"] = [tuple(k) in marked for k in both[keys].itertuples(index=False)]
    return both[COMPARISON_COLUMNS].sort_values(keys, kind="stable").reset_index(drop=True)
