"""Training that survives an interruption: a real signal to a real training process, then
--resume, gives the uninterrupted run's model and metrics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from crossent.cli import app
from crossent.recsys.serving.checkpoint import load_checkpoint

runner = CliRunner()
TRAIN = [
    "train", "--data", "simulated", "--users", "120", "--videos", "30", "--epochs", "4",
    "--dim", "8", "--batch-size", "64", "--max-examples", "384", "--seed", "3",
]  # fmt: skip


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("resume") / "uninterrupted"
    result = runner.invoke(app, [*TRAIN, "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def _saved_epochs(out: Path) -> int:
    """Complete epochs in OUT/training, or 0 while there is none."""
    manifest = out / "training" / "manifest.json"
    if not manifest.is_file():
        return 0
    meta_file = json.loads(manifest.read_text())["parts"]["meta"]["file"]
    try:
        loops = json.loads((out / "training" / meta_file).read_text())["loops"]
    except (OSError, ValueError):  # replaced between the two reads: look again
        return 0
    return max(loop["epoch"] for loop in loops.values())


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGKILL])
def test_a_run_killed_mid_training_resumes_to_the_uninterrupted_result(
    uninterrupted, tmp_path, signum
):
    out = tmp_path / "interrupted"
    process = subprocess.Popen(
        [sys.executable, "-m", "crossent", *TRAIN, "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "200"},
    )
    deadline = time.monotonic() + 300
    while _saved_epochs(out) < 1 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signum)  # during epoch 2: epoch 1 is saved, the run is not over
    output = process.communicate(timeout=120)[0].decode()
    if signum == signal.SIGINT:  # Ctrl-C: one line saying what is saved and how to go on
        assert process.returncode == 2, output
        assert "interrupted; saved in" in output and "--resume" in output
        assert "Traceback" not in output
    else:
        assert process.returncode == -signal.SIGKILL, output
    saved = _saved_epochs(out)
    assert 1 <= saved < 4
    assert not (out / "manifest.json").exists()  # the model itself was never saved

    resumed = runner.invoke(app, [*TRAIN, "--out", str(out), "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert f"resuming after epoch {saved}" in resumed.output
    expected, got = load_checkpoint(uninterrupted), load_checkpoint(out)
    assert got.metrics == expected.metrics
    for key, value in expected.candidate.state_dict().items():
        assert torch.equal(got.candidate.state_dict()[key], value), key
    assert got.curves["retrieval"]["valid_bits"] == expected.curves["retrieval"]["valid_bits"]


def test_resume_with_other_options_is_refused(uninterrupted):
    changed = [*TRAIN[:-2], "--seed", "4", "--out", str(uninterrupted), "--resume"]
    result = runner.invoke(app, changed)
    assert result.exit_code == 2
    assert "the saved training used seed = 3, this run 4" in result.output
