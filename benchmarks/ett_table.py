"""The `ett-standard` results as the Markdown tables of docs/protocols.md.

Reads results locations' leaderboards (``--results``, repeatable: one per horizon profile) and
prints, per target and target size, every (architecture, mode) and baseline under the
``ett_standard`` protocol: ``mse_z`` / ``mae_z`` (the papers' z-scale) and ``mae`` (original
scale) as the mean over seeds with the standard deviation and the seed count, plus the epochs
trained. ``--wide`` prints instead one table per target size with a column per (target, horizon):
``mse_z ± sd / mae_z``, the layout of docs/protocols.md; ``--dm`` the reports' Diebold-Mariano
tests (pooled over seeds, Holm per grid); ``--versus`` one test the reports do not make (raw p).
Not a test.

    python benchmarks/ett_table.py --results results-h24 --results results-h96 --wide
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src")]


def _fmt(mean: float, std: float, n: int, digits: int = 4) -> str:
    if n < 2 or std != std:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def tables(rows) -> str:
    rows = _methods(rows)
    if rows.empty:
        return "no ett_standard rows in this leaderboard"
    out = []
    for (target, size, horizon), part in rows.groupby(["target", "target_size", "horizon"], sort=True):
        out += [f"\n**{target}, target size {size}, H={horizon}** (mean ± sd over seeds)\n",
                "| method | seeds | mse_z | mae_z | mae | epochs |", "|---|---:|---:|---:|---:|---:|"]
        stats = _summary(part, ["method"])
        best = stats["mse_z"].min()
        for method, s in stats.sort_values(["is_baseline", "mse_z"]).iterrows():
            mark = "**" if s.mse_z == best else ""
            epochs = "-" if s.is_baseline else f"{s.epochs:.1f}"
            out.append(f"| {method} | {s.n} | {mark}{_fmt(s.mse_z, s.mse_z_sd, s.n)}{mark} | "
                       f"{_fmt(s.mae_z, s.mae_z_sd, s.n)} | {s.mae:.3f} | {epochs} |")
    return "\n".join(out)


def _summary(rows, keys: list[str]):
    """Mean, sd and count over seeds of every group of ``keys``."""
    return rows.groupby(keys).agg(
        n=("seed", "size"), mse_z=("mse_z", "mean"), mse_z_sd=("mse_z", "std"), mae_z=("mae_z", "mean"),
        mae_z_sd=("mae_z", "std"), mae=("mae", "mean"), epochs=("epochs", "mean"),
        is_baseline=("kind", lambda k: (k == "baseline").all()))


def _methods(rows):
    """The protocol's rows, each named ``architecture · normalisation · lookback mode`` (the
    report's folded variants, :func:`benchmark.results.ranking.fold_variants`, less the protocol every row
    shares), or ``baseline <method>``; a body scored on its source is left out."""
    from benchmark.results.ranking import VARIANT_SEPARATOR, fold_variants

    rows = rows[(rows["protocol"] == "ett_standard") & (rows["kind"] != "source")]
    folded = fold_variants(rows)["architecture"].str.replace(f"{VARIANT_SEPARATOR}ett_standard", "", regex=False)
    return rows.assign(method=folded.where(rows["kind"] == "model", "baseline") + " " + rows["mode"])


def wide(rows) -> str:
    rows = _methods(rows)
    out = []
    for size, part in rows.groupby("target_size", sort=True):
        columns = sorted({(t, h) for t, h in zip(part["target"], part["horizon"])}, key=lambda c: (c[1], c[0]))
        out += [f"\n**target size {size}**: mse_z ± sd over seeds / mae_z\n",
                "| method | " + " | ".join(f"{t.split('/')[-1].split(':')[0]} H={h}" for t, h in columns) + " |",
                "|---|" + "---:|" * len(columns)]
        stats = _summary(part, ["target", "horizon", "method"])
        best = stats["mse_z"].groupby(level=["target", "horizon"]).min()
        for method in sorted(part["method"].unique(), key=lambda m: (m.startswith("baseline"), m)):
            cells = []
            for target, horizon in columns:
                if (target, horizon, method) not in stats.index:
                    cells.append("")
                    continue
                st = stats.loc[(target, horizon, method)]
                mark = "**" if st.mse_z == best[(target, horizon)] else ""
                cells.append(f"{mark}{_fmt(st.mse_z, st.mse_z_sd, st.n)}{mark} / {st.mae_z:.3f}")
            out.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def dm_table(rows, board) -> str:
    """The report's Diebold-Mariano tests, pooled over seeds, or the one seed's where a
    comparison has only one (Holm over each grid's comparisons,
    as in that grid's report): every model against the best baseline its verdict names (by mse_z,
    the protocol's metric), every transfer mode against its scratch."""
    from benchmark.report.verdicts import comparisons_for
    from benchmark.results.ranking import aggregate, fold_variants

    out = ["| grid | target | size | method | against | better? | p_holm |", "|---|---|---:|---|---|---|---:|"]
    for grid, part in rows[(rows["protocol"] == "ett_standard") & (rows["kind"] != "source")].groupby("grid"):
        part = fold_variants(part)
        agg = aggregate(part)
        tests = comparisons_for(agg, part, board.read_errors(part["cell_key"].tolist()), str(agg["metric"].iloc[0]))
        pooled = tests["seed"].astype(str) == "pooled"
        keys = ["target", "target_size", "architecture", "mode", "against"]
        alone = ~tests.set_index(keys).index.isin(tests.loc[pooled].set_index(keys).index)  # one seed, no pool
        for t in tests.loc[pooled | alone].itertuples(index=False):
            method = t.architecture.replace(" · ett_standard", "") + " " + t.mode
            verdict = ("better" if t.mean_loss_difference < 0 else "worse") if t.significant else "no difference"
            out.append(f"| {grid} | {t.target.split('/')[-1].split(':')[0]} | {t.target_size} | {method} | "
                       f"{t.against} | {verdict} | {t.p_holm:.2g} |")
    return "\n".join(out)


def versus(rows, board, target: str, size: int, method: str, other: str, horizon: int | None = None) -> str:
    """One Diebold-Mariano test outside the reports' families (so its raw p, no Holm): ``method``
    against ``other`` (names as in the tables, e.g. ``lstm · window · L96 ft_from_head`` and
    ``lstm · window · L96 zeroshot``) on ``target`` (ETTh1, ETTh2) at ``size`` points and
    ``horizon`` (needed where the results hold several), squared errors, per seed and pooled over
    seeds as the reports pool them."""
    from benchmark.results.verdicts import _tests

    rows = _methods(rows)
    part = rows[rows["target"].str.contains(f"/{target}:", regex=False) & (rows["target_size"] == size)]
    horizons = sorted(part["horizon"].unique())
    if horizon is None and len(horizons) > 1:
        raise SystemExit(f"{target} at {size} points has horizons {horizons}: name one with --horizon")
    if horizon is not None:
        if horizon not in horizons:
            raise SystemExit(f"no rows of {target} at {size} points and H={horizon}; horizons: {horizons}")
        part = part[part["horizon"] == horizon]
    sides = []
    for name in (method, other):
        cells = part[part["method"] == name]
        if cells.empty:
            known = ", ".join(sorted(part["method"].unique()))
            raise SystemExit(f"no rows of {name!r} on {target} at {size} points; known: {known}")
        errors = board.read_errors(cells["cell_key"].tolist())
        sides.append({int(r.seed): errors[r.cell_key] for r in cells.itertuples()})
    ours, theirs = sides
    reference = next(iter(theirs.values())) if len(theirs) == 1 else theirs
    at = f"{target} at {size} points, H={part['horizon'].iloc[0]}"
    lines = [f"{method} against {other}, {at} (negative: {method} better):"]
    for seed, result in _tests(ours, reference):
        lines.append(f"  seed {seed}: mean squared-error difference {result.mean_difference:+.5f}, "
                     f"DM statistic {result.statistic:.3f}, raw p {result.p_value:.3g}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", action="append", help="results location (repeatable; default results)")
    parser.add_argument("--wide", action="store_true", help="one table per size, a column per target and horizon")
    parser.add_argument("--dm", action="store_true", help="the reports' Diebold-Mariano tests, pooled over seeds")
    parser.add_argument("--versus", nargs=4, metavar=("TARGET", "SIZE", "METHOD", "OTHER"),
                        help="one test outside the reports' families, raw p: e.g. ETTh2 720 "
                             "'lstm · window · L96 ft_from_head' 'lstm · window · L96 zeroshot'")
    parser.add_argument("--horizon", type=int, help="with --versus: the horizon, where the results hold several")
    args = parser.parse_args()
    import pandas as pd

    from benchmark.results.leaderboard import Leaderboard

    boards = [Leaderboard(r) for r in args.results or ["results"]]
    if args.versus:
        target, size, method, other = args.versus
        print(versus(boards[0].read(), boards[0], target, int(size), method, other, args.horizon))
        return
    if args.dm:
        print("\n\n".join(dm_table(board.read(), board) for board in boards))
        return
    rows = pd.concat([board.read() for board in boards], ignore_index=True)
    print(wide(rows) if args.wide else tables(rows))


if __name__ == "__main__":
    main()
