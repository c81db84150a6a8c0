"""Registry-level grid checks: every problem at once, with YAML paths, before anything runs."""

import pytest

from benchmark.run.validation import grid_problems, validate_grid
from benchmark.spec.errors import SpecError
from benchmark.spec.profiles import load_grid


def test_shipped_profiles_are_valid():
    for name in ("smoke", "standard", "nightly"):
        assert grid_problems(load_grid(name)) == []


def test_unknown_names_are_listed_with_the_known_ones():
    spec = load_grid("smoke", ["architectures=[lstm, lstmm]", "modes=[scratch, frozn]",
                               "baselines=[naiv]", "training.optimizer=adamm"])
    with pytest.raises(SpecError) as info:
        validate_grid(spec)
    text = str(info.value)
    assert "grid.architectures[1]: Unknown architecture 'lstmm'. Known: conv1d_lstm, dlinear, gru, lstm, nlinear, stacked_lstm." in text
    assert "grid.modes[1]: Unknown transfer mode 'frozn'" in text
    assert "grid.baselines[0]: Unknown baseline 'naiv'" in text
    assert "grid.training.optimizer: Unknown optimizer 'adamm'" in text
    assert len(info.value.problems) == 4


def test_impossible_sizes_and_ranges():
    spec = load_grid("smoke", ["target_sizes=[20, 240]", "split.val_fraction=1.5", "seeds=[0, 0]"])
    problems = grid_problems(spec)
    assert any(p.startswith("grid.target_sizes[0]: size 20 leaves") for p in problems)
    assert any(p.startswith("grid.split.val_fraction") for p in problems)
    assert any(p.startswith("grid.seeds: duplicates") for p in problems)


def test_unknown_target_option_is_reported_with_its_path():
    spec = load_grid("smoke", ["targets=[{source: ett, options: {file: ETTh1, colum: OT}}]"])
    problems = grid_problems(spec)
    assert any(p.startswith("grid.targets[0]") and "colum" in p for p in problems)


def test_a_size_is_checked_against_the_lookbacks_of_its_own_sub_grids():
    """ett-standard runs its transfer curve from 240 points at lookback 96 and scratch at lookback
    336 only at 720 and 8640: each size is held to the longest lookback it is paired with."""
    apart = ["target_sizes=[240, 720]", "lookbacks=[96, 336]",
             "subgrids=[{lookbacks: [96]}, {lookbacks: [336], target_sizes: [720]}]"]
    assert not [p for p in grid_problems(load_grid("ett-standard", apart)) if "training points" in p]
    together = ["target_sizes=[240, 720]", "lookbacks=[96, 336]",
                "subgrids=[{lookbacks: [96], target_sizes: [720]}, {lookbacks: [336]}]"]
    problems = [p for p in grid_problems(load_grid("ett-standard", together)) if "training points" in p]
    assert problems == ["grid.target_sizes[0]: size 240 leaves 240 training points under protocol "
                        "'ett_standard', fewer than lookback 336 + horizon 24 + 1; raise the size or "
                        "lower split.lookback"]
