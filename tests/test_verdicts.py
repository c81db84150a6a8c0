"""Verdicts with the baselines in them (issue #16): the words when a baseline wins, skill ratios
with bootstrap intervals, win rates and Diebold-Mariano comparisons on per-origin errors."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from benchmark.results import verdicts


def agg_frame(rows: list[tuple]) -> pd.DataFrame:
    """(target, size, architecture, mode, mase_mean) rows, as the aggregate has them."""
    frame = pd.DataFrame(rows, columns=["target", "target_size", "architecture", "mode", "mase_mean"])
    return frame.assign(metric="mase")


SMOKE_LIKE = agg_frame([
    ("ett/ETTh1:OT", 240, "lstm", "scratch", 0.31), ("ett/ETTh1:OT", 240, "lstm", "finetune", 0.280),
    ("ett/ETTh1:OT", 240, "baseline", "naive", 0.207), ("ett/ETTh1:OT", 240, "baseline", "seasonal_naive", 0.5),
    ("ett/ETTh1:OT", 960, "lstm", "scratch", 0.19), ("ett/ETTh1:OT", 960, "lstm", "finetune", 0.20),
    ("ett/ETTh1:OT", 960, "baseline", "naive", 0.193), ("ett/ETTh1:OT", 960, "baseline", "seasonal_naive", 0.45),
])


def test_a_baseline_that_beats_every_model_is_said_in_words():
    table = verdicts.baseline_verdicts(SMOKE_LIKE)
    first = table.iloc[0]
    assert not first["model_beats_baselines"] and first["best_baseline"] == "naive"
    assert first["sentence"] == ("No model beats the naive forecast on ett/ETTh1:OT at 240 points: "
                                 "naive MASE 0.207, best model lstm/finetune 0.28.")
    second = table.iloc[1]
    assert second["model_beats_baselines"] and second["best_model"] == "lstm/scratch"
    assert second["sentence"].startswith("lstm/scratch beats every baseline on ett/ETTh1:OT at 960 points")
    assert second["skill_vs_best_baseline"] == pytest.approx(1 - 0.19 / 0.193)
    assert verdicts.headline(SMOKE_LIKE) == table["sentence"].tolist()


def test_ratio_summary_is_the_geometric_mean_against_the_reference():
    summary = verdicts.ratio_summary(SMOKE_LIKE, reference="seasonal_naive", seed=1)
    finetune = summary.set_index("mode").loc["finetune"]
    expected = math.sqrt((0.280 / 0.5) * (0.20 / 0.45))  # two (target, size) units
    assert finetune["geomean_ratio"] == pytest.approx(expected)
    assert finetune["ci_low"] <= expected <= finetune["ci_high"]
    assert finetune["skill"] == pytest.approx(1 - expected) and finetune["n_units"] == 2
    assert summary["geomean_ratio"].is_monotonic_increasing
    assert verdicts.ratio_summary(SMOKE_LIKE, reference="naive2").empty


def test_win_rates_count_baselines_too():
    table = verdicts.win_rate_table(SMOKE_LIKE)
    assert set(table.index) == {"lstm/scratch", "lstm/finetune", "naive", "seasonal_naive"}
    # naive beats finetune at both sizes; scratch beats naive at 960 only
    assert table.loc["naive", "lstm/finetune"] == 1.0 and table.loc["lstm/finetune", "naive"] == 0.0
    assert table.loc["lstm/scratch", "naive"] == 0.5
    assert math.isnan(table.loc["naive", "naive"])
    assert table.index[0] == "naive" and table.index[-1] == "seasonal_naive"  # best first


def comparison_rows() -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    rng = np.random.default_rng(7)
    truth_noise = rng.normal(size=(3, 300))
    rows, errors = [], {}
    for seed in range(3):
        for mode, scale in (("scratch", 1.0), ("finetune", 0.6), ("frozen", 1.0)):
            key = f"{mode}-{seed}"
            noise = truth_noise[seed] if mode != "frozen" else truth_noise[seed]
            errors[key] = noise * scale  # finetune uniformly better; frozen identical to scratch
            rows.append(dict(target="t", target_size=240, architecture="lstm", mode=mode, seed=seed,
                             cell_key=key))
    errors["naive"] = rng.normal(size=300) * 0.5
    rows.append(dict(target="t", target_size=240, architecture="baseline", mode="naive", seed=0,
                     cell_key="naive"))
    errors["mean"] = rng.normal(size=300) * 3.0
    rows.append(dict(target="t", target_size=240, architecture="baseline", mode="mean", seed=0,
                     cell_key="mean"))
    return pd.DataFrame(rows), errors


def test_forecast_comparisons_find_the_real_difference_and_only_it():
    rows, errors = comparison_rows()
    table = verdicts.forecast_comparisons(rows, errors)
    assert set(table["against"]) == {"scratch", "naive"}  # the best baseline, not the mean forecast
    finetune = table.loc[(table["mode"] == "finetune") & (table["against"] == "scratch")]
    assert list(finetune["seed"]) == [0, 1, 2, "pooled"]
    assert (finetune["mean_loss_difference"] < 0).all() and finetune["significant"].all()
    frozen = table.loc[(table["mode"] == "frozen") & (table["against"] == "scratch")]
    assert (frozen["p_value"] == 1.0).all() and not frozen["significant"].any()
    assert frozen["note"].str.contains("identical").all()
    # scratch too is tested against the best baseline (a scratch-only grid's verdict gets its p),
    # never against itself
    scratch = table.loc[table["mode"] == "scratch"]
    assert set(scratch["against"]) == {"naive"} and list(scratch["seed"]) == [0, 1, 2, "pooled"]
    # Holm: adjusted p-values are never below the raw ones
    assert (table["p_holm"] >= table["p_value"] - 1e-15).all()


def test_holm_counts_one_test_per_comparison_and_corrects_the_seeds_behind_it_apart():
    from benchmark.results import stats

    rows, errors = comparison_rows()
    rows = rows.loc[~((rows["mode"] == "frozen") & (rows["seed"] > 0))]  # frozen: one seed left
    table = verdicts.forecast_comparisons(rows, errors)
    pooled = table["seed"].astype(str) == "pooled"
    alone = (table["mode"] == "frozen") & (table["against"] == "naive")  # one seed against one baseline
    assert alone.sum() == 1
    deciding, seeds = table.loc[pooled | alone], table.loc[~pooled & ~alone]
    # one test per comparison decides: 4 pooled (finetune and frozen against scratch, finetune and
    # scratch against naive) and frozen's one against naive; 3 seeds behind each pooled one
    assert len(deciding) == 5 and len(seeds) == 12
    assert np.allclose(deciding["p_holm"], stats.holm(deciding["p_value"].to_numpy()).adjusted)
    assert np.allclose(seeds["p_holm"], stats.holm(seeds["p_value"].to_numpy()).adjusted)
    assert (table["significant"] == (table["p_holm"] <= verdicts.SIGNIFICANCE)).all()
    # every row says how many tests its p was adjusted over; a mode less shrinks the family
    assert set(deciding["holm_family"]) == {5} and set(seeds["holm_family"]) == {12}
    fewer = verdicts.forecast_comparisons(rows.loc[rows["mode"] != "frozen"], errors)
    assert set(fewer.loc[fewer["seed"].astype(str) == "pooled", "holm_family"]) == {3}


def test_a_mode_without_seeds_of_its_own_is_held_against_every_seed_of_scratch():
    rows, errors = comparison_rows()
    # zeroshot: one body, no training, so one row; its errors are seed 0's scratch errors halved
    errors["zeroshot"] = errors["scratch-0"] * 0.5
    rows = pd.concat([rows, pd.DataFrame([dict(target="t", target_size=240, architecture="lstm", mode="zeroshot",
                                               seed=0, cell_key="zeroshot")])], ignore_index=True)
    table = verdicts.forecast_comparisons(rows, errors)
    zeroshot = table.loc[(table["mode"] == "zeroshot") & (table["against"] == "scratch")]
    assert list(zeroshot["seed"]) == [0, 1, 2, "pooled"]  # not seed 0 alone
    pooled = zeroshot.loc[zeroshot["seed"] == "pooled"].iloc[0]
    scratch_sq = np.mean([np.square(errors[f"scratch-{s}"]) for s in range(3)], axis=0)
    assert pooled["mean_loss_difference"] == pytest.approx(np.mean(np.square(errors["zeroshot"]) - scratch_sq))
    assert pooled["significant"] and pooled["mean_loss_difference"] < 0


def test_the_verdict_says_whether_the_best_model_beats_the_best_baseline_significantly():
    rows, errors = comparison_rows()
    # by mean MASE, finetune is the best model and naive the best baseline (the verdict's pair)
    agg = agg_frame([("t", 240, "lstm", "scratch", 1.0), ("t", 240, "lstm", "finetune", 0.6),
                     ("t", 240, "lstm", "frozen", 1.0), ("t", 240, "baseline", "naive", 0.7),
                     ("t", 240, "baseline", "mean", 2.0)])
    chosen = verdicts.verdict_baselines(agg)
    assert chosen == {("t", 240): "naive"}
    comparisons = verdicts.forecast_comparisons(rows, errors, baselines=chosen)
    table = verdicts.baseline_verdicts(agg, comparisons=comparisons)
    pooled = comparisons.loc[(comparisons["mode"] == "finetune") & (comparisons["against"] == "naive")
                             & (comparisons["seed"] == "pooled")].iloc[0]
    row = table.iloc[0]
    assert row["p_holm"] == pooled["p_holm"]
    assert pooled["significant"] and pooled["mean_loss_difference"] > 0  # naive's errors are the smaller ones
    # the family: one test per comparison (finetune and frozen against scratch, the three models against naive)
    assert pooled["holm_family"] == row["holm_family"] == 5
    assert row["sentence"] == ("lstm/finetune beats every baseline on t at 240 points: MASE 0.6 against naive 0.7 "
                               f"(skill 14.3%); Diebold-Mariano against naive, pooled over 3 seeds: "
                               f"Holm p {pooled['p_holm']:.2g} (family of 5), naive significantly better.")
    # the direction is the test's own: a verdict by MASE and a test on squared errors may disagree, and
    # the sentence then says so rather than calling the MASE winner significant
    flipped = verdicts.baseline_verdicts(agg, comparisons=comparisons.assign(
        mean_loss_difference=-comparisons["mean_loss_difference"])).iloc[0]
    assert flipped["sentence"].endswith(", lstm/finetune significantly better.")
    quiet = verdicts.baseline_verdicts(agg, comparisons=comparisons.assign(significant=False)).iloc[0]
    assert quiet["sentence"].endswith(", no significant difference.")
    assert verdicts.headline(agg, comparisons=comparisons) == [row["sentence"]]
    # without comparisons the sentence is the bare one, and p_holm NaN
    bare = verdicts.baseline_verdicts(agg).iloc[0]
    assert bare["sentence"].endswith("(skill 14.3%).") and math.isnan(bare["p_holm"])


def test_a_verdict_against_another_baseline_is_also_tested_against_the_naive_forecast():
    rows, errors = comparison_rows()
    # by mean MASE the mean forecast is the best baseline (as ets is on ETTh1, where it mimics naive);
    # the verdict's model, finetune, is tested against naive as well, and only it
    agg = agg_frame([("t", 240, "lstm", "scratch", 1.0), ("t", 240, "lstm", "finetune", 0.6),
                     ("t", 240, "lstm", "frozen", 1.0), ("t", 240, "baseline", "naive", 0.8),
                     ("t", 240, "baseline", "mean", 0.7)])
    assert verdicts.verdict_baselines(agg) == {("t", 240): "mean"}
    assert verdicts.verdict_anchors(agg) == {("t", 240): ("lstm", "finetune")}
    comparisons = verdicts.forecast_comparisons(rows, errors, baselines=verdicts.verdict_baselines(agg),
                                                anchors=verdicts.verdict_anchors(agg))
    against_naive = comparisons.loc[comparisons["against"] == verdicts.ANCHOR]
    assert set(against_naive["mode"]) == {"finetune"} and list(against_naive["seed"]) == [0, 1, 2, "pooled"]
    assert set(comparisons.loc[comparisons["mode"] == "scratch", "against"]) == {"mean"}
    # the extra test is one more in the deciding family, Holm over all of them
    from benchmark.results import stats
    deciding = comparisons.loc[comparisons["seed"].astype(str) == "pooled"]
    assert len(deciding) == 6  # finetune, frozen against scratch; three models against mean; finetune against naive
    assert np.allclose(deciding["p_holm"], stats.holm(deciding["p_value"].to_numpy()).adjusted)
    pooled = against_naive.loc[against_naive["seed"] == "pooled"].iloc[0]
    row = verdicts.baseline_verdicts(agg, comparisons=comparisons).iloc[0]
    assert row["p_holm_anchor"] == pooled["p_holm"] and row["p_holm"] != row["p_holm_anchor"]
    assert row["sentence"].startswith("lstm/finetune beats every baseline on t at 240 points: MASE 0.6 against mean 0.7")
    assert row["sentence"].endswith(f"; Diebold-Mariano against naive (MASE 0.8), pooled over 3 seeds: "
                                    f"Holm p {pooled['p_holm']:.2g} (family of 6), naive significantly better.")
    # where naive is the best baseline there is nothing more to test or say
    plain = agg.assign(mase_mean=agg["mase_mean"].where(agg["mode"] != "mean", 2.0))
    assert verdicts.verdict_anchors(plain) == {}
    again = verdicts.forecast_comparisons(rows, errors, baselines=verdicts.verdict_baselines(plain),
                                          anchors=verdicts.verdict_anchors(plain))
    assert len(again.loc[(again["mode"] == "finetune") & (again["against"] == "naive")]) == 4
    assert math.isnan(verdicts.baseline_verdicts(plain, comparisons=again).iloc[0]["p_holm_anchor"])


def test_comparisons_test_against_the_baseline_the_verdict_names():
    rows, errors = comparison_rows()
    # naive has the lower absolute error, but the verdict (by its ranking metric) named the mean forecast
    named = verdicts.forecast_comparisons(rows, errors, baselines={("t", 240): "mean"})
    assert set(named["against"]) == {"scratch", "mean"}
    # a name the rows do not have falls back to the lowest absolute error
    assert set(verdicts.forecast_comparisons(rows, errors, baselines={("t", 240): "theta"})["against"]) == \
        {"scratch", "naive"}


def test_the_source_section_shows_each_body_next_to_the_source_baselines():
    from benchmark.report.verdicts import source_section

    base = dict(kind="source", target="m4/Hourly", target_size=414, horizon=48, lookback=168,
                normalisation="window", pretrain_seed=0, mase=float("nan"))
    rows = pd.DataFrame([{**base, "architecture": "lstm", "mode": "pretrained", "smape": 13.74, "owa": 0.626},
                         {**base, "architecture": "baseline", "mode": "seasonal_naive", "smape": 13.91, "owa": 0.628},
                         {**base, "architecture": "baseline", "mode": "naive2", "smape": 18.38, "owa": 1.0}])
    html = source_section(rows)
    assert html.index("lstm/pretrained") < html.index("seasonal_naive") < html.index("naive2")  # by OWA
    assert "0.626" in html and "0.628" in html
    assert "No body of this grid" in source_section(rows.assign(kind="model"))


WITH_STATISTICAL = pd.concat([SMOKE_LIKE, agg_frame([
    ("ett/ETTh1:OT", 240, "baseline", "mstl", 0.15), ("ett/ETTh1:OT", 240, "baseline", "ets", 0.21),
    ("ett/ETTh1:OT", 960, "baseline", "mstl", 0.25), ("ett/ETTh1:OT", 960, "baseline", "ets", 0.18)])],
    ignore_index=True)


def test_the_verdict_names_a_statistical_baseline_when_it_is_the_best():
    table = verdicts.baseline_verdicts(WITH_STATISTICAL)
    assert list(table["best_baseline"]) == ["mstl", "ets"]
    assert table.iloc[0]["sentence"] == ("No model beats MSTL on ett/ETTh1:OT at 240 points: mstl MASE 0.15, "
                                         "best model lstm/finetune 0.28.")
    assert table.iloc[1]["sentence"].startswith("No model beats ETS (AutoETS) on ett/ETTh1:OT at 960 points")


def test_every_registered_baseline_has_words():
    from benchmark.forecasters.baselines import BASELINES

    assert set(BASELINES.names()) <= set(verdicts.BASELINE_WORDS)


def test_skill_against_the_best_of_all_baselines_per_unit():
    summary = verdicts.ratio_summary(WITH_STATISTICAL, reference=verdicts.BEST_BASELINE, seed=1)
    finetune = summary.set_index("mode").loc["finetune"]
    assert finetune["geomean_ratio"] == pytest.approx(math.sqrt((0.280 / 0.15) * (0.20 / 0.18)))
    assert finetune["reference"] == verdicts.BEST_BASELINE


def test_win_rates_and_comparisons_include_statistical_baselines():
    assert {"mstl", "ets"} <= set(verdicts.win_rate_table(WITH_STATISTICAL).index)
    rows, errors = comparison_rows()
    errors["theta"] = errors["naive"] * 0.5  # better than naive: the best baseline now
    rows = pd.concat([rows, pd.DataFrame([dict(target="t", target_size=240, architecture="baseline",
                                               mode="theta", seed=0, cell_key="theta")])], ignore_index=True)
    assert set(verdicts.forecast_comparisons(rows, errors)["against"]) == {"scratch", "theta"}


def test_the_source_section_says_whether_the_body_beats_mstl():
    from benchmark.report.verdicts import source_section, source_verdicts

    rows = pd.DataFrame({"architecture": ["lstm", "baseline", "baseline"], "mode": ["pretrained", "mstl", "naive2"],
                         "smape": [13.74, 13.76, 18.38], "owa": [0.626, 0.604, 1.0]})
    rows = rows.assign(kind="source", target="m4/Hourly", target_size=414, horizon=48, lookback=168,
                       normalisation="window", pretrain_seed=0, mase=float("nan"))
    assert source_verdicts(rows) == ["The pretrained body lstm/pretrained (OWA 0.626) beats Naive2 (1.000) but not "
                                     "MSTL (0.604) on m4/Hourly."]
    assert "but not MSTL (0.604)" in source_section(rows)
    better = rows.assign(owa=[0.59, 0.604, 1.0])
    assert source_verdicts(better) == ["The pretrained body lstm/pretrained (OWA 0.590) beats every baseline, the "
                                       "best of them MSTL (0.604), on m4/Hourly."]
    worse = pd.concat([rows, rows.iloc[[1]].assign(mode="seasonal_naive", owa=0.627)]).assign(
        owa=[1.2, 0.604, 1.0, 0.627])
    assert source_verdicts(worse) == ["The pretrained body lstm/pretrained (OWA 1.200) does not beat MSTL (0.604), "
                                      "seasonal naive forecast (0.627) or Naive2 (1.000) on m4/Hourly."]
    # the first section says it too, after the target verdicts: was the body worth transferring
    from benchmark.report.verdicts import headline_section

    first = headline_section(SMOKE_LIKE, "mase", rows=rows)
    assert first.index("No model beats the naive forecast") < first.index("The pretrained body lstm/pretrained "
                                                                          "(OWA 0.626) beats Naive2")


def test_report_pulls_the_statistical_source_rows_of_evaluate_source(settings, data_dir):
    from benchmark.forecasters.source import evaluate_source
    from benchmark.report.verdicts import source_baselines
    from benchmark.results.leaderboard import Leaderboard
    from benchmark.run.source import record_baseline_on_source
    from benchmark.spec.sections import DataSpec

    source = DataSpec("m4", {"group": "Hourly"})
    result = evaluate_source(source, "theta", data_dir, allow_download=False, max_series=2)
    record_baseline_on_source(settings, source, result)
    board = Leaderboard(settings.results)
    grid_rows = pd.DataFrame([dict(kind="source", target="m4/Hourly", mode="pretrained", architecture="lstm")])
    found = source_baselines(board, grid_rows)
    assert list(found["mode"]) == ["theta"] and found.iloc[0]["owa"] == pytest.approx(result["owa"])
    assert source_baselines(board, grid_rows.assign(kind="model")).empty  # no body: nothing pulled


def test_the_report_names_the_best_baseline_and_each_holm_familys_size():
    from benchmark.report.verdicts import evidence_sections, headline_section

    rows, errors = comparison_rows()
    agg = agg_frame([("t", 240, "lstm", "scratch", 1.0), ("t", 240, "lstm", "finetune", 0.6),
                     ("t", 240, "lstm", "frozen", 1.0), ("t", 240, "baseline", "naive", 0.7),
                     ("t", 240, "baseline", "mstl", 0.65), ("t", 240, "baseline", "mean", 2.0)])
    rows = pd.concat([rows, rows.loc[rows["mode"] == "naive"].assign(mode="mstl", cell_key="mstl")])
    errors["mstl"] = errors["naive"] * 0.99
    comparisons = verdicts.forecast_comparisons(rows, errors, baselines=verdicts.verdict_baselines(agg),
                                                anchors=verdicts.verdict_anchors(agg))
    headline = headline_section(agg, "mase", comparisons)
    assert "MASE 0.6 against mstl 0.65" in headline  # MSTL is the verdict's baseline
    assert "Diebold-Mariano against mstl, pooled over 3 seeds: Holm p " in headline
    assert headline.count("(family of 6)") == 2  # against mstl and against naive, one family
    html = "".join(evidence_sections(agg, comparisons, "mase", {"win-rates": ("w.png", b"png")}))
    assert "<h3>against best_baseline: mstl at t 240</h3>" in html
    assert "<th>p_holm</th><th>holm_family</th>" in html
