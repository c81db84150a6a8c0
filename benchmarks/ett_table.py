"""The `ett-standard` results as the Markdown tables of docs/protocols.md.

Reads a results location's leaderboard (``--results``, default ``results``) and prints, per target
and target size, every (architecture, mode) and baseline under the ``ett_standard`` protocol:
``mse_z`` / ``mae_z`` (the papers' z-scale) and ``mae`` (original scale) as the mean over seeds
with the standard deviation and the seed count, plus the epochs trained. Not a test.

    python benchmarks/ett_table.py --results /path/to/results
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
    rows = rows[rows["protocol"] == "ett_standard"]
    if rows.empty:
        return "no ett_standard rows in this leaderboard"
    rows = rows.assign(method=rows["architecture"].where(rows["kind"] == "model", "baseline") + " " + rows["mode"])
    out = []
    for (target, size, horizon), part in rows.groupby(["target", "target_size", "horizon"], sort=True):
        out += [f"\n**{target}, target size {size}, H={horizon}** (mean ± sd over seeds)\n",
                "| method | seeds | mse_z | mae_z | mae | epochs |", "|---|---:|---:|---:|---:|---:|"]
        stats = part.groupby("method").agg(
            n=("seed", "size"), mse_z=("mse_z", "mean"), mse_z_sd=("mse_z", "std"), mae_z=("mae_z", "mean"),
            mae_z_sd=("mae_z", "std"), mae=("mae", "mean"), epochs=("epochs", "mean"),
            is_baseline=("kind", lambda k: (k == "baseline").all()))
        best = stats["mse_z"].min()
        for method, s in stats.sort_values(["is_baseline", "mse_z"]).iterrows():
            mark = "**" if s.mse_z == best else ""
            epochs = "-" if s.is_baseline else f"{s.epochs:.1f}"
            out.append(f"| {method} | {s.n} | {mark}{_fmt(s.mse_z, s.mse_z_sd, s.n)}{mark} | "
                       f"{_fmt(s.mae_z, s.mae_z_sd, s.n)} | {s.mae:.3f} | {epochs} |")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results")
    args = parser.parse_args()
    from benchmark.leaderboard import Leaderboard

    print(tables(Leaderboard(args.results).read()))


if __name__ == "__main__":
    main()
