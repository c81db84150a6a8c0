"""The spec tree: YAML -> typed specs, overrides, all problems at once, stable keys."""

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest

from benchmark.data.sources import source_label
from benchmark.run.jobs import cell_key, expand
from benchmark.run.plan import plan_grid
from benchmark.run.validation import grid_problems, validate_grid
from benchmark.spec.axes import AXES, VARIANT_DEFAULTS
from benchmark.spec.convert import from_dict
from benchmark.spec.errors import SpecError, TlbenchError
from benchmark.spec.identity import KEY_NEUTRAL_DEFAULT, canonical_json, key_plain, spec_hash, to_plain
from benchmark.spec.profiles import apply_overrides, load_grid, profile_names, subgrid_override
from benchmark.spec.sections import DataSpec
from benchmark.spec.tree import CellSpec, GridSpec, subgrid_specs


def test_profiles_are_shipped_and_load():
    assert {"smoke", "standard", "nightly"} <= set(profile_names())
    for name in profile_names():
        spec = load_grid(name)
        assert isinstance(spec, GridSpec)
        assert spec.name == name


def test_smoke_profile_is_the_walking_skeleton():
    spec = load_grid("smoke")
    assert spec.architectures == ("lstm",)
    assert spec.modes == ("scratch", "frozen", "finetune")
    assert len(spec.target_sizes) == 2
    assert spec.model.units == 64 and spec.model.layers == 2
    assert spec.split.lookback == 24
    assert spec.targets[0] == DataSpec("ett", {"file": "ETTh1", "column": "OT"})


def test_unknown_profile_lists_the_known_ones():
    with pytest.raises(TlbenchError, match="Unknown profile 'smok'. Known: ett-standard, ett-standard-h96, etth1-onestep, nightly, notebook, smoke, standard"):
        load_grid("smok")


def test_missing_yaml_file_is_named(tmp_path):
    with pytest.raises(TlbenchError, match="does not exist"):
        load_grid(str(tmp_path / "nope.yaml"))


def test_every_problem_is_reported_at_once_with_its_path(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\ntrainig: {}\ntraining: {batch_size: big, max_epochs: 2.5}\nseeds: [a]\n")
    with pytest.raises(SpecError) as info:
        load_grid(str(path))
    problems = info.value.problems
    assert any(p.startswith("grid.trainig: unknown key") for p in problems)
    assert any(p.startswith("grid.training.batch_size: expected an integer") for p in problems)
    assert any(p.startswith("grid.training.max_epochs: expected an integer") for p in problems)
    assert any(p.startswith("grid.seeds[0]: expected an integer") for p in problems)
    assert str(path) in str(info.value)


def test_overrides_are_parsed_as_yaml():
    data = apply_overrides({"training": {"max_epochs": 5}},
                           ["training.max_epochs=3", "modes=[scratch, frozen]", "model.units=8"])
    assert data == {"training": {"max_epochs": 3}, "modes": ["scratch", "frozen"], "model": {"units": 8}}
    spec = load_grid("smoke", ["seeds=[0,1,2]", "training.max_epochs=3"])
    assert spec.seeds == (0, 1, 2) and spec.training.max_epochs == 3
    with pytest.raises(TlbenchError, match="key.subkey=value"):
        apply_overrides({}, ["nonsense"])


def test_scalar_where_a_list_is_expected_is_accepted():
    spec = from_dict(GridSpec, {"seeds": 3, "architectures": "gru"})
    assert spec.seeds == (3,) and spec.architectures == ("gru",)


def test_spec_hash_is_stable_and_sensitive():
    a = load_grid("smoke")
    b = load_grid("smoke")
    assert spec_hash(a) == spec_hash(b)
    assert len(spec_hash(a)) == 16
    c = load_grid("smoke", ["training.learning_rate=0.01"])
    assert spec_hash(a) != spec_hash(c)
    # option order does not change identity
    assert spec_hash(DataSpec("ett", {"file": "ETTh1", "column": "OT"})) == \
        spec_hash(DataSpec("ett", {"column": "OT", "file": "ETTh1"}))


# --------------------------------------------------------------------------- sub-grids, axes and neutral keys


def test_subgrids_are_the_union_of_sub_grids_not_the_whole_cross():
    data = {"target_sizes": [240], "modes": ["scratch", "finetune"], "seeds": [0, 1],
            "normalisations": ["last_value", "global"], "lookbacks": [24, 48]}
    whole = expand(from_dict(GridSpec, data))
    spec = from_dict(GridSpec, {**data, "subgrids": [
        {"modes": ["scratch"]},                                            # 2 norms x 2 lookbacks x 2 seeds
        {"modes": ["finetune"], "normalisations": ["last_value"], "lookbacks": [24]},  # x 2 seeds
        {"modes": ["scratch"], "lookbacks": [24]},                         # inside the first: no new cell
    ]})
    assert grid_problems(spec) == []
    cells = expand(spec)
    assert len(whole) == 16 and len(cells) == 8 + 2
    assert {(c.mode, c.model.normalisation, c.split.lookback) for c in cells if c.mode == "finetune"} == \
        {("finetune", "last_value", 24)}
    assert len(subgrid_specs(spec)) == 3 and subgrid_specs(from_dict(GridSpec, data)) == [from_dict(GridSpec, data)]


@pytest.mark.parametrize("subgrid, message", [
    ({"horizon": 24}, r"grid.subgrids\[0\].horizon: not an axis a sub-grid may narrow. Known: protocols, "
                      r"target_sizes, architectures"),
    ({"lookbacks": [336]}, r"grid.subgrids\[0\].lookbacks: \[336\] not among the grid's lookbacks \[24\]; "
                           r"add them to grid.lookbacks first"),
    ({"modes": "scratch", "seeds": [7]}, r"grid.subgrids\[0\].seeds: \[7\] not among the grid's seeds \[0\]"),
])
def test_bad_subgrids_are_refused_with_their_path(subgrid, message):
    with pytest.raises(SpecError, match=message):
        validate_grid(from_dict(GridSpec, {"subgrids": [subgrid]}))


def test_the_old_variants_key_is_refused_naming_subgrids(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text("name: old\nvariants: [{modes: [scratch]}]\n")
    with pytest.raises(SpecError, match=r"grid.variants: renamed to subgrids; write subgrids: instead"):
        load_grid(str(path))


def test_subgrids_keep_their_old_name_in_the_grid_id_and_logged_params():
    """Grid ids hash the grid spec: ``subgrids`` was ``variants``, and its plain form still is."""
    spec = load_grid("ett-standard")
    assert "variants" in key_plain(spec) and "subgrids" not in key_plain(spec)
    assert to_plain(spec)["variants"] == to_plain(spec.subgrids)
    assert "variants" not in key_plain(load_grid("smoke"))  # empty: left out, as before


def test_the_axes_table_names_real_fields():
    grid_fields = {f.name for f in dataclasses.fields(GridSpec)}
    cell = expand_first()
    for axis in AXES:
        assert axis.field in grid_fields, axis
        assert axis.value_of(cell) is not None or axis.field == "targets", axis
        if axis.optional:
            assert getattr(GridSpec(), axis.field) == () and axis.values(GridSpec()) == (axis.value_of(GridSpec()),)
    assert [column for column, _ in VARIANT_DEFAULTS] == list(cell.variant) == [
        "protocol", "regime", "features", "normalisation", "forecast", "lookback"]
    assert cell.variant_parts == []
    lookback = dataclasses.replace(cell, split=dataclasses.replace(cell.split, lookback=168), regime="stateful")
    assert lookback.variant_parts == ["stateful", "L168"]


def test_the_shipped_profiles_keep_their_grid_ids_and_cell_keys(settings):
    """Pinned from the code at commit 12d075e, before the spec split and the axes table; a profile
    that grew cells since (issue 34: ETT's lp_ft and ft_from_head) keeps every key it had; one whose
    baselines grew (issue 35: mstl in five profiles) has a new grid id and the same cell keys. A
    profile whose experiment changed on purpose (issue 34: a new body recipe, which every cell key
    hashes) is pinned anew under ``recipe_changed``, which says why; no refactor may move a key."""
    fixture = json.loads((Path(__file__).parent / "fixtures" / "profile_keys.json").read_text())
    changed = fixture["recipe_changed"]
    expected = {**fixture["profiles"], **changed["profiles"]}
    kept = {k: v for k, v in fixture["kept_cells"].items() if k not in changed["profiles"]}
    assert sorted(expected) == profile_names()
    for name, pinned in expected.items():
        plan = plan_grid(load_grid(name), settings, name)
        keys = sorted(cell_key(c, plan.fingerprints[source_label(c.target)]) for c in plan.cells)
        assert (plan.grid_id, len(keys), hashlib.sha256("\n".join(keys).encode()).hexdigest()) == \
            (pinned["grid_id"], pinned["n_cells"], pinned["cells_sha256"]), name
        lost = set(kept.get(name, ())) - set(keys)
        assert not lost, f"{name}: {len(lost)} cells of existing ledgers would retrain: {sorted(lost)[:3]}"


def test_a_profile_split_by_subgrid_runs_the_same_cells_with_the_same_keys(settings):
    """ett-standard as the three commands of docs/protocols.md (``--subgrid 3``; ``1 2``; ``4 5 6
    7``): together exactly the whole profile's cells, each with the key it has in the whole run, so
    the later commands and a whole run are answered from the same ledger and the same body. Sub-grid
    7, added after the profile was run whole, leaves sub-grids 1 to 6 as they were: the same grid id
    and the 208 keys pinned before it (so a results folder of the whole profile trains only it)."""
    def keys(overrides):
        plan = plan_grid(load_grid("ett-standard", overrides), settings, "ett-standard")
        return plan.grid_id, {cell_key(c, plan.fingerprints[source_label(c.target)]) for c in plan.cells}

    _, whole = keys([])
    _, curve = keys([subgrid_override("ett-standard", [], [3])])
    _, scratch = keys([subgrid_override("ett-standard", [], [1, 2])])
    _, rest = keys([subgrid_override("ett-standard", [], [4, 5, 6, 7])])
    assert (len(whole), len(curve), len(scratch), len(rest)) == (240, 80, 48, 124)
    assert curve | scratch | rest == whole and len(curve & scratch) == 12  # sub-grid 1's window cells
    assert not rest & (curve | scratch)
    grid_id, before = keys([subgrid_override("ett-standard", [], [1, 2, 3, 4, 5, 6])])
    assert (grid_id, len(before), hashlib.sha256("\n".join(sorted(before)).encode()).hexdigest()) == \
        ("764b72f20b2cb596", 208, "9910dc595563716763477d0ec52f309d3dfcdef46c33f6ce6f9bdd40d42572ee")


@pytest.mark.parametrize("profile, picks, message", [
    ("ett-standard", [0, 8], r"--subgrid 0, 8: profile 'ett-standard' has sub-grids 1 to 7: 1 = \{"),
    ("smoke", [1], r"profile 'smoke' has no `subgrids` to pick from; leave --subgrid out"),
])
def test_a_subgrid_pick_outside_the_grid_is_refused_listing_them(profile, picks, message):
    with pytest.raises(TlbenchError, match=message):
        subgrid_override(profile, [], picks)


def test_a_new_option_at_its_default_keeps_every_key():
    cell = expand_first()
    plain = to_plain(cell)
    assert "min_steps" in plain["training"] and "min_steps" not in key_plain(cell)["training"]
    assert key_plain(dataclasses.replace(cell, training=dataclasses.replace(cell.training, min_steps=5)))[
        "training"]["min_steps"] == 5
    # the hash of a spec without neutral fields is the hash of its canonical JSON, as before they existed
    assert spec_hash(DataSpec("ett", {"file": "ETTh1"})) == \
        hashlib.sha256(canonical_json(DataSpec("ett", {"file": "ETTh1"})).encode() + b"\x00").hexdigest()[:16]
    assert KEY_NEUTRAL_DEFAULT["key_neutral_default"]


def expand_first():
    return expand(GridSpec())[0]
