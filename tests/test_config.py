"""The spec tree: YAML -> typed specs, overrides, all problems at once, stable keys."""

import dataclasses
import hashlib

import pytest

from benchmark.config import (CellSpec, DataSpec, GridSpec, apply_overrides, canonical_json, from_dict,
                              load_grid, profile_names, spec_hash)
from benchmark.errors import SpecError, TlbenchError


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


# --------------------------------------------------------------------------- variants and neutral keys


def test_variants_are_the_union_of_sub_grids_not_the_whole_cross():
    from benchmark.config import variant_specs
    from benchmark.jobs import expand
    from benchmark.validation import grid_problems

    data = {"target_sizes": [240], "modes": ["scratch", "finetune"], "seeds": [0, 1],
            "normalisations": ["last_value", "global"], "lookbacks": [24, 48]}
    whole = expand(from_dict(GridSpec, data))
    spec = from_dict(GridSpec, {**data, "variants": [
        {"modes": ["scratch"]},                                            # 2 norms x 2 lookbacks x 2 seeds
        {"modes": ["finetune"], "normalisations": ["last_value"], "lookbacks": [24]},  # x 2 seeds
        {"modes": ["scratch"], "lookbacks": [24]},                         # inside the first: no new cell
    ]})
    assert grid_problems(spec) == []
    cells = expand(spec)
    assert len(whole) == 16 and len(cells) == 8 + 2
    assert {(c.mode, c.model.normalisation, c.split.lookback) for c in cells if c.mode == "finetune"} == \
        {("finetune", "last_value", 24)}
    assert len(variant_specs(spec)) == 3 and variant_specs(from_dict(GridSpec, data)) == [from_dict(GridSpec, data)]


@pytest.mark.parametrize("variant, message", [
    ({"horizon": 24}, r"grid.variants\[0\].horizon: not an axis a variant may narrow. Known: target_sizes"),
    ({"lookbacks": [336]}, r"grid.variants\[0\].lookbacks: \[336\] not among the grid's lookbacks \[24\]; "
                           r"add them to grid.lookbacks first"),
    ({"modes": "scratch", "seeds": [7]}, r"grid.variants\[0\].seeds: \[7\] not among the grid's seeds \[0\]"),
])
def test_bad_variants_are_refused_with_their_path(variant, message):
    from benchmark.validation import validate_grid

    with pytest.raises(SpecError, match=message):
        validate_grid(from_dict(GridSpec, {"variants": [variant]}))


def test_a_new_option_at_its_default_keeps_every_key():
    from benchmark.config import KEY_NEUTRAL_DEFAULT, key_plain, to_plain

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
    from benchmark.jobs import expand

    return expand(GridSpec())[0]
