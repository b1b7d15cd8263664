"""`crossent serve` as a real process: listens on 127.0.0.1, finishes in-flight requests on
SIGTERM, and refuses bad options with one line and exit status 2."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest
from _serving_helpers import free_port
from typer.testing import CliRunner

from crossent.cli import app as cli
from crossent.recsys.serving.checkpoint import load_checkpoint
from crossent.recsys.serving.recommend import recommend_users

runner = CliRunner()


def _wait_healthy(process: subprocess.Popen, base: str, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"crossent serve exited with {process.returncode}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    pytest.fail("crossent serve did not answer /healthz in time")


def test_sigterm_finishes_the_request_in_flight_and_exits_cleanly(two_stage):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # a 1 s batching wait keeps the request in flight when SIGTERM arrives
    command = [sys.executable, "-m", "crossent", "serve", "--model", str(two_stage)]
    command += ["--port", str(port), "--max-wait-ms", "1000"]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=os.environ | {"NO_COLOR": "1"},
    )
    try:
        _wait_healthy(process, base)
        answers: list[httpx.Response] = []
        asking = threading.Thread(
            target=lambda: answers.append(
                httpx.get(f"{base}/recommend", params={"user": "505", "k": 4}, timeout=30)
            )
        )
        asking.start()
        time.sleep(0.4)  # the request is waiting for companions in the batcher
        process.send_signal(signal.SIGTERM)
        asking.join(30)
        output = process.communicate(timeout=30)[0].decode()
    finally:
        if process.poll() is None:
            process.kill()
    # uvicorn re-raises the signal once shut down: the process ends "killed by SIGTERM", as
    # a service manager expects, after a complete shutdown
    assert process.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output and "Traceback" not in output
    assert "http://127.0.0.1:" in output  # uvicorn says where it listened
    assert len(answers) == 1 and answers[0].status_code == 200
    checkpoint = load_checkpoint(two_stage)
    reference = recommend_users(checkpoint, np.array([5]), 4)
    items = [row["item"] for row in answers[0].json()["recommendations"]]
    assert items == checkpoint.item_ids[reference.items[0]].tolist()


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (["--port", "70000"], "--port"),
        (["--max-batch", "0"], "--max-batch"),
        (["--max-wait-ms", "-1"], "--max-wait-ms"),
        (["--queue-limit", "0"], "--queue-limit"),
        (["--workers", "0"], "--workers"),
        (["--workers", "65"], "--workers"),
        (["--host", "no such host.invalid"], "--host"),
        (["--cors-origin", "example.test"], "--cors-origin"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(two_stage, options, words):
    result = runner.invoke(cli, ["serve", "--model", str(two_stage), *options])
    assert result.exit_code == 2
    assert words in result.output and len(result.output.strip().splitlines()) == 1


def test_a_folder_without_a_model_is_one_line_and_exit_2(tmp_path):
    result = runner.invoke(cli, ["serve", "--model", str(tmp_path)])
    assert result.exit_code == 2 and "no checkpoint file" in result.output
