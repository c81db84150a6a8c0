"""benchmark.report: the grid figures, the best cell per size, and the self-contained HTML report,
which is opened in a real headless Chromium (driven over the DevTools protocol through a pipe)
and checked as a page: no console errors, no request leaving the file, the transfer-benefit image
decoded by the browser and drawn on the page.

The browser tests find Chromium on ``PATH`` (``chromium``, ``chromium-browser``) or at
``TLBENCH_CHROMIUM``. Without one they skip, except under ``CI=true``, where they fail with the
install command (``apt-get install -y chromium``)."""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import os
import queue
import signal
import subprocess
import threading
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.report.figures import forecast_figure, training_time_figure, transfer_benefit_figure
from benchmark.report.html import RUN_URL, best_cells, write_report
from benchmark.report.paths import REPORT_FILE, TRAINING_TIME_FILE, TRANSFER_BENEFIT_FILE
from benchmark.results.leaderboard import Leaderboard
from benchmark.results.ranking import aggregate
from benchmark.spec.errors import TlbenchError

T0 = dt.datetime(2024, 6, 3, 1, 0, tzinfo=dt.timezone.utc)
TARGET = "ett/ETTh1:OT"
SIZES = (240, 960, 4800)
ARCHITECTURES = ("gru", "lstm")
MODES = ("scratch", "frozen", "finetune")
SEEDS = (0, 1, 2)
# How much each mode multiplies scratch's MASE at each size: transfer helps small targets and
# fades (frozen even hurts) as the target grows; the visible answer the report must show.
MODE_FACTOR = {"scratch": (1.0, 1.0, 1.0), "frozen": (0.85, 0.97, 1.08), "finetune": (0.78, 0.9, 0.99)}


def synthetic_rows(run_id: str = "20240603T010000-abc123") -> list[dict]:
    """2 architectures x 3 modes x 3 sizes x 3 seeds of model cells plus two baselines per size."""
    rng = np.random.default_rng(7)
    rows = []

    def row(architecture, mode, size, seed, mase, seconds, kind="model"):
        mae = 0.9 * mase
        mse = 1.3 * mae**2
        return dict(
            grid_id="g-report", grid="report-demo", run_id=run_id, run_date="2024-06-03",
            cell_key=f"{architecture}-{mode}-{size}-{seed}", kind=kind, target=TARGET, target_dataset="ett/ETTh1",
            target_column="OT", target_size=size, architecture=architecture, mode=mode, seed=seed, lookback=24,
            horizon=1, mse=mse, rmse=float(np.sqrt(mse)), mae=mae, mape=15.0 * mase, smape=12.0 * mase, mase=mase,
            train_seconds=seconds, epochs=0 if kind == "baseline" else 12, trainable_params=5000,
            frozen_params=0,
            mlflow_run_id=None if kind == "baseline" else f"mlflow-{architecture}-{mode}-{size}-{seed}",
            model_uri=None, pretrained_key=None, pretrained_version=None, worker_host="host", device="CPU",
            package_version="0.1.0", git_commit="abc", data_fingerprint="fp",
            started_at=T0, finished_at=T0 + dt.timedelta(seconds=seconds + 1))

    for i, size in enumerate(SIZES):
        scratch = 1.6 * (240 / size) ** 0.15
        for architecture in ARCHITECTURES:
            offset = 0.05 if architecture == "gru" else 0.0
            for mode in MODES:
                for seed in SEEDS:
                    mase = (scratch + offset) * MODE_FACTOR[mode][i] + rng.normal(0, 0.015)
                    seconds = 2.0 * size / 240 * {"scratch": 1.0, "frozen": 0.4, "finetune": 1.3}[mode]
                    rows.append(row(architecture, mode, size, seed, float(mase), seconds))
        rows.append(row("baseline", "naive", size, 0, 1.45, 0.0, kind="baseline"))
        rows.append(row("baseline", "seasonal_naive", size, 0, 1.25, 0.0, kind="baseline"))
    return rows


@pytest.fixture(scope="module")
def leaderboard_rows(tmp_path_factory) -> pd.DataFrame:
    """The synthetic rows, written to and read back from a real Parquet leaderboard."""
    board = Leaderboard(str(tmp_path_factory.mktemp("lb")))
    board.append_batch(synthetic_rows())
    return board.read(grid="report-demo")


def sine_forecast(size: int):
    ds = pd.date_range("2018-01-01", periods=96, freq="h")
    observed = 10 + 3 * np.sin(np.arange(96) * 2 * np.pi / 24)
    return ds, observed, observed + 0.3 * np.cos(np.arange(96) / 5) + size / 10_000


@pytest.fixture(scope="module")
def report(leaderboard_rows, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    forecasts = {size: sine_forecast(size) for size in SIZES}
    return write_report(leaderboard_rows, out, "tlbench report: report-demo", forecasts=forecasts)


# ---------------------------------------------------------------- figures and best cells


def test_transfer_benefit_figure_has_one_log_panel_per_architecture_and_a_line_per_mode(leaderboard_rows):
    fig = transfer_benefit_figure(aggregate(leaderboard_rows))
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == [f"{a} · {TARGET}" for a in ARCHITECTURES]
    for ax in panels:
        assert ax.get_xscale() == "log"
        assert [int(t) for t in ax.get_xticks()] == list(SIZES)
        assert len(ax.containers) == len(MODES)  # one errorbar container per mode
        # [modes, sizes, 2] error bar segments: 3 seeds give finite, non-zero CI half-widths
        bars = [c.lines[2][0].get_segments() for c in ax.containers]
        assert all(len(segments) == len(SIZES) for segments in bars)
        assert all(seg[1][1] > seg[0][1] for segments in bars for seg in segments)
    labels = fig.legends[0].get_texts()
    assert [t.get_text() for t in labels] == ["scratch", "finetune", "frozen", "naive (baseline)",
                                              "seasonal_naive (baseline)"]


def test_transfer_benefit_axis_is_set_by_the_models_and_naive_and_marks_far_baselines_off_scale(
        leaderboard_rows):
    """A mean-forecast baseline at MASE 6 would squeeze every mode into one band: the axis stays on
    the models, the naive forecast and the best baseline, and the mean's entry says off-scale."""
    mean_rows = leaderboard_rows.loc[leaderboard_rows["mode"] == "naive"].assign(
        mode="mean", mase=[6.0, 6.5, 7.0], cell_key=lambda f: f["cell_key"] + "-mean")
    agg = aggregate(pd.concat([leaderboard_rows, mean_rows], ignore_index=True))
    fig = transfer_benefit_figure(agg)
    models = agg.loc[agg["architecture"] != "baseline"]
    low, high = next(ax for ax in fig.axes if ax.get_title()).get_ylim()
    assert high < 2.0 and low > 0.9  # models about 1.1-1.7, naive 1.45, seasonal naive 1.25
    assert low < models["mase_mean"].min() and high > max(models["mase_mean"].max(), 1.45)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "mean (baseline, off-scale: 6-7)" in labels
    assert "naive (baseline)" in labels and "seasonal_naive (baseline)" in labels
    # without the far baseline nothing is marked, and the axis is the same
    plain = transfer_benefit_figure(aggregate(leaderboard_rows))
    assert not [t for t in plain.legends[0].get_texts() if "off-scale" in t.get_text()]
    assert next(ax for ax in plain.axes if ax.get_title()).get_ylim() == (low, high)


def test_run_ids_link_to_the_mlflow_ui_only_for_a_server(leaderboard_rows, tmp_path):
    """``mlflow_run_id`` in the best-cells table: a link when the rows carry the run's page on a
    tracking server (``write_grid_report`` adds it), a plain id with the ``tlbench ui`` hint
    otherwise."""
    urls = leaderboard_rows.assign(**{RUN_URL: [f"http://127.0.0.1:5000/#/experiments/1/runs/{r}"
                                                if isinstance(r, str) else None
                                                for r in leaderboard_rows["mlflow_run_id"]]})
    linked = write_report(urls, tmp_path / "server", "linked").read_text(encoding="utf-8")
    best = best_cells(leaderboard_rows)
    for run in best["mlflow_run_id"]:
        assert f"<a href='http://127.0.0.1:5000/#/experiments/1/runs/{run}'>{run}</a>" in linked
    assert "tlbench ui" not in linked
    plain = write_report(leaderboard_rows, tmp_path / "local", "plain").read_text(encoding="utf-8")
    assert "<a href" not in plain and f"<td>{best['mlflow_run_id'].iloc[0]}</td>" in plain
    assert "<code>tlbench ui</code>" in plain


def test_training_time_figure_plots_every_mode_on_log_axes(leaderboard_rows):
    agg = aggregate(leaderboard_rows)
    agg.loc[agg["mode"] == "frozen", "train_seconds_mean"] = 0.0  # a mode that trains nothing
    fig = training_time_figure(agg)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert len(panels) == 2 and all(ax.get_yscale() == "log" and ax.get_xscale() == "log" for ax in panels)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["scratch", "finetune", "frozen (no training)"]


def test_figures_never_use_mathtext_so_threads_can_draw_at_once(leaderboard_rows, monkeypatch):
    """matplotlib's mathtext parser is shared and not thread-safe (two threads drawing default
    log-axis labels at once crash in pyparsing), so the figures must not call it at all."""
    from matplotlib.mathtext import MathTextParser

    def refuse(self, text, *args, **kwargs):
        raise AssertionError(f"mathtext used for {text!r}")

    monkeypatch.setattr(MathTextParser, "parse", refuse)
    agg = aggregate(leaderboard_rows)
    for fig in (transfer_benefit_figure(agg), training_time_figure(agg),
                forecast_figure(*sine_forecast(240), title="cost $5 and $6")):
        fig.savefig(io.BytesIO(), format="png")


def test_figures_reject_frames_that_are_not_aggregates(leaderboard_rows):
    with pytest.raises(TlbenchError, match="aggregate.*mase_mean"):
        transfer_benefit_figure(leaderboard_rows)


def test_best_cells_picks_the_best_mean_group_and_its_median_seed(leaderboard_rows):
    best = best_cells(leaderboard_rows)
    assert list(best["target_size"]) == list(SIZES)
    assert list(best["mode"]) == ["finetune", "finetune", "finetune"]
    assert set(best["architecture"]) == {"lstm"}  # gru carries a +0.05 offset everywhere
    for row in best.itertuples():
        seeds = leaderboard_rows.loc[(leaderboard_rows["target_size"] == row.target_size)
                                     & (leaderboard_rows["architecture"] == row.architecture)
                                     & (leaderboard_rows["mode"] == row.mode)]
        assert row.mase == sorted(seeds["mase"])[1]  # the median of three seeds
        assert row.group_mean == pytest.approx(seeds["mase"].mean())
        assert row.mlflow_run_id.startswith("mlflow-lstm-finetune-")
    assert best_cells(leaderboard_rows.loc[leaderboard_rows["kind"] == "baseline"]).empty


def test_rewriting_a_report_replaces_its_files(tmp_path, leaderboard_rows):
    write_report(leaderboard_rows, tmp_path, "first", forecasts={240: sine_forecast(240), 960: sine_forecast(960)})
    write_report(leaderboard_rows, tmp_path, "second", forecasts={240: sine_forecast(240)})
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "forecast_240.png", REPORT_FILE, TRAINING_TIME_FILE, TRANSFER_BENEFIT_FILE, "win_rates.png"]
    assert "<title>second</title>" in (tmp_path / REPORT_FILE).read_text(encoding="utf-8")


def test_write_report_refuses_no_rows(tmp_path, leaderboard_rows):
    with pytest.raises(TlbenchError, match="No leaderboard rows"):
        write_report(leaderboard_rows.iloc[0:0], tmp_path, "empty")


# ---------------------------------------------------------------- the HTML file


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.style = ""
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.style += data


def embedded_images(html_text: str) -> dict[str, bytes]:
    parser = _Collector()
    parser.feed(html_text)
    return {attrs["id"]: base64.b64decode(attrs["src"].split(",", 1)[1])
            for tag, attrs in parser.tags if tag == "img"}


def test_report_file_is_self_contained_and_embeds_the_pngs_written_beside_it(report):
    text = report.read_text(encoding="utf-8")
    parser = _Collector()
    parser.feed(text)
    tags = [tag for tag, _ in parser.tags]
    assert not {"script", "link", "iframe", "object", "embed", "base", "source"} & set(tags)
    for tag, attrs in parser.tags:
        for name, value in attrs.items():
            if name in ("src", "href", "srcset", "action", "poster", "data", "background"):
                assert value.startswith("data:image/png;base64,"), f"<{tag} {name}={value[:60]!r}>"
            assert "http://" not in (value or "") and "https://" not in (value or ""), f"<{tag} {name}=...>"
    assert "url(" not in parser.style and "@import" not in parser.style and "@font-face" not in parser.style
    images = embedded_images(text)
    assert list(images) == ["transfer-benefit", "win-rates", "training-time", "forecast-240", "forecast-960",
                            "forecast-4800"]
    assert images["win-rates"] == (report.parent / "win_rates.png").read_bytes()
    assert images["transfer-benefit"] == (report.parent / TRANSFER_BENEFIT_FILE).read_bytes()
    assert images["training-time"] == (report.parent / TRAINING_TIME_FILE).read_bytes()
    assert (report.parent / "forecast_960.png").is_file()
    assert not [p.name for p in report.parent.iterdir() if p.name.startswith(".")]  # no temp files left
    for heading in ("Transfer benefit", "Best mode per architecture and size", "Transfer horizon",
                    "Training time", "Best model cell per size", "Aggregated leaderboard", "Win rates",
                    "Skill against the baselines", "Forecast comparisons (Diebold-Mariano)"):
        assert f"<h2>{heading}</h2>" in text
    assert "<h2 id='verdict'>Verdict</h2>" in text


def test_transfer_benefit_png_decodes_to_a_drawn_chart(report):
    from PIL import Image

    png = embedded_images(report.read_text(encoding="utf-8"))["transfer-benefit"]
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.width >= 800 and image.height >= 300
    pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
    assert (pixels.min(axis=1) < 200).mean() > 0.02  # ink, not a blank canvas
    colours = {tuple(p) for p in pixels[:: max(1, len(pixels) // 200_000)]}
    assert len(colours) > 100
    assert (17, 17, 17) in colours  # scratch's line colour: the mode lines are drawn


# ---------------------------------------------------------------- the page in a real browser

def find_chromium() -> Path | None:
    """``TLBENCH_CHROMIUM`` when set, else ``chromium`` or ``chromium-browser`` on ``PATH``."""
    import shutil

    if os.environ.get("TLBENCH_CHROMIUM"):
        path = Path(os.environ["TLBENCH_CHROMIUM"])
        return path if path.is_file() and os.access(path, os.X_OK) else None
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    return Path(found) if found else None


CHROMIUM = find_chromium()
INSTALL_HINT = ("install it (Debian/Ubuntu, as root: `apt-get update && apt-get install -y chromium`) or point "
                "TLBENCH_CHROMIUM at a Chromium binary")


def needs_chromium(test):
    """Outside CI a missing browser skips the browser checks (saying how to get them); under
    ``CI=true`` it fails them: CI never passes without having opened the report in a browser."""
    if CHROMIUM is not None:
        return test
    where = (f"TLBENCH_CHROMIUM={os.environ['TLBENCH_CHROMIUM']} is not an executable file"
             if os.environ.get("TLBENCH_CHROMIUM") else "no chromium or chromium-browser on PATH")
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        def missing_browser(*args, **kwargs):
            pytest.fail(f"CI=true and headless Chromium not found ({where}): {INSTALL_HINT}. The report's "
                        "browser checks never skip in CI.", pytrace=False)

        missing_browser.__name__, missing_browser.__doc__ = test.__name__, test.__doc__
        return missing_browser
    return pytest.mark.skip(reason=f"headless Chromium not found ({where}): {INSTALL_HINT}")(test)


class HeadlessChromium:
    """A headless Chromium driven over the DevTools protocol through ``--remote-debugging-pipe``
    (no port, no extra package): commands go to its fd 3, replies and events come from its fd 4,
    as JSON messages separated by NUL bytes."""

    FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--remote-debugging-pipe")

    def __init__(self, workdir: Path, timeout: float = 60):
        self.timeout = timeout
        self.log_path = workdir / "chromium.log"
        self._log = open(self.log_path, "wb")
        # sh moves our stdin/stdout pipes onto the fds 3 and 4 that Chromium expects
        self.proc = subprocess.Popen(
            ["sh", "-c", 'exec "$0" "$@" 3<&0 4>&1 0</dev/null 1>/dev/null', str(CHROMIUM), *self.FLAGS,
             f"--user-data-dir={workdir / 'profile'}", "about:blank"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, start_new_session=True)
        self._messages: queue.Queue = queue.Queue()
        self._events: list[dict] = []
        self._next_id = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        buffer = b""
        while chunk := self.proc.stdout.read1(1 << 16):
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for message in messages:
                self._messages.put(json.loads(message))
        self._messages.put(None)

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self.proc.stdin.write(json.dumps(message).encode() + b"\0")
        self.proc.stdin.flush()
        reply = self._wait(lambda m: m.get("id") == self._next_id, f"the reply to {method}")
        if "error" in reply:
            raise RuntimeError(f"{method} failed: {reply['error']}")
        return reply.get("result", {})

    def _wait(self, match, what: str) -> dict:
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                message = self._messages.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"Chromium sent no {what} within {self.timeout} s; its log:\n"
                                   + self.log_path.read_text(errors="replace")[-3000:]) from None
            if message is None:
                raise RuntimeError("Chromium exited; its log:\n" + self.log_path.read_text(errors="replace")[-3000:])
            if "method" in message:
                self._events.append(message)
            if match(message):
                return message

    def open(self, url: str) -> "Page":
        """A fresh tab with Runtime, Log, Page and Network events on, loaded with ``url``."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Page", "Network"):
            self.send(f"{domain}.enable", session=session)
        self.send("Page.navigate", {"url": url}, session)
        self._wait(lambda m: m.get("method") == "Page.loadEventFired" and m.get("sessionId") == session,
                   f"load event for {url}")
        return Page(self, session)

    def close(self) -> None:
        try:
            self.send("Browser.close")
            self.proc.wait(10)
        except Exception:  # noqa: BLE001 - it is going away either way
            pass
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the process group we started
            self.proc.wait(10)
        self._log.close()


class Page:
    def __init__(self, browser: HeadlessChromium, session: str):
        self.browser, self.session = browser, session

    def evaluate(self, expression: str):
        result = self.browser.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                        "awaitPromise": True}, self.session)
        if "exceptionDetails" in result:
            raise AssertionError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def events(self, method: str) -> list[dict]:
        return [e["params"] for e in self.browser._events
                if e.get("sessionId") == self.session and e["method"] == method]

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and error log entries (failed loads, CSP refusals)."""
        found = [f"console.{e['type']}: " + " ".join(str(a.get("value", a.get("description", "")))
                                                     for a in e.get("args", []))
                 for e in self.events("Runtime.consoleAPICalled") if e["type"] in ("error", "assert")]
        found += [f"exception: {e['exceptionDetails'].get('text')} "
                  f"{e['exceptionDetails'].get('exception', {}).get('description', '')}"
                  for e in self.events("Runtime.exceptionThrown")]
        found += [f"log.{e['entry']['source']}: {e['entry']['text']} {e['entry'].get('url', '')}"
                  for e in self.events("Log.entryAdded") if e["entry"]["level"] == "error"]
        return found

    def requested_urls(self) -> list[str]:
        """Every URL the page asked for (including those the browser then blocked)."""
        return [e["request"]["url"] for e in self.events("Network.requestWillBeSent")]

    def blocked(self) -> dict[str, str]:
        """URL -> why the browser refused to load it (e.g. ``csp``)."""
        urls = {e["requestId"]: e["request"]["url"] for e in self.events("Network.requestWillBeSent")}
        return {urls.get(e["requestId"], "?"): e["blockedReason"]
                for e in self.events("Network.loadingFailed") if e.get("blockedReason")}

    def screenshot(self, path: Path) -> None:
        height = self.evaluate("document.documentElement.scrollHeight")
        self.browser.send("Emulation.setDeviceMetricsOverride",
                          {"width": 1400, "height": int(height), "deviceScaleFactor": 1, "mobile": False},
                          self.session)
        data = self.browser.send("Page.captureScreenshot", {"format": "png"}, self.session)["data"]
        path.write_bytes(base64.b64decode(data))


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium = HeadlessChromium(tmp_path_factory.mktemp("chromium"))
    yield chromium
    chromium.close()


PAGE_FACTS = """(async () => {
  const img = document.getElementById('transfer-benefit');
  await img.decode();
  const box = img.getBoundingClientRect();
  return {
    title: document.title,
    headings: [...document.querySelectorAll('h2')].map(h => h.textContent),
    images: [...document.images].map(i => ({id: i.id, complete: i.complete, width: i.naturalWidth,
                                             height: i.naturalHeight})),
    benefit: {width: img.naturalWidth, height: img.naturalHeight, shownWidth: box.width,
              shownHeight: box.height, visible: getComputedStyle(img).visibility === 'visible'},
    scripts: document.scripts.length,
    tableRows: [...document.querySelectorAll('table')].map(t => t.tBodies[0].rows.length),
    verdict: [...document.querySelectorAll('ul.verdict li')].map(li => li.textContent),
    text: document.body.innerText,
  };
})()"""


@needs_chromium
def test_report_renders_in_headless_chromium_without_errors(report, browser):
    page = browser.open(report.as_uri())
    facts = page.evaluate(PAGE_FACTS)
    assert page.errors() == []
    external = [u for u in page.requested_urls() if not u.startswith(("file:", "data:", "about:"))]
    assert external == []
    assert facts["title"] == "tlbench report: report-demo" and facts["scripts"] == 0
    assert facts["headings"] == ["Verdict", "The pretrained body on its source", "Transfer benefit",
                                 "Skill against the baselines", "Win rates", "Forecast comparisons (Diebold-Mariano)",
                                 "Best mode per architecture and size", "Transfer horizon", "Training time",
                                 "Best model cell per size", "Aggregated leaderboard"]
    # the verdict names the baselines: the first screen says whether any model beats them
    assert facts["verdict"][0].startswith(("No model beats", "lstm", "gru")) and len(facts["verdict"]) == 3
    assert all("baseline" in line or "No model beats" in line for line in facts["verdict"])
    assert all(i["complete"] and i["width"] > 0 and i["height"] > 0 for i in facts["images"]), facts["images"]
    png = embedded_images(report.read_text(encoding="utf-8"))["transfer-benefit"]
    from PIL import Image

    decoded = Image.open(io.BytesIO(png))
    benefit = facts["benefit"]
    assert (benefit["width"], benefit["height"]) == decoded.size  # the browser decoded our PNG
    assert benefit["visible"] and benefit["shownWidth"] > 400 and benefit["shownHeight"] > 150
    # skill vs the best baseline, vs seasonal naive and vs naive: 2 architectures x 3 modes each; win rates: 6 models + 2
    # baselines, with the heat map; winners: 3 sizes x 2 architectures; horizon: 2 architectures x 2
    # transfer modes; best cells: 3 sizes; aggregate: 3 sizes x (2 architectures x 3 modes + 2 baselines)
    assert facts["tableRows"] == [6, 6, 6, 8, 6, 4, 3, 24]
    rates = next(i for i in facts["images"] if i["id"] == "win-rates")
    assert rates["complete"] and rates["width"] > 200 and rates["height"] > 150
    assert "finetune" in facts["text"] and "seasonal_naive" in facts["text"]
    if os.environ.get("TLBENCH_REPORT_SCREENSHOT"):  # to look at it: a path for the PNG
        page.screenshot(Path(os.environ["TLBENCH_REPORT_SCREENSHOT"]))


@needs_chromium
def test_report_tables_fit_a_1600_px_window(report, browser):
    """Every table, the aggregated leaderboard the widest, fits a 1,600 px window: no sideways
    scroll for the page or any table (headers wrap their long column names)."""
    page = browser.open(report.as_uri())
    browser.send("Emulation.setDeviceMetricsOverride", {"width": 1600, "height": 1000, "deviceScaleFactor": 1,
                                                        "mobile": False}, page.session)
    widths = page.evaluate("""(() => ({page: [document.documentElement.scrollWidth, document.documentElement.clientWidth],
        tables: [...document.querySelectorAll('table')].map(t => [t.scrollWidth, t.parentElement.clientWidth])}))()""")
    assert widths["page"][0] <= widths["page"][1], widths
    assert all(width <= room for width, room in widths["tables"]), widths
    assert len(widths["tables"]) >= 7


@needs_chromium
def test_the_browser_check_catches_errors_and_the_page_policy_blocks_external_loads(report, browser, tmp_path):
    """The checks above are not vacuous: the same harness sees a console error, a failed load and
    an outside request; and the report's own policy refuses an external image that slipped in."""
    broken = tmp_path / "broken.html"
    broken.write_text("<!DOCTYPE html><html><body><script>console.error('boom')</script>"
                      "<img src='missing.png'><img src='http://127.0.0.1:9/x.png'></body></html>")
    page = browser.open(broken.as_uri())
    errors = page.errors()
    assert any("boom" in e for e in errors) and any("missing.png" in e for e in errors), errors
    assert "http://127.0.0.1:9/x.png" in page.requested_urls()

    tampered = tmp_path / "tampered.html"
    tampered.write_text(report.read_text(encoding="utf-8").replace(
        "<h2>Transfer benefit</h2>", "<h2>Transfer benefit</h2><img src='http://127.0.0.1:9/leak.png'>"))
    page = browser.open(tampered.as_uri())
    assert any("Content Security Policy" in e and "leak.png" in e for e in page.errors()), page.errors()
    assert page.blocked() == {"http://127.0.0.1:9/leak.png": "csp"}  # refused before any connection
