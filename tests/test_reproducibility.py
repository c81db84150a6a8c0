"""Reproducibility on the production path: two separate processes run the same tiny grid
(``tests/repro_cell.py``: ``run_grid`` in graph mode with TensorFlow's default thread pools, as a
worker runs it) and must agree bit for bit: the pretrained weights, every cell's metrics and its
logged predictions. And the frozen body stays bit-identical to the pretrained one through a
graph-mode fit. The eager, one-thread versions of these checks are in ``test_training.py`` and
``tests/models/test_transfer.py``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

HELPER = Path(__file__).with_name("repro_cell.py")


def run_in_fresh_process(out: Path, data_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "TLBENCH_", "TF_"))}
    env.update({"TLBENCH_DATA_DIR": str(data_dir), "TF_CPP_MIN_LOG_LEVEL": "2"})
    done = subprocess.run([sys.executable, str(HELPER), str(out)], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, f"{HELPER.name} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return json.loads((out / "facts.json").read_text())


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, data_dir) -> tuple[dict, dict]:
    root = tmp_path_factory.mktemp("repro")
    return run_in_fresh_process(root / "first", data_dir), run_in_fresh_process(root / "second", data_dir)


def test_the_runs_took_the_production_path(two_runs):
    for facts in two_runs:
        assert facts["counts"] == {"finished": 5}  # 4 cells + the naive baseline
        assert facts["graph_mode"] is True
        assert facts["threads"] == [0, 0]  # TF's own pool sizes: nobody called configure_threads


def test_same_seed_in_two_processes_gives_bit_identical_weights_metrics_and_predictions(two_runs):
    first, second = two_runs
    assert first["pretrained_weights_sha256"] == second["pretrained_weights_sha256"]
    assert set(first["cells"]) == set(second["cells"]) == {"frozen-s0", "frozen-s1", "scratch-s0", "scratch-s1"}
    for label, cell in first["cells"].items():
        other = second["cells"][label]
        assert cell["cell_key"] == other["cell_key"], label
        assert cell["metrics"] == other["metrics"], f"{label}: metrics differ across processes"
        assert cell["predictions_head"] == other["predictions_head"], label
        assert cell["predictions_sha256"] == other["predictions_sha256"], f"{label}: predictions differ"
        assert cell["epochs"] >= 1


def test_the_comparison_can_fail_another_seed_gives_other_predictions(two_runs):
    cells = two_runs[0]["cells"]
    for mode in ("scratch", "frozen"):
        assert cells[f"{mode}-s0"]["predictions_sha256"] != cells[f"{mode}-s1"]["predictions_sha256"]
        assert cells[f"{mode}-s0"]["metrics"] != cells[f"{mode}-s1"]["metrics"]


def test_the_frozen_body_is_bit_identical_to_the_pretrained_one_after_a_graph_mode_fit(two_runs):
    for facts in two_runs:
        assert facts["frozen_body_layers"], "the frozen model has no body_* layers"
        assert facts["frozen_body_identical"] == {name: True for name in facts["frozen_body_layers"]}
        assert facts["frozen_body_trainable"] == {name: False for name in facts["frozen_body_layers"]}
        assert facts["frozen_params"] > 0 and facts["frozen_epochs"] >= 1
