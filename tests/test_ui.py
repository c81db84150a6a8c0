"""The MLflow UI and the Prefect dashboard, checked as a user sees them: a real ``mlflow server``
and a real ``prefect server`` on 127.0.0.1 over a finished tiny grid, their pages rendered by a
headless Chromium (the DevTools harness of ``test_report``), checked on the rendered text:

* the experiment opens in model-training mode (its runs list, not the GenAI traces overview;
  a control experiment tagged ``genai_development`` shows that the check can fail), and the link
  tlbench gives lands a fresh browser there; the saved view is listed in the *Views* menu and
  shows whole run names;
* a cell run shows its logged model and its training/validation/test datasets; the logged
  model's page shows its lineage, and the pretrained body's says its registered version;
* the grid's parent run's description holds the verdict and the link to its report; the report
  fits a 1,600 px window and links each best cell's run;
* the Prefect ad-hoc form (the deployment's custom-run form) offers the profile names;
* a ``benchmark_grid`` flow run over a SQLite store is named ``grid-<grid>-<run id>`` and its
  summary artifact is markdown that links the local report and names ``tlbench ui``;
* the pool-mode parent's ``grid-cells`` table artifact lists its cells with state and worker
  (published by ``flows.pool.CellTable`` inside a real flow run over the real ledger; the
  child runs are described, not run: a real pool run is the slow ``test_prefect_pool``).

Screenshots are written under the test's tmp folder and copied to ``$TLBENCH_UI_SHOTS`` (default
``/tmp/ui-shots``). Every server is stopped by its process group id, even on failure.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests._services import MlflowServer
from tests.conftest import free_port, stop_process, wait_http
from tests.test_report import HeadlessChromium, needs_chromium

pytestmark = [pytest.mark.e2e]  # each test: @needs_chromium (fails under CI=true without a browser)

REPO_ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = "tlbench-ui-test"
TINY = ["target_sizes=[120]", "split.test_size=48", "model.units=8", "training.max_epochs=2",
        "pretrain.max_series=6", "pretrain.windows_per_series=40", "pretrain.training.max_epochs=1",
        "modes=[scratch, finetune]", "seeds=[0, 1]", "baselines=[seasonal_naive]"]
SHOTS = Path(os.environ.get("TLBENCH_UI_SHOTS", "/tmp/ui-shots"))


# --------------------------------------------------------------------------- services


def _prefect_env(home: Path, api_url: str | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PYTHONPATH=os.pathsep.join([str(REPO_ROOT / "src"), str(REPO_ROOT)]),
               TF_CPP_MIN_LOG_LEVEL="2")
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    """``prefect server start`` on 127.0.0.1 with its own PREFECT_HOME; yields its base URL."""
    root = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    log = open(root / "server.log", "w")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "prefect"), "server", "start", "--host",
                             "127.0.0.1", "--port", str(port)],
                            env={**_prefect_env(root / "home"),  # the UI's pages call this API
                                 "PREFECT_UI_API_URL": f"http://127.0.0.1:{port}/api"}, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/api/health", 180, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)
        log.close()


@pytest.fixture(scope="module")
def finished_grid(tmp_path_factory, data_dir, prefect_server):
    """A tiny grid (2 modes x 2 seeds, 8 units, 2 epochs) run against a real mlflow server; the
    Prefect server starts meanwhile (it is requested first)."""
    from benchmark.run.engines import LocalEngine
    from benchmark.run.grid import run_grid
    from benchmark.spec.profiles import load_grid
    from benchmark.spec.settings import Settings

    root = tmp_path_factory.mktemp("ui-grid")
    server = MlflowServer(root / "mlflow").start()
    try:
        settings = Settings(data_dir=data_dir, results=str(root / "results"), tracking_uri=server.url,
                            mlflow_dir=root / "mlflow-local", experiment=EXPERIMENT,
                            allow_download=False).resolved()
        result = run_grid(load_grid("smoke", TINY), settings, LocalEngine(1))
        yield settings, result, server
    finally:
        server.stop()


# --------------------------------------------------------------------------- the Prefect side

PREFECT_SIDE = r"""
import json, sys, uuid
from pathlib import Path
from prefect import flow
from prefect.runtime import flow_run
from benchmark.spec.profiles import load_grid
from benchmark.run.plan import plan_grid
from benchmark.run.jobs import RunContext
from benchmark.spec.settings import Settings
from flows.pool import CellTable, _Child
from flows.grid import benchmark_grid

args = json.loads(sys.argv[1])
deployment_id = benchmark_grid.to_deployment(name="adhoc-benchmark").apply()
settings = Settings(data_dir=Path(args["data_dir"]), results=args["results"], tracking_uri=args["tracking_uri"],
                    allow_download=False).resolved()
context = RunContext("smoke", "g", "ui-test-run", "2026-01-01", args["experiment"], None, None)
jobs = plan_grid(load_grid("smoke", args["overrides"]), settings).cell_jobs(context)

@flow(name="benchmark-grid-pool-parent")
def parent():
    # Two batches as PoolEngine._poll leaves them: one ran on worker-a (its cells are in the
    # ledger), one still waits for a worker.
    children = [_Child(uuid.uuid4(), "cells-ui-test-run-001", jobs[:2], "COMPLETED", final=True,
                       worker="worker-a"),
                _Child(uuid.uuid4(), "cells-ui-test-run-002", jobs[2:], "SCHEDULED")]
    CellTable().publish(children, settings)
    return str(flow_run.get_id())

pool_run = parent()
# The real flow over a SQLite store, on a copy of the grid's results: every cell is already in the
# leaderboard, so nothing trains; the report is written and the summary published.
import shutil
results = Path(args["results"]).parent / "results-sqlite"
shutil.copytree(args["results"], results)
state = benchmark_grid("smoke", args["overrides"], "local", 1, data_dir=args["data_dir"], results=str(results),
                       tracking_uri=f"sqlite:///{results.parent / 'sqlite-mlflow' / 'mlflow.db'}",
                       return_state=True)
result = state.result()
print(json.dumps({"deployment_id": str(deployment_id), "flow_run_id": pool_run,
                  "cells": [job.names.run_name for job in jobs],
                  "grid_flow_run_id": str(state.state_details.flow_run_id), "grid_run_id": result.run_id,
                  "report_path": str(result.report_path), "counts": result.counts(),
                  "parent_run_id": result.parent_run_id}))
"""


@pytest.fixture(scope="module")
def prefect_objects(finished_grid, prefect_server, tmp_path_factory):
    settings, _, _ = finished_grid
    args = {"data_dir": str(settings.data_dir), "results": settings.results, "experiment": EXPERIMENT,
            "tracking_uri": settings.tracking_uri, "overrides": TINY}
    home = tmp_path_factory.mktemp("prefect-client")
    out = subprocess.run([sys.executable, "-c", PREFECT_SIDE, json.dumps(args)], cwd=REPO_ROOT,
                         env=_prefect_env(home, f"{prefect_server}/api"), capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- the browser


class Browser:
    """The ``test_report`` Chromium with a fixed 1400 x 1000 window, waits for rendered text
    (React apps: the load event says nothing) and screenshots."""

    def __init__(self, workdir: Path, shots: Path):
        self.chromium = HeadlessChromium(workdir, timeout=90)
        self.shots = shots
        shots.mkdir(parents=True, exist_ok=True)

    def open(self, url: str, height: int = 1000, width: int = 1400):
        page = self.chromium.open("about:blank")
        self.chromium.send("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
                           page.session)
        self.chromium.send("Page.navigate", {"url": url}, page.session)
        return page

    def text(self, page) -> str:
        return page.evaluate("document.body ? document.body.innerText : ''") or ""

    def wait_text(self, page, *needles: str, timeout: float = 60, name: str | None = None) -> str:
        """Poll the rendered text until it holds every needle; on timeout, fail with a screenshot."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.text(page)
            if all(n in text for n in needles):
                return text
            if time.monotonic() > deadline:
                shot = self.shot(page, f"FAILED-{name or 'page'}")
                missing = [n for n in needles if n not in text]
                raise AssertionError(f"{missing} not rendered within {timeout} s (screenshot {shot}); "
                                     f"text:\n{text[:3000]}")
            time.sleep(0.5)

    def click_text(self, page, text: str) -> bool:
        """Click the innermost element whose rendered text is exactly ``text``."""
        return page.evaluate(f"""(() => {{
            const els = [...document.querySelectorAll('body *')].filter(
              e => e.innerText && e.innerText.trim() === {json.dumps(text)});
            const el = els[els.length - 1];
            if (el) {{ el.click(); return true; }} return false; }})()""")

    def press(self, page, selector: str) -> None:
        """A real mouse press and release at the centre of ``selector`` (menus that open on
        pointer events ignore ``element.click()``)."""
        box = page.evaluate(f"""(() => {{ const r = document.querySelector({json.dumps(selector)})
            .getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()""")
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.chromium.send("Input.dispatchMouseEvent", {"type": kind, "x": box[0], "y": box[1], "button": "left",
                                                            "clickCount": 1}, page.session)

    def shot(self, page, name: str) -> Path:
        data = self.chromium.send("Page.captureScreenshot", {"format": "png"}, page.session)["data"]
        path = self.shots / f"{name}.png"
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        self.chromium.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    out = tmp_path_factory.mktemp("ui-shots")
    chromium = Browser(tmp_path_factory.mktemp("chromium-ui"), out)
    yield chromium
    chromium.close()
    SHOTS.mkdir(parents=True, exist_ok=True)
    for shot in out.glob("*.png"):
        shutil.copy(shot, SHOTS / shot.name)


def _tracker(settings, experiment=EXPERIMENT):
    from benchmark.tracking.tracker import Tracker

    return Tracker(settings, experiment)


def _cell_run(settings, mode: str, seed: int = 0):
    tracker = _tracker(settings)
    runs = tracker.client.search_runs([tracker.experiment_id],
                                      f"tags.`tlbench.kind` = 'cell' and tags.mode = '{mode}' "
                                      f"and tags.seed = '{seed}'")
    assert len(runs) == 1, [r.info.run_name for r in runs]
    return tracker, runs[0]


# --------------------------------------------------------------------------- MLflow


@needs_chromium
def test_experiment_opens_in_model_training_mode(finished_grid, browser):
    from benchmark.tracking.views import VIEW_NAME, runs_view_url

    settings, result, server = finished_grid
    assert result.counts() == {"finished": 5}  # 4 cells and the baseline
    tracker = _tracker(settings)
    assert tracker.client.get_experiment(tracker.experiment_id).tags["mlflow.experimentKind"] == \
        "custom_model_development"
    # A fresh browser starts in MLflow's GenAI workspace; there the tag makes the experiment's
    # runs "Training runs" (a side-bar entry and page); an experiment of GenAI kind has none.
    page = browser.open(f"{server.url}/#/experiments/{tracker.experiment_id}")
    browser.wait_text(page, EXPERIMENT, "Training runs", name="mlflow-experiment")
    browser.shot(page, "mlflow-0-experiment-genai-workspace")
    control = tracker.client.create_experiment("genai-control",
                                               tags={"mlflow.experimentKind": "genai_development"})
    page = browser.open(f"{server.url}/#/experiments/{control}")
    browser.wait_text(page, "genai-control", "Evaluation runs", name="mlflow-genai-control")
    time.sleep(3)
    text = browser.text(page)
    browser.shot(page, "mlflow-0-genai-control")
    assert "Training runs" not in text, text[:2000]
    # The views tlbench links and prints, in the model-training workspace (no GenAI pages). The
    # saved view: cell runs grouped by size and mode, the seeds' average, best MASE first.
    page = browser.open(runs_view_url(server.url, tracker.experiment_id))
    browser.wait_text(page, "Group: target_size: 120, mode: finetune", "Group: target_size: 120, mode: scratch",
                      "lstm·finetune·120·s0", "(average)", "Sort: mase", VIEW_NAME, name="mlflow-saved-view")
    time.sleep(1)
    text = browser.text(page)
    browser.shot(page, "mlflow-1-saved-view")
    assert "Model registry" in text and "Evaluation runs" not in text and "Judges" not in text
    assert "grid-smoke" not in text and "pretrain-" not in text  # the view's filter: cell runs only
    # whole run names: no run-name cell clips its text (the view's name-column width)
    clipped = page.evaluate("""[...document.querySelectorAll('.ag-cell')].filter(c => c.innerText.includes('·s'))
        .map(c => [c.innerText.trim(), [c, ...c.querySelectorAll('*')].some(e => e.scrollWidth > e.clientWidth + 1)])""")
    assert clipped and not [name for name, cut in clipped if cut], clipped
    # the Views menu lists the saved view (the trigger shows its name: the open view is a listed one)
    assert page.evaluate("document.querySelector('[data-testid=saved-views-trigger]').innerText").strip() == VIEW_NAME
    before = browser.text(page).count(VIEW_NAME)
    browser.press(page, "[data-testid=saved-views-trigger]")
    menu = browser.wait_text(page, "SAVED VIEWS", "Save as new view", name="mlflow-views-menu")
    browser.shot(page, "mlflow-1b-views-menu")
    assert "No saved views yet" not in menu and menu.count(VIEW_NAME) == before + 1, menu[:2000]  # its item
    # the link tlbench gives (the grid run's description, the CLI) lands a fresh browser on the
    # model-training runs list, not the GenAI overview that the bare experiment URL opens
    page = browser.open(tracker.experiment_url())
    text = browser.wait_text(page, "grid-smoke", "Model registry", name="mlflow-experiment-link")
    browser.shot(page, "mlflow-0-experiment-link")
    assert "Evaluation runs" not in text and "Judges" not in text
    # one size: the cell runs of that size, best MASE first (filter and sort in the URL)
    page = browser.open(runs_view_url(server.url, tracker.experiment_id, 120))
    browser.wait_text(page, "lstm·finetune·120·s0", "lstm·scratch·120·s1", "Sort: mase", name="mlflow-runs")
    time.sleep(1)
    text = browser.text(page)
    browser.shot(page, "mlflow-1-runs-list")
    assert "Evaluation runs" not in text and "grid-smoke" not in text


@needs_chromium
def test_cell_run_shows_its_logged_model_and_datasets(finished_grid, browser):
    settings, _, server = finished_grid
    tracker, run = _cell_run(settings, "finetune")
    assert run.info.run_name == "lstm·finetune·120·s0"
    assert run.data.tags["mlflow.note.content"].startswith("**ett/ETTh1:OT n=120 lstm/finetune seed=0**")
    inputs = {[t.value for t in d.tags if t.key == "mlflow.data.context"][0]: d.dataset
              for d in run.inputs.dataset_inputs}
    assert sorted(inputs) == ["test", "training", "validation"]
    assert inputs["training"].name.startswith("ett/ETTh1:OT training 20")
    assert inputs["training"].digest and inputs["training"].source_type == "local"
    [output] = run.outputs.model_outputs
    model = tracker.client.get_logged_model(output.model_id)
    assert model.source_run_id == run.info.run_id and model.status.to_proto() == 2  # READY
    assert model.tags["pretrained_model"] == "pretrained-lstm-m4-hourly" and model.tags["pretrained_version"]

    page = browser.open(tracker.run_url(run.info.run_id), height=1500)
    text = browser.wait_text(page, "lstm·finetune·120·s0", "Logged models (1)", "Datasets",
                             name="mlflow-cell-run")
    time.sleep(2)
    text = browser.text(page)
    browser.shot(page, "mlflow-2-cell-run")
    assert text.split("\nDatasets\n", 1)[1].startswith(inputs["training"].name), "datasets not shown"
    models = text.split("Logged models (1)", 1)[1][:300]
    assert "\nmodel\n" in models and "Ready" in models, models
    assert "ett/ETTh1:OT n=120 lstm/finetune seed=0" in text  # the description holds the full label
    page.evaluate("""(() => { const el = [...document.querySelectorAll('body *')].filter(
        e => e.innerText && e.innerText.trim().startsWith('Logged models (1)')).pop();
        if (el) el.scrollIntoView(); })()""")
    time.sleep(1)
    browser.shot(page, "mlflow-2b-cell-run-logged-model")
    # the logged model's own page: its lineage (the body's registry version) in its description
    eid = tracker.experiment_id
    page = browser.open(f"{server.url}/#/experiments/{eid}/models/{model.model_id}?workflowType=machine_learning")
    text = browser.wait_text(page, "Lineage", "pretrained_model", "pretrained-lstm-m4-hourly",
                             f"pretrained_version: {model.tags['pretrained_version']}", name="mlflow-logged-model")
    browser.shot(page, "mlflow-2c-logged-model-lineage")
    # the body's logged model: registered, linked to its version (not "Not registered")
    [pretrain] = tracker.client.search_runs([eid], "tags.`tlbench.kind` = 'pretrain'")
    body = pretrain.outputs.model_outputs[0].model_id
    page = browser.open(f"{server.url}/#/experiments/{eid}/models/{body}?workflowType=machine_learning")
    text = browser.wait_text(page, "Model versions", "pretrained-lstm-m4-hourly", name="mlflow-body-model")
    time.sleep(2)
    text = browser.text(page)
    browser.shot(page, "mlflow-2d-body-registered")
    assert "Not registered" not in text, text[:2000]


@needs_chromium
def test_grid_run_description_holds_the_verdict_and_the_report_link(finished_grid, browser):
    settings, result, server = finished_grid
    tracker = _tracker(settings)
    note = tracker.get_run(result.parent_run_id).data.tags["mlflow.note.content"]
    assert result.verdict and all(line in note for line in result.verdict)
    assert result.report_url == (f"{server.url}/#/experiments/{tracker.experiment_id}/runs/"
                                 f"{result.parent_run_id}/artifacts/report/report.html"
                                 "?workflowType=machine_learning")
    assert f"]({result.report_url})" in note
    page = browser.open(tracker.run_url(result.parent_run_id), height=1300)
    browser.wait_text(page, "Verdict", result.verdict[0][:60], name="mlflow-grid-run")
    browser.click_text(page, "Show more")
    browser.wait_text(page, "HTML report", name="mlflow-grid-run-more")
    browser.shot(page, "mlflow-3-grid-run")
    assert f"[All runs of this experiment (model training)]({tracker.experiment_url()})" in note
    page = browser.open(result.report_url)  # the link the Prefect artifact carries
    browser.wait_text(page, "report/report.html", "forecast_120.png", name="mlflow-report-artifact")
    time.sleep(3)
    browser.shot(page, "mlflow-4-report-artifact")
    # the report itself at 1,600 px: no table overflows, each best cell's run id links to its run
    page = browser.open(Path(result.report_path).as_uri(), width=1600)
    browser.wait_text(page, "Aggregated leaderboard", name="report")
    facts = page.evaluate("""(() => ({page: [document.documentElement.scrollWidth, document.documentElement.clientWidth],
        tables: [...document.querySelectorAll('table')].map(t => [t.scrollWidth, t.parentElement.clientWidth]),
        links: [...document.querySelectorAll('td a')].map(a => [a.innerText, a.getAttribute('href')])}))()""")
    assert facts["page"][0] <= facts["page"][1] and all(w <= room for w, room in facts["tables"]), facts
    best = result.leaderboard.query("mode == 'finetune' or mode == 'scratch'")["mlflow_run_id"]
    assert facts["links"] and all(run in set(best) and href == tracker.run_url(run) for run, href in facts["links"])


# --------------------------------------------------------------------------- Prefect


@needs_chromium
def test_prefect_form_offers_the_profiles(prefect_objects, prefect_server, browser):
    from benchmark.spec.profiles import profile_names

    schema = _api(prefect_server, f"deployments/{prefect_objects['deployment_id']}")["parameter_openapi_schema"]
    grid = schema["properties"]["grid"]
    assert {"enum": profile_names(), "type": "string", "title": "profile"} in grid["anyOf"]
    assert {"type": "string", "title": "grid YAML path"} in grid["anyOf"]
    page = browser.open(f"{prefect_server}/deployments/deployment/{prefect_objects['deployment_id']}/run")
    # the grid field: a choice of the profiles (a select whose options are the names) or a path
    text = browser.wait_text(page, "grid (Optional)", "profile", "grid YAML path", *profile_names(),
                             name="prefect-form")
    browser.shot(page, "prefect-1-run-form")
    options = page.evaluate("[...document.querySelectorAll('select option')].map(o => o.value || o.text)")
    assert [o for o in options if o in profile_names()] == profile_names(), options


@needs_chromium
def test_grid_flow_run_is_named_and_its_summary_is_markdown(prefect_objects, prefect_server, browser):
    flow_run = prefect_objects["grid_flow_run_id"]
    assert _api(prefect_server, f"flow_runs/{flow_run}")["name"] == f"grid-smoke-{prefect_objects['grid_run_id']}"
    [summary] = _api(prefect_server, "artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [flow_run]},
                                                                        "key": {"any_": ["grid-summary"]}}})
    report = Path(prefect_objects["report_path"])
    counts = ", ".join(f"{n} {status}" for status, n in sorted(prefect_objects["counts"].items()))
    assert f"- cells: {counts}\n" in summary["data"] and "{" not in summary["data"], summary["data"]
    # a SQLite store: the report's path, and its link on `tlbench ui` (Prefect renders no file:// link)
    url = re.search(r"\[HTML report\]\((http://127\.0\.0\.1:5000/#/experiments/\d+/runs/([0-9a-f]+)/artifacts/"
                    r"report/report\.html\?workflowType=machine_learning)\)", summary["data"])
    assert url and url.group(2) == prefect_objects["parent_run_id"], summary["data"]
    assert f"`{report}`" in summary["data"] and "run `tlbench ui` there" in summary["data"]
    page = browser.open(f"{prefect_server}/artifacts/artifact/{summary['id']}")
    text = browser.wait_text(page, f"cells: {counts}", str(report), "tlbench ui", "HTML report",
                             name="prefect-summary")
    browser.shot(page, "prefect-2-grid-summary")
    links = page.evaluate("[...document.querySelectorAll('a')].map(a => a.getAttribute('href'))")
    assert url.group(1) in links, links
    assert "'finished'" not in text


@needs_chromium
def test_pool_parent_lists_its_cells(prefect_objects, prefect_server, browser):
    flow_run = prefect_objects["flow_run_id"]
    artifacts = _api(prefect_server, "artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [flow_run]},
                                                                       "key": {"any_": ["grid-cells"]}}})
    assert len(artifacts) == 1
    rows = json.loads(artifacts[0]["data"]) if isinstance(artifacts[0]["data"], str) else artifacts[0]["data"]
    cells = prefect_objects["cells"]
    assert [r["cell"] for r in rows] == cells
    assert [r["state"] for r in rows] == ["FINISHED", "FINISHED", "SCHEDULED", "SCHEDULED"]
    assert rows[0]["worker"] == "worker-a" and rows[0]["host"] and rows[0]["mase"] > 0
    page = browser.open(f"{prefect_server}/runs/flow-run/{flow_run}")
    browser.wait_text(page, "Job Variables", name="prefect-flow-run")
    assert browser.click_text(page, "Artifacts")  # the run's Artifacts tab
    browser.wait_text(page, "grid-cells", "cells: 2/4 recorded", name="prefect-flow-run-artifacts")
    browser.shot(page, "prefect-3-parent-artifacts")
    page = browser.open(f"{prefect_server}/artifacts/artifact/{artifacts[0]['id']}")
    browser.wait_text(page, *cells, "FINISHED", "SCHEDULED", "worker-a", name="prefect-cell-table")
    browser.shot(page, "prefect-4-cell-table")


def _api(base: str, path: str, body: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{base}/api/{path}", data=data, method="POST" if data else "GET",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())
