"""Longest cells first (benchmark.run.dispatch): a pure function of the specs."""

from __future__ import annotations

from dataclasses import dataclass, replace

from benchmark.run.dispatch import cell_cost, longest_first
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
