"""What ``tlbench run`` shows a person (:mod:`benchmark.console`): in a pseudo-terminal a live
progress display and no TensorFlow/absl/CUDA-probe line; through a pipe a few plain lines with the
verdict and the report; with ``--verbose`` the TensorFlow lines do come through (so the filter
test above can fail). Each runs the real CLI in a fresh process on a two-cell grid."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import time

import pytest

from benchmark.console import RunConsole
from benchmark.spec.settings import Settings

GRID = ["target_sizes=[120]", "split.test_size=48", "model.units=8", "training.max_epochs=1",
        "pretrain.max_series=4", "pretrain.windows_per_series=20", "pretrain.training.max_epochs=1",
        "modes=[scratch,frozen]", "seeds=[0]", "baselines=[naive]"]
#: TensorFlow's C++ logging, absl and the CUDA probe, as they print at import and first op.
NOISE = re.compile(r"I0000|W0000|E0000|port\.cc|cudart_stub|cuInit|absl::InitializeLog|oneDNN|"
                   r"cuda drivers|WARNING: All log messages before absl")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


def _command(tmp_path, *extra: str) -> tuple[list[str], dict]:
    command = [sys.executable, "-m", "benchmark.cli", *extra, "run", "--profile", "smoke",
               "--engine", "local", "--results", str(tmp_path / "results"),
               "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]
    for item in GRID:
        command += ["--set", item]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "TLBENCH_RESULTS"))}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the CLI's own default, as a person gets it
    return command, env


def _run_in_pty(command: list[str], env: dict, timeout: float = 600) -> tuple[int, str]:
    """Run ``command`` with a pseudo-terminal as stdin, stdout and stderr; everything it wrote."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(command, env={**env, "TERM": "xterm-256color", "COLUMNS": "120"},
                            stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    chunks, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: every holder of the terminal has closed it
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=60), b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_in_a_terminal_the_run_shows_live_progress_and_no_tensorflow_noise(tmp_path):
    command, env = _command(tmp_path)
    rc, raw = _run_in_pty(command, env)
    text = ANSI.sub("", raw)
    assert rc == 0, text
    assert re.search(r"cells \d/2 done, \d running, \d failed, \d to go", text), text
    assert re.search(r"stage: (pretraining|cells|pretraining \+ cells)", text), text
    assert "elapsed" in text and "verdict: " in text and "report: " in text, text
    noise = [line for line in text.splitlines() if NOISE.search(line)]
    assert noise == [], noise
    logs = list((tmp_path / "results" / "logs").glob("*.log"))
    assert len(logs) == 1 and NOISE.search(logs[0].read_text()), "the noise goes to the log file"


@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_through_a_pipe_the_run_prints_a_few_plain_lines(tmp_path):
    command, env = _command(tmp_path)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    lines = (done.stdout + done.stderr).splitlines()
    assert done.returncode == 0, lines
    assert len(lines) < 40, lines
    assert any(line.startswith("verdict: ") for line in lines), lines
    assert any(line.startswith("report: ") and line.endswith("report.html") for line in lines), lines
    assert any("tlbench ui" in line for line in lines), lines
    assert not any("\x1b[" in line for line in lines), "no terminal escapes in a pipe"
    assert [line for line in lines if NOISE.search(line)] == []
    assert not any(line.startswith("progress: ") for line in lines), lines  # 300 s apart by default


@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_through_a_pipe_a_long_run_says_how_far_it_got_between_stages(tmp_path):
    # three scratch cells, no pretraining: one stage from the first cell to the report, so only the
    # progress lines can say that cells finished (a nightly log had none for 40 minutes)
    command, env = _command(tmp_path)
    command += ["--set", "modes=[scratch]", "--set", "seeds=[0,1,2]", "--progress-every", "0"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    lines = (done.stdout + done.stderr).splitlines()
    assert done.returncode == 0, lines
    progress = [line for line in lines if line.startswith("progress: ")]
    assert any(re.match(r"progress: cells [12]/3 done, \d running, 0 failed, \d to go; elapsed .+, left ~", line)
               for line in progress), lines
    assert len(progress) == len(set(progress)) <= 3, progress  # a line when something moved, never twice
    assert not any("\x1b[" in line for line in lines)
    # the default waits 300 s between lines: the two-cell run of the test above has none
    refused = subprocess.run(command[:-1] + ["-5"], env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "'-5' is not a number of seconds" in refused.stderr, refused.stderr


@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_with_verbose_the_tensorflow_lines_come_through(tmp_path):
    command, env = _command(tmp_path, "--verbose")
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert NOISE.search(done.stdout + done.stderr), "verbose shows what the filter hides"
    assert not (tmp_path / "results" / "logs").exists()


def test_the_terminal_comes_back_after_ctrl_c(tmp_path):
    """Fds 1 and 2 point at the log during the run and at what they were after it, also when the
    run is interrupted; what a C library writes to fd 2 meanwhile lands in the log."""
    settings = Settings.from_env({}, results=str(tmp_path / "results"), data_dir=tmp_path)
    before = [os.fstat(fd).st_ino for fd in (1, 2)]
    with pytest.raises(KeyboardInterrupt):
        with RunConsole(settings, "smoke") as console:
            assert os.fstat(2).st_ino == os.stat(console.log_path).st_ino
            os.write(2, b"I0000 00:00:1.0 1 port.cc:153] as TensorFlow writes it\n")
            raise KeyboardInterrupt
    assert [os.fstat(fd).st_ino for fd in (1, 2)] == before
    assert "port.cc:153" in console.log_path.read_text()


def test_while_the_body_pretrains_the_progress_line_says_how_long_is_left(tmp_path):
    """Issue 34: a pretraining's progress line said ``left ~?`` for its whole length. The epoch
    hook a pretraining writes its progress file with records its pace, and the console turns it
    into the time left: 3 of 12 epochs after 90 s (30 s each) leaves 270 s."""
    from benchmark.run.progress import epoch_writer, pretrain_left_s

    assert pretrain_left_s(1000.0, 1090.0, 3, 12) == 270.0
    assert pretrain_left_s(1000.0, 1000.0, 0, 12) is None  # before the first epoch: unknown
    settings = Settings(results=str(tmp_path / "results"))
    console = RunConsole(settings, "grid")
    console.started = time.time() - 5
    writer = epoch_writer(settings, "k" * 16, max_epochs=12)
    writer(-1, {})  # the pretraining starts
    writer(0, {"loss": 0.5, "val_loss": 0.4})
    console.progress.total, console.progress.active = 4, {"pretrain": 1}
    console.progress.pretrain = console._pretrain_progress()
    state = console._state()
    assert re.search(r"pretraining epoch 1/12, ~\d+ s left in it", state), state
    assert "of pretraining, then the cells" in console._eta(10.0)
