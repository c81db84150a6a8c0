"""benchmark.spec.catalog (what planning knows, TensorFlow-free) declares every name the heavy
registries build, they build every name it declares and carry its facts (not copies), and planning
a grid imports neither TensorFlow nor MLflow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.spec import catalog
from benchmark.spec.errors import TlbenchError

ROOT = Path(__file__).resolve().parents[1]


def test_every_registry_has_the_same_names_as_its_catalog_entry():
    from benchmark.models import ARCHITECTURES, HEADS, TRANSFER_MODES
    from benchmark.models.compile import LOSSES, OPTIMIZERS
    from benchmark.models.regimes import REGIMES
    from benchmark.models.training import LR_SCHEDULES

    pairs = {"ARCHITECTURES": ARCHITECTURES, "HEADS": HEADS, "TRANSFER_MODES": TRANSFER_MODES,
             "LOSSES": LOSSES, "OPTIMIZERS": OPTIMIZERS, "REGIMES": REGIMES, "LR_SCHEDULES": LR_SCHEDULES}
    for name, heavy in pairs.items():
        light = getattr(catalog, name)
        missing = sorted(set(light.names()) - set(heavy.names()))  # declared, never built
        assert not missing, f"benchmark.spec.catalog.{name} declares {missing}, which no heavy registry builds"
        assert light.names() == heavy.names(), name  # registering refuses undeclared names (below)
        assert light.kind == heavy.kind  # the same 'Unknown ... Known: ...' message


def test_the_heavy_registries_carry_the_catalog_facts_themselves():
    from benchmark.models import ARCHITECTURES, TRANSFER_MODES
    from benchmark.models.regimes import REGIMES
    from benchmark.models.training import MONITORS

    for name in ARCHITECTURES:
        assert ARCHITECTURES.get(name).facts is catalog.ARCHITECTURES.get(name), name
    for name in TRANSFER_MODES:
        mode = TRANSFER_MODES.get(name)
        assert mode.facts is catalog.TRANSFER_MODES.get(name), name
        assert mode.facts.trains == bool(mode.phases), name  # checked when registering too
    for name in REGIMES:
        assert REGIMES.get(name).facts is catalog.REGIMES.get(name), name
    assert MONITORS is catalog.MONITORS


def test_registering_a_name_the_catalog_does_not_declare_is_refused():
    from benchmark.models.architectures import register_architecture
    from benchmark.models.transfer import Phase, register_mode

    with pytest.raises(TlbenchError, match=r"cannot register architecture 'lstmm': benchmark.spec.catalog "
                                           r"does not declare it \(declared: conv1d_lstm, dlinear"):
        register_architecture("lstmm", default_layers=1, test_params={}, cudnn_note="", description="")
    with pytest.raises(TlbenchError, match="cannot register transfer mode 'thaw'"):
        register_mode("thaw", (Phase("none"),), "")
    with pytest.raises(TlbenchError, match="declares trains=False"):
        register_mode("zeroshot", (Phase("none"),), "")  # zeroshot is declared as not training


def test_planning_the_smoke_grid_imports_neither_tensorflow_nor_mlflow(data_dir, tmp_path):
    probe = ("import json, sys\n"
             "from benchmark.spec.settings import Settings\n"
             "from benchmark.run.plan import load_and_plan\n"
             f"plan = load_and_plan('smoke', [], Settings(data_dir={str(data_dir)!r}, results={str(tmp_path)!r}))\n"
             "print(json.dumps([len(plan.cells)] + [m in sys.modules for m in "
             "('tensorflow', 'keras', 'mlflow', 'prefect')]))\n")
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    cells, *imported = json.loads(out.stdout.strip().splitlines()[-1])
    assert cells == 6 and imported == [False, False, False, False], imported
