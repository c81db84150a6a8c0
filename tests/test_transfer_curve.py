"""The report's transfer answer in words (:mod:`benchmark.results.transfer`), on visible synthetic
per-origin errors put through the real Diebold-Mariano tests: a mode that is clearly better than
scratch at 240 and 720 points and level with it at 2160 pays "up to 720 points"; a mode that is
clearly worse is named, with the reason when its body loses to seasonal naive on its source."""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmark.results import verdicts
from benchmark.results.transfer import transfer_curve, transfer_sentences

SIZES = (240, 720, 2160)


def _grid(worse_at: int | None = None) -> tuple[pd.DataFrame, dict]:
    """One target, three sizes, 3 seeds: scratch's errors N(0, 1); ft_from_head's half as large at
    240 and 720 and the same draw as scratch's at 2160; ``finetune`` twice scratch's at ``worse_at``."""
    rng = np.random.default_rng(7)
    rows, errors = [], {}
    for size in SIZES:
        for seed in range(3):
            base = rng.normal(size=400)
            for mode, scale in (("scratch", 1.0), ("ft_from_head", 0.5 if size < 2160 else 1.0),
                                ("finetune", 2.0 if size == worse_at else 1.0)):
                key = f"{size}-{mode}-{seed}"
                errors[key] = base * scale  # scale 1: the same errors as scratch (DM p = 1)
                rows.append(dict(target="ETTh2", target_size=size, architecture="lstm", mode=mode,
                                 seed=seed, cell_key=key))
    return pd.DataFrame(rows), errors


def test_the_curve_names_the_largest_size_where_transfer_is_significantly_better():
    rows, errors = _grid()
    comparisons = verdicts.forecast_comparisons(rows, errors)
    curve = transfer_curve(comparisons).iloc[0]
    assert curve["sizes"] == SIZES
    assert curve["largest_size"] == 720 and curve["mode"] == "lstm/ft_from_head"
    assert curve["p_holm"] < 0.05 and curve["holm_family"] == 6  # 2 modes x 3 sizes, pooled
    assert curve["worse"] == ()
    (sentence,) = transfer_sentences(comparisons)
    assert sentence.startswith("On ETTh2, pretraining pays up to 720 points: lstm/ft_from_head")
    assert "at 2160 points none is" in sentence and "family of 6" in sentence


def test_a_mode_significantly_worse_than_scratch_is_named_with_its_bodys_weakness():
    rows, errors = _grid(worse_at=240)
    comparisons = verdicts.forecast_comparisons(rows, errors)
    source = pd.DataFrame([dict(target="m4/Hourly", architecture="lstm", mode="pretrained", owa=0.70),
                           dict(target="m4/Hourly", architecture="baseline", mode="seasonal_naive", owa=0.628)])
    lines = transfer_sentences(comparisons, source)
    assert lines[1].startswith("On ETTh2, the pretrained start hurt: significantly worse than scratch: "
                               "lstm/finetune at 240 points")
    assert "OWA 0.700 on m4/Hourly, worse than seasonal naive there (0.628)" in lines[1]
    # a body that beats seasonal naive on its source gives no excuse; an unscored one is said so
    good = source.assign(owa=[0.55, 0.628])
    assert "worse than seasonal naive" not in transfer_sentences(comparisons, good)[1]
    assert "not scored on its source" in transfer_sentences(comparisons, None)[1]


def test_no_significant_benefit_anywhere_is_said_so():
    rows, errors = _grid()
    rows = rows.loc[rows["mode"] != "ft_from_head"]
    (sentence,) = transfer_sentences(verdicts.forecast_comparisons(rows, errors))
    assert sentence == ("On ETTh2, no transfer mode is significantly better than scratch at any size "
                        "tested (240, 720, 2160 points; Diebold-Mariano, Holm-adjusted).")
