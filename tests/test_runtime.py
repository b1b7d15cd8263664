"""Thread pools: a short spin by default, thread counts from --threads and the
environment, and a bad count named as typed."""

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from crossent import _runtime
from crossent.cli import app
from crossent.errors import CrossentError


def test_importing_crossent_makes_openmp_threads_spin_briefly_when_idle() -> None:
    env_probe = "import os, crossent, torch; print(os.environ['GOMP_SPINCOUNT'])"
    env = {k: v for k, v in __import__("os").environ.items()
           if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")}
    result = subprocess.run([sys.executable, "-c", env_probe], capture_output=True, text=True,
                            check=True, env=env)
    assert int(result.stdout.strip()) == _runtime.SPIN_COUNT < 300_000  # libgomp's default


def test_a_peer_process_gets_the_environment_without_crossents_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(_runtime, "SET_HERE", {})
    _runtime.prepare_environment()
    assert __import__("os").environ["GOMP_SPINCOUNT"] == str(_runtime.SPIN_COUNT)
    assert "GOMP_SPINCOUNT" not in _runtime.environment_without_defaults()
    monkeypatch.setenv("GOMP_SPINCOUNT", "1000")  # the user's own, set since
    assert _runtime.environment_without_defaults()["GOMP_SPINCOUNT"] == "1000"


@pytest.mark.parametrize("variable", ["OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME"])
def test_a_wait_setting_of_the_user_is_left_alone(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, "ACTIVE" if variable == "OMP_WAIT_POLICY" else "1000")
    _runtime.prepare_environment()
    environ = __import__("os").environ
    assert ("OMP_WAIT_POLICY" in environ) == (variable == "OMP_WAIT_POLICY")
    assert ("GOMP_SPINCOUNT" in environ) == (variable == "GOMP_SPINCOUNT")


def test_thread_count_prefers_the_option_then_crossent_then_omp(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CROSSENT_THREADS", "3")
    monkeypatch.setenv("OMP_NUM_THREADS", "5,2")
    assert _runtime.thread_count(7) == 7
    assert _runtime.thread_count() == 3
    monkeypatch.delenv("CROSSENT_THREADS")
    assert _runtime.thread_count() == 5  # the first level of a nested list
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert _runtime.thread_count() == len(__import__("os").sched_getaffinity(0))


def test_a_bad_thread_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROSSENT_THREADS", "two")
    with pytest.raises(CrossentError, match="CROSSENT_THREADS = 'two' must be an integer >= 1"):
        _runtime.thread_count()


def test_configure_threads_sets_torch_and_numba() -> None:
    import numba
    import torch

    before = torch.get_num_threads(), numba.get_num_threads()
    try:
        assert _runtime.configure_threads(1) == 1
        assert (torch.get_num_threads(), numba.get_num_threads()) == (1, 1)
    finally:
        torch.set_num_threads(before[0])
        numba.set_num_threads(before[1])


@pytest.mark.parametrize("command", [
    ["train", "--data", "simulated", "--out", "unused"], ["demo", "--quick"], ["lab"],
])
def test_threads_below_one_is_one_line_naming_the_option(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--threads", "0"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: --threads = 0 must be an integer >= 1"]
