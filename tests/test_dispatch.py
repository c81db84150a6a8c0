"""Longest cells first (benchmark.run.dispatch): a pure function of the specs, min_steps included."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from benchmark.run.dispatch import cell_cost, longest_first, training_windows
from benchmark.run.jobs import expand
from benchmark.spec.profiles import load_grid


@dataclass(frozen=True)
class Job:
    cell: object
    name: str


def _cells(*overrides):
    return expand(load_grid("smoke", list(overrides)))


def test_bigger_sizes_more_epochs_and_wider_models_cost_more():
    base = _cells("modes=[scratch]", "target_sizes=[240]")[0]
    assert cell_cost(replace(base, target_size=960)) == 4 * cell_cost(base)
    assert cell_cost(replace(base, training=replace(base.training, max_epochs=60))) == 2 * cell_cost(base)
    assert cell_cost(replace(base, model=replace(base.model, units=128))) == 4 * cell_cost(base)
    assert cell_cost(replace(base, target_size=None)) > cell_cost(replace(base, target_size=17000))
    assert cell_cost(replace(base, mode="frozen")) < cell_cost(base)
    assert cell_cost(replace(base, mode="zeroshot")) < cell_cost(replace(base, mode="frozen"))
    gru = replace(base, model=replace(base.model, architecture="gru"))
    stacked = replace(base, model=replace(base.model, architecture="stacked_lstm"))
    assert cell_cost(gru) < cell_cost(base) < cell_cost(stacked)


def test_longest_first_orders_a_grid_and_keeps_ties_in_order():
    cells = _cells("target_sizes=[240, 960]", "modes=[scratch, frozen]", "seeds=[0, 1]")
    jobs = [Job(c, f"{c.target_size}-{c.mode}-s{c.seed}") for c in cells]
    assert [j.name for j in longest_first(jobs)] == [
        "960-scratch-s0", "960-scratch-s1", "960-frozen-s0", "960-frozen-s1",
        "240-scratch-s0", "240-scratch-s1", "240-frozen-s0", "240-frozen-s1"]
    assert longest_first([]) == []


def test_min_steps_raises_a_small_targets_cost_to_the_epochs_it_may_train():
    """ett-standard's 720-point cells train ~100 epochs of 10 steps (min_steps 1000), its 8640-point
    cells 8 epochs of 134: about the same work, so neither is scheduled as the cheap one."""
    cells = expand(load_grid("ett-standard", ["subgrids=[]", "architectures=[lstm]", "modes=[scratch]",
                                              "seeds=[0]", "normalisations=[last_value]", "lookbacks=[96]"]))
    small, large = (next(c for c in cells if c.target_size == size) for size in (720, 8640))
    assert (small.target_size, large.target_size, small.training.min_steps) == (720, 8640, 1000)
    assert small.training.budget_epochs(*training_windows(small)) == 100  # ceil(1000 / ceil(601 / 64))
    assert large.training.budget_epochs(*training_windows(large)) == 8
    assert 0.8 < cell_cost(small) / cell_cost(large) < 1.25
    without = [replace(c, training=replace(c.training, min_steps=0)) for c in (small, large)]
    assert cell_cost(without[0]) / cell_cost(without[1]) == 720 / 8640  # max_epochs alone: 12x cheaper
    assert [j.name for j in longest_first([Job(without[0], "720"), Job(large, "8640")])] == ["8640", "720"]
    more = replace(small, training=replace(small.training, min_steps=3000))
    assert [j.name for j in longest_first([Job(large, "8640"), Job(more, "720")])] == ["720", "8640"]


@pytest.mark.parametrize("profile,size", [("ett-standard", 720), ("smoke", 240)])
def test_training_windows_are_the_cells_own(settings, profile, size):
    """The dispatch's count of training windows is what the cell trains on (make_cell_data)."""
    from benchmark.data.loading import load_data
    from benchmark.data.splits import make_cell_data

    cell = next(c for c in expand(load_grid(profile)) if c.target_size == size)
    frame = load_data(cell.target, settings, cell.split)
    data = make_cell_data(frame, size, cell.split, "t")
    assert training_windows(cell) == (len(data.x_train), cell.training.batch_size)
    stateful = replace(cell, regime="stateful")
    assert training_windows(stateful)[1] == 1 and training_windows(stateful)[0] < len(data.x_train)
