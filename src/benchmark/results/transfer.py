"""The transfer answer in words: per target, up to which size a transfer mode is significantly
better than training from scratch, by the Diebold-Mariano tests of
:func:`benchmark.results.verdicts.forecast_comparisons` (pooled over seeds, Holm-adjusted), and
where a mode that trains on the target is significantly worse, whether its body was worth
transferring at all (its OWA on its source against seasonal naive's)."""

from __future__ import annotations

import pandas as pd

from benchmark.results.verdicts import SCRATCH, deciding_mask, source_standings

#: Modes that train nothing on the target: "significantly worse than scratch" says nothing about
#: fine-tuning for them, and the curve names them apart.
NOT_TRAINED = ("zeroshot",)
SEASONAL_NAIVE = "seasonal_naive"


def deciding_tests(comparisons: pd.DataFrame) -> pd.DataFrame:
    """The tests of every transfer mode against its scratch that decide: the pooled one where the
    seeds were pooled, else the one seed's (the family the verdicts quote)."""
    if comparisons is None or comparisons.empty:
        return pd.DataFrame(columns=["target", "target_size", "architecture", "mode", "p_holm",
                                     "holm_family", "mean_loss_difference", "significant", "seed"])
    deciding = comparisons.loc[deciding_mask(comparisons) & (comparisons["against"] == SCRATCH).to_numpy()]
    return deciding.sort_values(["target", "target_size", "architecture", "mode"], kind="stable")


def transfer_curve(comparisons: pd.DataFrame) -> pd.DataFrame:
    """Per target: the sizes tested, and the largest size at which some transfer mode is
    significantly better than scratch (``largest_size``, None if none), with that mode and its
    Holm-adjusted p; ``worse`` lists ``(size, architecture/mode, p)`` of modes that train on the
    target and are significantly worse than scratch."""
    tests = deciding_tests(comparisons)
    rows = []
    for target, part in tests.groupby("target", sort=True):
        better = part.loc[part["significant"] & (part["mean_loss_difference"] < 0)]
        worse = part.loc[part["significant"] & (part["mean_loss_difference"] > 0)
                         & ~part["mode"].isin(NOT_TRAINED)]
        best = None
        if len(better):
            top = better.loc[better["target_size"] == better["target_size"].max()]
            best = top.sort_values("p_holm", kind="stable").iloc[0]
        rows.append(dict(
            target=target, sizes=tuple(sorted(int(s) for s in part["target_size"].unique())),
            largest_size=None if best is None else int(best["target_size"]),
            mode=None if best is None else f"{best['architecture']}/{best['mode']}",
            p_holm=None if best is None else float(best["p_holm"]),
            holm_family=None if best is None else int(best["holm_family"]),
            worse=tuple((int(r.target_size), f"{r.architecture}/{r.mode}", float(r.p_holm))
                        for r in worse.itertuples())))
    return pd.DataFrame(rows, columns=["target", "sizes", "largest_size", "mode", "p_holm", "holm_family",
                                       "worse"])


def transfer_sentences(comparisons: pd.DataFrame, source: pd.DataFrame | None = None) -> list[str]:
    """:func:`transfer_curve` in words, one sentence per target, then one per target where a mode
    that trains on it is significantly worse than scratch, saying why when the body loses to
    seasonal naive on its own source (``source``: the grid's ``kind == "source"`` rows)."""
    lines = []
    why = _why_weak(source)
    for row in transfer_curve(comparisons).itertuples():
        sizes = ", ".join(str(s) for s in row.sizes)
        if row.largest_size is None:
            lines.append(f"On {row.target}, no transfer mode is significantly better than scratch at any "
                         f"size tested ({sizes} points; Diebold-Mariano, Holm-adjusted).")
        else:
            above = [s for s in row.sizes if s > row.largest_size]
            beyond = (f"; at {', '.join(map(str, above))} points none is" if above else
                      ", the largest size tested")
            lines.append(f"On {row.target}, pretraining pays up to {row.largest_size} points: {row.mode} is "
                         f"significantly better than scratch there (Diebold-Mariano, Holm p {row.p_holm:.2g} "
                         f"in a family of {row.holm_family}){beyond}.")
        if row.worse:
            named = "; ".join(f"{mode} at {size} points (Holm p {p:.2g})" for size, mode, p in row.worse)
            lines.append(f"On {row.target}, the pretrained start hurt: significantly worse than scratch: {named}.{why}")
    return lines


def _why_weak(source: pd.DataFrame | None) -> str:
    """Why fine-tuning may hurt, from the body's own score on its source: the sentence when the
    grid's best body loses to seasonal naive there or was not scored; empty when it beats it."""
    standings = source_standings(source)
    if not standings:
        return (" Its body was not scored on its source (pretrained on part of it, or pinned), so "
                "whether it forecasts its own source well is unknown; a body that does not has little "
                "to transfer (docs/models.md, \"Pretraining settings tried\").")
    best, baselines = min(standings.values(), key=lambda standing: standing[0]["owa"])
    naive = baselines.loc[baselines["mode"] == SEASONAL_NAIVE]
    if naive.empty or best["owa"] <= naive["owa"].min():
        return ""
    return (f" Its body scores OWA {best['owa']:.3f} on {best['target']}, worse than seasonal naive there "
            f"({naive['owa'].min():.3f}): a body that does not forecast its own source well has little to "
            "transfer, so this says more about the body than about transfer.")
