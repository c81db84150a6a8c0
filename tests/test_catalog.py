"""benchmark.catalog (what planning knows, TensorFlow-free) agrees with the heavy registries,
name for name and fact for fact, and planning a grid imports neither TensorFlow nor MLflow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from benchmark import catalog

ROOT = Path(__file__).resolve().parents[1]


def test_every_registry_has_the_same_names_as_its_catalog_entry():
    from benchmark.models import ARCHITECTURES, HEADS, TRANSFER_MODES
    from benchmark.models.compile import LOSSES, OPTIMIZERS
    from benchmark.training import LR_SCHEDULES, REGIMES

    pairs = {"ARCHITECTURES": ARCHITECTURES, "HEADS": HEADS, "TRANSFER_MODES": TRANSFER_MODES,
             "LOSSES": LOSSES, "OPTIMIZERS": OPTIMIZERS, "REGIMES": REGIMES, "LR_SCHEDULES": LR_SCHEDULES}
    for name, heavy in pairs.items():
        light = getattr(catalog, name)
        assert light.names() == heavy.names(), f"benchmark.catalog.{name} must list {heavy.names()}"
        assert light.kind == heavy.kind  # the same 'Unknown ... Known: ...' message


def test_the_facts_planning_reads_match_the_registered_objects():
    from benchmark.models import ARCHITECTURES, TRANSFER_MODES
    from benchmark.training import REGIMES

    for name in ARCHITECTURES:
        heavy, light = ARCHITECTURES.get(name), catalog.ARCHITECTURES.get(name)
        assert (light.stateful_capable, light.why_not_stateful) == (heavy.stateful_capable,
                                                                     heavy.why_not_stateful), name
        assert (light.refused_modes, light.window_sized) == (heavy.refused_modes, heavy.window_sized), name
    for name in TRANSFER_MODES:
        heavy, light = TRANSFER_MODES.get(name), catalog.TRANSFER_MODES.get(name)
        assert (light.load_body, light.load_head, light.trains) == (heavy.load_body, heavy.load_head,
                                                                     bool(heavy.phases)), name
    for name in REGIMES:
        assert catalog.REGIMES.get(name).stateful == REGIMES.get(name).stateful, name
    from benchmark.training import MONITORS

    assert catalog.MONITORS == MONITORS


def test_planning_the_smoke_grid_imports_neither_tensorflow_nor_mlflow(data_dir, tmp_path):
    probe = ("import json, sys\n"
             "from benchmark.settings import Settings\n"
             "from benchmark.validation import load_and_plan\n"
             f"plan = load_and_plan('smoke', [], Settings(data_dir={str(data_dir)!r}, results={str(tmp_path)!r}))\n"
             "print(json.dumps([len(plan.cells)] + [m in sys.modules for m in "
             "('tensorflow', 'keras', 'mlflow', 'prefect')]))\n")
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    cells, *imported = json.loads(out.stdout.strip().splitlines()[-1])
    assert cells == 6 and imported == [False, False, False, False], imported
